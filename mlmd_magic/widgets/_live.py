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
task ends when the panel is closed. Outside a running event loop (plain Python) there is no
poll: call :meth:`StoreWatch.poll` yourself.
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
    (the panel's ``close``) ends it.
    """

    def __init__(self, store: Any, on_change: Callable[[], Any], seen: Callable[[], bool] = lambda: True,
                 interval: float | None = None, executions: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self._callback = weakref.WeakMethod(on_change) if hasattr(on_change, "__self__") else (lambda: on_change)
        self.seen = seen
        #: whether the panel shows executions now (runs, evaluations): else only new or changed
        #: artifacts (records) count as a change, and running trainings do not reload it
        self.executions = executions
        self.interval = POLL_S if interval is None else interval
        self.task: asyncio.Task[None] | None = None
        self.stopped = False
        self.polls = 0  # how many times the store was asked
        self._mode = executions()
        self.last = self._read()

    def _read(self) -> tuple[Any, ...] | None:
        try:
            with self.store.unrecorded():
                return self.store.signature(executions=self.executions())  # type: ignore[no-any-return]
        except Exception:  # a store out of reach or closed: look again next time
            _LOG.debug("store poll failed", exc_info=True)
            return None

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
        if now is None or (now == self.last and mode == self._mode):
            return False
        # changed; or the panel shows other things now (another tab), whose changes were not
        # looked for while it showed the others: read again either way
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
            if self.stopped or self._callback() is None:
                break
            if self.seen():
                self.poll()

    def stop(self) -> None:
        """End the poll (the panel was closed)."""
        self.stopped = True
        if self.task is not None and not self.task.done():
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self.task.cancel()
