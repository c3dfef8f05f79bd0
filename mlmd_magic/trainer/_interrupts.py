"""Ctrl-C during a training is noticed wherever it lands, even where a library swallows it.

Python raises ``KeyboardInterrupt`` at whatever line runs when SIGINT arrives, and the libraries
under the trainer do not all let it through. Keras' TensorFlow ``shape()`` wraps ``dynamic[i]``
in a bare ``except:``: a Ctrl-C landing there while ``fit`` traces its step function (the
first batch in a fresh process, the first validation at the end of epoch 1) is swallowed,
the graph gets a ``None`` dimension, and the training fails a moment later with
``TypeError: Failed to convert elements of (None,) to Tensor`` (or ``ValueError: None values
not supported``) — or trains on as if no key had been pressed. Keras' saving code and
numpy's version parsing under ``Tensor.numpy()`` hold other bare ``except:`` blocks.

:class:`Interrupts` remembers the interrupt itself, so the training can stop as a
``KeyboardInterrupt`` whatever became of it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["Interrupts"]

# The watches entered in the main thread, outermost first: one SIGINT handler serves them all.
_ACTIVE: list[Interrupts] = []


def _quiet_unraisable(unraisable: Any) -> None:
    """``sys.unraisablehook`` while a watch holds the SIGINT handler: a Ctrl-C that landed where
    Python cannot raise it (a garbage collector's callback, a ``__del__``) is remembered by the
    watch, which stops the training with it; it is not printed as "Exception ignored in …"."""
    value = unraisable.exc_value
    if isinstance(value, KeyboardInterrupt) and any(w.knows(value) for w in _ACTIVE):
        return
    _HOOKS[0](unraisable)


_HOOKS: list[Any] = []  # the unraisable hook in place before the outermost watch


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    interrupt = KeyboardInterrupt()
    for watch in _ACTIVE:
        watch.note(interrupt)
    if not any(watch.deferring for watch in _ACTIVE):
        raise interrupt  # what Python's default handler does


class Interrupts:
    """Remembers a Ctrl-C (or another ``KeyboardInterrupt``) during a block, wherever it went.

    Entered in the main thread while Python's default SIGINT handler is in place, it installs a
    handler that notes the interrupt before raising ``KeyboardInterrupt`` as usual (blocks
    nest and share it; the old handler is back when the outermost ends). Elsewhere — another
    thread, a handler of someone else's — only the interrupts given to :meth:`note` are known.

    Attributes
    ----------
    pending : the first interrupt seen, or ``None``.
    deferring : True inside :meth:`deferred`.

    Examples
    --------
    A library that swallows Ctrl-C cannot hide it:

    >>> import signal
    >>> with Interrupts() as interrupts:
    ...     try:
    ...         signal.raise_signal(signal.SIGINT)
    ...     except BaseException:  # as a bare ``except:`` in a library does
    ...         pass
    ...     interrupts.pending is not None
    True
    """

    def __init__(self) -> None:
        self.pending: KeyboardInterrupt | None = None
        #: how many interrupts came in this block (a second Ctrl-C tells "give up" from the first)
        self.count = 0
        self._last: KeyboardInterrupt | None = None
        self.deferring = False
        self._previous: Any = None
        self._entered = False

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            if not _ACTIVE and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous = signal.signal(signal.SIGINT, _on_sigint)
                _HOOKS[:] = [sys.unraisablehook]
                sys.unraisablehook = _quiet_unraisable
            if _ACTIVE or self._previous is not None:
                _ACTIVE.append(self)
                self._entered = True
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._entered:
            _ACTIVE.remove(self)
            self._entered = False
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
            if _HOOKS and sys.unraisablehook is _quiet_unraisable:
                sys.unraisablehook = _HOOKS.pop()

    def note(self, interrupt: KeyboardInterrupt) -> None:
        """Remember ``interrupt`` (the first one counts), e.g. one a callback saw go by."""
        if interrupt is not self._last:  # one interrupt may be noted by more than one hand
            self._last = interrupt
            self.count += 1
        if self.pending is None:
            self.pending = interrupt

    def knows(self, interrupt: BaseException) -> bool:
        """Whether ``interrupt`` is one this watch noted."""
        return interrupt is self.pending or interrupt is self._last

    def check(self) -> None:
        """Raise the remembered interrupt, if any: one that a library swallowed stops here.

        Raises
        ------
        KeyboardInterrupt
            When an interrupt was seen in this block.
        """
        if self.pending is not None:
            raise self.pending

    def interrupted_by(self, exc: BaseException) -> KeyboardInterrupt | None:
        """The interrupt that ``exc`` stands for: ``exc`` itself when it is one, the remembered
        interrupt when a library turned Ctrl-C into another error, else ``None`` (a genuine error)."""
        if isinstance(exc, KeyboardInterrupt):
            return exc
        return self.pending

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that Ctrl-C does not break: a SIGINT in it is only noted in :attr:`pending`.

        For writes that must happen whole (the record of a run's end). Only while this watch
        holds the SIGINT handler (the main thread); elsewhere the block runs as it is.
        """
        before, self.deferring = self.deferring, True
        try:
            yield
        finally:
            self.deferring = before
