"""Runs that outlive their cell: a training in its own detached process, or a task on a Ray
cluster, recording into the store as a foreground run does; and the handle that follows it.

The starting process (:func:`start_run`) resolves the experiment (so a typo fails at once),
names the run's execution ahead by its external id, and starts the worker: ``python -m mlmd_magic.store.worker``
in a new session (a closed browser, a kernel restart or the end of the starting process does
not stop it), or :func:`ray_task` on a Ray cluster. The spec goes to a local worker through its
stdin, never its command line; a Ray worker takes the MySQL password from its own environment.
A worker that dies is marked FAILED by the stale-run check when a store is next opened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..backend.uri import PASSWORD_ENV
from ..core.names import experiment_ref
from ..errors import TrainingError, ValidationError

if TYPE_CHECKING:
    from ..backend.connection import Backend
    from .results import Run, RunProgress
    from .runs import Runs
    from .store import Store

__all__ = ["BackgroundRun", "new_external_id", "spawn_worker", "start_process", "start_run"]

START_TIMEOUT_S = 300.0  # a worker imports TensorFlow before its first write
_MAX_LOG_SUFFIX = 1000  # a run's log named NAME.log, else NAME-2.log ... NAME-1000.log, else its first name


def new_external_id() -> str:
    """A fresh external id for a run's execution."""
    return f"mlmd_magic:{uuid.uuid4().hex}"


def spawn_worker(spec: dict[str, Any], stdout: Any, *, detached: bool) -> subprocess.Popen[bytes]:
    """Start ``python -m mlmd_magic.store.worker`` with ``spec`` (JSON) on its stdin: the one way
    a store hands a job, and a MySQL store's password (``spec["password"]``), to a process of its
    own — never on a command line, nor in an environment (any process of the same user reads one
    through ``/proc``). ``detached``: in a session of its own, outliving this process."""
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}  # it has the password on its stdin
    process = subprocess.Popen(
        [sys.executable, "-m", "mlmd_magic.store.worker"], stdin=subprocess.PIPE, stdout=stdout,
        stderr=subprocess.STDOUT, start_new_session=detached, close_fds=True, cwd=os.getcwd(), env=env)
    assert process.stdin is not None
    process.stdin.write(json.dumps(spec).encode())
    process.stdin.close()
    return process


def start_process(spec: dict[str, Any], log_path: str) -> subprocess.Popen[bytes]:
    """A background run's worker (:func:`spawn_worker`), detached, its output in ``log_path``."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        return spawn_worker(spec, log, detached=True)


def start_run(store: Store, backend: Backend, runs: Runs, ref: str, overrides: dict[str, Any], *, force: bool,
              workdir: str | None, on: str | None) -> BackgroundRun:
    """Start training experiment ``ref`` outside this process (see :meth:`mlmd_magic.Store.train`):
    in a detached process of its own (:func:`start_process`, its output in
    ``RUNS_DIR/background/``), or on the Ray cluster at ``on`` (:func:`~mlmd_magic.store.ray_jobs.submit`).
    ``overrides`` first define a new experiment version (:meth:`~mlmd_magic.store.runs.Runs.define_overrides`); the
    experiment is resolved here, so a typo fails at once, not in the worker. Returns once the
    worker has recorded the run.

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    ValidationError
        For a store no other process can open (``memory://``), or a Ray cluster that cannot
        reach the store, the data or the runs folder (the message says which).
    TrainingError
        When the worker ended, or did not record the run in time (see :meth:`BackgroundRun.started`).
    """
    if store.scheme == "memory":
        raise ValidationError("a memory:// store lives in this process only: a background run needs a store "
                              "another process can open (sqlite:///... or mysql://...)")
    if overrides:
        ref = runs.define_overrides(ref, overrides)[0]
    exp = store.get_experiment(ref)  # a typo fails here, not in the worker
    ref = experiment_ref(exp)
    external_id = new_external_id()
    # the store as opened (a SQLite file's absolute path, whatever %cd did since; each part quoted once),
    # without its password: a local worker gets that on its stdin, a Ray worker from its machine
    spec = {"uri": backend.worker_uri(), "ref": ref, "external_id": external_id,
            "force": force, "workdir": workdir, "runs_dir": store.runs_root()}
    if on is not None:
        from .ray_jobs import submit

        return submit(store, on, spec, exp).started()
    spec["password"] = backend.password()
    log = os.path.join(store.runs_root(), "background", external_id.rsplit(":", 1)[1] + ".log")
    process = start_process(spec, log)
    return BackgroundRun(store, external_id, where=f"process {process.pid}", process=process, log=log).started()


def _tail(path: str, lines: int = 8) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return " | ".join(line.strip() for line in fh.read().splitlines()[-lines:] if line.strip())
    except OSError:
        return ""


class BackgroundRun:
    """A run going on elsewhere: in its own process here, or on a Ray cluster.

    Returned by ``store.train(ref, wait=False)`` and ``store.train(ref, on="ray://...")``. Its
    state and curves are read from the store, so any process may follow the same run with
    ``store.watch(run_id)``.

    Attributes
    ----------
    id, name : the run's execution id and name (``EXPERIMENT@N#K``).
    where : ``"process PID"`` or ``"ray://HOST:PORT"``.
    log : the worker's output file (local runs).
    """

    def __init__(self, store: Store, external_id: str, *, where: str, process: Any = None, ray_ref: Any = None,
                 log: str = "") -> None:
        self._store = store
        self.external_id = external_id
        self.where = where
        self.process = process
        self.ray_ref = ray_ref
        self.log = log
        self.id = 0
        self.name = ""

    def started(self, timeout_s: float = START_TIMEOUT_S) -> BackgroundRun:
        """Wait until the worker has written the run (its id and name are then known).

        Raises
        ------
        TrainingError
            When the worker ended (or failed) before writing the run, with the end of its output.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self._store.run_by_external_id(self.external_id)
            if found is not None:
                self.id, self.name = found
                self._name_log()
                return self
            failure = self._worker_failure()
            if failure:
                raise TrainingError(f"the background training did not start: {failure}")
            time.sleep(0.2)
        self._abandon()  # told it did not start: it must not start later behind the person's back
        raise TrainingError(f"the background training did not record its run within {timeout_s:.0f} s, and was "
                            f"stopped "
                            f"({self.where}{'; its output: ' + self.log if self.log else ''})")

    def _name_log(self) -> None:
        """Give the worker's output file the run's name (``background/t21-long@2#1.log``) now that
        it is known: a hard link, then the first name removed; the worker writes on into the same
        file. A name already taken (another store sharing the runs folder has a run of that name,
        or an earlier store there had) gets a suffix: ``t21-long@2#1-2.log``, ``-3``, ... (no run's
        name ends so). On a file system without hard links the file keeps its first name."""
        if not self.log or not self.name:
            return
        folder, stem = os.path.dirname(self.log), _file_name(self.name)
        for number in range(1, _MAX_LOG_SUFFIX + 1):
            named = os.path.join(folder, stem + (f"-{number}" if number > 1 else "") + ".log")
            if named == self.log:
                return
            try:
                os.link(self.log, named)
            except FileExistsError:  # another run's log has that name: the next suffix
                continue
            except OSError:  # no hard links here (or no such file): the log keeps its first name
                return
            break
        else:
            return
        try:
            os.unlink(self.log)
        except OSError:
            pass
        self.log = named

    def _abandon(self) -> None:
        """Stop a worker that has not recorded its run: kill the local process group, or cancel
        the Ray task (queued or starting)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # started in a session of its own
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
        if self.ray_ref is not None:
            import ray

            try:
                ray.cancel(self.ray_ref, force=True)
            except Exception:  # already gone or finished: nothing left to stop
                pass

    def _worker_failure(self) -> str:
        if self.process is not None and self.process.poll() is not None:
            return f"process {self.process.pid} exited with {self.process.returncode}: {_tail(self.log)}"
        if self.ray_ref is not None:
            import ray

            ready, _ = ray.wait([self.ray_ref], timeout=0)
            if ready:
                try:
                    return f"the Ray task ended: {ray.get(self.ray_ref)}"
                except Exception as exc:
                    return f"the Ray task failed: {type(exc).__name__}: {exc}"
        return ""

    @property
    def state(self) -> str:
        """``RUNNING``, ``COMPLETE``, ``CACHED``, ``CANCELED`` or ``FAILED``, read from the store."""
        return self.progress().state

    def progress(self) -> RunProgress:
        """Where the run stands (epochs done, history), read from the store."""
        return self._store.watch(self.id)

    def wait(self, timeout_s: float | None = None, poll_s: float = 0.5) -> Run:
        """Block until the run ends; return it as a :class:`~mlmd_magic.Run`.

        Raises
        ------
        TrainingError
            When the run FAILED or was CANCELED (with the reason), or ``timeout_s`` passed.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            progress = self.progress()
            if progress.state != "RUNNING":
                self._reap()
            if progress.state in ("COMPLETE", "CACHED"):
                return self._store.run(self.id)
            if progress.state in ("FAILED", "CANCELED"):
                raise TrainingError(f"run {self.name} {progress.state}: {progress.error or 'no reason recorded'}")
            if self.process is not None and self.process.poll() is not None:
                time.sleep(poll_s)  # the worker's last write may land just after it exits
                if self.progress().state == "RUNNING":
                    raise TrainingError(f"run {self.name}: its process ended without finishing the run: "
                                        f"{_tail(self.log)}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TrainingError(f"run {self.name} still {progress.state} after {timeout_s:.0f} s; "
                                    "wait again or cancel it")
            time.sleep(poll_s)

    def _reap(self) -> None:
        """Collect the exit of a local worker that has recorded the end of its run."""
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def cancel(self, wait_s: float = 60.0) -> RunProgress:
        """Ask the run to stop (recorded CANCELED, no model) and wait up to ``wait_s`` for it."""
        progress = self._store.cancel(self.id, wait_s=wait_s)
        if not progress.running:
            self._reap()
        return progress

    def __repr__(self) -> str:
        log = f", its output in {self.log}" if self.log else ""
        return (f"started run {self.name or self.external_id} (run:{self.id}) on {self.where}{log}; follow it "
                f"with %mlmd watch run:{self.id}, stop it with %mlmd cancel run:{self.id}")


def _file_name(run_name: str) -> str:
    """A run's name as a file name: its characters kept (``@``, ``#``, ``~`` are fine in file
    names), anything else (a path separator) as ``_``."""
    return "".join(ch if ch.isalnum() or ch in "._-@#~" else "_" for ch in run_name)
