"""What training, evaluation and comparison return: plain values with text and HTML forms."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Evaluation", "Run", "RunComparison"]


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
    result: Any  # mlmd_magic.evaluation.EvaluationResult
    model_name: str = ""  # the run that made the model, EXPERIMENT@N#K
    baseline_name: str = ""
    policy: str = ""  # NAME@N of the release policy evaluated under, if any

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as plain, JSON-serialisable values (metrics per slice, checks, verdict)."""
        return {"evaluation": self.id, "model": self.model_id, "model_name": self.model_name,
                "baseline_model": self.baseline_model_id, "baseline_name": self.baseline_name,
                "policy": self.policy, **self.result.to_dict()}

    def _title(self) -> str:
        model = self.model_name or f"model #{self.model_id}"
        base = self.baseline_name or f"model #{self.baseline_model_id}"
        under = f" under policy {self.policy}" if self.policy else ""
        return f"Evaluation #{self.id} of {model}{under}" + (f" against {base}" if self.baseline_model_id else "")

    def __repr__(self) -> str:
        return f"{self._title()}\n{self.result!r}"

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self._title())}</p>{self.result._repr_html_()}"


_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


@dataclass
class RunComparison:
    """Runs side by side (``%mlmd compare RUN ...``); HTML with an SVG plot, or text."""

    runs: list[dict[str, Any]]
    params: dict[str, list[Any]]
    metrics: dict[str, list[dict[str, float]]]

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
                f"<tbody>{body}</tbody></table>{self.curves_svg()}</div>")

    def curves_svg(self, width: int = 520, height: int = 220) -> str:
        """Loss curves of every run in one plot (solid: training, dashed: validation)."""
        series = []
        for i, run in enumerate(self.runs):
            for key, dash in (("loss", ""), ("val_loss", "4,3")):
                values = run["history"].get(key) or []
                if values:
                    series.append((f"{run.get('name') or '#' + str(run['id'])} {key}", values,
                                   _PALETTE[i % len(_PALETTE)], dash))
        if not series:
            return "<p>no training curves recorded</p>"
        top = max(max(v) for _, v, _, _ in series) or 1.0
        longest = max(len(v) for _, v, _, _ in series)
        left, bottom = 40, height - 25

        def xy(i: int, v: float) -> str:
            x = left + (width - left - 10) * (i / max(longest - 1, 1))
            return f"{x:.1f},{bottom - (bottom - 10) * (v / top):.1f}"

        parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-size='10' "
                 "font-family='sans-serif'>",
                 f"<line x1='{left}' y1='{bottom}' x2='{width - 10}' y2='{bottom}' stroke='#999'/>",
                 f"<line x1='{left}' y1='10' x2='{left}' y2='{bottom}' stroke='#999'/>",
                 f"<text x='2' y='14'>{top:.3g}</text><text x='2' y='{bottom}'>0</text>",
                 f"<text x='{width // 2}' y='{height - 5}'>epoch</text>"]
        for n, (label, values, colour, dash) in enumerate(series):
            points = " ".join(xy(i, v) for i, v in enumerate(values))
            parts.append(f"<polyline fill='none' stroke='{colour}' stroke-dasharray='{dash}' points='{points}'/>")
            parts.append(f"<text x='{width - 150}' y='{20 + 12 * n}' fill='{colour}'>{html.escape(label)}</text>")
        parts.append("</svg>")
        return "".join(parts)
