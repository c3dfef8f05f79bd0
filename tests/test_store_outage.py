"""A training never waits on its store: it goes on at full speed while the store cannot answer.

What is proved, each time with a real training in a process of its own (a kernel) and a
real outage made by another process:

* while another process holds the SQLite file (``BEGIN EXCLUSIVE``) for two minutes, every
  epoch of the training ends before the file is let go (the order of ``time.monotonic()``
  stamps taken by the training and by the holder: one clock for the whole machine, no
  threshold on speed); the trained run then waits for the store, alive, and says so in its
  output; once the file is free the run is recorded COMPLETE with its model and every
  epoch's history, and the process exits 0;
* the same while the MariaDB server is stopped for two minutes (it restarts the shared
  server: run only with ``MLMD_MAGIC_TEST_RESTART_MYSQL=1``, which CI sets);
* the training's MariaDB connections killed every two seconds do not end it: COMPLETE, with
  its model and its whole history;
* a cancel asked just before the file is locked still ends the run early, recorded CANCELED
  with no model once the file is free.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import pytest

import mlmd_magic as mm
from mlmd_magic import datasets

from .conftest import _server_params
from .test_reliability import _wait_port

EPOCHS = 150  # about 15-20 s of training on 2 CPUs with the pause below, without an outage
PAUSE_S = 0.05  # each epoch's end sleeps this long in the training's own callback: a floor under its length
OUTAGE_S = 120.0  # how long the SQLite file is held, or the MariaDB server stopped
CANCELLED_EXIT = 3  # the training script's exit status when its run was cancelled
# what the training prints while its run waits for the store (any line with both words, in this order)
WAITING = re.compile(r"\bwaiting\b.*\bstore\b", re.IGNORECASE)

restarts_mysql = pytest.mark.skipif(
    os.environ.get("MLMD_MAGIC_TEST_RESTART_MYSQL") != "1",
    reason="stops the MariaDB server for two minutes: set MLMD_MAGIC_TEST_RESTART_MYSQL=1 (CI does)")


# ---------------------------------------------------------------------------- a training in a process


_TRAIN = """
import sys, time
import mlmd_magic as mm

uri, epochs_file, pause_s, cancelled_exit = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])


class EpochClock:
    # when each epoch ended, on the machine's monotonic clock (the test compares it with the outage's)
    def on_epoch_end(self, epoch, logs=None):
        with open(epochs_file, "a") as fh:
            fh.write(f"{epoch},{time.monotonic()}\\n")
        time.sleep(pause_s)


store = mm.connect(uri)
try:
    run = store.train("t21", callbacks=[EpochClock()], progress=False)
except mm.RunCancelled as exc:
    print(f"training script: {exc}", flush=True)
    sys.exit(cancelled_exit)
print(f"training script: run #{run.id} {run.state}", flush=True)
"""


class Training:
    """A training of experiment ``t21`` in a process of its own, as a kernel runs it: its output
    (stdout and stderr) goes to a file, and each epoch's end is stamped in another."""

    def __init__(self, uri: str, folder: Path, pause_s: float) -> None:
        self.epochs_file = folder / "epochs.csv"
        self.output_file = folder / "training.log"
        env = {**os.environ, "MLMD_MAGIC_RUNS_DIR": str(folder / "runs"), "PYTHONUNBUFFERED": "1",
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        with open(self.output_file, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _TRAIN, uri, str(self.epochs_file), str(pause_s), str(CANCELLED_EXIT)],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def epoch_ends(self) -> list[float]:
        """When each finished epoch ended (``time.monotonic()`` in the training's process)."""
        if not self.epochs_file.exists():
            return []
        lines = self.epochs_file.read_text().split("\n")[:-1]  # the last one may be half written
        return [float(line.split(",")[1]) for line in lines]

    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def describe(self) -> str:
        state = "still running" if self.alive() else f"exit status {self.process.returncode}"
        return f"training process {self.process.pid}: {state}; its output ends:\n{self.output()[-3000:]}"


@contextmanager
def start_training(uri: str, folder: Path, pause_s: float = PAUSE_S) -> Iterator[Training]:
    """Start training ``t21`` of the store at ``uri`` in a subprocess; killed at the end if still there."""
    training = Training(uri, folder, pause_s)
    try:
        yield training
    finally:
        if training.alive():
            training.process.kill()
            training.process.wait(timeout=60)


def long_experiment(uri: str, folder: Path) -> mm.Store:
    """A store with experiment ``t21``: a small ``mlp`` trained ``EPOCHS`` epochs on a small simulated data set."""
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(folder / "data"), n_train=64, n_eval=16,
                                                              n_test=16))
    store.add_scenario("long", model="mlp", params={"hidden": [8], "epochs": EPOCHS, "batch_size": 32})
    store.add_experiment("t21", datasource="nipt-sim", scenario="long")
    return store


def wait_until_the_run_reported_an_epoch(store: mm.Store, training: Training, timeout: float = 300) -> int:
    """The id of the training's run, once the store holds its progress (one epoch or more)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = store.mlmd.get_executions_by_type("mlmd_magic.Train")
        if runs and "progress" in runs[0].properties:
            return int(runs[0].id)
        assert training.alive(), f"the training ended before it reported an epoch: {training.describe()}"
        assert time.monotonic() < deadline, f"no epoch reported in {timeout:.0f} s: {training.describe()}"
        time.sleep(0.1)


def wait_while(condition: Callable[[], Any], until: float) -> None:
    """Poll ``condition`` until it is false or ``time.monotonic()`` reaches ``until``."""
    while condition() and time.monotonic() < until:
        time.sleep(0.1)


def assert_complete(uri: str, run_id: int) -> None:
    """The run is the store's only one, COMPLETE, with its model and every epoch's history."""
    store = mm.connect(uri)
    assert [e.id for e in store.mlmd.get_executions_by_type("mlmd_magic.Train")] == [run_id]
    run = store.run(run_id)
    assert run.state == "COMPLETE"
    assert run.model_id is not None and run.model_uri is not None and os.path.exists(run.model_uri)
    assert [m.id for m in store.mlmd.get_artifacts_by_type("mlmd_magic.Model")] == [run.model_id]
    assert len(run.history["loss"]) == EPOCHS
    progress = store.watch(run_id)
    assert (progress.state, progress.epoch, progress.epochs) == ("COMPLETE", EPOCHS, EPOCHS)
    assert len(progress.history["loss"]) == EPOCHS
    store.close()


# ---------------------------------------------------------------------------- a held SQLite file


_HOLD = """
import sqlite3, sys, time

path, seconds, marker = sys.argv[1], float(sys.argv[2]), sys.argv[3]
conn = sqlite3.connect(path, timeout=120, isolation_level=None)
sys.stdin.readline()  # the test says when
conn.execute("BEGIN EXCLUSIVE")
with open(marker, "a") as fh:
    fh.write(f"{time.monotonic()}\\n")  # held from here
time.sleep(seconds)
with open(marker, "a") as fh:
    fh.write(f"{time.monotonic()}\\n")  # held until here, at least: the file is let go just below
conn.execute("ROLLBACK")
conn.close()
"""


class HeldFile:
    """Another process that holds a SQLite file with ``BEGIN EXCLUSIVE`` for ``seconds``, once
    told to (:meth:`take`); its start and end on the machine's monotonic clock."""

    def __init__(self, path: Path, seconds: float, marker: Path) -> None:
        self.marker = marker
        self.process = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds), str(marker)],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _stamps(self) -> list[float]:
        if not self.marker.exists():
            return []
        return [float(line) for line in self.marker.read_text().split("\n")[:-1]]

    def take(self, timeout: float = 150) -> float:
        """Lock the file now; returns once it is held, with when it was taken."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while not self._stamps():
            assert self.process.poll() is None, f"the lock holder ended: {self._error()}"
            assert time.monotonic() < deadline, f"the file could not be locked in {timeout:.0f} s"
            time.sleep(0.02)
        return self.start

    @property
    def start(self) -> float:
        return self._stamps()[0]

    @property
    def end(self) -> float:
        """When the holder was about to let the file go (it is free at the latest right after)."""
        return self._stamps()[1]

    def held(self) -> bool:
        return len(self._stamps()) == 1 and self.process.poll() is None

    def wait_released(self, timeout: float = OUTAGE_S + 60) -> float:
        assert self.process.wait(timeout=timeout) == 0, f"the lock holder failed: {self._error()}"
        return self.end

    def _error(self) -> str:
        return self.process.stderr.read().decode(errors="replace") if self.process.stderr is not None else ""


@contextmanager
def hold_sqlite_file(path: Path, seconds: float, folder: Path) -> Iterator[HeldFile]:
    """A :class:`HeldFile` ready to take ``path``; killed at the end if still there (the file is then free)."""
    holder = HeldFile(path, seconds, folder / "lock-times")
    try:
        yield holder
    finally:
        if holder.process.poll() is None:
            holder.process.kill()
            holder.process.wait(timeout=60)
        for stream in (holder.process.stdin, holder.process.stderr):
            if stream is not None:
                stream.close()


# ---------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_training_goes_on_while_another_process_holds_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    uri = f"sqlite:///{path}"
    store = long_experiment(uri, tmp_path)
    with hold_sqlite_file(path, OUTAGE_S, tmp_path) as lock, start_training(uri, tmp_path) as training:
        run_id = wait_until_the_run_reported_an_epoch(store, training)
        locked_at = lock.take()
        wait_while(lambda: len(training.epoch_ends()) < EPOCHS and lock.held() and training.alive(),
                   until=locked_at + OUTAGE_S + 60)
        assert training.alive(), f"the training ended while the store's file was held: {training.describe()}"
        done = len(training.epoch_ends())
        assert done == EPOCHS, (f"only {done} of {EPOCHS} epochs ended while another process held the store's "
                                f"file ({OUTAGE_S:.0f} s): the training waited on the store")
        # trained: now the run waits for the store to record its model and its end, and says so
        wait_while(lambda: not WAITING.search(training.output()) and lock.held(), until=locked_at + OUTAGE_S + 60)
        said = WAITING.search(training.output())
        still_held = lock.held()  # read after the output: what it says, it said while the file was held
        assert said and still_held, ("while the store's file was held, the training did not say it was waiting "
                                     f"for the store: {training.describe()}")
        assert training.alive(), f"the training ended while the store's file was held: {training.describe()}"
        released_at = lock.wait_released()
        status = training.wait(timeout=300)
    assert status == 0, training.describe()
    ends = training.epoch_ends()
    assert len(ends) == EPOCHS
    assert max(ends) < released_at  # every epoch ended while the file was held ...
    assert sum(end > locked_at for end in ends) >= 10  # ... and many of them after it was taken
    assert_complete(uri, run_id)


def _mariadbd_running() -> bool:
    return subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True).returncode == 0


def _port_open(port: int = 3306) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_mariadbd_gone(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout  # the port closes before the process has exited
    while _mariadbd_running():
        assert time.monotonic() < deadline, "mariadbd did not exit"
        time.sleep(0.2)


def stop_mariadb() -> None:
    """Shut the MariaDB server down, as test_a_mariadb_restart_between_two_cells_is_survived does."""
    subprocess.run(["mysqladmin", "-uroot", "-h127.0.0.1", "shutdown"], check=True, timeout=60)
    _wait_port(open_=False)
    _wait_mariadbd_gone()


def start_mariadb() -> None:
    """Start the MariaDB server again unless it answers; returns once its port is open."""
    if _port_open() and _mariadbd_running():
        return
    _wait_mariadbd_gone()
    subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"],
                   check=True, timeout=60)
    _wait_port(open_=True)


@pytest.mark.slow
@pytest.mark.mysql
@restarts_mysql
def test_training_goes_on_while_mariadb_is_stopped(mysql_uri: str, tmp_path: Path) -> None:
    store = long_experiment(mysql_uri, tmp_path)
    with start_training(mysql_uri, tmp_path, pause_s=2 * PAUSE_S) as training:  # a shutdown takes a while
        run_id = wait_until_the_run_reported_an_epoch(store, training)
        store.close()
        try:
            stop_mariadb()
            down_at = time.monotonic()
            back_at = down_at + OUTAGE_S
            wait_while(lambda: len(training.epoch_ends()) < EPOCHS and training.alive(), until=back_at)
            assert training.alive(), f"the training ended while the server was stopped: {training.describe()}"
            done = len(training.epoch_ends())
            assert done == EPOCHS, (f"only {done} of {EPOCHS} epochs ended while the server was stopped "
                                    f"({OUTAGE_S:.0f} s): the training waited on the store")
            wait_while(lambda: not WAITING.search(training.output()), until=back_at)
            assert WAITING.search(training.output()), \
                f"the training does not say it is waiting for the store: {training.describe()}"
            time.sleep(max(0.0, back_at - time.monotonic()))
            assert training.alive(), f"the training ended while the server was stopped: {training.describe()}"
        finally:
            restarted_at = time.monotonic()
            start_mariadb()
        status = training.wait(timeout=300)
    assert status == 0, training.describe()
    ends = training.epoch_ends()
    assert len(ends) == EPOCHS
    assert max(ends) < restarted_at  # every epoch ended while the server was stopped ...
    assert sum(end > down_at for end in ends) >= 10  # ... and many of them after it was down
    assert_complete(mysql_uri, run_id)


def kill_connections_repeatedly(database: str, training: Training, rounds: int = 5, every_s: float = 2.0) -> int:
    """Kill every connection to ``database`` each ``every_s`` seconds, ``rounds`` times or until
    the training has ended its epochs; returns how many rounds killed one while epochs remained."""
    import pymysql

    hits = 0
    admin = pymysql.connect(**_server_params())
    try:
        for _ in range(rounds):
            if len(training.epoch_ends()) >= EPOCHS or not training.alive():
                break
            with admin.cursor() as cur:
                cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                            (database,))
                killed = 0
                for (conn_id,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL CONNECTION {int(conn_id)}")
                        killed += 1
                    except pymysql.err.OperationalError:  # 1094: it ended meanwhile
                        pass
            if killed and len(training.epoch_ends()) < EPOCHS:
                hits += 1
            time.sleep(every_s)
    finally:
        admin.close()
    return hits


@pytest.mark.slow
@pytest.mark.mysql
def test_training_survives_its_connection_killed(mysql_uri: str, tmp_path: Path) -> None:
    store = long_experiment(mysql_uri, tmp_path)
    database = mysql_uri.rsplit("/", 1)[1]
    with start_training(mysql_uri, tmp_path, pause_s=2 * PAUSE_S) as training:  # 15 s or more: it outlasts the kills
        run_id = wait_until_the_run_reported_an_epoch(store, training)
        store.close()  # the test's own connection stays out of the way: only the training's are killed
        hits = kill_connections_repeatedly(database, training)
        status = training.wait(timeout=600)
    assert status == 0, training.describe()
    assert hits >= 3, f"the training's connections were killed mid-training only {hits} times"
    assert_complete(mysql_uri, run_id)


@pytest.mark.slow
def test_a_cancel_asked_just_before_the_file_is_locked_ends_the_run_canceled(tmp_path: Path) -> None:
    # The request is written before the lock (a write cannot go in while the file is held);
    # the training may see it before or during the lock, and records CANCELED when the file is
    # free. Its epochs alone (a 0.2 s pause each: 30 s or more) outlast the lock (15 s), so a run
    # that missed the cancel would still be training when the file is free.
    path = tmp_path / "store.sqlite"
    uri = f"sqlite:///{path}"
    store = long_experiment(uri, tmp_path)
    with hold_sqlite_file(path, 15.0, tmp_path) as lock, start_training(uri, tmp_path, pause_s=0.2) as training:
        run_id = wait_until_the_run_reported_an_epoch(store, training)
        store.cancel(run_id, wait_s=0)
        lock.take()
        status = training.wait(timeout=600)
        lock.wait_released()
    assert status == CANCELLED_EXIT, training.describe()
    assert re.search(r"cancelled (by a cancel request )?after", training.output())
    assert len(training.epoch_ends()) < EPOCHS
    reopened = mm.connect(uri)
    assert [e.id for e in reopened.mlmd.get_executions_by_type("mlmd_magic.Train")] == [run_id]
    run = reopened.run(run_id)
    assert (run.state, run.model_id) == ("CANCELED", None)
    assert reopened.mlmd.get_artifacts_by_type("mlmd_magic.Model") == []
    assert reopened.watch(run_id).state == "CANCELED"
