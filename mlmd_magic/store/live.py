"""A running execution's writer: a thread of its own that keeps the store told, so that the work
never waits on the store.

A training hands :class:`LiveWriter` the whole execution after each epoch (progress, curves)
and every :data:`PROGRESS_S` seconds within one (epoch, step, the run's ETA), and goes on at
once; the thread writes the newest one it holds, rewrites it every
:data:`~mlmd_magic.store.maintenance.HEARTBEAT_S` seconds (MLMD stamps ``last_update_time``:
the heartbeat by which other processes know the run is alive), and looks for a cancel request
every :data:`CANCEL_POLL_S` seconds, on a connection of its own. When the store is busy (a
SQLite file another process holds) or out of reach (a MariaDB server stopped, a connection
killed), the thread keeps the newest execution and tries again; nothing is lost, because each
execution it is handed holds everything written before (MLMD replaces an execution's
properties as a whole). The training's last write — its final state and model — is made by the
training itself once this thread has stopped, so no late progress write can follow it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from ..backend.listing import quote
from ..backend.types import full
from .maintenance import HEARTBEAT_S

__all__ = ["CANCEL_POLL_S", "PROGRESS_S", "LiveWriter", "cancel_request"]

log = logging.getLogger("mlmd_magic")

CANCEL_POLL_S = 1.0  # a running training looks for a cancel request this often
RETRY_S = 1.0  # after a failed write or look, the next try comes this much later, doubling each time
MAX_BACKOFF_S = 16.0  # up to this
PROGRESS_S = 2.0  # a training hands its progress within an epoch (step, ETA) this often


def cancel_request(mlmd: Any, run_id: int) -> int | None:
    """The id of a ``CancelRun`` execution asking run ``run_id`` to stop, or None."""
    from ml_metadata.metadata_store import metadata_store as ms

    options = ms.ListOptions(limit=1, filter_query=f"type = {quote(full('CancelRun'))} AND "
                                                   f"properties.target_run.int_value = {int(run_id)}")
    found = mlmd.get_executions(list_options=options)
    return int(found[0].id) if found else None


class LiveWriter:
    """Writes one RUNNING execution from a thread (see the module's docstring).

    ``connect``: opens the thread's own connection to the store (called again after the
    connection was lost; a ``memory://`` store passes its only one). ``reopen``: a connection
    to a server (MySQL) that failed other than busy is dropped and opened anew. ``watch_cancel``:
    look for ``CancelRun`` requests of this execution. ``clock``: monotonic seconds (tests
    pass their own).

    Attributes
    ----------
    cancel_id : the id of the ``CancelRun`` that asked this run to stop, once seen (else None).
    unreachable_since : the clock's time of the first failed write or look since the last that
        succeeded (None while the store answers); ``last_error`` is that failure.
    """

    def __init__(self, connect: Callable[[], Any], execution: Any, *, watch_cancel: bool = False,
                 heartbeat_s: float = HEARTBEAT_S, cancel_poll_s: float = CANCEL_POLL_S,
                 clock: Callable[[], float] = time.monotonic, name: str = "", reopen: bool = False) -> None:
        self._connect = connect
        self._reopen = reopen
        self._mlmd: Any = None
        self._execution = execution
        self._dirty = False
        duration = execution.properties["duration_s"].double_value if "duration_s" in execution.properties else 0.0
        self._started = time.perf_counter() - duration
        self._watch_cancel = watch_cancel
        self._heartbeat_s = heartbeat_s
        self._cancel_poll_s = cancel_poll_s
        self._clock = clock
        self._wake = threading.Condition()
        self._stopping = False
        self.cancel_id: int | None = None
        self.unreachable_since: float | None = None
        self._pending_since: float | None = None  # when the write not yet done was first tried
        self._failures = 0  # calls failed in a row
        self._not_before = 0.0  # no call before this time of the clock (backing off)
        #: the error with which the store refused the execution outright (then no more writes)
        self.rejected: BaseException | None = None
        self.last_error: BaseException | None = None
        self.writes = 0
        self._thread = threading.Thread(target=self._loop, name=f"mlmd-magic live {name or execution.id}",
                                        daemon=True)
        self._thread.start()

    def update(self, execution: Any) -> None:
        """Hand the thread the newest execution to write (returns at once)."""
        with self._wake:
            self._execution = execution
            self._dirty = True
            self._wake.notify()

    def stalled_s(self) -> float:
        """For how long the store has kept the thread from writing (a write that hangs or
        fails), in the clock's seconds; 0 while it answers."""
        since = self._pending_since if self.unreachable_since is None else self.unreachable_since
        return 0.0 if since is None else max(0.0, self._clock() - since)

    def close(self, on_wait: Callable[[], None] | None = None, wait_note_s: float = 5.0) -> None:
        """Stop the thread once its write or look in progress ends; ``on_wait()`` is called when
        that takes longer than ``wait_note_s`` (a store that does not answer)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(wait_note_s)
        if self._thread.is_alive():
            if on_wait is not None:
                on_wait()
            self._thread.join()

    # ------------------------------------------------------------------ the thread

    def _connection(self) -> Any:
        if self._mlmd is None:
            self._mlmd = self._connect()
        return self._mlmd

    def _failed(self, exc: BaseException) -> None:
        from ..backend.resilience import classify
        from ..errors import StoreConnectionError

        kind = classify(exc)
        if self._reopen and kind != "busy":
            # a server connection that failed other than busy is never used again (MLMD's MySQL
            # source, asked again after its own reconnect failed, can crash): opened anew next try
            self._mlmd = None
        if kind is None and not isinstance(exc, StoreConnectionError):
            # the store refuses this execution (not busy, not out of reach): said once, not retried
            if self.rejected is None:
                log.warning("the store refused a running training's progress: %s", exc)
            self.rejected = exc
        if self.unreachable_since is None:
            self.unreachable_since = self._clock()
            log.info("the store is not answering (%s); a running training goes on and writes later",
                     type(exc).__name__)
        self.last_error = exc
        self._failures += 1

    def _backoff(self) -> float:
        """Seconds until the next call after failures: growing to MAX_BACKOFF_S, so that a store
        that stays busy is asked seldom (each MLMD call holds Python's lock while SQLite waits)."""
        return float(min(RETRY_S * 2.0 ** max(self._failures - 1, 0), MAX_BACKOFF_S))

    def _loop(self) -> None:
        next_beat = self._clock()  # the first heartbeat at once
        next_look = self._clock() + self._cancel_poll_s
        while True:
            with self._wake:
                while not self._stopping:
                    now = self._clock()
                    looks = self._watch_cancel and self.cancel_id is None
                    due = min(next_beat, next_look) if looks else next_beat
                    # new progress goes at once, else at the next heartbeat or look; never before
                    # the backoff after failures ends
                    fresh = self._dirty and self.rejected is None
                    ready = self._not_before if fresh else max(due, self._not_before)
                    if now >= ready:
                        break
                    self._wake.wait(ready - now)
                if self._stopping:
                    return
                now = self._clock()
                execution = self._execution
                write = self.rejected is None and now >= self._not_before and (self._dirty or now >= next_beat)
                if write:
                    self._dirty = False
            if write:
                # MLMD stamps last_update_time only when something changed: how long the run has
                # gone on changes at every write
                execution.properties["duration_s"].double_value = time.perf_counter() - self._started
                if self._pending_since is None:
                    self._pending_since = self._clock()
                try:
                    self._connection().put_executions([execution])
                    self.writes += 1
                    self.unreachable_since, self.last_error, self._pending_since = None, None, None
                    self._failures, self._not_before = 0, 0.0
                    next_beat = self._clock() + self._heartbeat_s
                except Exception as exc:  # busy, unreachable, killed: kept, tried again later
                    self._failed(exc)
                    with self._wake:
                        self._dirty = self.rejected is None
                    self._not_before = self._clock() + self._backoff()
                    next_beat = self._not_before
            elif self.rejected is not None:
                next_beat = self._clock() + self._heartbeat_s
            # the cancel look goes on whatever the writes do (on a busy store, at the same pace)
            if self._watch_cancel and self.cancel_id is None and self._clock() >= max(next_look, self._not_before):
                try:
                    self.cancel_id = cancel_request(self._connection(), int(execution.id))
                except Exception as exc:
                    self._failed(exc)
                    self._not_before = self._clock() + self._backoff()
                next_look = self._clock() + self._cancel_poll_s
