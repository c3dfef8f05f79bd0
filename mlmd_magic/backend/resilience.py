"""Surviving busy databases and lost connections: a retrying proxy around ``MetadataStore``.

Several kernels share one SQLite file (WAL mode, and MLMD retries a locked database only
briefly) or one MariaDB server (which may restart between two cells). Every MLMD call goes
through :class:`ResilientStore`, which retries calls that failed for a transient reason,
reconnecting first when the MySQL connection was lost (errors 2006 and 2013).

Retrying a write is safe because every action's execution carries a unique
``external_id``: a retry after a commit whose answer was lost fails with
``AlreadyExistsError`` on that id, and the caller takes that as "already recorded".
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, TypeVar

log = logging.getLogger("mlmd_magic")
T = TypeVar("T")

_BUSY = ("database is locked", "database table is locked", "busy", "deadlock", "lock wait timeout",
         "try restarting transaction")
_LOST = ("gone away", "lost connection", "errno: 2006", "errno: 2013", "can't connect", "server shutdown",
         "errno: 2002", "errno: 2003", "connection was killed", "errno: 1927", "errno: 1053")
MAX_ATTEMPTS = 60  # with the backoff below: about 20 s of patience for a busy database
RECONNECT_ATTEMPTS = 30  # about 30 s for a restarting server


def classify(exc: BaseException) -> str | None:
    """``"busy"``, ``"lost"`` or ``None`` (not transient) for an error from MLMD."""
    from ml_metadata import errors as mlmd_errors

    from .storeguard import is_damaged

    text = str(exc).lower()
    if is_damaged(text):
        return None  # a damaged file stays damaged: retrying only hides it
    if any(word in text for word in _LOST):
        return "lost"
    if isinstance(exc, mlmd_errors.AbortedError) or any(word in text for word in _BUSY):
        return "busy"
    if isinstance(exc, mlmd_errors.UnavailableError):
        return "lost"
    return None


class ResilientStore:
    """Forwards every method to an ``ml_metadata`` ``MetadataStore``, retrying transient failures."""

    def __init__(self, opener: Callable[[], Any], can_reconnect: bool) -> None:
        self._opener = opener
        self._can_reconnect = can_reconnect
        self._store = opener()
        self.reconnects = 0

    @property
    def raw(self) -> Any:
        """The wrapped ``MetadataStore``."""
        return self._store

    def _reconnect(self) -> None:
        from ..errors import StoreConnectionError

        self._store = reopen(self._opener, lambda exc: isinstance(exc, StoreConnectionError))
        self.reconnects += 1
        log.info("reconnected to the metadata store")

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            try:  # the first try without the retry loop's frames: most calls succeed at once
                return getattr(self._store, name)(*args, **kwargs)
            except Exception as exc:
                failed = exc
            return retrying(lambda: getattr(self._store, name)(*args, **kwargs),
                            self._reconnect if self._can_reconnect else None, failed)

        # kept: the next call skips this lookup (it still asks the store that is current then)
        self.__dict__[name] = call
        return call


def reopen(opener: Callable[[], T], unreachable: Callable[[Exception], bool]) -> T:
    """``opener()``, tried for about 30 s while it fails because the server is not reachable
    (a restarting server); the last try raises its error."""
    for attempt in range(RECONNECT_ATTEMPTS - 1):
        try:
            return opener()
        except Exception as exc:
            if not unreachable(exc):
                raise
            time.sleep(min(0.2 * (attempt + 1), 1.0))
    return opener()


def retrying(call: Callable[[], Any], reconnect: Callable[[], None] | None, failed: Exception | None = None) -> Any:
    """``call()``, retried with backoff while the database is busy, and after ``reconnect()``
    (at most three times) when the connection was lost; other errors are raised at once.

    ``failed``: the error of a first try already made (the loop goes on from there)."""
    attempt = 0
    while True:
        if failed is None:
            try:
                return call()
            except Exception as exc:
                failed = exc
        error, failed = failed, None
        kind = classify(error)
        attempt += 1
        if kind is None or attempt >= MAX_ATTEMPTS:
            raise error
        if kind == "lost":
            if reconnect is None or attempt > 3:
                raise error
            reconnect()
        else:
            time.sleep(min(0.01 * 2 ** min(attempt, 6), 0.5) * (0.5 + random.random()))
