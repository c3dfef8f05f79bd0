"""What training, evaluation and comparison return: plain values with text and HTML forms."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..core.evaluation import OVERALL, EvaluationResult, Explanation
from ..display.results import (
    comparison_curves_html,
    comparison_html,
    evaluation_cells,
    evaluation_html,
    progress_html,
    run_html,
)

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
        model = f"model #{self.model_id} at {self.model_uri}" if self.model_id is not None else "no model"
        lines = [f"Run {self.label} (#{self.id}): {how}; {model}"]
        if self.details.get("device"):
            where = f"  {self.details.get('task')} on {self.details['device']} ({self.details.get('backend')})"
            if self.details.get("epochs") is not None:  # a finished run's; a cancelled or failed one has none
                where += (f", {self.details.get('epochs')} epochs, "
                          f"{self.details.get('examples_per_second', 0):.0f} examples/s")
            lines.append(where)
        if self.details.get("task_reason"):
            lines.append(f"  task {self.details.get('task')}: {self.details['task_reason']}")
        lines += [f"  note: {note}" for note in self.details.get("notes", [])]
        for split, values in self.metrics.items():
            lines.append(f"  {split:<6} " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return run_html(repr(self).splitlines()[0], self.metrics)


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

    def _baseline_note(self) -> str:
        base = self.baseline_name or f"model #{self.baseline_model_id}"
        return (f"Δ: the change from baseline {base}, shown where a change threshold checks it or a check "
                "failed")

    def __repr__(self) -> str:
        r = self.result
        rows = [[text for text, _, _ in row] for row in evaluation_cells(r)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        failed = r.failed
        tail = [f"verdict: {'BLESSED' if r.blessed else 'NOT BLESSED'} "
                f"({len(r.checks) - len(failed)}/{len(r.checks)} checks passed)"]
        tail += [f"  ✗ {c.slice}: {c.threshold} — {c.reason}" for c in failed]
        tail += [f"  · {c.slice}: {c.threshold} — {c.reason}" for c in r.checks if c.passed and c.reason]
        if r.baseline_metrics:
            tail.append(f"({self._baseline_note()}; every value beside the baseline's: evaluation.result)")
        return "\n".join([self._title(), f"evaluation on {r.split}", *lines, *tail])

    def _repr_html_(self) -> str:
        return evaluation_html(self._title(), self.result, self._baseline_note())


@dataclass
class RunComparison:
    """Runs side by side (``%mlmd compare RUN ...``); HTML with their curves (a PNG), or text."""

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
        return comparison_html(self.runs, self.params, self.metrics, log_loss=self.log_loss)

    def curves_html(self) -> str:
        """Every run's curves (all reported metrics, training solid and validation dashed) as an
        inline PNG drawn by :mod:`mlmd_magic.display.curves`; :attr:`log_loss` puts loss on a log scale."""
        return comparison_curves_html(self.runs, log_loss=self.log_loss)


@dataclass
class RunProgress:
    """Where a run stands, read from the store (``%mlmd watch run:ID``): its state, epochs done
    and the per-epoch history — also of a run going on in another process or on another machine.

    ``live`` is the run's newest progress as its own thread wrote it, from its first heartbeat
    on and every few seconds within an epoch: ``step``/``steps`` of the epoch under way,
    ``eta_s`` (seconds until the whole run ends, as of ``elapsed_s``; absent while too little is
    known) and ``logs`` (that epoch's running training metrics)."""

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
    live: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        """Whether the run is still going on."""
        return self.state == "RUNNING"

    @property
    def step(self) -> int:
        """Steps done in the epoch under way (0 between epochs, or before the first step)."""
        return int(self.live.get("step") or 0)

    @property
    def steps(self) -> int:
        """Steps in an epoch (0 while unknown)."""
        return int(self.live.get("steps") or 0)

    @property
    def eta_s(self) -> float | None:
        """Seconds until the whole run ends, as the run last wrote it (None while unknown, or once it ended)."""
        eta = self.live.get("eta_s")
        return float(eta) if eta is not None and self.running else None

    def to_dict(self) -> dict[str, Any]:
        """The progress as plain values."""
        return {"run": self.id, "name": self.name, "state": self.state, "epoch": self.epoch, "epochs": self.epochs,
                "step": self.step, "steps": self.steps, "eta_s": self.eta_s,
                "history": self.history, "metrics": self.metrics, "error": self.error}

    def epoch_lines(self, start: int = 0) -> list[str]:
        """Keras-style lines of epochs ``start+1`` onwards: ``Epoch 3/10 - loss: 0.41 - val_loss: 0.52``."""
        count = max((len(v) for v in self.history.values()), default=0)
        return [f"Epoch {i + 1}/{self.epochs or count} - "
                + " - ".join(f"{k}: {v[i]:.4g}" for k, v in sorted(self.history.items()) if i < len(v))
                for i in range(start, count)]

    def headline(self) -> str:
        """``run t21@1#2 (#5): RUNNING, epoch 4/10, step 5/13, ETA 0:41`` while it runs (the
        epoch under way), ``run t21@1#2 (#5): COMPLETE, epoch 10/10`` once it ended."""
        from ..trainer import format_eta

        error = f" ({self.error})" if self.error and self.state in ("FAILED", "CANCELED") else ""
        if not self.running or not self.epochs:
            return f"run {self.name} (#{self.id}): {self.state}, epoch {self.epoch}/{self.epochs}{error}"
        where = f"epoch {min(self.epoch + 1, self.epochs)}/{self.epochs}"
        if self.steps and self.step:  # between epochs, the epoch under way has no step yet
            where += f", step {self.step}/{self.steps}"
        if self.eta_s is not None:
            where += f", ETA {format_eta(self.eta_s)}"
        return f"run {self.name} (#{self.id}): RUNNING, {where}"

    def __repr__(self) -> str:
        return "\n".join([self.headline(), *self.epoch_lines()])

    def _repr_html_(self) -> str:
        return progress_html(self)
