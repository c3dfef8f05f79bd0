"""What a store browser shows: a page of any listing with its total, evaluations as rows, a
run as a :class:`~mlmd_magic.Run`, and any row's details as HTML.

Every tab of :class:`~mlmd_magic.widgets.StoreBrowser` is fed by :meth:`Store.page` and
:meth:`Store.details`; other panels and faces may use them as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..backend.listing import Scan, page_rows
from ..backend.properties import text
from ..backend.types import full
from ..core.query import Where
from ..core.values import flatten
from ..errors import NotFoundError
from .filters import evaluation_plan
from .results import Evaluation, Run

if TYPE_CHECKING:
    import pandas as pd

    from .runs import Runs

__all__ = ["EVALUATION_COLUMNS", "Page", "evaluation", "evaluation_table", "page_of", "run", "run_page_columns"]

EVALUATION_COLUMNS = ["evaluation", "model", "policy", "baseline", "data", "verdict", "thresholds", "failed_checks",
                      "checks", "created"]


@dataclass(frozen=True)
class Page:
    """One page of a listing: its rows, and how many rows match in all where that is known
    without reading further (``total`` is None while more rows follow this page: counting them
    would read the whole listing, so a first page would cost as much as the store is large)."""

    frame: pd.DataFrame
    total: int | None
    offset: int
    limit: int
    more: bool = False  # whether rows follow this page

    @property
    def pages(self) -> int | None:
        """How many pages the listing has (at least 1), or None while that is not known."""
        if self.total is None:
            return None
        return max((self.total + self.limit - 1) // self.limit, 1)

    @property
    def number(self) -> int:
        """This page's number, from 1."""
        return self.offset // self.limit + 1

    def describe(self) -> str:
        """``rows 1–20 of many · page 1`` while more rows follow, ``rows 21–26 of 26 · page 2 of 2``
        on the last page (an empty listing: ``no rows``)."""
        if not len(self.frame):
            return "no rows" if not self.offset else f"no rows from row {self.offset + 1}"
        rows = f"rows {self.offset + 1}–{self.offset + len(self.frame)}"
        if self.total is None:
            return f"{rows} of many · page {self.number}"
        return f"{rows} of {self.total} · page {self.number} of {self.pages}"

    def __repr__(self) -> str:
        first = self.offset + 1 if len(self.frame) else 0
        if self.total is None:
            return f"rows {first}–{self.offset + len(self.frame)} of many (page {self.number})"
        return (f"rows {first}–{self.offset + len(self.frame)} of {self.total} "
                f"(page {self.number} of {self.pages})")


def page_of(frame: pd.DataFrame, limit: int, offset: int) -> tuple[pd.DataFrame, int | None, bool]:
    """A page cut from ``frame``, the listing's rows from ``offset`` on, at most ``limit + 1``
    of them (the one beyond the page says that more follow): ``(rows, total or None, more)``.
    The total is known when the listing ended on this page."""
    more = len(frame) > limit
    page = frame.iloc[:limit].reset_index(drop=True)
    total = offset + len(page) if not more and (len(page) or not offset) else None
    return page, total, more


def run(runs: Runs, ref: Any) -> Run:
    """The training run ``ref`` (an id, ``run:ID`` or ``EXPERIMENT@N#K``) as a :class:`Run`."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    execution = runs.run_execution(ref)
    link = runs.run_links([execution])[execution.id]
    model = runs.mlmd.get_artifacts_by_id([link["model"]])[0] if link["model"] is not None else None
    details = json.loads(text(execution.properties, "details") or "{}")
    state = pb.Execution.State.Name(execution.last_known_state)
    return Run(id=execution.id, experiment=link["experiment"], state=state, cached=state == "CACHED",
               model_id=model.id if model is not None else None, model_uri=model.uri if model is not None else None,
               metrics=details.get("metrics", {}),
               # a run still going (or cancelled) has its per-epoch history and no details yet
               history=details.get("history") or json.loads(text(execution.properties, "history") or "{}"),
               details={k: v for k, v in details.items() if k not in ("metrics", "history")},
               name=str(execution.name))


def run_page_columns(runs: Runs, frame: pd.DataFrame) -> pd.DataFrame:
    """A page of ``list("runs")`` with one column per split and metric (``test.accuracy``,
    rounded to 4 places; made from a ``metrics`` summary where the listing has one), then the
    experiment's ``overrides`` and one column per parameter the listing lacks, read in two
    batched calls plus one per experiment version."""
    import pandas as pd

    ids = [int(i) for i in frame["run"]]
    executions = {e.id: e for e in (runs.mlmd.get_executions_by_id(ids) if ids else [])}
    experiments: dict[str, tuple[str, dict[str, Any]]] = {}
    metric_rows, param_rows = [], []
    for run_id, exp_ref in zip(ids, frame["experiment"]):
        details = json.loads(text(executions[run_id].properties, "details") or "{}") if run_id in executions else {}
        metric_rows.append({f"{split}.{name}": round(value, 4) if isinstance(value, float) else value
                            for split, values in (details.get("metrics") or {}).items() if isinstance(values, dict)
                            for name, value in values.items()})
        if exp_ref and exp_ref not in experiments:
            art = runs.records.resolve("experiments", exp_ref)
            experiments[exp_ref] = (text(art.properties, "overrides") or "{}",
                                    flatten(runs.records.data("experiments", art)["params"]))
        overrides, params = experiments.get(exp_ref, ("{}", {}))
        param_rows.append({"overrides": overrides, **params})
    base = frame.reset_index(drop=True)
    parts = [base]
    if "metrics" in base.columns:  # a listing with a metrics summary: one column per split and metric
        base = parts[0] = base.drop(columns=["metrics"])
        metric_frame = pd.DataFrame(metric_rows, index=base.index)
        ordered = sorted((str(c) for c in metric_frame.columns), key=lambda c: (c.split(".", 1)[0] != "test", c))
        parts.append(metric_frame[ordered])
    taken = {str(c) for c in base.columns} | {str(c) for part in parts[1:] for c in part.columns}
    param_frame = pd.DataFrame(param_rows, index=base.index)
    # one column per parameter: one the listing has already (bare, or as params.KEY where its name
    # is a listing column's) is not added again; a new one named as a listing column is params.KEY
    from .runs import RUN_COLUMNS

    keep: dict[str, str] = {}
    for c in (str(c) for c in param_frame.columns):
        if c == "overrides" or (c not in taken and f"params.{c}" not in taken):
            keep[c] = c
        elif c in RUN_COLUMNS and f"params.{c}" not in taken:
            keep[c] = f"params.{c}"
    param_frame = param_frame[list(keep)]
    param_frame.columns = pd.Index(list(keep.values()))
    parts.append(param_frame)
    return pd.concat(parts, axis=1)


def evaluation_table(runs: Runs, predicate: Any, limit: int | None, offset: int) -> pd.DataFrame:
    """Evaluations, newest first: model, baseline, data, verdict, thresholds and failed checks."""
    import pandas as pd

    page = 100 if limit is None else min(max(limit + offset, 20), 500)
    type_id = runs.recorder.types.artifacts["Evaluation"]
    plan = evaluation_plan(predicate) if isinstance(predicate, Where) else None
    nodes = Scan(runs.mlmd, "artifacts", full("Evaluation"), type_id, page, plan,
                 None if limit is None else limit + offset)
    rows = page_rows(nodes, lambda batch: _evaluation_rows(runs, list(batch)), predicate, limit, offset, page)
    frame = pd.DataFrame(rows, columns=EVALUATION_COLUMNS)
    if not frame.empty:
        frame["created"] = pd.to_datetime(frame["created"], unit="ms", utc=True)
    return frame


def _model_ids(art: Any) -> tuple[int, int | None]:
    custom = art.custom_properties
    base = custom["baseline_model_id"].int_value if "baseline_model_id" in custom else None
    return custom["current_model_id"].int_value, base


def _evaluation_rows(runs: Runs, artifacts: list[Any]) -> list[dict[str, Any]]:
    wanted = sorted({m for a in artifacts for m in _model_ids(a) if m is not None})
    names = {m.id: str(m.name) or f"model #{m.id}" for m in (runs.mlmd.get_artifacts_by_id(wanted) if wanted else [])}
    rows = []
    for art in artifacts:
        model, base = _model_ids(art)
        result = _result(art)
        failed = [c for c in result.checks if not c.passed]
        rows.append({
            "evaluation": art.id, "model": names.get(model, f"model #{model}"),
            "policy": text(art.properties, "policy"),  # NAME@N of the release policy, or empty
            "baseline": names.get(base, f"model #{base}") if base is not None else "",
            "data": text(art.properties, "split"), "verdict": "BLESSED" if result.blessed else "NOT BLESSED",
            "thresholds": "; ".join(t.describe() for t in result.thresholds),
            "failed_checks": "; ".join(f"{c.slice}: {c.threshold}" for c in failed),
            "checks": f"{len(result.checks) - len(failed)}/{len(result.checks)} passed",
            "created": art.create_time_since_epoch})
    return rows


def _result(art: Any) -> Any:
    from ..core.evaluation import EvaluationResult

    p = art.properties
    metrics = json.loads(text(p, "metrics") or "{}")
    return EvaluationResult.from_dict({
        "task": metrics.get("task", ""), "split": text(p, "split"), "metrics": metrics.get("metrics", {}),
        "baseline_metrics": metrics.get("baseline_metrics"), "checks": json.loads(text(p, "checks") or "[]"),
        "thresholds": json.loads(text(p, "thresholds") or "[]"), "slices": json.loads(text(p, "slices") or "[]"),
        "confusion": metrics.get("confusion") or {}, "class_labels": metrics.get("class_labels") or [],
        "blessed": "blessed" in art.custom_properties and art.custom_properties["blessed"].int_value == 1})


def evaluation(runs: Runs, evaluation_id: int) -> Evaluation:
    """The evaluation record ``evaluation_id`` as an :class:`~mlmd_magic.Evaluation`.

    Raises
    ------
    NotFoundError
        When no evaluation has that id.
    """
    found = runs.mlmd.get_artifacts_by_id([int(evaluation_id)])
    if not found or found[0].type_id != runs.recorder.types.artifacts["Evaluation"]:
        raise NotFoundError(f"no evaluation #{evaluation_id}; see %mlmd ls evaluations")
    art = found[0]
    model, base = _model_ids(art)
    names = {m.id: str(m.name) for m in runs.mlmd.get_artifacts_by_id([m for m in (model, base) if m is not None])}
    result = _result(art)
    return Evaluation(id=art.id, model_id=model, baseline_model_id=base, blessed=result.blessed, result=result,
                      model_name=names.get(model, ""), baseline_name=names.get(base, "") if base is not None else "",
                      policy=text(art.properties, "policy"))


def signature(mlmd: Any, executions: bool = True) -> tuple[Any, ...]:
    """What changes when anything is recorded in the store: ``(newest execution id, id and
    last_update_time of the execution and of the artifact updated last)``; three one-row reads.
    ``executions=False``: the artifact part only (one read) — what a panel of records needs, which
    a running training's heartbeat (an execution updated every few seconds) does not change."""
    from ml_metadata.metadata_store import metadata_store as ms

    def newest(get: Callable[..., Any], field: Any) -> tuple[int, int]:
        found = get(list_options=ms.ListOptions(limit=1, order_by=field, is_asc=False))
        return (int(found[0].id), int(found[0].last_update_time_since_epoch)) if found else (0, 0)

    if not executions:
        return newest(mlmd.get_artifacts, ms.OrderByField.UPDATE_TIME)
    return (newest(mlmd.get_executions, ms.OrderByField.ID)[0],
            *newest(mlmd.get_executions, ms.OrderByField.UPDATE_TIME),
            *newest(mlmd.get_artifacts, ms.OrderByField.UPDATE_TIME))
