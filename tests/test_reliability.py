"""Reliability: concurrent kernels, lost connections, killed kernels, schema evolution, damaged
and removed SQLite files."""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets

from .conftest import MYSQL_PASSWORD, _server_params

FIXTURES = Path(__file__).parent / "fixtures"


def _writer(args: tuple[str, int, int, dict[str, str]]) -> dict[str, Any]:
    uri, worker, actions, env = args
    os.environ.update(env)
    store = mm.connect(uri)
    versions = []
    for i in range(actions):
        # every worker versions the same record: the hardest race there is
        versions.append(store.add_scenario("shared", model="mlp", params={"worker": worker, "i": i}).version)
    return {"worker": worker, "versions": versions, "reconnects": store.mlmd.reconnects}


def _hammer(uri: str, processes: int, actions: int, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        return pool.map(_writer, [(uri, w, actions, env or {}) for w in range(processes)])


def _check_exactly_once(uri: str, processes: int, actions: int, results: list[dict[str, Any]]) -> None:
    total = processes * actions
    versions = sorted(v for r in results for v in r["versions"])
    assert versions == list(range(1, total + 1))  # every action got its own version, none lost
    store = mm.connect(uri)
    arts = store.mlmd.get_artifacts_by_type("mlmd_magic.Scenario")
    assert len(arts) == total
    executions = store.mlmd.get_executions_by_type("mlmd_magic.AddScenario")
    assert len(executions) == total
    assert all(e.last_known_state == pb.Execution.COMPLETE for e in executions)
    assert len({e.external_id for e in executions}) == total
    assert store.get_scenario("shared")["version"] == total


@pytest.mark.slow
def test_8_processes_x_200_actions_on_one_sqlite_file(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/shared.sqlite"
    results = _hammer(uri, 8, 200)
    _check_exactly_once(uri, 8, 200, results)
    conn = sqlite3.connect(tmp_path / "shared.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.slow
@pytest.mark.mysql
def test_16_processes_x_200_actions_on_mariadb(mysql_uri: str) -> None:
    results = _hammer(mysql_uri, 16, 200, {"MLMD_MAGIC_MYSQL_PASSWORD": MYSQL_PASSWORD})
    _check_exactly_once(mysql_uri, 16, 200, results)


@pytest.mark.mysql
def test_a_killed_mysql_connection_is_reopened(mysql_uri: str) -> None:
    import pymysql

    store = mm.connect(mysql_uri)
    store.add_scenario("s", model="mlp", params={"a": 1})
    database = mysql_uri.rsplit("/", 1)[1]
    admin = pymysql.connect(**_server_params())
    with admin.cursor() as cur:
        cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                    (database,))
        ids = [row[0] for row in cur.fetchall()]
        assert ids
        for conn_id in ids:
            cur.execute(f"KILL CONNECTION {int(conn_id)}")
    admin.close()
    assert store.add_scenario("s", model="mlp", params={"a": 2}).version == 2  # "server has gone away" survived
    assert len(store.mlmd.get_executions_by_type("mlmd_magic.AddScenario")) == 2
    assert store.mlmd.reconnects == 1  # and so did MLMD's connection, on its next call


@pytest.mark.mysql
@pytest.mark.skipif(os.environ.get("MLMD_MAGIC_TEST_RESTART_MYSQL") != "1",
                    reason="restarts the MariaDB server: set MLMD_MAGIC_TEST_RESTART_MYSQL=1 (CI does)")
def test_a_mariadb_restart_between_two_cells_is_survived(mysql_uri: str) -> None:
    store = mm.connect(mysql_uri)
    store.add_scenario("s", model="mlp", params={"a": 1})
    subprocess.run(["mysqladmin", "-uroot", "-h127.0.0.1", "shutdown"], check=True, timeout=60)
    _wait_port(open_=False)
    deadline = time.time() + 60  # the port closes before the process has exited
    while subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True).returncode == 0:
        assert time.time() < deadline, "mariadbd did not exit"
        time.sleep(0.2)
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"],
                   check=True, timeout=60)
    _wait_port(open_=True)
    assert store.add_scenario("s", model="mlp", params={"a": 2}).version == 2
    assert store.get_scenario("s")["version"] == 2
    assert store.mlmd.reconnects == 1


def _wait_port(open_: bool, port: int = 3306, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            is_open = s.connect_ex(("127.0.0.1", port)) == 0
        if is_open == open_:
            return
        time.sleep(0.2)
    raise AssertionError(f"port {port} did not {'open' if open_ else 'close'} within {timeout}s")


_SLOW_TRAIN = """
import sys, time, mlmd_magic as mm

class Slow:
    def on_epoch_end(self, epoch, logs):
        time.sleep(0.5)

store = mm.connect(sys.argv[1])
store.train("t21", callbacks=[Slow()], progress=False)
"""


def test_a_kernel_killed_mid_training_is_marked_failed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/crash.sqlite"
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(tmp_path / "d"), n_train=64, n_eval=16,
                                                              n_test=16))
    store.add_scenario("slow", model="mlp", params={"hidden": [4], "epochs": 200, "batch_size": 32})
    store.add_experiment("t21", datasource="nipt-sim", scenario="slow")
    env = {**os.environ, "MLMD_MAGIC_RUNS_DIR": str(tmp_path / "runs")}
    kernel = subprocess.Popen([sys.executable, "-c", _SLOW_TRAIN, uri], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            runs = store.mlmd.get_executions_by_type("mlmd_magic.Train")
            if runs and "progress" in runs[0].properties:
                break
            assert kernel.poll() is None, kernel.stderr.read().decode()[-2000:] if kernel.stderr else ""
            time.sleep(0.2)
        else:
            raise AssertionError("training never reported progress")
        assert runs[0].last_known_state == pb.Execution.RUNNING
        os.kill(kernel.pid, signal.SIGKILL)
        kernel.wait(timeout=30)
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait(timeout=30)
        if kernel.stderr is not None:
            kernel.stderr.close()
    reopened = mm.connect(uri)
    assert reopened.reaped_runs == [runs[0].id]
    (run,) = reopened.mlmd.get_executions_by_type("mlmd_magic.Train")
    assert run.last_known_state == pb.Execution.FAILED
    assert f"process {kernel.pid}" in run.properties["error"].string_value
    assert reopened.mlmd.get_artifacts_by_type("mlmd_magic.Model") == []
    assert mm.connect(uri).reaped_runs == []  # reaped once


def test_a_stale_heartbeat_elsewhere_is_marked_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run recorded by 0.1, which kept its heartbeat in the heartbeat_ms property."""
    uri = f"sqlite:///{tmp_path}/stale.sqlite"
    store = mm.connect(uri)
    et = store.mlmd.get_execution_type("mlmd_magic.Train").id
    execution = pb.Execution(type_id=et, last_known_state=pb.Execution.RUNNING)
    execution.properties["owner"].string_value = "other-host:123"
    execution.properties["heartbeat_ms"].int_value = int((time.time() - 7200) * 1000)
    (eid,) = store.mlmd.put_executions([execution])
    monkeypatch.setenv("MLMD_MAGIC_STALE_RUN_AFTER_S", "3600")
    assert mm.connect(uri).reaped_runs == [eid]
    (reaped,) = store.mlmd.get_executions_by_id([eid])
    assert "no heartbeat for 2.0 h (owner other-host:123)" in reaped.properties["error"].string_value


def test_a_run_that_stops_updating_is_marked_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The heartbeat is the execution's last update, which MLMD stamps on every per-epoch write."""
    uri = f"sqlite:///{tmp_path}/quiet.sqlite"
    store = mm.connect(uri)
    execution = pb.Execution(type_id=store.mlmd.get_execution_type("mlmd_magic.Train").id,
                             last_known_state=pb.Execution.RUNNING)
    execution.properties["owner"].string_value = "other-host:123"
    (eid,) = store.mlmd.put_executions([execution])
    monkeypatch.setenv("MLMD_MAGIC_STALE_RUN_AFTER_S", "1")
    assert mm.connect(uri).reaped_runs == []
    time.sleep(1.5)
    assert mm.connect(uri).reaped_runs == [eid]
    (reaped,) = store.mlmd.get_executions_by_id([eid])
    assert re.search(r"no heartbeat for \d s \(owner other-host:123\)", reaped.properties["error"].string_value)


# ---------------------------------------------------------------------------- schema evolution


def test_a_store_written_by_0_1_0_opens_and_grows(tmp_path: Path) -> None:
    copy = tmp_path / "old.sqlite"
    shutil.copy(FIXTURES / "store-0.1.0.sqlite", copy)
    store = mm.connect(f"sqlite:///{copy}")
    assert store.get_experiment("t21@1")["params"]["epochs"] == 1
    assert store.get_experiment("t21")["params"]["optimizer"] == {"lr": 0.1}
    assert store.diff("t21@1", "t21@2").to_dict()["params.epochs"] == {"a": 1, "b": 2}
    same = store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 2, "optimizer": {"lr": 0.01}})
    assert (same.version, same.status) == (1, "unchanged")  # content hashes are stable across versions
    assert store.add_scenario("mlp-small", model="mlp", params={"hidden": [16]}).version == 2
    assert list(store.ls("experiments")["name"]) == ["t21"]


def test_types_gain_properties_compatibly(tmp_path: Path) -> None:
    from ml_metadata.metadata_store import metadata_store

    path = tmp_path / "older-types.sqlite"
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    raw = metadata_store.MetadataStore(config)
    older = pb.ArtifactType(name="mlmd_magic.Scenario", properties={"version": pb.INT, "model": pb.STRING})
    raw.put_artifact_type(older)
    store = mm.connect(f"sqlite:///{path}")
    (scenario_type,) = [t for t in store.mlmd.get_artifact_types() if t.name == "mlmd_magic.Scenario"]
    assert {"version", "model", "params", "description"} <= set(scenario_type.properties)
    assert store.add_scenario("s", model="mlp", params={"a": 1}).version == 1


def test_an_mlmd_schema_mismatch_gets_a_clear_message(tmp_path: Path) -> None:
    copy = tmp_path / "future.sqlite"
    shutil.copy(FIXTURES / "store-0.1.0.sqlite", copy)
    conn = sqlite3.connect(copy)
    conn.execute("UPDATE MLMDEnv SET schema_version = schema_version + 50")
    conn.commit()
    conn.close()
    with pytest.raises(mm.StoreConnectionError) as info:
        mm.connect(f"sqlite:///{copy}")
    message = str(info.value)
    assert "schema version" in message and "ml-metadata" in message and "Traceback" not in message



def test_a_retry_after_a_lost_answer_records_once(mem_store: mm.Store) -> None:
    """The commit succeeds but its answer is lost: the retry finds the execution by its external id."""
    from mlmd_magic.backend.recorder import Action, Recorder
    from mlmd_magic.backend.types import register_types

    recorder = Recorder(mem_store.mlmd, register_types(mem_store.mlmd))
    act = Action("AddScenario", {"name": "s"})
    recorder.commit(act)
    first = act.execution_id
    act.committed, act.execution_id = False, None  # as if put_execution's reply never arrived
    recorder.commit(act)
    assert act.committed and act.execution_id == first
    assert len(mem_store.mlmd.get_executions_by_type("mlmd_magic.AddScenario")) == 1


@pytest.mark.parametrize(("lock_held", "conflicts", "contended", "expected"), [
    # alone: one write, no lock
    (True, 0, False, ["commit"]),
    # a lost race takes the record's lock for the next try; held, no backoff
    (True, 1, False, ["conflict", "lock", "commit", "unlock"]),
    (True, 2, False, ["conflict", "lock", "conflict", "commit", "unlock"]),
    # a record contended lately: the lock first
    (True, 1, True, ["lock", "conflict", "commit", "unlock"]),
    # a lock that cannot be had (a restarting server; SQLite has none): back off, ask again
    (False, 0, True, ["lock", "commit", "unlock"]),
    (False, 1, False, ["conflict", "lock", "sleep", "commit", "unlock"]),
    (False, 2, False, ["conflict", "lock", "sleep", "conflict", "lock", "sleep", "commit", "unlock", "unlock"]),
    (False, 1, True, ["lock", "conflict", "lock", "sleep", "commit", "unlock", "unlock"]),
])
def test_writers_of_one_record_take_turns_once_they_have_met(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_held: bool, conflicts: int, contended: bool,
        expected: list[str]) -> None:
    """What a writer does, as the store and the other writers see it, when another writer takes
    the version number it was about to write: its writes to MLMD (each one committed or lost to
    the other writer), the backend's record lock (held, or not to be had) and its backoffs.

    The other writer is real: another connection to the same SQLite file that writes the next
    version just before ours reaches MLMD. The backend's lock is the one seam: SQLite has none,
    so a stand-in says it is held (as MySQL's GET_LOCK does) or cannot be had (a restarting server)."""
    import contextlib

    from mlmd_magic.backend.connection import SqliteBackend

    uri = f"sqlite:///{tmp_path}/turns.sqlite"
    log: list[str] = []
    other_writing = [False]  # the other writer's own lock and backoffs are its business: not logged

    @contextlib.contextmanager
    def record_lock(self: Any, key: str) -> Any:
        if other_writing[0]:
            yield False  # SQLite's: none
            return
        log.append("lock")
        yield lock_held
        log.append("unlock")

    def sleep(seconds: float) -> None:
        if not other_writing[0]:
            log.append("sleep")

    monkeypatch.setattr(SqliteBackend, "record_lock", record_lock)
    store = mm.connect(uri)
    real_write = store.mlmd.put_execution
    rivals = [0]

    def write(*args: Any, **kwargs: Any) -> Any:
        if rivals[0]:  # the other writer gets there first, with the version number ours is about to take
            rivals[0] -= 1
            other_writing[0] = True
            try:
                other = mm.connect(uri)
                other.add_scenario("a", model="mlp", params={"other": len(log)})
                other.close()
            finally:
                other_writing[0] = False
        try:
            written = real_write(*args, **kwargs)
        except Exception:
            log.append("conflict")
            raise
        log.append("commit")
        return written

    store.add_scenario("a", model="mlp", params={"v": 0})
    monkeypatch.setattr(store.mlmd, "put_execution", write)
    monkeypatch.setattr(time, "sleep", sleep)
    if contended:  # a race lost a moment ago
        rivals[0] = 1
        store.add_scenario("a", model="mlp", params={"v": -1})
    log.clear()
    rivals[0] = conflicts
    written = store.add_scenario("a", model="mlp", params={"v": 1})
    assert log == expected
    versions = store.ls("scenarios", all_versions=True)
    assert written.version == len(versions) == 2 + conflicts + 2 * contended  # every write kept its own version
    assert [e.last_known_state for e in store.mlmd.get_executions_by_type("mlmd_magic.AddScenario")] == \
        [pb.Execution.COMPLETE] * written.version  # a lost race left no execution behind


def test_a_context_met_again_under_another_id_is_named_by_the_new_one(mem_store: mm.Store) -> None:
    # contexts already in the store are sent by id, one message each: when the id changes (a
    # lost race re-read it), the message must change with it
    recorder = mem_store._recorder
    mem_store.add_scenario("a", model="mlp", params={"v": 0})
    cid = recorder.context_id("Scenario", "a")
    mem_store.add_scenario("a", model="mlp", params={"v": 1})
    assert recorder._context_refs[("Scenario", "a")].id == cid
    other = mem_store.mlmd.put_contexts([pb.Context(type_id=recorder.types.contexts["Scenario"], name="b")])[0]
    recorder.remember_context("Scenario", "a", other)  # as if "a" had been found under another id
    assert ("Scenario", "a") not in recorder._context_refs
    mem_store.add_scenario("a", model="mlp", params={"v": 2})
    latest = mem_store.mlmd.get_executions()[-1]
    assert other in [c.id for c in mem_store.mlmd.get_contexts_by_execution(latest.id)]
    recorder.forget_context("Scenario", "a")
    assert ("Scenario", "a") not in recorder._context_refs


# ---------------------------------------------------------------------------- damaged and removed SQLite files


def _damaged_store(tmp_path: Path) -> Path:
    """A SQLite store of 20 scenarios, checkpointed: all of it in the file itself."""
    path = tmp_path / "s.sqlite"
    store = mm.connect(f"sqlite:///{path}")
    for i in range(20):
        store.add_scenario(f"s{i}", model="mlp", params={"x": "y" * 2000})
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def _overwrite(path: Path, page: int, size: int = 4096) -> None:
    with open(path, "r+b") as fh:
        fh.seek(page * size)
        fh.write(b"\xa5" * size if page else b"not a database!!")


def test_a_damaged_sqlite_file_is_reported_as_damaged(tmp_path: Path) -> None:
    """A damaged header or schema page: connecting says the file is damaged and to restore it
    from a backup (MLMD saw "a subset of tables" and retried; how fast the refusal comes:
    benchmarks/bench_hostile.py). Damage that only a read meets: a StoreError saying so, not
    MLMD's query text."""
    path = _damaged_store(tmp_path)
    good = path.read_bytes()
    for page in (0, 1):  # the header; the schema's table
        path.write_bytes(good)
        _overwrite(path, page)
        with pytest.raises(mm.StoreConnectionError, match=r"is damaged \((file is not a database|database disk "
                                                          r"image is malformed)\).*Restore it from a backup"):
            mm.connect(f"sqlite:///{path}")
    found = False
    for page in range(len(good) // 4096 - 1, 1, -1):
        path.write_bytes(good)
        _overwrite(path, page)
        try:
            store = mm.connect(f"sqlite:///{path}")
        except mm.StoreConnectionError:
            continue
        try:
            store.ls("scenarios", all_versions=True)
            [store.get_scenario(f"s{i}") for i in range(20)]
        except mm.StoreError as exc:
            assert "is damaged (database disk image is malformed)" in str(exc), str(exc)[:300]
            found = True
            break
        finally:
            store.close()
    assert found


def test_a_sqlite_file_removed_or_replaced_while_connected_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = mm.connect(f"sqlite:///{path}")
    assert store.add_scenario("s", model="mlp", params={"a": 1}).ref == "s@1"
    os.remove(path)
    with pytest.raises(mm.StoreError, match="was removed while connected"):
        store.add_scenario("s", model="mlp", params={"a": 2})
    with pytest.raises(mm.StoreError, match="was removed while connected"):
        store.get_scenario("s")
    other = mm.connect(f"sqlite:///{tmp_path}/other.sqlite")
    other.close()
    os.replace(tmp_path / "other.sqlite", path)
    with pytest.raises(mm.StoreError, match="was replaced by another file"):
        store.add_scenario("s", model="mlp", params={"a": 2})
