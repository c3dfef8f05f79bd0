"""The HTML of one row of the browser (:meth:`~mlmd_magic.store.store.Store.details`): what the
store read about it — a model's line, why an evaluation failed, the records, runs and evaluations
it shows, a record's versions and its lineage — in that order.

The store hands the values already read (the display layer reads no store): objects that draw
themselves (:class:`Shown`), plain values, a record's history as a DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .html import esc

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["POLICY_VERSION_COLUMNS", "Shown", "details_html", "model_line", "versions_html"]

# who changed what, version by version: a policy's owner, description and thresholds
POLICY_VERSION_COLUMNS = ("version", "owner", "description", "thresholds", "slices", "created")


class Shown(Protocol):
    """Anything that draws itself in a notebook: a record, run, evaluation, lineage graph…"""

    def _repr_html_(self) -> str: ...


def model_line(model: Mapping[str, Any]) -> str:
    """A model (``id``, ``name``, ``task``, ``uri``, as :meth:`ls` ``models`` lists it) on one line."""
    return (f"<p><b>Model #{int(model['id'])}</b> {esc(model['name'])} "
            f"({esc(model['task'])}) <code>{esc(model['uri'])}</code></p>")


def versions_html(history: pd.DataFrame, kind: str) -> str:
    """A record's versions, folded: the version and when it was made (a policy's: who changed what)."""
    shown = [c for c in POLICY_VERSION_COLUMNS if c in history.columns] if kind == "policies" \
        else ["version", "created"]
    return f"<details><summary>versions</summary>{history[shown].to_html(index=False)}</details>"


def details_html(shown: Sequence[Shown] = (), *, model: Mapping[str, Any] | None = None,
                 why_failed: Shown | None = None, history: pd.DataFrame | None = None, kind: str = "",
                 lineage: Shown | None = None) -> str:
    """One row's details: ``model``'s line (:func:`model_line`), ``why_failed`` open, the objects
    ``shown``, ``history`` as the versions of a record of ``kind`` (:func:`versions_html`) and the
    ``lineage`` graph open — each that is given."""
    parts = [model_line(model)] if model is not None else []
    if why_failed is not None:  # first: why, then the whole table
        parts.append(f"<details open><summary>why it failed</summary>{why_failed._repr_html_()}</details>")
    parts.extend(s._repr_html_() for s in shown)
    if history is not None:
        parts.append(versions_html(history, kind))
    if lineage is not None:
        parts.append(f"<details open><summary>lineage</summary>{lineage._repr_html_()}</details>")
    return "".join(parts)
