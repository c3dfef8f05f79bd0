"""Open panels follow the store: a cheap poll of the store's newest change while a panel is seen.

What changed in the store is told by three one-row MLMD reads (``limit=1``, ordered on an
indexed column): the newest execution by id, and the execution and the artifact last updated
(an execution updated in place — a run going from RUNNING to CANCELED or FAILED, a heartbeat —
moves its ``last_update_time``; a record written by any process, this kernel or another,
adds an execution). Their ids and times are the store's *signature*; when it changes, the
panel reads what it shows again.

The poll runs as an asyncio task on the kernel's event loop (the kernel's main thread, so it
never uses the store's connection at the same time as a cell), every :data:`POLL_S` seconds,
only while the panel is seen: a small sensor in the panel (an anywidget) reports whether it is
on screen, in a browser tab in front, and repeats it every 20 s; the poll pauses when it says
no or has not said anything for :data:`SEEN_FOR_S` seconds (the notebook was closed), and the
task ends when the panel is closed, or when its store is closed (``store.close()``, ``%mlmd
close``): a closed store is never asked again, and the panel is told (``on_closed``) so that it
lets go of what else follows the store. A store out of reach (a busy file, a restarting server)
is asked again at the next poll. Outside a running event loop (plain Python) there is no poll:
call :meth:`StoreWatch.poll` yourself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

__all__ = ["POLL_S", "SEEN_FOR_S", "StoreWatch", "VisibilitySensor"]

POLL_S = 3.0  # how often a seen panel looks for changes
SEEN_FOR_S = 60.0  # a panel whose sensor said nothing for this long is taken as not seen

_LOG = logging.getLogger("mlmd_magic")


_SENSOR_ESM = """
function render({ model, el }) {
  el.style.cssText = "height:0;width:100%;margin:0;padding:0;overflow:hidden";
  let onScreen = true;
  const report = () => {
    model.set("visible", onScreen && document.visibilityState === "visible");
    model.set("beat", Date.now() / 1000);
    model.save_changes();
  };
  const observer = new IntersectionObserver((entries) => {
    onScreen = entries.some((e) => e.isIntersecting);
    report();
  });
  let tries = 0;
  const watch = () => {  // the panel around the sensor, once the view is in the page
    const panel = el.closest(".mlmd-magic-panel");
    if (panel || tries++ > 100) { observer.observe(panel || el); return; }
    requestAnimationFrame(watch);
  };
  watch();
  document.addEventListener("visibilitychange", report);
  const timer = setInterval(() => { if (onScreen) report(); }, 20000);
  return () => {
    observer.disconnect();
    clearInterval(timer);
    document.removeEventListener("visibilitychange", report);
    model.set("visible", false);
    model.save_changes();
  };
}
export default { render };
"""


class VisibilitySensor(anywidget.AnyWidget):
    """An empty widget in a panel that tells the kernel whether the panel is seen."""

    _esm = _SENSOR_ESM
    visible = traitlets.Bool(True).tag(sync=True)
    beat = traitlets.Float(0.0).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heard = time.monotonic()  # when the frontend last said anything (built: now)
        self.observe(self._heard, names=["visible", "beat"])
        self.add_class("mlmd-magic-sensor")

    def _heard(self, _: Any) -> None:
        self.heard = time.monotonic()

    def seen(self) -> bool:
        """Whether the panel is on screen now, as far as the frontend said lately."""
        return bool(self.visible) and time.monotonic() - self.heard < SEEN_FOR_S


class StoreWatch:
    """Calls ``on_change()`` when :meth:`Store.signature` of ``store`` changed since last seen.

    ``on_change`` is held weakly (a bound method of the panel). :meth:`start` polls every
    ``interval`` seconds from the running event loop while ``seen()`` says so; :meth:`stop`
    (the panel's ``close``) ends it, and so does the store's closing, after which
    ``on_closed()`` (held weakly too) is called once.
    """

    def __init__(self, store: Any, on_change: Callable[[], Any], seen: Callable[[], bool] = lambda: True,
                 interval: float | None = None, executions: Callable[[], bool] = lambda: True,
                 on_closed: Callable[[], Any] | None = None, going: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self._callback = _weak(on_change)
        self._on_closed = _weak(on_closed) if on_closed is not None else None
        self.seen = seen
        #: whether the panel shows executions now (runs, evaluations): else only new or changed
        #: artifacts (records) count as a change, and running trainings do not reload it
        self.executions = executions
        #: whether the panel shows something still going (a RUNNING run): then every poll calls
        #: ``on_change``, whatever the signature says. A run's last write can leave the signature
        #: as it was: stamped in the same millisecond as the update seen last, or before another
        #: process's update seen already (MLMD stamps an update with the writer's time, before it
        #: waits for the database); a run shown RUNNING must not stay so for ever.
        self.going = going
        self.interval = POLL_S if interval is None else interval
        self.task: asyncio.Task[None] | None = None
        self.stopped = False
        self.closed_seen = False  # the store was found closed (the poll ended then)
        self.polls = 0  # how many times the store was asked
        self._mode = executions()
        self.last = self._read()

    def store_closed(self) -> bool:
        """Whether the store was closed. The first time it is found closed the poll ends and
        ``on_closed`` is called: a closed store is never asked again."""
        if not getattr(self.store, "closed", False):
            return False
        if not self.closed_seen:
            self.closed_seen = True
            self.stop()
            told = self._on_closed() if self._on_closed is not None else None
            if told is not None:
                try:
                    told()
                except Exception:  # a panel that fails to let go must not fail the poll's end
                    _LOG.warning("a panel failed to stop following its closed store", exc_info=True)
        return True

    def _read(self) -> tuple[Any, ...] | None:
        if self.store_closed():
            return None
        try:
            with self.store.unrecorded():
                return self.store.signature(executions=self.executions())  # type: ignore[no-any-return]
        except Exception:  # a store out of reach (busy, a restarting server): look again next time
            if self.store_closed():  # closed meanwhile (another thread): never asked again
                return None
            _LOG.debug("store poll failed", exc_info=True)
            return None

    @property
    def watching_executions(self) -> bool:
        """Whether the poll looks at executions now (as the panel showed them when it last looked)."""
        return bool(self._mode)

    def mark_seen(self) -> None:
        """Take the store as it is now as seen (after the panel read it for another reason)."""
        self._mode = self.executions()
        self.last = self._read() or self.last

    def poll(self) -> bool:
        """Look once; on a change call ``on_change``. Returns whether it changed."""
        if self.stopped:
            return False
        self.polls += 1
        mode = self.executions()
        now = self._read()
        if now is None or (now == self.last and mode == self._mode and not self.going()):
            return False
        # changed; or the panel shows other things now (another tab), whose changes were not
        # looked for while it showed the others; or something still going: read again
        self._mode = mode
        self.last = now
        callback = self._callback()
        if callback is None:
            self.stop()
            return False
        try:
            callback()
        except Exception:  # a panel that fails to refresh must not end the poll
            _LOG.warning("a panel failed to refresh after a change in its store", exc_info=True)
        return True

    def start(self) -> bool:
        """Poll from the running event loop (a kernel's); False where there is none."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run())
        return True

    async def _run(self) -> None:
        while not self.stopped:
            await asyncio.sleep(self.interval)
            if self.stopped or self._callback() is None or self.store_closed():
                break  # closed (the panel or its store), or the panel is gone
            if self.seen():
                self.poll()

    def stop(self) -> None:
        """End the poll (the panel was closed)."""
        self.stopped = True
        task = self.task
        if task is None or task.done():
            return
        try:
            running = asyncio.current_task()
        except RuntimeError:  # no loop running here
            running = None
        if task is not running:  # the task itself (its store found closed) just ends
            with contextlib.suppress(RuntimeError):  # the loop already closed
                task.cancel()


def _weak(function: Callable[[], Any]) -> Callable[[], Callable[[], Any] | None]:
    """A weak reference to a bound method (the panel may go), a strong one to anything else."""
    if hasattr(function, "__self__"):
        return weakref.WeakMethod(function)
    return lambda: function
