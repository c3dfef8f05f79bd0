"""The HTML of an evaluation's result (metric × slice, verdict, failed checks, confusion
matrices) and of an explanation of its verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core.evaluation import OVERALL
from .html import Html, esc, table

if TYPE_CHECKING:
    from ..core.evaluation import EvaluationResult, Explanation


def result_html(result: EvaluationResult) -> str:
    """The metric × slice table, the verdict, the failed checks and the confusion matrices."""
    rows = result.table()
    colour = "green" if result.blessed else "crimson"
    verdict = "BLESSED" if result.blessed else "NOT BLESSED"
    failed = "".join(f"<li>✗ {esc(c.slice)}: {esc(c.threshold)} — {esc(c.reason)}</li>"
                     for c in result.checks if not c.passed)
    matrices = "".join(f"<details><summary>confusion matrix: {esc(s)}</summary>"
                       f"{confusion_html(result, s)}</details>" for s in result.confusion if s != OVERALL)
    return (f"<div class='mlmd-magic-evaluation'><b style='color:{colour}'>{verdict}</b> "
            f"on <code>{esc(result.split)}</code>{table(rows[1:], head=rows[0])}"
            f"<ul>{failed}</ul>{confusion_html(result)}{matrices}</div>")


def confusion_html(result: EvaluationResult, slice_name: str = OVERALL) -> str:
    """The confusion matrix of one slice as an HTML table: counts, and each row's rate ("" when
    the slice has none)."""
    matrix = result.confusion.get(slice_name)
    if not matrix:
        return ""
    return matrix_html(matrix, result.class_names(len(matrix)), f"confusion matrix, {slice_name}")


def matrix_html(matrix: Sequence[Sequence[int]], names: Sequence[str], caption: str) -> str:
    """A confusion matrix as an HTML table: counts with each row's rate, the diagonal in bold."""
    rows = []
    for i, (name, row) in enumerate(zip(names, matrix)):
        total = sum(row)
        cells: list[Any] = [Html(f"<th>{esc(name)}</th>")]
        for j, v in enumerate(row):
            rate = f" <small>({v / total:.1%})</small>" if total else ""
            cells.append(Html((f"<b>{v}</b>" if i == j and v else f"{v}") + rate))
        rows.append([*cells, total])
    return table(rows, head=["", *names, "total"], cls="mlmd-magic-confusion",
                 caption=f"{caption} (rows: true class, columns: predicted; rate of the row)")


def explanation_html(explanation: Explanation) -> str:
    """The verdict's headline, then per slice its failed checks, confusion matrix and sentences."""
    colour = "green" if explanation.blessed else "crimson"
    out = [f"<div class='mlmd-magic-explanation'><b style='color:{colour}'>{esc(explanation.headline())}</b>"]
    if not explanation.slices:
        out.append("<p>no check failed</p>")
    for part in explanation.slices:
        out.append(f"<h4>slice {esc(part.slice)}</h4><ul>"
                   + "".join(f"<li>✗ {esc(c.threshold)} — {esc(c.reason)}</li>" for c in part.failed)
                   + "</ul>")
        if part.matrix:
            out.append(matrix_html(part.matrix, part.class_labels, f"confusion matrix, {part.slice}"))
        out += [f"<p>{esc(s)}</p>" for s in part.sentences]
    return "".join(out) + "</div>"
