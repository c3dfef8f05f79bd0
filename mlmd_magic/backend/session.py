"""Who, where and from which cell an action comes: the runtime facts every record carries.

The magic layer enters :func:`action_context` around each cell with the cell's source,
its execution count and the notebook path; library calls made inside read it. Plain
Python callers get the process-wide session and no cell source.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import logging
import os
import platform
import socket
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .secrets import redact


@dataclass
class Session:
    """One kernel or Python process: grouped in MLMD as a ``NotebookSession`` context."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    user: str = field(default_factory=lambda: _safe(getpass.getuser))
    host: str = field(default_factory=lambda: _safe(socket.gethostname))
    pid: int = field(default_factory=os.getpid)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    notebook: str = ""


def _safe(fn: object) -> str:
    try:
        return str(fn())  # type: ignore[operator]
    except Exception:  # getpass fails without a passwd entry in some containers
        return "unknown"


@dataclass(frozen=True)
class ActionContext:
    """What the caller knows about the action being taken (a notebook cell, a widget)."""

    source: str = ""
    execution_count: int | None = None
    notebook: str = ""


_SESSION = Session()
_UNRECORDED: contextvars.ContextVar[bool] = contextvars.ContextVar("mlmd_magic_unrecorded", default=False)
_CONTEXT: contextvars.ContextVar[ActionContext] = contextvars.ContextVar(
    "mlmd_magic_action", default=ActionContext()  # noqa: B039 (frozen, so never mutated)
)
_VERSIONS: dict[str, str] = {}


def current_session() -> Session:
    """The session of this process."""
    return _SESSION


def set_session_id(session_id: str, notebook: str = "") -> None:
    """Adopt the kernel's own session id (called by the extension when it loads)."""
    global _SESSION
    if session_id and session_id != _SESSION.id:
        _SESSION = Session(id=session_id, notebook=notebook)
    elif notebook:
        _SESSION.notebook = notebook


def current_action() -> ActionContext:
    """The action context set by the caller, if any."""
    return _CONTEXT.get()


class action_context:
    """Attach a cell's source (redacted), execution count and notebook to the actions inside.

    A class rather than a generator: it is entered around every cell.

    >>> with action_context(source="%mlmd ls scenarios", execution_count=3):
    ...     current_action().execution_count
    3
    """

    __slots__ = ("_context", "_token")

    def __init__(self, source: str = "", execution_count: int | None = None, notebook: str = "") -> None:
        self._context = ActionContext(redact(source), execution_count, notebook)
        self._token: contextvars.Token[ActionContext] | None = None

    def __enter__(self) -> None:
        self._token = _CONTEXT.set(self._context)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _CONTEXT.reset(self._token)
            self._token = None


@contextlib.contextmanager
def unrecorded_reads() -> Iterator[None]:
    """Reads inside are not recorded as actions; writes still are.

    A widget's internal reads (filtering, paging, selecting a row) are not a person's action.

    >>> with unrecorded_reads():
    ...     reads_recorded()
    False
    >>> reads_recorded()
    True
    """
    token = _UNRECORDED.set(True)
    try:
        yield
    finally:
        _UNRECORDED.reset(token)


def reads_recorded() -> bool:
    """Whether read actions (fetch, list, history, diff, lineage, compare) are recorded now."""
    return not _UNRECORDED.get()


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a record depends on (read once per process)."""
    if not _VERSIONS:
        from importlib import metadata

        _VERSIONS["python"] = platform.python_version()
        for dist in ("mlmd-magic", "ml-metadata", "protobuf"):
            try:
                _VERSIONS[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                _VERSIONS[dist] = "unknown"
    return dict(_VERSIONS)


_LOG = logging.getLogger("mlmd_magic")
_WRITE_LISTENERS: weakref.WeakSet[Any] = weakref.WeakSet()


def on_write(listener: Any) -> None:
    """Have ``listener.store_written(label, action)`` called after each action this process
    records (a new version, a training, an evaluation; not reads), e.g. by a panel that then
    shows the new rows. Held weakly: a panel that is gone is forgotten."""
    _WRITE_LISTENERS.add(listener)


def off_write(listener: Any) -> None:
    """Stop calling ``listener`` after writes (a panel closed, or its store closed); a listener
    that was never added, or is already removed, is fine."""
    _WRITE_LISTENERS.discard(listener)


def notify_write(label: str, action: str) -> None:
    """Tell the listeners of :func:`on_write` that ``action`` was recorded in store ``label``."""
    if not _WRITE_LISTENERS:
        return
    for listener in list(_WRITE_LISTENERS):
        callback: Callable[[str, str], None] = listener.store_written
        try:
            callback(label, action)
        except Exception:  # a panel that fails to refresh must never fail what was recorded
            _LOG.warning("a panel failed to refresh after %s was recorded", action, exc_info=True)
