"""Run comparison in notebooks: :meth:`mlmd_magic.Store.compare` draws itself (HTML table and
PNG curves drawn with matplotlib); this module keeps the panel-side name for it."""

from __future__ import annotations

from typing import Any

from ..store import Store
from ..store.results import RunComparison

__all__ = ["RunComparison", "compare"]


def compare(store: Store, runs: list[Any]) -> RunComparison:
    """Compare training runs given as ids, ``run:ID`` strings or :class:`~mlmd_magic.Run` objects
    (the same as :meth:`mlmd_magic.Store.compare`)."""
    return store.compare(runs)
