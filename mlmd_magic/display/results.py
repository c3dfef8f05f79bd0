"""The HTML of what training, evaluation and comparison return (:mod:`mlmd_magic.store.results`)
and of a reproduction's report: a run's metrics, an evaluation's metric × slice table with its
marks, runs side by side with their curves, a run's progress, what a reproduction found.

The objects keep their ``_repr_html_`` and hand their values here (the display layer reads
no store): plain values, or an object with the public attributes a :class:`Progress` names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..core.evaluation import OVERALL, EvaluationResult
from .curves import History, curves_html
from .evaluation import confusion_html
from .html import Html, esc, pre, table

__all__ = ["GREEN", "RED", "Progress", "comparison_curves_html", "comparison_html", "evaluation_cells",
           "evaluation_html", "progress_curves", "progress_html", "reproduction_html", "run_html"]

GREEN, RED = "#1a7f37", "#cf222e"  # verdict marks: passed, failed

Cell = tuple[str, str, str]  # an evaluation cell: (text, mark, delta)


def run_html(headline: str, metrics: Mapping[str, Mapping[str, float]]) -> str:
    """A run: its headline, then its metrics per split (a metric a split lacks shows ``nan``)."""
    names = sorted({m for values in metrics.values() for m in values})
    rows = [[split, *(f"{values.get(m, float('nan')):.4f}" for m in names)] for split, values in metrics.items()]
    return f"<div class='mlmd-magic-run'>{pre(headline)}{table(rows, head=['split', *names])}</div>"


def evaluation_cells(result: EvaluationResult) -> list[list[Cell]]:
    """Metric × slice, header first: each cell ``(text, mark, delta)``. A value's mark is ✓ or ✗
    when a threshold checks it; its change from the baseline (``Δ +0.0200``) is shown only where
    it matters: a change threshold checks the cell, or a check on it failed. The text and the
    HTML form of an evaluation both show these cells."""
    slices = list(result.metrics)
    metric_names = list(dict.fromkeys(m for s in slices for m in result.metrics[s]))
    marks: dict[tuple[str, str], str] = {}
    against: set[tuple[str, str]] = set()
    for check in result.checks:
        key = (check.metric_name, check.slice)
        marks[key] = "✗" if not check.passed or marks.get(key) == "✗" else "✓"
        if check.baseline is not None or not check.passed:
            against.add(key)
    rows = [[("metric", "", ""), *[(s, "", "") for s in slices]]]
    for metric in metric_names:
        counted = metric == "example_count" or metric.startswith("count_")
        row = [(metric, "", "")]
        for s in slices:
            value = result.metrics[s].get(metric, math.nan)
            shown = "—" if value is None or math.isnan(value) else f"{int(value)}" if counted else f"{value:.4f}"
            mark = marks.get((metric, s), "")
            delta = ""
            base = (result.baseline_metrics or {}).get(s, {}).get(metric)
            if (metric, s) in against and not counted and base is not None and not math.isnan(base) \
                    and value is not None and not math.isnan(value):
                delta = f"Δ {value - base:+.4f}"
            row.append((" ".join(part for part in (shown, mark, f"({delta})" if delta else "") if part), mark, delta))
        rows.append(row)
    return rows


def _marked(cell: Cell) -> Any:
    """A cell's text, or, when a threshold marks it or its change is shown, the value with a
    coloured mark and the change in small type."""
    text, mark, delta = cell
    if not mark and not delta:
        return text
    value = text.split(" ", 1)[0]
    coloured = f" <span style='color:{GREEN if mark == '✓' else RED}'>{mark}</span>" if mark else ""
    change = f" <small>{esc(delta)}</small>" if delta else ""
    return Html(f"<td>{esc(value)}{coloured}{change}</td>")


def evaluation_html(title: str, result: EvaluationResult, baseline_note: str) -> str:
    """An evaluation on record: its title, the verdict, the metric × slice table with its marks,
    every value beside the baseline's (folded), the failed checks and the confusion matrices."""
    rows = evaluation_cells(result)
    colour = GREEN if result.blessed else RED
    verdict = "BLESSED" if result.blessed else "NOT BLESSED"
    failed = "".join(f"<li><span style='color:{RED}'>✗</span> {esc(c.slice)}: "
                     f"{esc(c.threshold)} — {esc(c.reason)}</li>" for c in result.failed)
    against = ""
    if result.baseline_metrics:
        full = result.table()
        against = (f"<p><small>{esc(baseline_note)}</small></p>"
                   f"<details><summary>every value beside the baseline's</summary>"
                   f"{table(full[1:], head=full[0])}</details>")
    matrices = "".join(f"<details><summary>confusion matrix: {esc(s)}</summary>"
                       f"{confusion_html(result, s)}</details>" for s in result.confusion if s != OVERALL)
    marked = table([[_marked(cell) for cell in row] for row in rows[1:]], head=[text for text, _, _ in rows[0]])
    return (f"<p>{esc(title)}</p><div class='mlmd-magic-evaluation'>"
            f"<b style='color:{colour}'>{verdict}</b> on <code>{esc(result.split)}</code>"
            f"{marked}{against}<ul>{failed}</ul>{confusion_html(result)}{matrices}</div>")


def _run_label(run: Mapping[str, Any]) -> str:
    return str(run.get("name") or f"#{run['id']}")


def comparison_curves_html(runs: Sequence[Mapping[str, Any]], *, log_loss: bool = False) -> str:
    """Every run's curves (``runs``: each with ``id``, ``name`` and ``history``) in one drawing."""
    return curves_html({_run_label(r): r["history"] for r in runs}, log_loss=log_loss)


def comparison_html(runs: Sequence[Mapping[str, Any]], params: Mapping[str, Sequence[Any]],
                    metrics: Mapping[str, Sequence[Mapping[str, float]]], *, log_loss: bool = False) -> str:
    """Runs side by side: the parameters that differ (as JSON), each split's metrics, then the curves."""
    rows: list[list[Any]] = [[Html(f"<code>{esc(k)}</code>"), *(json.dumps(v) for v in values)]
                             for k, values in params.items()]
    for split, per_run in metrics.items():
        for metric in sorted({m for v in per_run for m in v}):
            rows.append([f"{split}.{metric}", *(f"{v.get(metric, float('nan')):.4f}" for v in per_run)])
    head = ["", *(_run_label(r) for r in runs)]
    return (f"<div class='mlmd-magic-compare'>{table(rows, head=head)}"
            f"{comparison_curves_html(runs, log_loss=log_loss)}</div>")


class Progress(Protocol):
    """What :func:`progress_html` reads of a run's progress (a
    :class:`~mlmd_magic.store.results.RunProgress`)."""

    @property
    def name(self) -> str: ...

    @property
    def epoch(self) -> int: ...

    @property
    def epochs(self) -> int: ...

    @property
    def history(self) -> dict[str, list[float]]: ...

    @property
    def live(self) -> dict[str, Any]: ...

    @property
    def log_loss(self) -> bool: ...

    @property
    def running(self) -> bool: ...

    @property
    def step(self) -> int: ...

    @property
    def steps(self) -> int: ...

    def headline(self) -> str: ...


def progress_curves(progress: Progress) -> tuple[History, str]:
    """The history to draw and a note (HTML): while an epoch runs, its training metrics so far
    are its point (validation comes at its end)."""
    logs = progress.live.get("logs") or {}
    if not progress.running or not progress.step or not isinstance(logs, dict):
        return progress.history, ""
    history = {k: list(v) for k, v in progress.history.items()}
    added = False
    for key, value in logs.items():
        if key.startswith("val_") or not isinstance(value, (int, float)):
            continue
        if len(history.get(key, [])) == progress.epoch:
            history.setdefault(key, []).append(float(value))
            added = True
    note = (f"<p>epoch {progress.epoch + 1}: the training values of its {progress.step} steps so far"
            f"{'' if not progress.steps else f' of {progress.steps}'}</p>") if added else ""
    return history, note


def progress_html(progress: Progress) -> str:
    """Where a run stands: its headline and its curves (the epoch under way drawn so far)."""
    history, note = progress_curves(progress)
    if progress.running and not any(history.values()):
        epoch = min(progress.epoch + 1, max(progress.epochs, 1))
        curves = f"<p>epoch {epoch} is starting: curves after its first steps</p>"
    else:
        curves = curves_html({progress.name: history}, log_loss=progress.log_loss,
                             epochs=progress.epochs or None) + note
    return f"<div class='mlmd-magic-watch'>{pre(progress.headline())}{curves}</div>"


def reproduction_html(title: str, differences: Sequence[Sequence[str]]) -> str:
    """A reproduction's verdict, and the table of what differs (none when nothing does)."""
    shown = table(differences, head=["what differs", "recorded", "now"]) if differences else ""
    return f"<div class='mlmd-magic-reproduce'><p><b>{esc(title)}</b></p>{shown}</div>"
