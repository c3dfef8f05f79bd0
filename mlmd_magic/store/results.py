"""What training, evaluation and comparison return: plain values with text and HTML forms."""

from __future__ import annotations

import dataclasses
import html
import json
from dataclasses import dataclass, field
from typing import Any

from ..core.curves import curves_html
from ..core.evaluation import OVERALL, EvaluationResult, Explanation

__all__ = ["Evaluation", "Run", "RunComparison", "RunProgress"]


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
    name: str = ""  # EXPERIMENT@N#K: the K-th run of that experiment version

    @property
    def label(self) -> str:
        """How the run is called in tables and headers: its name, else ``run #ID``."""
        return self.name or f"run #{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """The run as plain, JSON-serialisable values."""
        return {"run": self.id, "name": self.name, "experiment": self.experiment, "state": self.state,
                "cached": self.cached,
                "model": self.model_id, "model_uri": self.model_uri, "metrics": self.metrics,
                "history": self.history, "details": self.details}

    def __repr__(self) -> str:
        how = f"cached from run #{self.details.get('cached_from')}" if self.cached else self.state
        lines = [f"Run {self.label} (#{self.id}): {how}; model #{self.model_id} at {self.model_uri}"]
        if self.details.get("device"):
            lines.append(f"  {self.details.get('task')} on {self.details['device']} ({self.details.get('backend')}), "
                         f"{self.details.get('epochs')} epochs, "
                         f"{self.details.get('examples_per_second', 0):.0f} examples/s")
        if self.details.get("task_reason"):
            lines.append(f"  task {self.details.get('task')}: {self.details['task_reason']}")
        lines += [f"  note: {note}" for note in self.details.get("notes", [])]
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
    result: EvaluationResult
    model_name: str = ""  # the run that made the model, EXPERIMENT@N#K
    baseline_name: str = ""
    policy: str = ""  # NAME@N of the release policy evaluated under, if any

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as plain, JSON-serialisable values (metrics per slice, checks, verdict)."""
        return {"evaluation": self.id, "model": self.model_id, "model_name": self.model_name,
                "baseline_model": self.baseline_model_id, "baseline_name": self.baseline_name,
                "policy": self.policy, **self.result.to_dict()}

    def explain(self, slice_name: str | None = None) -> Explanation:
        """Why the verdict is what it is: see :meth:`mlmd_magic.evaluation.EvaluationResult.explain`."""
        about = {"evaluation": self.id, "model": self.model_name or f"model #{self.model_id}",
                 "model_id": self.model_id, "policy": self.policy or None}
        return dataclasses.replace(self.result.explain(slice_name), title=self._title(), about=about)

    def confusion_table(self, slice_name: str = OVERALL) -> Any:
        """One slice's confusion matrix as a pandas DataFrame (rows: true class, columns: predicted)."""
        return self.result.confusion_table(slice_name)

    def _title(self) -> str:
        model = self.model_name or f"model #{self.model_id}"
        base = self.baseline_name or f"model #{self.baseline_model_id}"
        under = f" under policy {self.policy}" if self.policy else ""
        return f"Evaluation #{self.id} of {model}{under}" + (f" against {base}" if self.baseline_model_id else "")

    def __repr__(self) -> str:
        return f"{self._title()}\n{self.result!r}"

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self._title())}</p>{self.result._repr_html_()}"


@dataclass
class RunComparison:
    """Runs side by side (``%mlmd compare RUN ...``); HTML with an SVG plot, or text."""

    runs: list[dict[str, Any]]
    params: dict[str, list[Any]]
    metrics: dict[str, list[dict[str, float]]]
    log_loss: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Runs, differing parameters and metrics as plain values."""
        return {"runs": self.runs, "params": self.params, "metrics": self.metrics}

    def __repr__(self) -> str:
        head = ["run"] + [r.get("name") or f"#{r['id']}" for r in self.runs]
        rows = [head] + [[k, *[json.dumps(v) for v in vals]] for k, vals in self.params.items()]
        for split, values in self.metrics.items():
            for metric in sorted({m for v in values for m in v}):
                rows.append([f"{split}.{metric}", *[f"{v.get(metric, float('nan')):.4f}" for v in values]])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(wd) for c, wd in zip(r, widths)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(r.get('name') or '#' + str(r['id']))}</th>" for r in self.runs)
        body = "".join(f"<tr><td><code>{html.escape(k)}</code></td>"
                       + "".join(f"<td>{html.escape(json.dumps(v))}</td>" for v in vals) + "</tr>"
                       for k, vals in self.params.items())
        for split, values in self.metrics.items():
            for metric in sorted({m for v in values for m in v}):
                body += (f"<tr><td>{html.escape(split)}.{html.escape(metric)}</td>"
                         + "".join(f"<td>{v.get(metric, float('nan')):.4f}</td>" for v in values) + "</tr>")
        return (f"<div class='mlmd-magic-compare'><table><thead><tr><th></th>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>{self.curves_html()}</div>")

    def curves_html(self) -> str:
        """Every run's curves (all reported metrics, training solid and validation dashed) as an
        inline PNG drawn by :mod:`mlmd_magic.core.curves`; :attr:`log_loss` puts loss on a log scale."""
        return curves_html({r.get("name") or f"#{r['id']}": r["history"] for r in self.runs}, log_loss=self.log_loss)


@dataclass
class RunProgress:
    """Where a run stands, read from the store (``%mlmd watch run:ID``): its state, epochs done
    and the per-epoch history — also of a run going on in another process or on another machine."""

    id: int
    name: str
    state: str
    epoch: int
    epochs: int
    history: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str = ""
    updated_ms: int = 0
    log_loss: bool = False

    @property
    def running(self) -> bool:
        """Whether the run is still going on."""
        return self.state == "RUNNING"

    def to_dict(self) -> dict[str, Any]:
        """The progress as plain values."""
        return {"run": self.id, "name": self.name, "state": self.state, "epoch": self.epoch, "epochs": self.epochs,
                "history": self.history, "metrics": self.metrics, "error": self.error}

    def epoch_lines(self, start: int = 0) -> list[str]:
        """Keras-style lines of epochs ``start+1`` onwards: ``Epoch 3/10 - loss: 0.41 - val_loss: 0.52``."""
        count = max((len(v) for v in self.history.values()), default=0)
        return [f"Epoch {i + 1}/{self.epochs or count} - "
                + " - ".join(f"{k}: {v[i]:.4g}" for k, v in sorted(self.history.items()) if i < len(v))
                for i in range(start, count)]

    def headline(self) -> str:
        """``run t21@1#2: RUNNING, epoch 3/10``."""
        error = f" ({self.error})" if self.error and self.state in ("FAILED", "CANCELED") else ""
        return f"run {self.name} (#{self.id}): {self.state}, epoch {self.epoch}/{self.epochs}{error}"

    def __repr__(self) -> str:
        return "\n".join([self.headline(), *self.epoch_lines()])

    def _repr_html_(self) -> str:
        return (f"<div class='mlmd-magic-watch'><pre>{html.escape(self.headline())}</pre>"
                f"{curves_html({self.name: self.history}, log_loss=self.log_loss, epochs=self.epochs or None)}</div>")
