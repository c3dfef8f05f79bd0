"""Surviving busy databases and lost connections: a retrying proxy around ``MetadataStore``.

Several kernels share one SQLite file (WAL mode, and MLMD retries a locked database only
briefly) or one MariaDB server (which may restart between two cells). Every MLMD call goes
through :class:`ResilientStore`, which retries calls that failed for a transient reason,
reconnecting first when the MySQL connection was lost.

Retrying a write is safe because every action's execution carries a unique
``external_id``: a retry after a commit whose answer was lost fails with
``AlreadyExistsError`` on that id, and the caller takes that as "already recorded".

What is transient is read from what the error *is*, never from words anywhere in its text:
an error's message carries the names and values of the rows being written (a record called
``busybox`` whose version lost a race reads ``... name: "busybox@3" ... UNIQUE constraint
failed ...``), so a word like "busy" or "deadlock" may come from the user. MLMD 1.17.1
reports the databases' errors as follows (seen on real SQLite files and MariaDB 10.11):

* ``AlreadyExistsError`` -- a unique key taken (``NAME@N``, an external id): never
  transient, whatever its text; the caller decides (a lost race, or a lost answer).
* ``AbortedError`` -- the database asked for the transaction to be tried again, and only
  then: SQLite's ``SQLITE_BUSY`` (MLMD turns any "database is locked" into
  ``Concurrent writes aborted after max number of retries.``, after its busy handler waited
  up to about 2 s) and MySQL's 1213 and 1205 (``mysql_query aborted: errno: Deadlock found when
  trying to get lock; try restarting transaction, error: Deadlock found ...`` and ``...
  Lock wait timeout exceeded; ...``). Busy, by its type. (MLMD's Python client has already
  tried such a call five times, 2 s apart on average, before we see it.)
* ``InternalError`` -- everything else the driver reports, so the driver's own part of the
  message is read, anchored:

  - MySQL: MLMD *appends* ``mysql_query failed: errno: E, error: E`` (or
    ``mysql_real_connect failed: ...``) to any context it puts in front, and 1.17.1 writes
    the client's text E where the number belongs, so the message *ends* with the same text
    twice. Lost (reconnect) when E is exactly the client library's or server's text of
    2002/2003 (can't connect), 2006 (gone away), 2013 (lost connection), 1053 (server
    shutdown) or 1927 (connection killed); a number in place of E (older MLMD sources) is
    read as the number. A text that merely contains these words -- a name in the context in
    front, or ``Duplicate entry 'gone away' ...`` -- is not E. Texts of a server set to
    another language than English are not recognised (then not retried).
  - SQLite: ``Error when executing query: M query: SQL`` behind MLMD's context, whose values
    are in double quotes (protobuf text, quotes escaped); the first such marker outside a
    quoted value is the driver's. M = ``database table is locked`` / ``database schema is
    locked`` (``SQLITE_LOCKED``, 6) is busy. MLMD opens one connection per store and no
    shared cache, so this is not met in practice: all lock waits arrive as ``SQLITE_BUSY``.
    A damaged file (``database disk image is malformed``) is never transient.
* ``UnavailableError`` -- a gRPC metadata server that cannot be reached: lost.
* any other error, or one not from MLMD: not transient, raised at once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import time
from collections.abc import Iterator
from typing import Any, Callable, TypeVar

log = logging.getLogger("mlmd_magic")
T = TypeVar("T")

MAX_ATTEMPTS = 60  # with the backoff below: about 20 s of patience for a busy database
RECONNECT_ATTEMPTS = 30  # about 30 s for a restarting server

MYSQL_BUSY = frozenset({1205, 1213})  # lock wait timeout, deadlock
MYSQL_LOST = frozenset({1053, 1927, 2002, 2003, 2006, 2013})
# The texts of those codes, as a whole: MLMD's client library's (2xxx) and the server's
_MYSQL_TEXTS: tuple[tuple[re.Pattern[str], int], ...] = tuple((re.compile(text), code) for text, code in (
    (r"Lock wait timeout exceeded; try restarting transaction", 1205),
    (r"Deadlock found when trying to get lock; try restarting transaction", 1213),
    (r"Server shutdown in progress", 1053),
    (r"Connection was killed", 1927),
    (r"Can't connect to local MySQL server through socket '[^']*' \(\d+\)", 2002),
    (r"Can't connect to MySQL server on '[^']*' \(\d+\)", 2003),
    (r"MySQL server has gone away", 2006),
    (r"Lost connection to MySQL server (?:during query|at '[^']*', system error: \d+)", 2013),
))
_MYSQL_HEADS = ("mysql_query failed: errno: ", "mysql_query aborted: errno: ", "mysql_real_connect failed: errno: ")
# up to the first "Error when executing query: " outside a double-quoted (protobuf text) value
_SQLITE_DRIVER = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^"])*?Error when executing query: ', re.S)
_SQLITE_LOCKED = re.compile(r"database (?:table|schema) is locked(?:: [\w.]+)? query: ")


def mysql_error_code(message: str) -> int | None:
    """The MySQL error number an MLMD error message ends with, among those this module acts on
    (:data:`MYSQL_BUSY`, :data:`MYSQL_LOST`), or None.

    MLMD ends its messages of MySQL errors with ``mysql_query failed: errno: E, error: E``;
    MLMD 1.17.1 writes the error's text E in both places (its older sources, the number
    first). The text after the last ``, error:`` must be, as a whole, the client library's or
    the server's text of one of those codes, and what comes before it MLMD's own words and the
    same text (or that code's number).

    Examples
    --------
    >>> mysql_error_code("mysql_query failed: errno: MySQL server has gone away, error: MySQL server has gone away")
    2006
    >>> mysql_error_code("mysql_query failed: errno: 1213, error: Deadlock found when trying to get lock; "
    ...                  "try restarting transaction")
    1213
    >>> mysql_error_code('name: "MySQL server has gone away"mysql_query failed: errno: Duplicate entry '
    ...                  "'1-x' for key 'a', error: Duplicate entry '1-x' for key 'a'") is None
    True
    """
    head, sep, text = message.rpartition(", error: ")
    if not sep:
        return None
    code = next((code for pattern, code in _MYSQL_TEXTS if pattern.fullmatch(text)), None)
    if code is None or not any(head.endswith((start + text, start + str(code))) for start in _MYSQL_HEADS):
        return None
    return code


def sqlite_locked(message: str) -> bool:
    """Whether the SQLite driver's part of an MLMD message says ``SQLITE_LOCKED``."""
    found = _SQLITE_DRIVER.match(message)
    return found is not None and _SQLITE_LOCKED.match(message, found.end()) is not None


def classify(exc: BaseException) -> str | None:
    """``"busy"``, ``"lost"`` or ``None`` (not transient) for an error from MLMD, by its type and
    the database driver's part of its message (see the module's docstring).

    Examples
    --------
    >>> from ml_metadata import errors
    >>> classify(errors.AlreadyExistsError('Given node already exists: name: "busybox@2"'))
    >>> classify(errors.AbortedError("Concurrent writes aborted after max number of retries."))
    'busy'
    >>> classify(errors.InternalError("mysql_query failed: errno: Lost connection to MySQL server during query, "
    ...                               "error: Lost connection to MySQL server during query"))
    'lost'
    """
    from ml_metadata import errors as mlmd_errors

    if not isinstance(exc, mlmd_errors.StatusError) or isinstance(exc, mlmd_errors.AlreadyExistsError):
        return None
    if isinstance(exc, mlmd_errors.AbortedError):
        return "busy"
    if isinstance(exc, mlmd_errors.UnavailableError):
        return "lost"
    if isinstance(exc, mlmd_errors.InternalError):
        message = str(exc)
        code = mysql_error_code(message)
        if code in MYSQL_LOST:
            return "lost"
        if code in MYSQL_BUSY or (code is None and sqlite_locked(message)):
            return "busy"
    return None


_CLIENT_GAVE_UP = re.compile(r"\w+ failed after retrying \d+ times\.?")


def _quiet_client_retries(record: logging.LogRecord) -> bool:
    """MLMD's Python client logs an ERROR each time its own retries of a busy call run out; the
    call is retried here and what finally happens is reported, so the line only alarms."""
    try:
        return not _CLIENT_GAVE_UP.fullmatch(record.getMessage())
    except Exception:  # a record whose arguments do not fit its format: not ours to judge
        return True


class ResilientStore:
    """Forwards every method to an ``ml_metadata`` ``MetadataStore``, retrying transient failures."""

    def __init__(self, opener: Callable[[], Any], can_reconnect: bool) -> None:
        absl = logging.getLogger("absl")
        if _quiet_client_retries not in absl.filters:
            absl.addFilter(_quiet_client_retries)
        self._opener = opener
        self._can_reconnect = can_reconnect
        self._store = opener()
        self.reconnects = 0
        self.busy_retries = 0  # backoffs made because the database was busy
        #: while set (see :meth:`patient`), a store that stays busy or unreachable is waited for
        #: without end, and this is called with the error before each new wait
        self.patience: Callable[[BaseException], None] | None = None
        self._patience_check: Callable[[], None] | None = None

    @property
    def raw(self) -> Any:
        """The wrapped ``MetadataStore``."""
        return self._store

    def _reconnect(self) -> None:
        from ..errors import StoreConnectionError

        # A MetadataStore whose MySQL connection was lost is never called again, even when no new
        # one can be opened yet: MLMD's MySQL source, asked again after its own reconnect failed,
        # reads a closed handle ("MySQL database was not initialized") and can crash the process.
        self._store = None
        self._store = reopen(self._opener, lambda exc: isinstance(exc, StoreConnectionError))
        self.reconnects += 1
        log.info("reconnected to the metadata store")

    def _live(self) -> Any:
        """The wrapped store, opened again first if the last one was lost and not yet replaced."""
        if self._store is None:
            self._reconnect()
        return self._store

    def _waited(self) -> None:
        self.busy_retries += 1
        if self._patience_check is not None:
            self._patience_check()

    @contextlib.contextmanager
    def patient(self, on_wait: Callable[[BaseException], None], check: Callable[[], None] | None = None
                ) -> Iterator[None]:
        """Calls in this block wait for a busy or unreachable store as long as it takes (a run's
        last write: the training is done and only the store can record it); ``on_wait(error)``
        is called each time the usual patience ran out and the call is tried again, and
        ``check()`` before each wait for a busy store (either may raise to give up)."""
        previous = self.patience, self._patience_check
        self.patience, self._patience_check = on_wait, check
        try:
            yield
        finally:
            self.patience, self._patience_check = previous

    def __getattr__(self, name: str) -> Any:
        if self._store is None:  # lost, not yet opened again: its class says what the name is
            from ml_metadata.metadata_store import metadata_store

            target = getattr(metadata_store.MetadataStore, name)
        else:
            target = getattr(self._store, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            try:  # the first try without the retry loop's frames: most calls succeed at once
                return getattr(self._live(), name)(*args, **kwargs)
            except Exception as exc:
                failed: Exception | None = exc
            while True:
                try:
                    return retrying(lambda: getattr(self._live(), name)(*args, **kwargs),
                                    self._reconnect if self._can_reconnect else None, failed, self._waited)
                except Exception as exc:
                    if self.patience is None or not _waitable(exc):
                        raise
                    self.patience(exc)
                    failed = None
                    time.sleep(1.0)

        # kept: the next call skips this lookup (it still asks the store that is current then)
        self.__dict__[name] = call
        return call


def _waitable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is busy or out of reach (not that the call is wrong)."""
    from ..errors import StoreConnectionError

    return classify(exc) is not None or isinstance(exc, StoreConnectionError)


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


def retrying(call: Callable[[], Any], reconnect: Callable[[], None] | None, failed: Exception | None = None,
             waited: Callable[[], None] | None = None) -> Any:
    """``call()``, retried with backoff while the database is busy, and after ``reconnect()``
    (at most three times) when the connection was lost; other errors are raised at once.

    ``failed``: the error of a first try already made (the loop goes on from there).
    ``waited``: called before each backoff (a count of them)."""
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
            if waited is not None:
                waited()
            time.sleep(min(0.01 * 2 ** min(attempt, 6), 0.5) * (0.5 + random.random()))
