"""Who is alive: a killed worker is FAILED for every reader at once; the owner string is only a
hint where host, boot id and PID namespace are ours; elsewhere the heartbeat decides, which a
run's own thread writes however long an epoch takes.

Real processes and signals: a background worker SIGKILLed and left a zombie by its parent, a
reader in another process that opened the store before the kill, a pid that now belongs to
another process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.store.live import LiveWriter
from mlmd_magic.store.maintenance import Owner, owner_token, process_alive, reap_stale_runs

from .test_long_runs import _until

_READER = """
import sys, mlmd_magic as mm
store = mm.connect(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:  # each line: a run id to look at
    print(store.watch(int(line)).state, flush=True)
"""


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=300, n_eval=100, n_test=100)


def _running(store: mm.Store, owner: str, kind: str = "mlmd_magic.Train") -> int:
    execution = pb.Execution(type_id=store.mlmd.get_execution_type(kind).id, last_known_state=pb.Execution.RUNNING)
    execution.properties["owner"].string_value = owner
    (eid,) = store.mlmd.put_executions([execution])
    return int(eid)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_a_killed_background_worker_is_failed_for_a_reader_in_another_process(
        tmp_path: Path, nipt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    uri = f"sqlite:///{tmp_path}/live.sqlite"
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **nipt)
    store.add_scenario("long", model="mlp", params={"hidden": [8], "epochs": 500, "batch_size": 32})
    store.add_experiment("t21", datasource="nipt-sim", scenario="long")
    reader = subprocess.Popen([sys.executable, "-c", _READER, uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    handle = None
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().strip() == "ready"  # it opened the store before the kill
        handle = store.train("t21", wait=False)
        _until(lambda: store.watch(handle.id).epoch >= 1, what="a first epoch")
        reader.stdin.write(f"{handle.id}\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "RUNNING"
        os.killpg(handle.process.pid, signal.SIGKILL)
        # nobody touches the handle: the worker stays a zombie of this process
        _until(lambda: not process_alive(handle.process.pid), timeout=30, what="the kill")
        assert os.path.exists(f"/proc/{handle.process.pid}")  # a zombie, which os.kill(pid, 0) takes for alive
        reader.stdin.write(f"{handle.id}\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "FAILED"
        progress = store.watch(handle.id)
        assert progress.state == "FAILED"
        assert f"its process {handle.process.pid} on {socket.gethostname()} was killed" in progress.error
        with pytest.raises(mm.ValidationError, match="is FAILED: only a running run can be cancelled"):
            store.cancel(handle.id, wait_s=0)
    finally:
        reader.kill()
        reader.communicate()  # and its pipes closed
        if handle is not None:
            handle.process.wait()


def test_the_owner_is_a_hint_only_where_host_boot_id_and_pid_namespace_are_ours(tmp_path: Path) -> None:
    store = mm.connect(f"sqlite:///{tmp_path}/owners.sqlite")
    ours = Owner.parse(owner_token())
    assert ours is not None and ours.here()
    dead = _dead_pid()
    host = socket.gethostname()
    cases = {
        "ours, dead": f"{host}:{dead}:{ours.boot}:{ours.pidns}:1",
        "ours, pid now another process's": f"{host}:{os.getppid()}:{ours.boot}:{ours.pidns}:1",
        "another boot of this host": f"{host}:{dead}:00000000-0000-0000-0000-000000000000:{ours.pidns}:1",
        "another PID namespace (a container on a shared hostname)": f"{host}:{dead}:{ours.boot}:1:1",
        "an owner written before boot ids (host:pid)": f"{host}:{dead}",
        "another machine": f"elsewhere:{dead}:{ours.boot}:{ours.pidns}:1",
        "ours, alive": owner_token(os.getppid()),
    }
    ids = {case: _running(store, owner) for case, owner in cases.items()}
    reaped = reap_stale_runs(store.mlmd, stale_after_s=3600)
    assert sorted(reaped) == sorted([ids["ours, dead"], ids["ours, pid now another process's"]])
    (gone,) = store.mlmd.get_executions_by_id([ids["ours, pid now another process's"]])
    assert "the pid now belongs to another process" in gone.properties["error"].string_value
    # the others are judged by their heartbeat alone
    assert sorted(reap_stale_runs(store.mlmd, stale_after_s=0)) == sorted(
        ids[c] for c in cases if c not in ("ours, dead", "ours, pid now another process's"))


def test_a_sweep_whose_process_died_is_failed(tmp_path: Path) -> None:
    store = mm.connect(f"sqlite:///{tmp_path}/sweep.sqlite")
    ours = Owner.parse(owner_token())
    assert ours is not None
    eid = _running(store, f"{socket.gethostname()}:{_dead_pid()}:{ours.boot}:{ours.pidns}:1", "mlmd_magic.Sweep")
    assert mm.connect(f"sqlite:///{tmp_path}/sweep.sqlite").reaped_runs == [eid]
    (sweep,) = store.mlmd.get_executions_by_id([eid])
    assert sweep.last_known_state == pb.Execution.FAILED


def test_the_writer_keeps_a_heartbeat_however_long_an_epoch_takes(tmp_path: Path) -> None:
    """No epoch ends, yet the run's execution is rewritten each heartbeat (MLMD stamps it), so a
    reader with a short stale age leaves it alone; once the writer stops, the same reader reaps it."""
    uri = f"sqlite:///{tmp_path}/beat.sqlite"
    store = mm.connect(uri)
    eid = _running(store, "elsewhere:1")
    (execution,) = store.mlmd.get_executions_by_id([eid])
    writer = LiveWriter(lambda: mm.connect(uri).mlmd, execution, heartbeat_s=0.05, cancel_poll_s=0.05)
    try:
        first = writer.writes
        _until(lambda: writer.writes >= first + 5, timeout=30, what="five heartbeats")
        time.sleep(3)  # far longer than a heartbeat: a reader with a 2 s stale age still sees it alive
        assert reap_stale_runs(mm.connect(uri).mlmd, stale_after_s=2) == []
    finally:
        writer.close()
    time.sleep(2.5)
    assert reap_stale_runs(mm.connect(uri).mlmd, stale_after_s=2) == [eid]


def test_the_writer_sees_a_cancel_and_outlives_a_store_that_does_not_answer(tmp_path: Path) -> None:
    """A connection that fails (as a stopped server's does) neither stops the thread nor loses the
    newest progress: it is written once the store answers again."""
    uri = f"sqlite:///{tmp_path}/cancel.sqlite"
    store = mm.connect(uri)
    eid = _running(store, "elsewhere:1")
    (execution,) = store.mlmd.get_executions_by_id([eid])
    answering = [False]

    def connect() -> Any:
        if not answering[0]:
            raise mm.StoreConnectionError("the server is stopped")
        return mm.connect(uri).mlmd

    writer = LiveWriter(connect, execution, watch_cancel=True, heartbeat_s=0.05, cancel_poll_s=0.05)
    try:
        newest = pb.Execution()
        newest.CopyFrom(execution)
        newest.properties["progress"].string_value = '{"epoch": 7}'
        writer.update(newest)
        _until(lambda: writer.unreachable_since is not None, timeout=30, what="a failed write")
        assert isinstance(writer.last_error, mm.StoreConnectionError)
        store.cancel(eid, wait_s=0)
        answering[0] = True
        _until(lambda: writer.cancel_id is not None, timeout=30, what="the cancel request")
        _until(lambda: writer.unreachable_since is None, timeout=30, what="the store answering")
    finally:
        writer.close()
    (written,) = store.mlmd.get_executions_by_id([eid])
    assert written.properties["progress"].string_value == '{"epoch": 7}'


def test_a_refused_write_is_said_once_and_the_cancel_look_goes_on(tmp_path: Path) -> None:
    """A store that refuses the execution outright (not busy, not away) is not asked again and
    again, and a cancel request is still seen."""
    uri = f"sqlite:///{tmp_path}/refused.sqlite"
    store = mm.connect(uri)
    eid = _running(store, "elsewhere:1")
    (execution,) = store.mlmd.get_executions_by_id([eid])
    refused = pb.Execution()
    refused.CopyFrom(execution)
    refused.type_id = 999_999  # no such type: MLMD refuses it
    store.cancel(eid, wait_s=0)
    writer = LiveWriter(lambda: mm.connect(uri).mlmd, refused, watch_cancel=True, heartbeat_s=0.05,
                        cancel_poll_s=0.05)
    try:
        _until(lambda: writer.cancel_id is not None, timeout=30, what="the cancel request")
        assert writer.rejected is not None and writer.writes == 0
    finally:
        writer.close()
