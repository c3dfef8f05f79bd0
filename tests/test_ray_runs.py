"""Trainings on a real Ray cluster: a head started here on 127.0.0.1 with two worker CPUs, recording
into the MariaDB store; one run submitted and watched from another process, one cancelled.

Required in CI (``CI`` set, Ray installed by the dev extra); elsewhere skipped, with the reason,
when Ray is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.errors import ValidationError
from mlmd_magic.store.maintenance import Owner

from .test_magics import run

RAY = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
CLI = shutil.which("mlmd-magic") or str(Path(sys.executable).parent / "mlmd-magic")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ours(marks: tuple[str, ...]) -> list[int]:
    """Ids of the processes of the Ray head this test started (their command lines name its folder
    or its GCS port), never another's."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().decode(errors="replace")
        except OSError:
            continue
        if any(mark in cmdline for mark in marks):
            pids.append(int(entry))
    return pids


@pytest.fixture(scope="module")
def ray_head(mysql_server: dict[str, Any]) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        reason = "Ray is not installed (pip install 'mlmd-magic[ray]'; CI installs it with the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    temp = tempfile.mkdtemp(prefix="mmray", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    gcs, client = _free_port(), _free_port()
    env = {**os.environ, "MLMD_MAGIC_MYSQL_PASSWORD": mysql_server["password"],
           # a loaded machine starts the node's agent slowly: give it time instead of failing
           "RAY_agent_register_timeout_ms": "240000"}
    marks = (temp, f":{gcs} ", f":{gcs}\0", f"={gcs}")
    started = subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
                              "--port", str(gcs), "--ray-client-server-port", str(client), "--include-dashboard",
                              "false", "--disable-usage-stats", "--temp-dir", temp],
                             env=env, capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield {"address": f"ray://127.0.0.1:{client}", "gcs": f"127.0.0.1:{gcs}"}
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _ours(marks):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 15
            while _ours(marks) and time.monotonic() < deadline:
                time.sleep(0.5)
        shutil.rmtree(temp, ignore_errors=True)


def _until(predicate: Any, timeout: float = 240, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.mysql
@pytest.mark.slow
def test_runs_on_a_ray_cluster_are_watched_and_cancelled(ray_head: dict[str, Any], mysql_uri: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, ip: Any) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    data = datasets.simulate_nipt(str(tmp_path / "data"), n_train=300, n_eval=100, n_test=100)
    store = mm.connect(mysql_uri)
    store.add_datasource("nipt-sim", **data)
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [16], "learning_rate": 0.01, "batch_size": 32,
                                                         "epochs": 3, "seed": 1, "gpus": 0})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")

    submitted = store.train("t21", on=ray_head["address"])
    assert submitted.where == ray_head["address"] and submitted.name == "t21@1#1"
    (execution,) = store.mlmd.get_executions_by_id([submitted.id])
    assert Owner.parse(execution.properties["owner"].string_value).pid != os.getpid()  # a Ray worker trains it
    watched = subprocess.run([CLI, "--uri", mysql_uri, "watch", f"run:{submitted.id}", "--interval", "0.5"],
                             capture_output=True, text=True, timeout=300)  # another process follows it
    assert watched.returncode == 0, watched.stderr
    assert "Epoch 3/3 - accuracy: " in watched.stdout and watched.stdout.rstrip().endswith("COMPLETE, epoch 3/3")
    done = submitted.wait(timeout_s=60)
    assert done.state == "COMPLETE" and Path(done.model_uri or "").exists()

    # the magic face, on the cluster's GCS address this time; then cancelled from the store
    run(ip, f"%mlmd connect {mysql_uri}")
    message = run(ip, f"%mlmd train t21 --set epochs=500 --on {ray_head['gcs']} -o long")
    long = ip.user_ns["long"]
    assert message is long and f"started run {long.name} (run:{long.id}) on {ray_head['gcs']}" in repr(message)
    _until(lambda: store.watch(long.id).epoch >= 1, what="a first epoch on the cluster")
    stopped = store.cancel(long.id)
    assert stopped.state == "CANCELED" and store.run(long.id).model_id is None

    with pytest.raises(ValidationError, match="asks for 4 GPU"):
        store.train("t21", on=ray_head["gcs"], gpus=4)


def test_what_a_ray_worker_cannot_reach_is_named(tmp_path: Path) -> None:
    from mlmd_magic.store.ray_jobs import probe

    (tmp_path / "a-file").write_text("")
    runs = tmp_path / "a-file" / "runs"  # cannot be made: its parent is a file
    spec = {"uri": f"sqlite:///{tmp_path}/s.sqlite", "workdir": None, "runs_dir": str(runs)}
    problems = probe(spec, str(tmp_path / "no-such-data"))
    assert len(problems) == 2
    assert "data folder" in problems[0] and "no-such-data" in problems[0]
    assert f"runs folder {runs} is not writable" in problems[1]
    assert probe({**spec, "runs_dir": str(tmp_path / "new" / "runs")}, str(tmp_path)) == []
