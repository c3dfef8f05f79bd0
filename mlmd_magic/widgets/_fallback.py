"""A panel's cell after its kernel stopped: the panel's text, not "Error displaying widget:
model not found".

What the frontends do: JupyterLab 4's and Notebook 7's widget renderer
(``@jupyter-widgets/jupyterlab-manager``) never falls back to another mimetype of an output.
After a kernel restart it keeps the dead views, marked ``jupyter-widgets-disconnected``;
on reopening a notebook saved without widget state it prints "Error displaying widget:
model not found". And JupyterLab drops every message of the old kernel once a restart or
shutdown has begun, so the kernel cannot replace the output itself then.

So a panel is displayed as two outputs: the live widget, then its text in an HTML output
that a CSS rule hides while the widget beside it lives. Once the widget output is dead
(disconnected, or that error) the rule hides it and shows the text instead; the notebook
keeps both, so a reopened notebook shows the text. The text output is kept up to date while
the kernel lives (:meth:`FallbackDisplay.update_fallback`, after a save, a training, a refresh),
because the messages sent once a restart began are dropped. Frontends that do apply messages sent
during shutdown (plain ``jupyter_client`` ones) get the widget output replaced by the text
through ``update_display_data`` as well.

Such an update goes to the cell that showed the panel, not the one running now: it is sent
under that cell's request (its parent header), set for the sending thread or task only
(ipykernel's ``set_thread_parent``) and reset exactly after, so that what other threads and
cells display meanwhile, or later, still goes where it did (:func:`routed_to`).
"""

from __future__ import annotations

import contextlib
import html
import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["FallbackDisplay", "replace_with_fallbacks", "routed_to"]

# display id -> (the panel, the header of the request that displayed it)
_LIVE: dict[str, tuple[weakref.ref[Any], dict[str, Any]]] = {}
_INSTALLED: set[int] = set()  # kernels whose shutdown replaces the panels (one per process)


class FallbackDisplay:
    """Mixin for panels (ipywidgets): displayed under a display id that the kernel's shutdown
    turns into :meth:`fallback_html` and ``repr``."""

    last_action = ""  # what the panel did last (a save, a training), for its text form

    def close(self) -> None:
        """Close the panel and end its poll of the store (also one whose making failed half way)."""
        watch, sensor = getattr(self, "watch", None), getattr(self, "sensor", None)
        if watch is not None:
            watch.stop()
        if sensor is not None:
            sensor.close()
        super().close()  # type: ignore[misc]

    def mark_out_of_date(self) -> None:
        """Say in the panel's text that a newer version was recorded: after what it did last,
        which stays said."""
        if "out of date" not in self.last_action:
            self.last_action = (f"{self.last_action}; since then a newer version was recorded (this panel is out of "
                                "date)" if self.last_action
                                else "out of date: a newer version was recorded since this panel opened")
            self.update_fallback()

    def fallback_html(self) -> str:
        """What the cell shows once the kernel is gone: the panel's text form."""
        return (f"<pre class='mlmd-magic-fallback'>{html.escape(repr(self))}</pre>"
                "<p style='font-size:11px;color:#666'>(the panel as it was last, with what it did last; the "
                "kernel stopped: run the cell again for the live panel)</p>")

    def _ipython_display_(self) -> None:
        from IPython import get_ipython
        from IPython.display import display

        bundle = self._repr_mimebundle_()  # type: ignore[attr-defined]  # ipywidgets' view + text
        handle = display(bundle, raw=True, display_id=True)
        shown = self.fallback_html()
        text = display(_fallback_bundle(shown), raw=True, display_id=True)
        shell = get_ipython()
        kernel = getattr(shell, "kernel", None)
        if handle is None or kernel is None:  # plain IPython: nothing outlives the process
            return
        parent = dict(getattr(shell.display_pub, "parent_header", {}) or {})
        for gone in [key for key, (ref, _) in _LIVE.items() if ref() is None]:
            del _LIVE[gone]
        _LIVE[handle.display_id] = (weakref.ref(self), parent)
        if text is not None:  # the text output follows the panel (a save, a training, a refresh)
            texts = self.__dict__.setdefault("_fallback_texts", {})
            texts[text.display_id] = (parent, shown)
        _install(kernel, shell)

    def update_fallback(self) -> int:
        """Bring the text output(s) shown under the panel up to date with what the panel did last
        (a save, a training, a refresh), so that a saved notebook, a restarted kernel or a
        frontend without widgets shows it. Returns how many outputs were updated (0 when
        nothing changed or the panel was never displayed in a kernel); never raises."""
        texts: dict[str, tuple[dict[str, Any], str]] = self.__dict__.get("_fallback_texts") or {}
        if not texts:
            return 0
        try:
            from IPython import get_ipython
            from IPython.display import update_display

            shown = self.fallback_html()
            shell = get_ipython()
            publisher = getattr(shell, "display_pub", None)
            if publisher is None:
                return 0
            done = 0
            for display_id, (parent, last) in list(texts.items()):
                if last == shown:
                    continue
                with routed_to(publisher, parent):  # to the cell that showed it
                    update_display(_fallback_bundle(shown), raw=True, display_id=display_id)
                texts[display_id] = (parent, shown)
                done += 1
            return done
        except Exception:  # a panel's text must never fail what the panel did
            import logging

            logging.getLogger("mlmd_magic").debug("a panel's text could not be updated", exc_info=True)
            return 0


@contextlib.contextmanager
def routed_to(publisher: Any, parent: dict[str, Any]) -> Iterator[None]:
    """What ``publisher`` (the shell's ``display_pub``) sends inside goes out under ``parent``
    (the header of the request of the cell that showed a panel), from this thread or asyncio
    task only: ipykernel's ``set_thread_parent`` sets it in this context, and the token puts back
    exactly what was there. The kernel's process-wide parent (what other threads' ``display()``
    uses: the cell running, or run last) is never touched. A publisher without thread parents
    (an older ipykernel's) has its ``parent_header`` set and put back."""
    set_thread = getattr(publisher, "set_thread_parent", None)
    reset_thread = getattr(publisher, "reset_thread_parent", None)
    if callable(set_thread) and callable(reset_thread):
        token = set_thread(parent)
        try:
            yield
        finally:
            reset_thread(token)
        return
    before = getattr(publisher, "parent_header", None)
    publisher.parent_header = parent
    try:
        yield
    finally:
        publisher.parent_header = before


def _fallback_bundle(shown: str) -> dict[str, str]:
    return {"text/html": _HIDE_WHILE_LIVE + f"<div class='mlmd-magic-fallback-box'>{shown}</div>"}


# The text is shown only when the output before it is a dead widget: views marked disconnected
# (kernel restarted), or the renderer's error, which it marks by giving itself the class
# ``jupyter-widgets`` (a live renderer's child has it). One rule per selector: a selector a
# browser cannot parse would drop the whole rule.
_DEAD = (".jp-OutputArea-child:has(.jupyter-widgets-disconnected)",
         ".jp-OutputArea-child:has(> .jp-OutputArea-output.jupyter-widgets)")
_HIDE_WHILE_LIVE = (
    "<style>.mlmd-magic-fallback-box{display:none}"
    + "".join(f"{dead} + .jp-OutputArea-child .mlmd-magic-fallback-box{{display:block}}"
              f"{dead}:has(+ .jp-OutputArea-child .mlmd-magic-fallback-box){{display:none}}" for dead in _DEAD)
    + "</style>")


def replace_with_fallbacks(shell: Any) -> int:
    """Replace every live panel's output by its fallback; returns how many were replaced."""
    from IPython.display import update_display

    publisher = shell.display_pub
    done = 0
    for display_id, (ref, parent) in list(_LIVE.items()):
        panel = ref()
        if panel is None:
            continue
        with routed_to(publisher, parent):
            update_display({"text/html": panel.fallback_html(), "text/plain": repr(panel)}, raw=True,
                           display_id=display_id)
        done += 1
    _LIVE.clear()
    return done


def _install(kernel: Any, shell: Any) -> None:
    """Wrap the kernel's ``do_shutdown`` once (ipykernel offers no shutdown event)."""
    if id(kernel) in _INSTALLED:
        return
    original = kernel.do_shutdown

    def do_shutdown(restart: bool) -> Any:
        # a shutdown must never fail because a panel could not draw its text
        with contextlib.suppress(Exception):
            replace_with_fallbacks(shell)
        return original(restart)

    kernel.do_shutdown = do_shutdown
    _INSTALLED.add(id(kernel))


def refuse_if_stale(panel: Any, store: Any, kind: str, name: str, seen: int | None, title: str) -> bool:
    """Whether ``panel`` (an editor with ``status``, ``header`` and ``save_button``) must not save
    because a newer version of ``name`` was recorded in ``store`` since it opened; if so it says
    why, marks its header out of date and disables Save."""
    stale = _newer_version(store, kind, name, seen)
    if stale is None:
        return False
    panel.status.value = f"<span style='color:crimson'>✗ {html.escape(stale)}</span>"
    panel.header.value = (f"<b>{html.escape(title)}</b> <i>(out of date: a newer version exists; open a new "
                          "panel to edit it)</i>")
    panel.save_button.disabled = True
    return True


def _newer_version(store: Any, kind: str, name: str, seen: int | None) -> str | None:
    """Why a panel opened when ``name``'s newest version was ``seen`` must not save now: a newer
    version was recorded since (by another cell, panel, process or person), which saving the
    form would silently undo. ``None`` when it may save."""
    from ..errors import NotFoundError

    try:
        with store.unrecorded():
            latest = store.record(name, kind=kind)
    except NotFoundError:
        return None
    if seen is not None and latest.version == seen:
        return None
    opened = f"version {seen}" if seen is not None else "no version"
    return (f"{latest.ref} was recorded after this panel opened (it showed {opened}); saving would undo its "
            f"changes. Open the newest in a new panel: %mlmd edit {'policy:' if kind == 'policies' else ''}{name}")
