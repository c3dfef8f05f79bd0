"""Training runs and evaluations on record: the store side of the trainer.

``Store.train`` and ``Store.evaluate`` delegate here. A run is a ``mlmd_magic.Train``
execution: written RUNNING with its INPUT events (experiment, data source, scenario),
updated each epoch with its progress (a heartbeat), and finished COMPLETE with an OUTPUT
event to a new ``mlmd_magic.Model`` artifact — or CANCELED / FAILED with nothing else
written. An identical earlier run (same experiment version, data fingerprint, trainer
code and backend) is reused and recorded as CACHED.
"""

from __future__ import annotations

import html
import json
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._datafiles import verify_recorded
from ._names import is_number
from ._records import canonical_json, content_hash
from ._types import full
from .errors import MlmdMagicError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from .store import Store, _Action

RUNS_ENV = "MLMD_MAGIC_RUNS_DIR"


class TrainingError(MlmdMagicError):
    """Training stopped with an error (bad parameters for the trainer, unreadable data, ...)."""


@dataclass(frozen=True)
class Run:
    """One training run (a ``mlmd_magic.Train`` execution) and the model it produced."""

    id: int
    experiment: str
    state: str
    cached: bool
    model_id: int | None
    model_uri: str | None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        how = f"cached from run #{self.details.get('cached_from')}" if self.cached else self.state
        lines = [f"Run #{self.id} of {self.experiment}: {how}; model #{self.model_id} at {self.model_uri}"]
        if self.details.get("device"):
            lines.append(f"  {self.details.get('task')} on {self.details['device']} ({self.details.get('backend')}), "
                         f"{self.details.get('epochs')} epochs, "
                         f"{self.details.get('examples_per_second', 0):.0f} examples/s")
        for split, values in self.metrics.items():
            lines.append(f"  {split:<6} " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        metric_names = sorted({m for v in self.metrics.values() for m in v})
        head = "".join(f"<th>{html.escape(m)}</th>" for m in metric_names)
        rows = "".join(
            f"<tr><td>{html.escape(s)}</td>" + "".join(f"<td>{v.get(m, float('nan')):.4f}</td>" for m in metric_names)
            + "</tr>" for s, v in self.metrics.items())
        return (f"<div class='mlmd-magic-run'><pre>{html.escape(repr(self).splitlines()[0])}</pre>"
                f"<table><thead><tr><th>split</th>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


@dataclass(frozen=True)
class Evaluation:
    """An evaluation on record: its verdict, metrics per slice and the checks behind it."""

    id: int
    model_id: int
    baseline_model_id: int | None
    blessed: bool
    result: Any  # mlmd_magic.evaluation.EvaluationResult

    def __repr__(self) -> str:
        base = f" against model #{self.baseline_model_id}" if self.baseline_model_id else ""
        return f"Evaluation #{self.id} of model #{self.model_id}{base}\n{self.result!r}"

    def _repr_html_(self) -> str:
        base = f" against model #{self.baseline_model_id}" if self.baseline_model_id else ""
        return f"<p>Evaluation #{self.id} of model #{self.model_id}{base}</p>{self.result._repr_html_()}"


def runs_root(store: Store) -> str:
    """Where run folders go: ``$MLMD_MAGIC_RUNS_DIR``, else beside a SQLite store, else ./mlmd-magic-runs."""
    if os.environ.get(RUNS_ENV):
        return os.path.abspath(os.environ[RUNS_ENV])
    if store._uri.scheme == "sqlite":
        return os.path.join(os.path.dirname(os.path.abspath(store._uri.path)), "mlmd-magic-runs")
    return os.path.abspath("mlmd-magic-runs")


def _backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _model_artifact(store: Store, exp_ref: str, execution_id: int, result: Any) -> Any:
    from ml_metadata.proto import metadata_store_pb2 as pb

    from .store import _props

    art = pb.Artifact(type_id=store._types.artifacts["Model"], name=f"{exp_ref}#run-{execution_id}",
                      uri=result.model_path, state=pb.Artifact.LIVE)
    signature = {"input_features": result.input_features, "input_dim": result.input_dim, "task": result.task,
                 "num_classes": result.num_classes}
    _props(art, framework="keras", versions=canonical_json(result.versions), signature=canonical_json(signature),
           experiment=exp_ref, task=result.task, metrics=canonical_json(result.metrics))
    return art


def _find_cached(store: Store, key: str) -> tuple[Any, Any] | None:
    from ml_metadata.metadata_store import metadata_store as ms
    from ml_metadata.proto import metadata_store_pb2 as pb

    options = ms.ListOptions(order_by=ms.OrderByField.ID, is_asc=False, limit=20,
                             filter_query=f"type = '{full('Train')}' AND properties.cache_key.string_value = '{key}'")
    for execution in store.mlmd.get_executions(list_options=options):
        if execution.last_known_state not in (pb.Execution.COMPLETE, pb.Execution.CACHED):
            continue
        outputs = [e.artifact_id for e in store.mlmd.get_events_by_execution_ids([execution.id])
                   if e.type == pb.Event.OUTPUT]
        for model in store.mlmd.get_artifacts_by_id(outputs):
            if model.state == pb.Artifact.LIVE and os.path.exists(model.uri):
                return execution, model
    return None


def _merged_overrides(existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = json.loads(canonical_json(existing))
    for key, value in new.items():
        merged[key] = value
    return merged


def train(store: Store, ref: str, *, workdir: str | None, force: bool, callbacks: Sequence[Any] | None,
          progress: bool, overrides: dict[str, Any]) -> Run:
    """See :meth:`mlmd_magic.Store.train`."""
    from .store import _Action

    if overrides:
        art = store._resolve("experiments", ref)
        p = art.properties
        ref = store.experiment(
            art.name.rsplit("@", 1)[0], datasource=p["datasource"].string_value,
            scenario=p["scenario"].string_value,
            overrides=_merged_overrides(json.loads(p["overrides"].string_value or "{}"), overrides),
            description=p["description"].string_value if "description" in p else None,
        ).ref
    act = _Action("Train", {"ref": ref, "workdir": workdir, "force": force, "overrides": overrides})
    with store._action_guard(act):
        exp_art = store._resolve("experiments", ref)
        params = store._data("experiments", exp_art)
        exp_ref = f"{params['experiment']}@{params['version']}"
        act.arguments["experiment"] = exp_ref
        ds_art = store._resolve("datasources", f"{params['datasource']['name']}@{params['datasource']['version']}")
        sc_art = store._resolve("scenarios", f"{params['scenario']['name']}@{params['scenario']['version']}")
        from .trainer import code_version

        key = content_hash({"experiment": exp_art.id, "fingerprint": ds_art.properties["fingerprint"].string_value,
                            "code": code_version(), "backend": _backend()})[:32]
        # No record-name context here: it holds the experiment's versions (Store._latest relies on
        # that); the run reaches the experiment through its INPUT event.
        act.inputs += [exp_art, ds_art, sc_art]
        act.properties["cache_key"] = key
        verify_recorded(ds_art)  # never a run (trained or CACHED) against data it would not read
        prior = None if force else _find_cached(store, key)
        if prior is not None:
            execution, model = prior
            act.outputs = [model]
            act.state, act.outcome = "CACHED", f"reused run #{execution.id}"
            details = json.loads(execution.properties["details"].string_value or "{}")
            act.properties["details"] = canonical_json({**details, "cached_from": execution.id})
            store._commit(act)
            return _run_from(act.execution_id or 0, exp_ref, "CACHED", True, model,
                             {**details, "cached_from": execution.id})
        return _train_now(store, act, params, exp_ref, workdir, callbacks, progress)


def _train_now(store: Store, act: _Action, params: dict[str, Any], exp_ref: str, workdir: str | None,
               callbacks: Sequence[Any] | None, progress: bool) -> Run:
    from . import trainer

    act.state, act.outcome = "RUNNING", "training"
    act.properties["owner"] = f"{socket.gethostname()}:{os.getpid()}"
    store._commit(act)
    act.inputs_written = True
    run_dir = workdir or os.path.join(runs_root(store), exp_ref.replace("@", "-v"), f"run-{act.execution_id}")
    act.properties["run_dir"] = run_dir

    class Heartbeat:
        def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
            # MLMD stamps the execution's last_update_time: that is the heartbeat
            act.properties["progress"] = canonical_json({"epoch": epoch + 1, "logs": logs})
            store._commit(act)

    try:
        result = trainer.train(params, workdir=run_dir, callbacks=[Heartbeat(), *(callbacks or [])],
                               progress=progress)
    except KeyboardInterrupt:
        act.state, act.outcome = "CANCELED", "canceled"
        store._commit(act, error=KeyboardInterrupt("interrupted by the user"))
        if workdir is None:
            trainer._train.cleanup(run_dir)
        raise
    except MlmdMagicError:
        raise
    except Exception as exc:
        raise TrainingError(f"training {exp_ref} failed: {type(exc).__name__}: {exc}") from exc
    model = _model_artifact(store, exp_ref, act.execution_id or 0, result)
    details = {k: v for k, v in result.to_dict().items() if k not in ("model_path",)}
    act.outputs = [model]
    act.state, act.outcome = "COMPLETE", f"trained {result.epochs} epochs"
    act.properties["details"] = canonical_json(details)
    store._commit(act)
    model.id = act.output_ids[0]
    return _run_from(act.execution_id or 0, exp_ref, "COMPLETE", False, model, details)


def _run_from(execution_id: int, exp_ref: str, state: str, cached: bool, model: Any,
              details: dict[str, Any]) -> Run:
    return Run(id=execution_id, experiment=exp_ref, state=state, cached=cached, model_id=model.id,
               model_uri=model.uri, metrics=details.get("metrics", {}), history=details.get("history", {}),
               details={k: v for k, v in details.items() if k not in ("metrics", "history")})


def resolve_model(store: Store, target: Any) -> Any:
    """A Model artifact from a :class:`Run`, a model id, ``"model:ID"``, or an experiment ref."""
    from ml_metadata.metadata_store import metadata_store as ms

    if isinstance(target, Run):
        target = target.model_id
    if isinstance(target, str) and is_number(target):
        target = int(target)
    if isinstance(target, str) and target.startswith("model:") and is_number(target[6:]):
        target = int(target[6:])
    if isinstance(target, str) and target.startswith("run:") and is_number(target[4:]):
        from ml_metadata.proto import metadata_store_pb2 as pb

        outputs = [e.artifact_id for e in store.mlmd.get_events_by_execution_ids([int(target[4:])])
                   if e.type == pb.Event.OUTPUT]
        if not outputs:
            raise NotFoundError(f"run {target[4:]} has no model (was it canceled or did it fail?); see %mlmd ls runs")
        target = outputs[0]
    if isinstance(target, int) and not isinstance(target, bool):
        found = store.mlmd.get_artifacts_by_id([target])
        if not found or found[0].type_id != store._types.artifacts["Model"]:
            raise NotFoundError(f"no model with id {target}; see %mlmd ls models")
        return found[0]
    if not isinstance(target, str):
        raise ValidationError(
            "give a run, a model id, 'model:ID', 'run:ID' or an experiment reference (NAME or NAME@N)")
    exp = store._resolve("experiments", target)
    exp_ref = str(exp.name)
    options = ms.ListOptions(order_by=ms.OrderByField.ID, is_asc=False, limit=1,
                             filter_query=f"type = '{full('Model')}' AND properties.experiment.string_value = "
                                          f"'{exp_ref}' AND state = LIVE")
    models = store.mlmd.get_artifacts(list_options=options)
    if not models:
        raise NotFoundError(f"experiment {exp_ref} has no trained model yet; train it first (%mlmd train {exp_ref})")
    return models[0]


def evaluate(store: Store, target: Any, *, data: Any, slices: Any, thresholds: Any, baseline: Any,
             class_names: Sequence[str] | None) -> Evaluation:
    """See :meth:`mlmd_magic.Store.evaluate`."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from . import evaluation as ev
    from .store import _Action, _props

    act = _Action("Evaluate", {"target": repr(target), "data": data, "slices": slices, "thresholds": thresholds,
                               "baseline": repr(baseline)})
    with store._action_guard(act):
        specs = ev.parse_slices(slices)
        ev.parse_thresholds(thresholds)  # bad thresholds fail before any model is loaded
        model = resolve_model(store, target)
        base_model = resolve_model(store, baseline) if baseline is not None else None
        params = store._data("experiments", store._resolve("experiments", model.properties["experiment"].string_value))
        signature = json.loads(model.properties["signature"].string_value)
        ds_art, split = _evaluation_data(store, params, data)
        verify_recorded(ds_art)
        datasource = store._data("datasources", ds_art)
        ds_params = {k: datasource[k] for k in ("name", "version", "uri", "format", "splits", "label", "features")}
        columns = tuple(dict.fromkeys(s.feature for s in specs))
        known = set(datasource["features"]) | {datasource["label"]}
        for column in columns:
            if column not in known:
                raise ValidationError(
                    f"cannot slice by {column!r}: data source {datasource['name']}@{datasource['version']} has no "
                    f"such feature; it has {', '.join(sorted(known))}")
        from .trainer import predict

        try:
            preds = predict({**params, "datasource": ds_params}, model.uri, split, task=signature["task"],
                            columns=columns)
            base_scores = None
            if base_model is not None:
                base_params = store._data(
                    "experiments", store._resolve("experiments", base_model.properties["experiment"].string_value))
                base_scores = predict({**base_params, "datasource": ds_params}, base_model.uri, split,
                                      task=signature["task"]).scores
        except (OSError, ValueError, KeyError) as exc:
            raise ValidationError(f"cannot evaluate on {datasource['name']}@{datasource['version']}:{split}: "
                                  f"{type(exc).__name__}: {exc}") from None
        result = ev.evaluate_predictions(signature["task"], preds.labels, preds.scores, preds.columns, split=split,
                                         slices=slices, thresholds=thresholds, baseline_scores=base_scores,
                                         class_names=class_names)
        payload = result.to_dict()
        art = pb.Artifact(type_id=store._types.artifacts["Evaluation"], state=pb.Artifact.LIVE,
                          uri=f"{model.uri}#evaluation")
        _props(art, metrics=canonical_json({"metrics": payload["metrics"],
                                            "baseline_metrics": payload["baseline_metrics"]}),
               thresholds=canonical_json(payload["thresholds"]), slices=canonical_json(payload["slices"]),
               split=f"{datasource['name']}@{datasource['version']}:{split}",
               checks=canonical_json(payload["checks"]))
        art.custom_properties["blessed"].int_value = int(result.blessed)
        art.custom_properties["current_model_id"].int_value = model.id
        if base_model is not None:
            art.custom_properties["baseline_model_id"].int_value = base_model.id
        act.inputs += [model] + ([base_model] if base_model is not None else []) + [ds_art]
        act.outputs = [art]
        act.outcome = "blessed" if result.blessed else "not blessed"
        store._commit(act)
        return Evaluation(id=act.output_ids[0], model_id=model.id,
                          baseline_model_id=base_model.id if base_model is not None else None,
                          blessed=result.blessed, result=result)


def _evaluation_data(store: Store, params: dict[str, Any], data: Any) -> tuple[Any, str]:
    """``data``: None (test, else eval), a split name, ``"DATASOURCE[@N]:SPLIT"`` or a mapping."""
    ds_ref = f"{params['datasource']['name']}@{params['datasource']['version']}"
    split = None
    if isinstance(data, dict):
        ds_ref, split = str(data.get("datasource") or ds_ref), data.get("split")
    elif isinstance(data, str) and ":" in data:
        ds_ref, split = data.split(":", 1)
    elif isinstance(data, str):
        split = data
    elif data is not None:
        raise ValidationError("data must be a split name, 'DATASOURCE[@N]:SPLIT' or {datasource: ..., split: ...}")
    ds_art = store._resolve("datasources", ds_ref)
    splits = json.loads(ds_art.properties["splits"].string_value)
    if split is None:
        split = "test" if "test" in splits else "eval" if "eval" in splits else next(iter(splits))
    if split not in splits:
        raise ValidationError(f"data source {ds_ref} has no split {split!r}; its splits are {sorted(splits)}")
    return ds_art, str(split)


def list_runs(store: Store) -> list[dict[str, Any]]:
    from ml_metadata.proto import metadata_store_pb2 as pb

    rows = []
    executions = store.mlmd.get_executions_by_type(full("Train"))
    events = store.mlmd.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    inputs: dict[int, list[int]] = {}
    outputs: dict[int, int] = {}
    for e in events:
        if e.type == pb.Event.OUTPUT:
            outputs[e.execution_id] = e.artifact_id
        else:
            inputs.setdefault(e.execution_id, []).append(e.artifact_id)
    for e in executions:
        details = json.loads(e.properties["details"].string_value or "{}")
        metrics = details.get("metrics", {})
        summary_split = "test" if "test" in metrics else "eval" if "eval" in metrics else None
        rows.append({
            "run": e.id,
            "experiment": json.loads(e.properties["arguments"].string_value or "{}").get("experiment", ""),
            "state": pb.Execution.State.Name(e.last_known_state),
            "model": outputs.get(e.id),
            "device": details.get("device", ""),
            "epochs": details.get("epochs"),
            "metrics": canonical_json(metrics.get(summary_split, {})) if summary_split else "",
            "duration_s": round(e.properties["duration_s"].double_value, 3),
            "created": e.create_time_since_epoch,
        })
    return rows


def list_models(store: Store) -> list[dict[str, Any]]:
    from ml_metadata.proto import metadata_store_pb2 as pb

    rows = []
    for a in store.mlmd.get_artifacts_by_type(full("Model")):
        rows.append({
            "model": a.id, "name": a.name, "experiment": a.properties["experiment"].string_value,
            "task": a.properties["task"].string_value, "state": pb.Artifact.State.Name(a.state), "uri": a.uri,
            "created": a.create_time_since_epoch,
        })
    return rows


STALE_ENV = "MLMD_MAGIC_STALE_RUN_AFTER_S"
DEFAULT_STALE_AFTER_S = 6 * 3600


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def reap_stale_runs(store: Store) -> list[int]:
    """Mark RUNNING trainings whose kernel died as FAILED, with the reason; returns their ids.

    A run is stale when its owner process on this host is gone (a kernel killed mid-training
    leaves its execution RUNNING), or when its heartbeat — written every epoch — is older
    than ``$MLMD_MAGIC_STALE_RUN_AFTER_S`` seconds (default 6 hours), wherever it ran.
    """
    from ml_metadata.metadata_store import metadata_store as ms
    from ml_metadata.proto import metadata_store_pb2 as pb

    running = store.mlmd.get_executions(list_options=ms.ListOptions(
        filter_query=f"type = '{full('Train')}' AND last_known_state = RUNNING"))
    if not running:
        return []
    stale_after_ms = float(os.environ.get(STALE_ENV, DEFAULT_STALE_AFTER_S)) * 1000
    now_ms = time.time() * 1000
    here = socket.gethostname()
    reaped = []
    for execution in running:
        props = execution.properties
        owner = props["owner"].string_value if "owner" in props else ""
        host, _, pid = owner.rpartition(":")
        # every per-epoch update stamps last_update_time; runs recorded by 0.1 kept heartbeat_ms
        heartbeat = (props["heartbeat_ms"].int_value if "heartbeat_ms" in props
                     else execution.last_update_time_since_epoch)
        reason = ""
        if host == here and pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            reason = f"its kernel (process {pid} on {host}) ended while training"
        elif now_ms - heartbeat > stale_after_ms:
            reason = f"no heartbeat for {_duration((now_ms - heartbeat) / 1000)} (owner {owner or 'unknown'})"
        if not reason:
            continue
        execution.last_known_state = pb.Execution.FAILED
        execution.properties["error"].string_value = f"stale run: {reason}; marked FAILED when the store was opened"
        store.mlmd.put_executions([execution])
        reaped.append(execution.id)
    return reaped
