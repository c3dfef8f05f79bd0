"""Reading the nodes of one type newest first, a page at a time, whatever else the store holds;
and, for a filtered listing, only the nodes its filter may pass once the filter proves rare.

Two ways to ask MLMD for the nodes of a type, each cheap in its own case:

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

A filter is evaluated in Python on the rows of the nodes read, which costs a page while most
rows pass. When few do, walking reads many rows per row shown (a 0.01 % filter reads the whole
kind). :class:`Scan` walks the newest nodes, keeps what the filter made of them, and when they
say that asking MLMD for the nodes the filter may pass costs less than walking on, it asks
(:class:`QueryStream`: MLMD's filter query, ``custom_properties.`param.epochs`.int_value >=
40``; :class:`IdStream`: ids found another way) below the last node walked, newest first. The
filter still decides every row: a stream only has to hold every node that may pass. Every value
in a filter query is written by :func:`quote`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.query import Atom, Node, atoms, cover
from .properties import DOUBLE_MAX, FLAT_TEXT, INT32, has_flat

__all__ = ["RECENT_SCAN", "SQL_COLUMNS", "IdStream", "LinkStream", "Plan", "QueryStream", "Scan", "Unquotable",
           "broad", "compare_terms", "like", "newest_first", "newest_versions", "page_rows", "quote", "strategy"]

RECENT_SCAN = 100  # how many of the most recent nodes are walked before asking by type
_MAX_CHUNK = 5000
_GETTERS = {"artifacts": "get_artifacts", "executions": "get_executions", "contexts": "get_contexts"}
_BY_ID = {"artifacts": "get_artifacts_by_id", "executions": "get_executions_by_id", "contexts": "get_contexts_by_id"}
_BY_ID_CHUNK = 1000  # ids per get_*_by_id call (a longer IN list costs SQLite more per id)
_EXACT = 2 ** 53  # whole numbers up to this are exact as doubles


# every column (and alias) of MLMD 1.17's tables and of the subqueries its filter query joins
SQL_COLUMNS = frozenset({
    "artifact_id", "bool_value", "byte_value", "child_context_id", "context_id", "create_time_since_epoch",
    "data_type", "description", "double_value", "event_id", "execution_id", "external_id", "id", "input_type",
    "int_value", "is_custom_property", "is_index_step", "last_known_state", "last_update_time_since_epoch",
    "milliseconds_since_epoch", "name", "output_type", "parent_context_id", "parent_type_id", "proto_value",
    "schema_version", "seq", "state", "step_index", "step_key", "string_value", "type", "type_id", "type_kind",
    "uri", "version", "rowid", "oid", "_rowid_"})


class Unquotable(ValueError):
    """A value that MLMD's filter query cannot hold exactly (see :func:`quote`)."""


def quote(value: object) -> str:
    """``value`` as a literal of MLMD's filter query, the one way any value reaches one.

    Strings are quoted (a quote escaped); whole numbers and finite floats are written as
    numbers, booleans as 1 and 0.

    >>> quote("it's"), quote(40), quote(0.001), quote(True)
    ("'it\\\\'s'", '40', '0.001', '1')

    Raises
    ------
    Unquotable
        For what MLMD would not compare exactly. MLMD turns a string into SQL in double quotes,
        which SQLite reads as a column when one has that name (``'NAME'`` compares with the
        property's name column), and escapes a backslash, a control character, or the quote of
        a string holding both kinds as SQLite does not read them: such strings are refused, as
        are whole numbers beyond 64 bits, infinite and NaN floats, and other types.
    """

    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        if not -2 ** 63 <= value < 2 ** 63:
            raise Unquotable(f"{value} is beyond MLMD's 64-bit whole numbers")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unquotable(f"{value} is not a finite number")
        return repr(value)
    if not isinstance(value, str):
        raise Unquotable(f"a filter query holds strings and numbers, not {type(value).__name__}")
    if "\\" in value:
        raise Unquotable("a backslash in a filter query's string is read differently by each database")
    if "'" in value and '"' in value:
        raise Unquotable("MLMD writes a string holding both kinds of quote as SQLite cannot read it")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise Unquotable("a control character in a filter query's string is escaped as SQLite does not read it")
    if value.lower() in SQL_COLUMNS:
        raise Unquotable(f"SQLite reads {value!r} in MLMD's SQL as the column of that name")
    return "'" + value.replace("'", "\\'") + "'"


def like(glob: str) -> str:
    """A LIKE pattern matching every string the glob matches (and maybe more).

    ``*`` is ``%``, ``?`` is ``_``; a character class ``[...]`` and all after it become ``%``.
    A ``%`` or ``_`` of the glob stays (it matches more). Case is matched as each database
    does (SQLite and MariaDB's default collation: not at all), which again matches more.

    >>> like("t21-*"), like("a?c[0-9]x"), like("*")
    ('t21-%', 'a_c%', '%')
    """
    out = []
    for ch in glob:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch == "[":
            out.append("%")
            break
        else:
            out.append(ch)
    return "".join(out)


def compare_terms(columns: Sequence[tuple[str, str]], atom: Atom, *, glob: bool = False,
                  present: bool = False) -> list[str] | None:
    """Conditions of MLMD's filter query whose nodes together hold every node where ``atom``
    passes the value of one of ``columns``: ``(expression, kind)`` pairs, kind ``int`` (MLMD's
    32-bit ``int_value``), ``int64`` (``id``, ``create_time_since_epoch``), ``double`` or
    ``string``. Numbers compare with numbers (a boolean as 0 or 1), strings with ``==`` (and
    with ``~`` when ``glob``, as LIKE). An empty list: no value passes; None: the atom cannot be
    asked so (``!=``, ``null``, a string order, a value :func:`quote` refuses, a number too large
    to compare exactly) — unless ``present``: a value that passes is in a column (flat values
    are: a mapping or None as ``""``), so such a column is asked for any value
    (``IS NOT NULL``, see :func:`broad`).

    >>> lr = "custom_properties.`param.lr`"
    >>> compare_terms([(f"{lr}.int_value", "int"), (f"{lr}.double_value", "double")], Atom("lr", "<", 0.5))
    ['custom_properties.`param.lr`.int_value < 1', 'custom_properties.`param.lr`.double_value <= 0.5']
    >>> compare_terms([("properties.model.string_value", "string")], Atom("model", "~", "cnn*"), glob=True)
    ["properties.model.string_value LIKE 'cnn%'"]
    >>> compare_terms([("s", "string")], Atom("k", ">", "b")), compare_terms([("s", "string")], Atom("k", ">", "b"),
    ...                                                                       present=True)
    (None, ['s IS NOT NULL'])
    """
    op, value = atom.op, atom.value
    if op == "!=" or value is None:
        return None
    if isinstance(value, float) and math.isnan(value) and op != "~":
        return []  # nothing equals or orders with NaN (a glob reads its text)
    out: list[str] = []
    for expression, kind in columns:
        if present and kind == "string" and op == "==" and isinstance(value, str) and len(value) > FLAT_TEXT:
            out.append(f"{expression} = ''")  # too long to keep flat: kept as ""
            continue
        found = _compare_term(expression, kind, op, value, glob)
        if found is None:
            if not present:
                return None
            found = f"{expression} IS NOT NULL"
        if found:
            out.append(found)
    return out


def broad(term: str) -> bool:
    """Whether a condition of :func:`compare_terms` asks for any value of its column."""
    return term.endswith(" IS NOT NULL")


def _compare_term(expression: str, kind: str, op: str, value: Any, glob: bool) -> str | None:
    """One column's condition: a term, ``""`` when no value of the column passes, None when the
    comparison cannot be asked exactly."""
    sql_op = "=" if op == "==" else op
    try:
        if kind == "string":
            if op == "~" and glob:
                return f"{expression} LIKE {quote(like(str(value)))}"
            if op == "==" and isinstance(value, str):
                return f"{expression} = {quote(value)}"
            if op == "~" or (isinstance(value, str) and op != "=="):
                return None  # a glob not asked as LIKE; string orders differ between databases
            return ""  # a string never equals nor orders with a number
        if op == "~":
            return None  # a glob over a number's text
        if isinstance(value, str):
            return ""  # a number never equals nor orders with a string
        number = int(value) if isinstance(value, bool) else value
        if not isinstance(number, (int, float)):
            return None
        if kind == "double":
            if abs(number) > (_EXACT if isinstance(number, int) else DOUBLE_MAX):
                return None
            # a double kept may be rounded (a whole number beyond 2**53) or clamped (beyond
            # DOUBLE_MAX): a strict order is asked as a loose one, the filter sorts the ties out
            loose = {">": ">=", "<": "<="}.get(sql_op, sql_op)
            return f"{expression} {loose} {quote(float(number))}"
        if abs(number) > _EXACT:
            return None
        bound = _int_bound(op, number, INT32 if kind == "int" else 2 ** 62)
        return "" if bound is None else f"{expression} {sql_op} {quote(bound)}"
    except Unquotable:
        return None


def _int_bound(op: str, number: float, limit: int) -> int | None:
    """The whole number to compare an integer column (values in ``[-limit, limit)``) with so
    that exactly the integers that pass ``op number`` pass (None: none does)."""
    if op == "==":
        return int(number) if number == int(number) and -limit <= number < limit else None
    bound = math.ceil(number) if op in (">=", "<") else math.floor(number)  # > and <= take the floor
    return max(-limit - 1, min(limit, bound))


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
    try:
        by_type = f"type = {quote(type_name)}"
    except Unquotable:  # a type name no filter query can hold: walk every id
        by_type = ""
    # Walk ids downwards while the type is common enough among them (a quarter at least, or
    # before RECENT_SCAN nodes have been seen); every call asks for more than the last.
    while not by_type or scanned < RECENT_SCAN or found * 4 >= scanned:
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
    yield from QueryStream(what, by_type).nodes(mlmd, last if last is not None else 2 ** 62, chunk)


# ---------------------------------------------------------------------------------------- streams

# What one unit of work costs, in microseconds (measured on SQLite, ml-metadata 1.17.1): a row
# read by walking and evaluated in Python; a node matched by an indexed filter query (MLMD reads
# and sorts every match below the boundary); a node a filter query reads without an index (LIKE);
# the call itself.
WALK_US = 40.0
MATCH_US = 4.0
SCAN_US = 0.4
CALL_US = 700.0


@dataclass(frozen=True)
class QueryStream:
    """The nodes of ``what`` matching ``query`` (an MLMD filter query that names their type),
    newest first; ``indexed``: whether MLMD finds them through an index (its cost grows with
    their number) or reads every node of the type (LIKE on a name); ``broad``: whether it asks
    for any value of a property (:func:`broad`), so that most nodes may match."""

    what: str
    query: str
    indexed: bool = True
    broad: bool = False

    def cost(self, rate: float, remaining: float) -> float:
        """Estimated microseconds to read them all when ``rate`` of the ``remaining`` nodes match."""
        rate = 1.0 if self.broad else rate
        per_node = rate * MATCH_US if self.indexed else SCAN_US + rate * MATCH_US
        return CALL_US + remaining * per_node

    def nodes(self, mlmd: Any, below: int, chunk: int) -> Iterator[Any]:
        from ml_metadata.metadata_store import metadata_store as ms

        get = getattr(mlmd, _GETTERS[self.what])
        last = below
        while True:
            found = get(list_options=ms.ListOptions(limit=chunk, order_by=ms.OrderByField.ID, is_asc=False,
                                                    filter_query=f"{self.query} AND id < {last}"))
            yield from found
            if len(found) < chunk:
                return
            last = found[-1].id
            chunk = min(chunk * 2, _MAX_CHUNK)


@dataclass(frozen=True)
class IdStream:
    """Nodes of ``what`` whose ids ``find(mlmd)`` gives (any order; ids of other types are
    dropped), newest first: for rows found through other nodes (a run through its experiment's
    parameters or its model's metrics). ``calls``: about how many MLMD calls ``find`` makes."""

    what: str
    find: Callable[[Any], Iterable[int]] = field(compare=False)
    label: str = ""
    calls: int = 3
    broad: bool = False  # found by any value of a property (see QueryStream)

    def cost(self, rate: float, remaining: float) -> float:
        return self.calls * CALL_US + remaining * (1.0 if self.broad else rate) * MATCH_US * 4

    def nodes(self, mlmd: Any, below: int, chunk: int) -> Iterator[Any]:
        by_id = getattr(mlmd, _BY_ID[self.what])
        ids = sorted({i for i in self.find(mlmd) if i < below}, reverse=True)
        for start in range(0, len(ids), chunk):
            found = by_id(ids[start:start + chunk])
            yield from sorted(found, key=lambda n: n.id, reverse=True)
            chunk = min(chunk * 2, _BY_ID_CHUNK)


_PAGE = 100  # MLMD answers a filter query 100 nodes a call (each call runs the query again)
_LINK_BLOCK = 1000  # execution ids whose events one call reads, walking runs by their links
_LINK_WALKS = 2  # blocks walked before asking whether the linked artifacts are few
_EVERY = 500  # nodes a listing of every row asks its streams for at first


@dataclass(frozen=True)
class LinkStream:
    """Executions linked by an event of type ``event`` (INPUT, OUTPUT) to an artifact of the type
    ``by_type`` names (``type = '...'``) that matches one of ``terms`` (conditions of MLMD's
    filter query), newest first: a run by its experiment version's parameters or its model's
    metrics.

    None matching: none (a call per term). For a page, the executions are walked downwards by
    id, 1,000 ids a call: their events, then which of the artifacts they link to match (one
    filter query on those ids). When that finds too few and the matching artifacts are few (one
    page of MLMD's answer), their events give the remaining executions at once; so does a
    listing of every row. (Reading many artifacts costs a call per 100: each call runs the query
    again. The terms are asked one by one except beside a list of ids: MariaDB reads every row
    of a type for an ``OR`` of two columns.)"""

    by_type: str
    terms: tuple[str, ...]
    event: int
    broad: bool = False  # any value of a property (see QueryStream)
    what: str = "executions"

    def cost(self, rate: float, remaining: float) -> float:
        matches = remaining * (1.0 if self.broad else rate)
        return (3 + len(self.terms)) * CALL_US + min(matches, _PAGE) * MATCH_US * 4 + min(
            math.ceil(matches / _PAGE) * (CALL_US + matches * MATCH_US),  # reading them all
            20 / max(rate, 1e-9) / _LINK_BLOCK * (2 * CALL_US + _LINK_BLOCK * MATCH_US))  # walking runs

    def nodes(self, mlmd: Any, below: int, chunk: int) -> Iterator[Any]:
        from ml_metadata.metadata_store import metadata_store as ms

        def first(term: str, limit: int) -> list[Any]:
            return list(mlmd.get_artifacts(list_options=ms.ListOptions(
                limit=limit, order_by=ms.OrderByField.ID, is_asc=False, filter_query=f"{self.by_type} AND {term}")))

        terms = [t for t in self.terms if first(t, 1)]
        if not terms:
            return  # no artifact matches (a parameter no experiment has)
        either = f"({' OR '.join(terms)})" if len(terms) > 1 else terms[0]
        newest = getattr(mlmd, _GETTERS[self.what])(list_options=ms.ListOptions(
            limit=1, order_by=ms.OrderByField.ID, is_asc=False))
        top, linked, probed = min(below - 1, newest[0].id if newest else 0), 0, False
        walks = _LINK_WALKS if chunk >= _EVERY else 0  # every row wanted: read the artifacts at once
        while top >= 1 and walks < _LINK_WALKS:
            walks += 1
            events = [e for e in mlmd.get_events_by_execution_ids(list(range(top, max(top - _LINK_BLOCK, 0), -1)))
                      if e.type == self.event]
            top -= _LINK_BLOCK
            if events:
                listed = ", ".join(str(i) for i in sorted({e.artifact_id for e in events}))
                matched = {a.id for a in mlmd.get_artifacts(list_options=ms.ListOptions(
                    filter_query=f"{self.by_type} AND id IN ({listed}) AND {either}"))}
                found = sorted({e.execution_id for e in events if e.artifact_id in matched}, reverse=True)
                linked += len(found)
                yield from _by_ids(mlmd, self.what, found, chunk)
            if walks == _LINK_WALKS and not probed and linked < chunk:
                probed = True  # few found: are the artifacts few enough to read at once?
                if all(len(first(t, _PAGE)) < _PAGE for t in terms):
                    break
            if walks == _LINK_WALKS:
                walks = 0  # walk on
        if top < 1:
            return
        artifacts = sorted({a.id for t in terms for a in QueryStream(
            "artifacts", f"{self.by_type} AND {t}").nodes(mlmd, 2 ** 62, _PAGE)})
        executions: set[int] = set()
        for start in range(0, len(artifacts), _BY_ID_CHUNK):
            executions.update(e.execution_id for e in mlmd.get_events_by_artifact_ids(
                artifacts[start:start + _BY_ID_CHUNK]) if e.type == self.event)
        yield from _by_ids(mlmd, self.what, sorted((i for i in executions if i <= top), reverse=True), chunk)


def _by_ids(mlmd: Any, what: str, ids: list[int], chunk: int) -> Iterator[Any]:
    """The nodes with ``ids`` (highest first), read ``chunk`` at a time, highest id first."""
    by_id = getattr(mlmd, _BY_ID[what])
    for start in range(0, len(ids), chunk):
        yield from sorted(by_id(ids[start:start + chunk]), key=lambda n: n.id, reverse=True)
        chunk = min(chunk * 2, _BY_ID_CHUNK)


@dataclass
class Plan:
    """How a kind's rows that pass a filter can be found without walking: ``drive(atom)`` gives
    streams whose nodes together hold every node whose row passes ``atom`` (``[]``: none does;
    None: they cannot be found so), see :func:`~mlmd_magic.core.query.cover`. ``exists(key)`` says
    whether some node of the kind has ``key`` (None: not known), for a filter that names a key no
    row read had. ``latest``: versions named ``NAME@N`` of which a newer one exists are dropped
    from what the streams give (a listing of each name's latest version)."""

    tree: Atom | Node
    drive: Callable[[Atom], list[Any] | None]
    exists: Callable[[str], bool | None] = lambda key: None
    latest: bool = False
    flat: bool = False  # drive may use flat values; the Scan clears it on walking a node without them


@contextlib.contextmanager
def strategy(mode: str, after: int = 0) -> Iterator[None]:
    """Within this block every :class:`Scan` reads as ``mode`` says, whatever it costs:
    ``"walk"`` (never by plan), ``"plan"`` (by plan as soon as ``after`` rows were seen, 0: from
    the start, wherever the filter has a cover) or ``"auto"``. For tests and benchmarks: every
    way gives the same rows."""
    if mode not in ("walk", "plan", "auto"):
        raise ValueError(f"strategy is walk, plan or auto, not {mode!r}")
    saved = Scan.forced
    Scan.forced = None if mode == "auto" else (mode, after)
    try:
        yield
    finally:
        Scan.forced = saved


class Scan:
    """The nodes a filtered listing reads, newest first: walked (:func:`newest_first`) until
    the rows seen say asking by ``plan`` costs less, then asked by it below the last node walked.

    The listing calls :meth:`saw` with each row it evaluated the filter on and whether the row
    passed; ``want`` is how many rows it needs in all (offset and limit, None: every row).
    """

    SAMPLE = 300  # rows kept to estimate how often each comparison passes
    FIRST = 25  # rows seen before the first look at asking by plan
    forced: tuple[str, int] | None = None  # see strategy()

    def __init__(self, mlmd: Any, what: str, type_name: str, type_id: int, page: int = 100,
                 plan: Plan | None = None, want: int | None = None) -> None:
        self.mlmd, self.what, self.type_name, self.type_id = mlmd, what, type_name, type_id
        self.page, self.plan, self.want = page, plan, want
        self.rows: list[dict[str, Any]] = []
        self.seen = self.passed = self.walked = 0
        self.first_id: int | None = None
        self.boundary: int | None = None
        self.driving = False  # whether the nodes now come from the plan's streams
        self.chosen: list[tuple[Atom, list[Any]]] = []  # the comparisons asked by, and their streams
        self._next_look = self.FIRST

    def saw(self, row: dict[str, Any], passed: bool) -> None:
        """A row the listing evaluated the filter on, and whether it passed."""
        self.seen += 1
        self.passed += bool(passed)
        if len(self.rows) < self.SAMPLE and not self.driving:
            self.rows.append(row)

    def __iter__(self) -> Iterator[Any]:
        forced = self.forced
        if forced is not None and forced[0] == "walk":
            self.plan = None
        if forced is not None and self.plan is not None:
            self._next_look = forced[1]
        if self.plan is not None and self._next_look == 0:  # forced: by plan from the start
            streams = self._decide()
            if streams is not None:
                self.driving = True
                yield from self._driven(streams, 2 ** 62)
                return
            self._next_look = self.FIRST
        for node in newest_first(self.mlmd, self.what, self.type_name, self.type_id, self.page):
            if self.first_id is None:
                self.first_id = node.id
            self.boundary = node.id
            self.walked += 1
            if self.plan is not None and self.plan.flat and not has_flat(node):
                self.plan.flat = False  # written by a version without flat values: never ask by them
            yield node
            if self.plan is not None and self.seen >= self._next_look:
                self._next_look = max(self.seen * 4, 1)
                streams = self._decide()
                if streams is not None:
                    self.driving = True
                    yield from self._driven(streams, node.id)
                    return

    def settle(self, where: Any, checked: bool = True) -> None:
        """After a listing that read by plan, when ``where`` will be checked (the listing is empty
        or complete): the keys the filter names that no row read had are known to
        :meth:`~mlmd_magic.core.query.Where.check` unless the store says no node has them."""
        if not self.driving or self.plan is None or not checked:
            return
        for key in sorted(where.missing):
            if self.plan.exists(key) is not False:
                where.known(key)

    # -------------------------------------------------------------------------------- internals

    def _remaining(self) -> float:
        """About how many nodes of the type are older than the last one walked."""
        if self.boundary is None or self.first_id is None:
            return 0.0
        span = max(self.first_id - self.boundary + 1, 1)
        return self.boundary * min(self.walked / span, 1.0)

    def _decide(self) -> list[Any] | None:
        """The streams to read on from, when they cost less than walking on (else None)."""
        assert self.plan is not None
        forced = self.forced is not None and self.forced[0] == "plan"
        remaining = self._remaining() if self.boundary is not None else 1e6
        if remaining < 1 and not forced:
            return None
        n = len(self.rows)
        rates = {atom: (sum(1 for row in self.rows if atom(row)) + 0.5) / (n + 1) for atom in atoms(self.plan.tree)}
        rows_per_node = self.seen / max(self.walked, 1)  # records: a name's older versions are no rows

        def cost(atom: Atom, streams: list[Any]) -> float:
            return float(sum(s.cost(rates[atom], remaining) for s in streams))

        chosen = cover(self.plan.tree, self.plan.drive, cost)
        if chosen is None:
            return None
        plan_us = sum(cost(atom, streams) for atom, streams in chosen)
        need = math.inf if self.want is None else max(self.want - self.passed, 1)
        rate = (self.passed + 0.5) / (self.seen + 1)
        walk_us = min(need / rate, remaining * rows_per_node) * WALK_US
        if plan_us >= walk_us and not forced:
            return None
        self.chosen = chosen
        return [stream for _, streams in chosen for stream in streams]

    def _driven(self, streams: list[Any], below: int) -> Iterator[Any]:
        assert self.plan is not None
        need = _EVERY if self.want is None else self.want - self.passed
        chunk = min(max(2 * need, 50), _MAX_CHUNK)
        merged = heapq.merge(*(s.nodes(self.mlmd, below, chunk) for s in streams), key=lambda n: -n.id)
        last = None
        batch: list[Any] = []
        for node in merged:
            if node.id == last or node.type_id != self.type_id:
                continue
            last = node.id
            if not self.plan.latest:
                yield node
                continue
            batch.append(node)  # versions: which have a newer one is asked a batch at a time
            if len(batch) >= chunk:
                yield from newest_versions(self.mlmd, self.type_name, batch)
                batch = []
        yield from newest_versions(self.mlmd, self.type_name, batch)


def newest_versions(mlmd: Any, type_name: str, nodes: list[Any]) -> list[Any]:
    """``nodes`` less the versions ``NAME@N`` of which version ``NAME@N+1`` exists (versions are
    numbered in turn: a newer one exists exactly when the next does); other names stay."""
    from ml_metadata.metadata_store import metadata_store as ms

    following: dict[str, int] = {}
    for node in nodes:
        name, _, number = str(node.name).rpartition("@")
        if name and "~" not in str(node.name) and number.isascii() and number.isdigit():
            following[f"{name}@{int(number) + 1}"] = node.id
    newer: set[int] = set()
    names = list(following)
    for start in range(0, len(names), 100):
        try:
            listed = ", ".join(quote(n) for n in names[start:start + 100])
        except Unquotable:  # record names are plain (core.names.NAME_RE): not met
            listed = ""
        if not listed:
            continue
        # MariaDB compares names without case: also other names may come back, hence the limit
        found = mlmd.get_artifacts(list_options=ms.ListOptions(
            limit=_MAX_CHUNK, filter_query=f"type = {quote(type_name)} AND name IN ({listed})"))
        newer.update(following[str(a.name)] for a in found if str(a.name) in following)
    return [node for node in nodes if node.id not in newer]


def page_rows(nodes: Iterable[Any], rows_of: Callable[[Sequence[Any]], list[Any]],
              predicate: Callable[[dict[str, Any]], bool], limit: int | None, offset: int,
              page: int = 100, view: Callable[[Any], dict[str, Any]] | None = None) -> list[Any]:
    """The one paging loop of every listing: rows of ``nodes`` (read ``page`` at a time, each
    batch turned into rows by ``rows_of`` in one go) that ``predicate`` keeps, ``offset`` of
    them skipped, at most ``limit``. ``view(row)``: what the predicate sees of a row (default:
    the row itself). Nodes from a :class:`Scan` hear of each row evaluated."""
    rows: list[Any] = []
    skip = offset
    scan = nodes if isinstance(nodes, Scan) else None
    source = iter(nodes)
    while limit is None or len(rows) < limit:
        batch = list(itertools.islice(source, page))
        if not batch:
            break
        for row in rows_of(batch):
            seen = row if view is None else view(row)
            passed = predicate(seen)
            if scan is not None:
                scan.saw(seen, passed)
            if not passed:
                continue
            if skip:
                skip -= 1
                continue
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
        if len(batch) < page:
            break
    if scan is not None and hasattr(predicate, "missing"):
        scan.settle(predicate, not rows or limit is None)
    return rows
