"""Training curves drawn with matplotlib: one panel per reported metric, training solid and
validation dashed, one colour per run, whole-number epoch ticks, loss optionally on a log scale.

The one drawing used everywhere a curve is shown — a training in the foreground, ``watch``,
``compare`` — as a static PNG, so a saved notebook keeps the picture (JupyterLab, Notebook 7
and VS Code all render it). matplotlib's object API is used without ``pyplot``: no global
figure state, no GUI backend, safe in a worker process.

>>> png = curves_png({"t21@1#1": {"loss": [0.9, 0.5, 0.3], "val_loss": [1.0, 0.7, 0.6],
...                               "auc": [0.6, 0.8, 0.9]}}, log_loss=True)
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
>>> metric_panels({"loss": [1.0], "val_loss": [1.0], "val_auc": [0.5], "accuracy": [0.7]})
['loss', 'auc', 'accuracy']
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PALETTE", "curves_figure", "curves_html", "curves_png", "metric_panels"]

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

History = Mapping[str, Sequence[float]]


def metric_panels(*histories: History) -> list[str]:
    """The metrics with a panel, loss first: each key with any ``val_`` prefix taken off."""
    names: dict[str, None] = {}
    for history in histories:
        for key in history:
            names[key[4:] if key.startswith("val_") else key] = None
    return sorted(names, key=lambda n: (n != "loss", list(names).index(n)))


def curves_png(runs: Mapping[str, History], *, log_loss: bool = False, epochs: int | None = None,
               width: float = 9.0, panel_height: float = 2.6, dpi: int = 80) -> bytes:
    """A PNG of every run's curves: ``runs`` maps a run's label to its history
    (``{"loss": [...], "val_loss": [...], "auc": [...]}``, one value per epoch).

    ``log_loss`` draws the loss panel on a log scale; ``epochs`` fixes the x axis to the planned
    number of epochs (a run still going shows where it will end).
    """
    fig = curves_figure(runs, log_loss=log_loss, epochs=epochs, width=width, panel_height=panel_height, dpi=dpi)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def curves_figure(runs: Mapping[str, History], *, log_loss: bool = False, epochs: int | None = None,
                  width: float = 9.0, panel_height: float = 2.6, dpi: int = 80) -> Any:
    """The matplotlib ``Figure`` :func:`curves_png` renders (one axes per metric panel)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = metric_panels(*runs.values()) or ["loss"]
    columns = min(len(panels), 3)
    rows = (len(panels) + columns - 1) // columns
    height = panel_height * rows
    fig = Figure(figsize=(width, height), dpi=dpi)
    # fixed margins in inches, not a layout engine: matplotlib's constrained layout took half of
    # a drawing's time, which a live training pays at its end (benchmarks/bench_display.py)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.3 / height,
                        wspace=0.3, hspace=0.75 / max(panel_height - 0.75, 0.5))
    axes = fig.subplots(rows, columns, squeeze=False)
    longest = max([epochs or 0] + [len(v) for h in runs.values() for v in h.values()]) or 1
    for index, metric in enumerate(panels):
        ax = axes[index // columns][index % columns]
        for number, (label, history) in enumerate(runs.items()):
            colour = PALETTE[number % len(PALETTE)]
            for key, style, split in ((metric, "-", "train"), (f"val_{metric}", "--", "validation")):
                values = list(history.get(key) or [])
                if values:
                    name = f"{label} {split}" if len(runs) > 1 else split
                    ax.plot(range(1, len(values) + 1), values, style, color=colour, label=name,
                            marker="o" if len(values) < 30 else None, markersize=3)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_xlim(0.8, longest + 0.2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if metric == "loss" and log_loss and any(
                v > 0 for h in runs.values() for k in ("loss", "val_loss") for v in (h.get(k) or [])):
            ax.set_yscale("log")
        if index == 0 and ax.has_data():
            ax.legend(fontsize=8)
    for index in range(len(panels), rows * columns):
        fig.delaxes(axes[index // columns][index % columns])
    return fig


def curves_html(runs: Mapping[str, History], *, log_loss: bool = False, epochs: int | None = None) -> str:
    """The curves as an inline ``<img>`` (a saved notebook keeps it), or a line saying there are none."""
    if not any(any(h.values()) for h in runs.values()):
        return "<p>no training curves recorded</p>"
    data = base64.b64encode(curves_png(runs, log_loss=log_loss, epochs=epochs)).decode()
    return f"<img alt='{html.escape('training curves of ' + ', '.join(runs))}' src='data:image/png;base64,{data}'/>"
