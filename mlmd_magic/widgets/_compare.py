"""Run comparison: differing parameters side by side, metrics per split, training curves."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from .._names import is_number
from .._records import flatten
from ..errors import NotFoundError
from ..store import Store

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


@dataclass
class RunComparison:
    """Runs side by side (``%mlmd compare RUN ...``); HTML with an SVG plot, or text."""

    runs: list[dict[str, Any]]
    params: dict[str, list[Any]]
    metrics: dict[str, list[dict[str, float]]]

    def __repr__(self) -> str:
        head = ["run"] + [f"#{r['id']} {r['experiment']}" for r in self.runs]
        rows = [head] + [[k, *[json.dumps(v) for v in vals]] for k, vals in self.params.items()]
        for split, values in self.metrics.items():
            for metric in sorted({m for v in values for m in v}):
                rows.append([f"{split}.{metric}", *[f"{v.get(metric, float('nan')):.4f}" for v in values]])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(wd) for c, wd in zip(r, widths)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>#{r['id']} {html.escape(r['experiment'])}</th>" for r in self.runs)
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
                    series.append((f"#{run['id']} {key}", values, _PALETTE[i % len(_PALETTE)], dash))
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


def compare(store: Store, runs: list[Any]) -> RunComparison:
    """Compare training runs given as ids, ``run:ID`` strings or :class:`~mlmd_magic.Run` objects."""
    ids = []
    for run in runs:
        raw = getattr(run, "id", run)
        text = str(raw)
        text = text[4:] if text.startswith("run:") else text.lstrip("#")
        if not is_number(text):
            raise NotFoundError(f"{raw!r} is not a run id; see %mlmd ls runs")
        ids.append(int(text))
    executions = {e.id: e for e in store.mlmd.get_executions_by_id(ids)}
    train_type = store._types.executions["Train"]
    infos, flat = [], []
    for run_id in ids:
        execution = executions.get(run_id)
        if execution is None or execution.type_id != train_type:
            raise NotFoundError(f"no training run #{run_id}; see %mlmd ls runs")
        details = json.loads(execution.properties["details"].string_value) if "details" in execution.properties else {}
        arguments = json.loads(execution.properties["arguments"].string_value) if "arguments" in \
            execution.properties else {}
        exp_ref = arguments.get("experiment", "")
        params = store._data("experiments", store._resolve("experiments", exp_ref)) if exp_ref else {}
        infos.append({"id": run_id, "experiment": exp_ref, "history": details.get("history", {}),
                      "metrics": details.get("metrics", {})})
        flat.append(flatten({"datasource": f"{params['datasource']['name']}@{params['datasource']['version']}",
                             "scenario": f"{params['scenario']['name']}@{params['scenario']['version']}",
                             "params": params["params"]} if params else {}))
    keys = sorted({k for f in flat for k in f})
    differing = {k: [f.get(k) for f in flat] for k in keys if len({json.dumps(f.get(k)) for f in flat}) > 1}
    splits = sorted({s for info in infos for s in info["metrics"]})
    metrics = {s: [info["metrics"].get(s, {}) for info in infos] for s in splits}
    return RunComparison(infos, differing, metrics)
