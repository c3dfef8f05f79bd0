"""Retries by what an error is, not by words in its text.

Errors captured from real stores (a SQLite file locked by another process, a MariaDB deadlock,
a killed MariaDB connection) are transient; a name taken by another writer is never, however
the record is called (``busybox``, ``deadlock-study``, ...), nor is any other error whose text
carries a record's name. Writers racing for the versions of a record called
``busybox-deadlock`` back off no more than writers of a plain name. An execution found by its
external id after a failed write counts as this action's only when it is of the action's type
and record.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic.backend.resilience import classify

from .conftest import MYSQL_PASSWORD, _server_params

# names that read like a transient error; raw MLMD names may hold spaces, ours may not
TRANSIENT_LOOKING = ["busybox", "deadlock-study", "lost-connection", "gone-away"]
RAW_NAMES = ["database is locked", "MySQL server has gone away", "Lost connection to MySQL server during query",
             "Deadlock found when trying to get lock; try restarting transaction",
             "mysql_query failed: errno: 2006, error: MySQL server has gone away"]


def _raw(uri: str) -> Any:
    """A plain ``MetadataStore`` on ``uri`` (no retries of ours) that gives up on a busy database
    at once: MLMD's client would otherwise try five times, waiting 2 s on average in between."""
    from mlmd_magic.backend.connection import backend_for
    from mlmd_magic.backend.uri import parse_uri

    backend = backend_for(parse_uri(uri))
    config = backend.config()
    config.retry_options.max_num_retries = 1
    try:
        return metadata_store.MetadataStore(config)
    finally:
        backend.after_open()


def _error(call: Any) -> Exception:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


# ------------------------------------------------------------------ real transient errors


def test_a_sqlite_file_locked_by_another_process_is_busy(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store.sqlite'}"
    mm.connect(uri).close()  # a store in write-ahead-log mode, with our types
    raw = _raw(uri)
    type_id = raw.get_artifact_type("mlmd_magic.Scenario").id
    # SQLite's locks belong to a process: the lock must be held by another one
    with subprocess.Popen(
            [sys.executable, "-c", "import sqlite3, sys\n"
             f"c = sqlite3.connect({str(tmp_path / 'store.sqlite')!r}, isolation_level=None)\n"
             "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\nsys.stdin.readline()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as locker:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        error = _error(lambda: raw.put_artifacts([pb.Artifact(type_id=type_id, name="busybox@1")]))
        locker.communicate("\n", timeout=30)
    # SQLITE_BUSY: MLMD turns "database is locked" into ABORTED with a fixed message
    assert isinstance(error, mlmd_errors.AbortedError)
    assert str(error).endswith("Concurrent writes aborted after max number of retries.")
    assert classify(error) == "busy"


_DEADLOCKER = """
import sys, time, pymysql
host, port, user, password, database, artifact_id = sys.argv[1:]
conn = pymysql.connect(host=host, port=int(port), user=user, password=password, database=database)
with conn.cursor() as cur:
    # a heavy transaction: InnoDB rolls back the lighter one of a deadlock, which is MLMD's
    cur.execute("CREATE TABLE IF NOT EXISTS ballast (i INT) ENGINE=InnoDB")
    conn.commit()
    cur.execute("INSERT INTO ballast VALUES " + ",".join(f"({i})" for i in range(2000)))
    cur.execute("SELECT id FROM Artifact WHERE id = %s LOCK IN SHARE MODE", (int(artifact_id),))
    print("shared", flush=True)
    time.sleep(1.0)  # MLMD takes its shared lock too, then waits for an exclusive one
    cur.execute("SELECT id FROM Artifact WHERE id = %s FOR UPDATE", (int(artifact_id),))
conn.rollback()
"""


@pytest.mark.mysql
def test_a_mariadb_deadlock_is_busy(mysql_uri: str) -> None:
    store = mm.connect(mysql_uri)
    store.add_scenario("busybox", model="mlp", params={"a": 1})
    store.close()
    raw = _raw(mysql_uri)
    (art,) = raw.get_artifacts_by_type("mlmd_magic.Scenario")
    art.properties["description"].string_value = "changed"
    params = _server_params()
    with subprocess.Popen(
            [sys.executable, "-c", _DEADLOCKER, params["host"], str(params["port"]), params["user"], MYSQL_PASSWORD,
             mysql_uri.rsplit("/", 1)[1], str(art.id)], stdout=subprocess.PIPE, text=True) as helper:
        assert helper.stdout is not None and helper.stdout.readline().strip() == "shared"
        error = _error(lambda: raw.put_artifacts([art]))
        helper.communicate(timeout=60)
    # errors 1213 and 1205 are ABORTED; MLMD 1.17 writes the server's text where the number belongs
    assert isinstance(error, mlmd_errors.AbortedError)
    assert str(error) == ("mysql_query aborted: errno: Deadlock found when trying to get lock; try restarting "
                          "transaction, error: Deadlock found when trying to get lock; try restarting transaction")
    assert classify(error) == "busy"


@pytest.mark.mysql
def test_a_killed_mariadb_connection_is_lost(mysql_uri: str) -> None:
    import pymysql

    mm.connect(mysql_uri).close()
    raw = _raw(mysql_uri)
    raw.get_artifacts()
    database = mysql_uri.rsplit("/", 1)[1]
    admin = pymysql.connect(**_server_params())
    with admin.cursor() as cur:
        cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                    (database,))
        for (conn_id,) in cur.fetchall():
            cur.execute(f"KILL CONNECTION {int(conn_id)}")
    admin.close()
    error = _error(raw.get_artifacts)
    assert isinstance(error, mlmd_errors.InternalError)
    assert str(error) == ("mysql_query failed: errno: Lost connection to MySQL server during query, "
                          "error: Lost connection to MySQL server during query")
    assert classify(error) == "lost"


# ------------------------------------------------------------------ names are out of reach


@pytest.mark.parametrize("name", TRANSIENT_LOOKING)
def test_a_taken_name_is_never_transient(store_uri: str, name: str) -> None:
    store = mm.connect(store_uri)
    try:
        store.add_scenario(name, model="mlp", params={"a": 1})
        raw = store.mlmd.raw
        type_id = raw.get_artifact_type("mlmd_magic.Scenario").id
        taken = _error(lambda: raw.put_artifacts([pb.Artifact(type_id=type_id, name=f"{name}@1")]))
        assert isinstance(taken, mlmd_errors.AlreadyExistsError)
        assert name in str(taken)
        assert classify(taken) is None
    finally:
        store.close()


@pytest.mark.parametrize("name", RAW_NAMES)
def test_a_taken_name_reading_like_a_driver_error_is_never_transient(store_uri: str, name: str) -> None:
    store = mm.connect(store_uri)
    try:
        raw = store.mlmd.raw
        type_id = raw.get_artifact_type("mlmd_magic.Scenario").id
        raw.put_artifacts([pb.Artifact(type_id=type_id, name=name)])
        taken = _error(lambda: raw.put_artifacts([pb.Artifact(type_id=type_id, name=name)]))
        assert isinstance(taken, mlmd_errors.AlreadyExistsError)
        assert classify(taken) is None
    finally:
        store.close()


def test_a_name_in_another_sqlite_error_is_not_read(tmp_path: Path) -> None:
    # a store opened read-only refuses the write with an internal error that quotes the name twice
    uri = f"sqlite:///{tmp_path / 'store.sqlite'}"
    mm.connect(uri).close()
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = f"file:{tmp_path / 'store.sqlite'}?mode=ro"
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    raw = metadata_store.MetadataStore(config)
    type_id = raw.get_artifact_type("mlmd_magic.Scenario").id
    for name in ["busybox-deadlock@1", *RAW_NAMES]:
        error = _error(lambda name=name: raw.put_artifacts([pb.Artifact(type_id=type_id, name=name)]))
        assert isinstance(error, mlmd_errors.InternalError)
        assert "attempt to write a readonly database" in str(error) and name in str(error)
        assert classify(error) is None, name


@pytest.mark.mysql
def test_a_name_in_another_mariadb_error_is_not_read(mysql_uri: str) -> None:
    mm.connect(mysql_uri).close()
    raw = _raw(mysql_uri)
    type_id = raw.get_artifact_type("mlmd_magic.Scenario").id
    name = "busybox-deadlock-lost-connection-gone-away-" * 8  # longer than the column: error 1406
    error = _error(lambda: raw.put_artifacts([pb.Artifact(type_id=type_id, name=name)]))
    assert isinstance(error, mlmd_errors.InternalError)
    assert name in str(error) and str(error).endswith("error: Data too long for column 'name' at row 1")
    assert classify(error) is None


@pytest.mark.parametrize(("error", "expected"), [
    # what MLMD 1.17.1 writes (the driver's text where the number belongs), for codes we cannot
    # provoke without stopping the shared server
    (mlmd_errors.InternalError("mysql_query failed: errno: MySQL server has gone away, "
                               "error: MySQL server has gone away"), "lost"),
    (mlmd_errors.InternalError("mysql_query failed: errno: Server shutdown in progress, "
                               "error: Server shutdown in progress"), "lost"),
    (mlmd_errors.InternalError("mysql_query failed: errno: Connection was killed, error: Connection was killed"),
     "lost"),
    (mlmd_errors.InternalError("mysql_real_connect failed: errno: Can't connect to MySQL server on '127.0.0.1' "
                               "(111), error: Can't connect to MySQL server on '127.0.0.1' (111)"), "lost"),
    (mlmd_errors.InternalError("mysql_real_connect failed: errno: Lost connection to MySQL server at 'reading "
                               "initial communication packet', system error: 0, error: Lost connection to MySQL "
                               "server at 'reading initial communication packet', system error: 0"), "lost"),
    (mlmd_errors.AbortedError("mysql_query aborted: errno: Lock wait timeout exceeded; try restarting "
                              "transaction, error: Lock wait timeout exceeded; try restarting transaction"), "busy"),
    # the number, as MLMD's older sources wrote it
    (mlmd_errors.InternalError("mysql_query failed: errno: 2013, error: Lost connection to MySQL server during "
                               "query"), "lost"),
    (mlmd_errors.InternalError("mysql_query failed: errno: 1213, error: Deadlock found when trying to get lock; "
                               "try restarting transaction"), "busy"),
    (mlmd_errors.InternalError("mysql_query failed: errno: 1062, error: Duplicate entry 'gone away' for key "
                               "'external_id'"), None),
    # SQLITE_LOCKED (never met with MLMD's one connection per store, no shared cache)
    (mlmd_errors.InternalError("Error when executing query: database table is locked query: SELECT 1;"), "busy"),
    (mlmd_errors.InternalError("Cannot find type for type_id: 10 name: \"Error when executing query: database "
                               "table is locked query: \"Error when executing query: no such table: Type "
                               "query: SELECT 1;"), None),
    # a name in front of the driver's text does not make it transient
    (mlmd_errors.InternalError("Cannot create node for type_id: 10 name: \"mysql_query failed: errno: 2006, "
                               "error: MySQL server has gone away\"mysql_query failed: errno: Data too long for "
                               "column 'name' at row 1, error: Data too long for column 'name' at row 1"), None),
    (mlmd_errors.NotFoundError("No type found for query, name: `busybox deadlock gone away`"), None),
    (mlmd_errors.UnavailableError("failed to connect to all addresses"), "lost"),
    (RuntimeError("database is locked"), None),
])
def test_classify_reads_the_type_and_the_drivers_part(error: Exception, expected: str | None) -> None:
    assert classify(error) == expected


# ------------------------------------------------------------------ racing writers


def _racer(args: tuple[str, str, int, int, dict[str, str], Any]) -> dict[str, Any]:
    """One process writing ``actions`` versions of ``name``; counts the backoff sleeps of the
    retry loop (mlmd_magic.backend.resilience), which a lost race must not cause."""
    uri, name, worker, actions, env, barrier = args
    os.environ.update(env)
    from mlmd_magic.backend import resilience

    backoffs = [0]

    class CountingTime:
        def __getattr__(self, attr: str) -> Any:
            return getattr(time, attr)

        def sleep(self, seconds: float) -> None:
            backoffs[0] += 1
            time.sleep(seconds)

    resilience.time = CountingTime()  # type: ignore[assignment]
    store = mm.connect(uri)
    barrier.wait(timeout=120)
    versions = [store.add_scenario(name, model="mlp", params={"worker": worker, "i": i}).version
                for i in range(actions)]
    return {"versions": versions, "backoffs": backoffs[0], "busy_retries": getattr(store.mlmd, "busy_retries", None)}


def _race(uri: str, name: str, processes: int, actions: int, env: dict[str, str]) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)  # type: ignore[attr-defined]
        with ctx.Pool(processes) as pool:
            return pool.map(_racer, [(uri, name, w, actions, env, barrier) for w in range(processes)], chunksize=1)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_racing_writers_of_a_transient_looking_name_back_off_as_for_a_plain_one(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    uri = f"sqlite:///{tmp_path / 'race.sqlite'}" if backend == "sqlite" else request.getfixturevalue("mysql_uri")
    env = {"MLMD_MAGIC_MYSQL_PASSWORD": MYSQL_PASSWORD} if backend == "mysql" else {}
    processes, actions = 4, 10
    results = {name: _race(uri, name, processes, actions, env) for name in ["plain", "busybox-deadlock"]}
    for name, each in results.items():
        versions = sorted(v for r in each for v in r["versions"])
        assert versions == list(range(1, processes * actions + 1)), name  # no gap, no duplicate
    backoffs = {name: sum(r["backoffs"] for r in each) for name, each in results.items()}
    # a lost race costs one more try, whatever the record is called (it used to cost 59 backoffs)
    assert backoffs["busybox-deadlock"] <= 2 * backoffs["plain"] + 5, backoffs
    # the store counts them too
    assert [r["busy_retries"] for each in results.values() for r in each] == \
        [r["backoffs"] for each in results.values() for r in each]


# ------------------------------------------------------------------ an external id met again


def _recorder(store: mm.Store) -> Any:
    from mlmd_magic.backend.recorder import Recorder
    from mlmd_magic.backend.types import register_types

    return Recorder(store.mlmd, register_types(store.mlmd))


def _version_action(recorder: Any, name: str, external_id: str) -> Any:
    from mlmd_magic.backend.recorder import Action

    act = Action("AddScenario", {"name": name})
    act.external_id = external_id
    act.contexts.append(("Scenario", name))
    art = pb.Artifact(type_id=recorder.types.artifacts["Scenario"], name=f"{name}@1", external_id=f"{name}:1")
    art.properties["version"].int_value = 1
    act.outputs = [art]
    return act


def test_an_execution_of_another_type_under_the_external_id_is_refused(store: mm.Store) -> None:
    recorder = _recorder(store)
    external_id = f"mlmd_magic:{uuid.uuid4().hex}"
    (other,) = store.mlmd.put_executions([pb.Execution(type_id=recorder.types.executions["FetchScenario"],
                                                       external_id=external_id)])
    act = _version_action(recorder, "busybox", external_id)
    with pytest.raises(mm.StoreError) as info:
        recorder.commit(act)
    message = str(info.value)
    assert external_id in message and "mlmd_magic.FetchScenario" in message and f"execution {other}" in message
    assert not act.committed and act.execution_id is None
    assert store.mlmd.get_artifacts_by_type("mlmd_magic.Scenario") == []
    assert store.mlmd.get_executions_by_type("mlmd_magic.AddScenario") == []


def test_an_execution_of_another_record_under_the_external_id_is_refused(store: mm.Store) -> None:
    recorder = _recorder(store)
    external_id = f"mlmd_magic:{uuid.uuid4().hex}"
    recorder.commit(_version_action(recorder, "other", external_id))  # another record's version
    act = _version_action(recorder, "busybox", external_id)
    with pytest.raises(mm.StoreError) as info:
        recorder.commit(act)
    message = str(info.value)
    assert external_id in message and "mlmd_magic.AddScenario" in message and "busybox" in message
    assert not act.committed
    assert [a.name for a in store.mlmd.get_artifacts_by_type("mlmd_magic.Scenario")] == ["other@1"]


def test_a_retry_after_a_lost_answer_still_finds_its_execution(store: mm.Store) -> None:
    recorder = _recorder(store)
    act = _version_action(recorder, "busybox", f"mlmd_magic:{uuid.uuid4().hex}")
    recorder.commit(act)
    first, outputs = act.execution_id, act.output_ids
    act.committed, act.execution_id, act.output_ids = False, None, []  # the answer never arrived
    recorder.commit(act)  # the same rows again: taken, found by the external id
    assert act.committed and act.execution_id == first and act.output_ids == outputs
    assert len(store.mlmd.get_executions_by_type("mlmd_magic.AddScenario")) == 1
    assert [a.name for a in store.mlmd.get_artifacts_by_type("mlmd_magic.Scenario")] == ["busybox@1"]
