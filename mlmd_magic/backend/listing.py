"""Reading the nodes of one type newest first, a page at a time, whatever else the store holds.

Two ways to ask MLMD, each cheap in its own case:

* walking ids downwards and keeping the type: cheap when the type is common among recent
  nodes, whatever the store's size. MLMD hands out ids in sequence, so the walk asks for the
  next ids below the last one by id (``get_artifacts_by_id``: no filter query to parse, which
  costs MLMD more than reading the 100 rows of a page); where ids are sparse (deleted nodes, a
  server handing out every tenth id) it asks ``id < last`` ordered by id instead;
* MLMD's ``type = '...'`` filter joins the type table and sorts every node *of that type*: its
  cost grows with that type's count only, so it is cheap for a type that is rare.

:func:`newest_first` walks the most recent nodes first and, when they held too few of the
type, asks by type below them: a first page costs about the same whether the store holds
100 or 100,000 nodes of other types.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["RECENT_SCAN", "newest_first", "page_rows", "quote"]

RECENT_SCAN = 100  # how many of the most recent nodes are walked before asking by type
_MAX_CHUNK = 5000
_GETTERS = {"artifacts": "get_artifacts", "executions": "get_executions", "contexts": "get_contexts"}
_BY_ID = {"artifacts": "get_artifacts_by_id", "executions": "get_executions_by_id", "contexts": "get_contexts_by_id"}
_BY_ID_CHUNK = 1000  # ids per get_*_by_id call (a longer IN list costs SQLite more per id)


def quote(text: str) -> str:
    """``text`` as a string literal of MLMD's filter query (quotes and backslashes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def newest_first(mlmd: Any, what: str, type_name: str, type_id: int, page: int = 100) -> Iterator[Any]:
    """Nodes (``what``: artifacts, executions or contexts) of one type, highest id first.

    ``page`` is how many nodes one MLMD call asks for. Stop iterating when you have enough:
    nothing beyond what was iterated is read.
    """
    from ml_metadata.metadata_store import metadata_store as ms

    get = getattr(mlmd, _GETTERS[what])
    by_id = getattr(mlmd, _BY_ID[what])
    last: int | None = None
    scanned = found = 0
    chunk = max(page, RECENT_SCAN // 2)
    dense = True  # whether the ids below the last one are mostly taken (then they are asked by id)
    # Walk ids downwards while the type is common enough among them (a quarter at least, or
    # before RECENT_SCAN nodes have been seen); every call asks for more than the last.
    while scanned < RECENT_SCAN or found * 4 >= scanned:
        if last is not None and dense:
            low = max(last - chunk, 1)  # ask for ids low .. last - 1
            nodes = []
            for top in range(last - 1, low - 1, -_BY_ID_CHUNK):
                nodes += by_id(list(range(top, max(top - _BY_ID_CHUNK, low - 1), -1)))
            nodes.sort(key=lambda n: n.id, reverse=True)
            dense = len(nodes) * 2 >= last - low  # sparse ids: ask by filter from now on
            for node in nodes:
                if node.type_id == type_id:
                    found += 1
                    yield node
            if low == 1:
                return  # the whole store has been walked
            last, scanned = low, scanned + len(nodes)
        else:
            nodes = get(list_options=ms.ListOptions(limit=chunk, order_by=ms.OrderByField.ID, is_asc=False,
                                                    filter_query=f"id < {last}" if last is not None else None))
            for node in nodes:
                if node.type_id == type_id:
                    found += 1
                    yield node
            if len(nodes) < chunk:
                return  # the whole store has been walked
            last, scanned = nodes[-1].id, scanned + len(nodes)
        chunk = min(chunk * 2, _MAX_CHUNK)
    while True:
        nodes = get(list_options=ms.ListOptions(limit=chunk, order_by=ms.OrderByField.ID, is_asc=False,
                                                filter_query=f"type = {quote(type_name)} AND id < {last}"))
        yield from nodes
        if len(nodes) < chunk:
            return
        last = nodes[-1].id
        chunk = min(chunk * 2, _MAX_CHUNK)


def page_rows(nodes: Iterator[Any], rows_of: Callable[[Sequence[Any]], list[dict[str, Any]]],
              predicate: Callable[[dict[str, Any]], bool], limit: int | None, offset: int,
              page: int = 100) -> list[dict[str, Any]]:
    """Rows of ``nodes`` (read ``page`` at a time, each batch turned into rows by ``rows_of``
    in one go) that ``predicate`` keeps, ``offset`` of them skipped, at most ``limit``."""
    rows: list[dict[str, Any]] = []
    skip = offset
    while limit is None or len(rows) < limit:
        batch = list(itertools.islice(nodes, page))
        if not batch:
            break
        for row in rows_of(batch):
            if not predicate(row):
                continue
            if skip:
                skip -= 1
                continue
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
        if len(batch) < page:
            break
    return rows
