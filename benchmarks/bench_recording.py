"""Recording cost: one action end to end against a raw ``put_execution`` of the same rows.

Two actions, each with ten parameters and a new version each time: a ``%%scenario`` cell run
through a real InteractiveShell (IPython's dispatch, the YAML body, the cell's source kept
redacted, and the library call below), and the library call alone
(``Store.add_scenario``, which records its arguments instead of a cell's source). Each has
its own floor, measured in the same run on the same kind of store: a plain ``ml_metadata``
``put_execution`` of exactly the rows that action writes (captured from the action itself:
the execution and its properties, the new version and its properties, its OUTPUT event and
both contexts), on a store with the same types. What is left between an action and its floor
is ours: dispatch, parsing, checks, hashing, building the rows and the returned record. One
writer: the path timed is the usual one (no other process writing the same record). MLflow
3 (the ``bench`` extra) records the same action as a run with its ten params on a local
SQLite backend.

On MariaDB the SQL statements the server receives for one action are counted too, for each
action and for its floor: MLMD's connection is its own (``SHOW SESSION STATUS`` cannot see
it) and the server may be busy with others, so the general log is switched on (as a table)
for the count and read for the connections to each store's database and this process's
connections without one (a record's named lock) only (see :func:`_statement_counter`);
``MLMD_MAGIC_BENCH_MYSQL`` must name an account that may set global variables (root, by
default). Nearly all of them are MLMD's own work inside the one ``put_execution``, the same
for the floor: a transaction (2), a type lookup (2) for the artifact and for the execution,
an insert and ``last_insert_id`` per row (artifact, execution, event), an insert per property,
and per context named by id a read of it and its properties (2) and an insert and
``last_insert_id`` for each of its association and attribution (4). A bare ``put_execution``
of an execution with two properties and one context (12 statements) is no floor: it leaves
out the version, its event and its record's context.

Targets: ours <= 1.5x the floor on a SQLite file and on MariaDB; a magic cell <= 5 ms on
MariaDB over loopback; at most 2 statements more than the floor's on MariaDB; MLflow at
least 5x slower than ours.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any, Callable

REPEATS = 300
FLOOR_TARGET = 1.5
CELL_TARGET_MS = 5.0
STATEMENTS_OVER_FLOOR = 2  # at most this many statements more than the floor's, per action
COUNTED = 5  # actions whose statements are counted, per side


def _body(i: int) -> str:
    return "model: mlp\nparams:\n" + "".join(f"  p{j}: {i * 10 + j}\n" for j in range(10))


def _params(i: int) -> dict[str, int]:
    return {f"p{j}": i * 10 + j for j in range(10)}


def _magic(uri: str) -> tuple[Callable[[int], None], Any]:
    from IPython.core.interactiveshell import InteractiveShell

    import mlmd_magic as mm

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "mlmd_magic")
    ip.run_line_magic("mlmd", f"connect {uri} --alias bench-{uuid.uuid4().hex[:6]}")

    def action(i: int) -> None:
        ip.run_cell_magic("scenario", "ten-params", _body(i))

    return action, mm.current_store()


@contextlib.contextmanager
def _captured_writes() -> Iterator[list[tuple[Any, list[Any], list[Any]]]]:
    """The arguments of every ``put_execution`` made while the block runs (copies)."""
    from ml_metadata.metadata_store import metadata_store as ms

    seen: list[tuple[Any, list[Any], list[Any]]] = []
    original = ms.MetadataStore.put_execution

    def spy(self: Any, execution: Any, artifact_and_events: Any, contexts: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((_copy(execution), [(_copy(a), _copy(e)) for a, e in artifact_and_events],
                     [_copy(c) for c in contexts or []]))
        return original(self, execution, artifact_and_events, contexts, *args, **kwargs)

    ms.MetadataStore.put_execution = spy
    try:
        yield seen
    finally:
        ms.MetadataStore.put_execution = original


def _copy(message: Any) -> Any:
    if message is None:
        return None
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def _floor_store(uri: str, ours: Any) -> tuple[Any, dict[str, dict[int, int]]]:
    """A raw MLMD store with our types (no retries, no recorder), and our type ids -> its ids."""
    from ml_metadata.metadata_store import metadata_store as ms

    from mlmd_magic.backend.connection import backend_for
    from mlmd_magic.backend.types import register_types
    from mlmd_magic.backend.uri import parse_uri

    backend = backend_for(parse_uri(uri))
    store = ms.MetadataStore(backend.config())
    backend.after_open()
    register_types(store)

    def type_map(kind: str) -> dict[int, int]:
        theirs = {t.name: t.id for t in getattr(ours.mlmd, f"get_{kind}_types")()}
        mine = {t.name: t.id for t in getattr(store, f"get_{kind}_types")()}
        return {theirs[name]: mine[name] for name in theirs if name in mine}

    return store, {kind: type_map(kind) for kind in ("artifact", "execution", "context")}


def _floor(store: Any, types: dict[str, dict[int, int]], captured: tuple[Any, list[Any], list[Any]]
           ) -> Callable[[int], None]:
    """Write the captured action's rows once per call: a new version of the same record."""
    execution, pairs, ctxs = captured
    context_ids: list[int | None] = [None] * len(ctxs)

    def action(i: int) -> None:
        e = _copy(execution)
        e.type_id = types["execution"][e.type_id]
        e.external_id = f"floor:{uuid.uuid4().hex}"
        events = []
        for art, event in pairs:
            a = _copy(art)
            a.type_id = types["artifact"][a.type_id]
            a.name, a.external_id = f"{a.name.rsplit('@', 1)[0]}@{i + 10}", f"floor:{i}:{uuid.uuid4().hex}"
            events.append((a, event))
        cs = []
        for k, c in enumerate(ctxs):
            c2 = _copy(c)
            c2.ClearField("id")
            c2.type_id = types["context"][c2.type_id]
            if context_ids[k] is not None:
                c2.id = context_ids[k]  # as ours: contexts by id once they exist
            cs.append(c2)
        _, _, ids = store.put_execution(e, events, cs, reuse_context_if_already_exist=True,
                                        reuse_artifact_if_already_exist_by_external_id=False,
                                        force_reuse_context=True)
        context_ids[:] = ids

    return action


def _mlflow(folder: str) -> Callable[[int], None] | None:
    try:
        import mlflow
    except ImportError:
        return None
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(f"sqlite:///{os.path.join(folder, 'mlflow.db')}")
    mlflow.set_experiment("bench")

    def action(i: int) -> None:
        with mlflow.start_run():
            mlflow.log_params({f"p{j}": i * 10 + j for j in range(10)})

    return action


def _median_ms(actions: dict[str, Callable[[int], None]], repeats: int) -> dict[str, float]:
    """Alternate the sides so that machine noise hits them alike; median per side."""
    times: dict[str, list[float]] = {k: [] for k in actions}
    for i in range(repeats):
        for name, action in actions.items():
            started = time.perf_counter()
            action(i)
            times[name].append(time.perf_counter() - started)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def _sides(floor_uri: str, ours_uri: str) -> dict[str, Callable[[int], None]]:
    """The cell, the library call, and the floor of each (its own rows, captured)."""
    cell, store = _magic(ours_uri)

    def api(i: int) -> None:
        store.add_scenario("ten-params-api", model="mlp", params=_params(i))

    floor_store, types = _floor_store(floor_uri, store)
    sides: dict[str, Callable[[int], None]] = {}
    for name, action in (("cell", cell), ("api", api)):
        action(-3)  # the first action also writes the session context's properties, once per kernel
        with _captured_writes() as writes:
            action(-2)
        assert len(writes) == 1, f"one action, one put_execution; saw {len(writes)}"
        floor = _floor(floor_store, types, writes[0])
        floor(-3)
        floor(-2)
        sides[f"floor of {name}"], sides[name] = floor, action
    return sides


@contextlib.contextmanager
def _statement_counter(mysql: str) -> Iterator[Callable[[str, Callable[[], None]], int]]:
    """``count(database, action)``: how many SQL statements the server received from the
    connections to ``database`` while ``action()`` ran (connections that exist before or after
    it: MLMD keeps one open), and from this process's connections that name no database (a
    store's named-lock connection), read from the general log, which is on (as a table, with
    any output it had) only inside the block. Statements of other connections (this counter's
    own queries, other clients of a busy server) are not counted."""
    import pymysql

    from mlmd_magic.backend.uri import parse_uri

    parsed = parse_uri(f"{mysql}/x")
    conn = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user, password=parsed.password or "",
                           autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT @@global.general_log, @@global.log_output")
    was_on, output = cur.fetchone()
    had_table = "TABLE" in str(output).upper().split(",")
    cur.execute("SET GLOBAL log_output = %s", (output if had_table else f"{output},TABLE".lstrip(","),))
    cur.execute("SET GLOBAL general_log = 1")

    def threads(database: str) -> set[int]:
        ports = _local_ports()
        cur.execute("SELECT ID, HOST, DB FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()")
        return {thread for thread, host, db in cur.fetchall()
                if db == database or (db is None and host.rpartition(":")[2] in ports)}

    def count(database: str, action: Callable[[], None]) -> int:
        cur.execute("SELECT NOW(6)")
        (started,) = cur.fetchone()
        ids = threads(database)
        action()
        ids |= threads(database)
        cur.execute("SELECT NOW(6)")
        (ended,) = cur.fetchone()
        cur.execute("SELECT COUNT(*) FROM mysql.general_log WHERE event_time BETWEEN %s AND %s "
                    "AND command_type IN ('Query', 'Execute') AND thread_id IN %s", (started, ended, tuple(ids)))
        (n,) = cur.fetchone()
        return int(n)

    try:
        yield count
    finally:
        cur.execute("SET GLOBAL general_log = %s", (was_on,))
        cur.execute("SET GLOBAL log_output = %s", (output,))
        if not had_table:
            cur.execute("TRUNCATE TABLE mysql.general_log")  # it was not kept before: leave it as it was
        conn.close()


def _local_ports() -> set[str]:
    """The local TCP ports of this process's sockets, as text (Linux's /proc; none elsewhere)."""
    try:
        sockets = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith("socket:["):
                    sockets.add(target[len("socket:["):-1])
        ports = set()
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as fh:
                for line in list(fh)[1:]:
                    fields = line.split()
                    if fields[9] in sockets:  # local address HEX:PORT, ..., inode
                        ports.add(str(int(fields[1].rpartition(":")[2], 16)))
        return ports
    except OSError:
        return set()


def _statements(mysql: str, databases: dict[str, str], sides: dict[str, Callable[[int], None]], first: int
                ) -> dict[str, int]:
    """The median number of statements one action of each side sends (:data:`COUNTED` of each,
    numbered from ``first``: versions after the timed ones)."""
    with _statement_counter(mysql) as count:
        seen: dict[str, list[int]] = {name: [] for name in sides}
        for i in range(first, first + COUNTED):
            for name, action in sides.items():
                seen[name].append(count(databases[name], functools.partial(action, i)))
    return {name: int(statistics.median(n)) for name, n in seen.items()}


def _statement_rows(backend: str, counts: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for side, label in (("cell", "%%scenario cell with 10 params"), ("api", "store.add_scenario with 10 params")):
        floor, ours = counts[f"floor of {side}"], counts[side]
        rows += [
            {"benchmark": f"statements, {backend}: raw put_execution of the {side}'s rows (floor)", "value": floor,
             "unit": "stmts", "target": None, "passed": None},
            {"benchmark": f"statements, {backend}: {label}", "value": ours, "unit": "stmts",
             "target": f"<= {floor + STATEMENTS_OVER_FLOOR}", "passed": ours <= floor + STATEMENTS_OVER_FLOOR},
        ]
    return rows


def _against_floor(backend: str, ms: dict[str, float], cell_target: float | None = None) -> list[dict[str, Any]]:
    rows = []
    for side, label in (("cell", "%%scenario cell with 10 params"), ("api", "store.add_scenario with 10 params")):
        ratio = ms[side] / ms[f"floor of {side}"]
        target = cell_target if side == "cell" else None
        rows += [
            {"benchmark": f"recording, {backend}: raw put_execution of the {side}'s rows (floor)",
             "value": ms[f"floor of {side}"], "unit": "ms", "target": None, "passed": None},
            {"benchmark": f"recording, {backend}: {label}", "value": ms[side], "unit": "ms",
             "target": f"<= {target:g}" if target else None, "passed": ms[side] <= target if target else None},
            {"benchmark": f"recording, {backend}: {side} / floor", "value": ratio, "unit": "ratio",
             "target": f"<= {FLOOR_TARGET}", "passed": ratio <= FLOOR_TARGET},
        ]
    return rows


def run(repeats: int = REPEATS) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sides = _sides(f"sqlite:///{tmp}/floor.sqlite", f"sqlite:///{tmp}/ours.sqlite")
        flow = _mlflow(tmp)
        if flow is not None:
            flow(-1)  # creates MLflow's schema outside the timing
            sides["mlflow"] = flow
        ms = _median_ms(sides, repeats if flow is None else min(repeats, 100))
        rows += _against_floor("SQLite", ms)
        if "mlflow" in ms:
            speedup = ms["mlflow"] / ms["cell"]
            rows += [
                {"benchmark": "recording, SQLite: MLflow run with 10 params", "value": ms["mlflow"], "unit": "ms",
                 "target": None, "passed": None},
                {"benchmark": "recording, SQLite: MLflow / ours (speed-up)", "value": speedup, "unit": "ratio",
                 "target": ">= 5", "passed": speedup >= 5},
            ]
        else:
            rows.append({"benchmark": "recording: MLflow not installed (pip install -e '.[bench]')", "value": 0,
                         "unit": "ratio", "target": ">= 5", "passed": None})
    mysql = os.environ.get("MLMD_MAGIC_BENCH_MYSQL", "mysql://root@127.0.0.1:3306")
    suffix = uuid.uuid4().hex[:8]
    try:
        sides = _sides(f"{mysql}/mlmd_bench_floor_{suffix}", f"{mysql}/mlmd_bench_ours_{suffix}")
    except Exception as exc:  # no server: say so in the table
        rows.append({"benchmark": f"recording, MariaDB: skipped ({str(exc).splitlines()[0][:60]})", "value": 0,
                     "unit": "ratio", "target": f"<= {FLOOR_TARGET}", "passed": None})
        return rows
    try:
        ms = _median_ms(sides, repeats)
        rows += _against_floor("MariaDB", ms, CELL_TARGET_MS)
        databases = {name: f"mlmd_bench_{'floor' if name.startswith('floor') else 'ours'}_{suffix}" for name in sides}
        try:
            rows += _statement_rows("MariaDB", _statements(mysql, databases, sides, repeats))
        except Exception as exc:  # an account that may not switch the general log on: say so
            rows.append({"benchmark": f"statements, MariaDB: skipped ({str(exc).splitlines()[0][:60]})",
                         "value": 0, "unit": "stmts", "target": f"<= floor + {STATEMENTS_OVER_FLOOR}",
                         "passed": None})
    finally:
        import pymysql

        from mlmd_magic.backend.uri import parse_uri

        parsed = parse_uri(f"{mysql}/x")
        conn = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user, password=parsed.password or "")
        for db in (f"mlmd_bench_floor_{suffix}", f"mlmd_bench_ours_{suffix}"):
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
    return rows
