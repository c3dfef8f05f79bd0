"""The HTML of a sweep (its trials, the best marked ★) and its plot: the objective against each
searched parameter (matplotlib, an inline PNG)."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

from ..core.values import canonical_json
from .html import Html, esc, table


def sweep_plot_png(sweep: Any) -> bytes:
    """The objective against each searched parameter of ``sweep`` (a :class:`~mlmd_magic.Sweep`;
    one panel each), the best trial marked, as PNG."""
    from matplotlib.figure import Figure  # the figure API needs no backend: pyplot's stays the user's

    names = list(sweep.space)
    done = sweep.trials[sweep.trials["state"].isin(["COMPLETE", "CACHED"])]
    fig = Figure(figsize=(3.2 * max(len(names), 1), 2.6), dpi=80)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    for ax, name in zip(axes, names):
        values = list(done[name]) if name in done else []
        ys = list(done[sweep.objective.key]) if not done.empty else []
        kind = next(iter(sweep.space[name]))
        if kind == "choice":
            labels = [canonical_json(v) for v in sweep.space[name]["choice"]]
            xs = [labels.index(canonical_json(v)) if canonical_json(v) in labels else -1 for v in values]
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
        else:
            xs = values
            if kind == "loguniform":
                from matplotlib.ticker import NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
        ax.scatter(xs, ys, s=18, color="#4C72B0")
        if sweep.best is not None and len(xs):
            ax.scatter(xs[:1], ys[:1], s=70, marker="*", color="#DD8452", zorder=3, label="best")
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel(sweep.objective.key, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return canonical_json(value) if isinstance(value, (list, dict)) else str(value)


def sweep_html(sweep: Any) -> str:
    """The sweep's trials sorted by the objective (the best first, marked ★ and in bold), and the
    plot once a trial completed."""
    columns = ["trial", "state", sweep.objective.key, *sweep.space, "run", "error"]
    rows, styles = [], []
    for i, row in enumerate(sweep.trials.to_dict("records")):
        best = i == 0 and sweep.best is not None
        rows.append([Html("<td title='best'>★</td>") if best else "", *(_shown(row.get(c)) for c in columns)])
        styles.append("font-weight:bold" if best else "")
    image = ""
    counts = sweep.counts()
    if counts.get("COMPLETE", 0) + counts.get("CACHED", 0):
        data = base64.b64encode(sweep_plot_png(sweep)).decode()
        image = f"<img alt='objective against each parameter' src='data:image/png;base64,{data}'/>"
    return (f"<div class='mlmd-magic-sweep'><b>Sweep {esc(sweep.ref)}</b> over "
            f"{esc(sweep.experiment)} ({esc(sweep.sampler)}, {sweep.objective.direction} "
            f"{esc(sweep.objective.key)})<br/>{esc(sweep.summary())}<br/>{image}"
            f"{table(rows, head=['', *columns], row_styles=styles)}</div>")
