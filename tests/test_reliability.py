"""Reliability: concurrent kernels, lost connections, killed kernels, schema evolution."""

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
    store.experiment("t21", datasource="nipt-sim", scenario="slow")
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
    assert list(store.list("experiments")["name"]) == ["t21"]


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
        mem_store: mm.Store, monkeypatch: pytest.MonkeyPatch, lock_held: bool, conflicts: int, contended: bool,
        expected: list[str]) -> None:
    # the order of tries, locks and backoffs when another writer takes the next version number
    import contextlib

    from mlmd_magic.backend.recorder import Conflict
    from mlmd_magic.store import records

    log: list[str] = []

    @contextlib.contextmanager
    def lock(key: str) -> Any:
        log.append("lock")
        yield lock_held
        log.append("unlock")

    records_ = mem_store._records
    commit = records_.recorder.commit
    left = [0]

    def losing_commit(act: Any, error: BaseException | None = None) -> None:
        if left[0] and act.state == "COMPLETE":
            left[0] -= 1
            log.append("conflict")
            raise Conflict("another writer took it")
        log.append("commit")
        commit(act, error)

    monkeypatch.setattr(records_, "_record_lock", lock)
    monkeypatch.setattr(records_.recorder, "commit", losing_commit)
    monkeypatch.setattr(records.time, "sleep", lambda seconds: log.append("sleep"))
    mem_store.add_scenario("a", model="mlp", params={"v": 0})
    log.clear()
    left[0] = conflicts
    if contended:
        records_._contended["Scenario:a"] = time.monotonic()
    assert mem_store.add_scenario("a", model="mlp", params={"v": 1}).version == 2
    assert log == expected
    assert [e.last_known_state for e in mem_store.mlmd.get_executions()] == [pb.Execution.COMPLETE] * 2


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
