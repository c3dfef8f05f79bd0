"""What may be done with an opened store, and store faults put in words.

* A SQLite file this user may not write (or in a folder where SQLite cannot create its
  journal) is opened read-only: reads work and are not recorded, writes are refused with
  the reason. Recording a read would otherwise fail as MLMD's "Cannot create node".
* A damaged SQLite file ("database disk image is malformed", "file is not a database") is
  reported as such at once, never retried as if it were busy or half-created.
* A SQLite file removed or replaced while connected is noticed before each write: SQLite
  would go on writing into the removed file, and every record would be lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..errors import StoreConnectionError, StoreError
from . import secrets as _secrets

if TYPE_CHECKING:
    from .uri import StoreURI

# actions that add records; every other action only reads (and is recorded when it may be)
WRITE_ACTIONS = frozenset({"RegisterDataSource", "AddScenario", "DefineExperiment", "Train", "Evaluate"})
_DAMAGED = ("database disk image is malformed", "file is not a database", "malformed database schema")


def is_damaged(text: str) -> bool:
    """Whether an error's text says the database file is damaged."""
    lowered = text.lower()
    return any(marker in lowered for marker in _DAMAGED)


def damaged_message(where: str, text: str) -> str:
    """What to say about a damaged SQLite file (``where``: the store's masked URI)."""
    marker = next((m for m in _DAMAGED if m in text.lower()), "damaged")
    path = where.removeprefix("sqlite:///")
    return (f"the SQLite file of the store {where} is damaged ({marker}); it was not retried. Restore it from a "
            f"backup, or save what can be read into a new file: sqlite3 {path} .recover | sqlite3 recovered.sqlite")


def read_only_reason(path: str) -> str | None:
    """Why the SQLite store at ``path`` can only be read, or None when it may be written (or is new)."""
    if not os.path.exists(path):
        return None
    folder = os.path.dirname(path) or os.curdir
    if not os.access(path, os.W_OK):
        return f"the file {path} is not writable by this user"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is not writable by this user, so SQLite cannot create its journal there"
    return None


def sqlite_filename(path: str, read_only: bool) -> str:
    """MLMD's ``filename_uri`` for ``path``: a read-only ``file:`` URI when it may only be read.

    A write-ahead-log store whose ``-shm`` file does not exist (nobody has it open) is read
    as an immutable file (SQLite's ``immutable=1``): otherwise SQLite would create ``-shm``
    and ``-wal`` files owned by this user and not writable by the store's owner, or fail
    where the folder is not writable.
    """
    if not read_only:
        return path
    wal = False
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
        wal = len(header) == 20 and header[18] == 2
    except OSError:
        pass
    immutable = wal and not os.path.exists(path + "-shm")
    return f"file:{quote(path)}?mode=ro" + ("&immutable=1" if immutable else "")


@dataclass(frozen=True)
class StoreGuard:
    """The checks a :class:`~mlmd_magic.Store` makes before acting, for one opened store."""

    where: str  # the masked URI
    path: str | None = None  # the absolute path of a SQLite store
    read_only_reason: str | None = None
    identity: tuple[int, int] | None = None  # (device, inode) of the SQLite file when opened

    @classmethod
    def for_uri(cls, uri: StoreURI) -> StoreGuard:
        """The guard of a store just opened at ``uri``."""
        if uri.scheme != "sqlite":
            return cls(uri.masked())
        path = os.path.abspath(uri.path)
        try:
            stat = os.stat(path)
            identity: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except OSError:
            identity = None
        return cls(uri.masked(), path, read_only_reason(path), identity)

    @property
    def read_only(self) -> bool:
        return self.read_only_reason is not None

    def before_action(self, action: str) -> None:
        """Refuse an action that would write to a read-only store (a removed file is noticed by
        :meth:`check_file` before each write)."""
        if self.read_only and action in WRITE_ACTIONS:
            raise StoreError(
                f"the store {self.where} was opened read-only ({self.read_only_reason}), so "
                f"{_WHAT.get(action, 'writing')} is refused; reads work (and are not recorded). Copy the file "
                "to a folder you may write to, or ask its owner for write access"
            )

    def check_file(self) -> None:
        """Refuse to write when the SQLite file was removed or replaced since it was opened."""
        if self.path is None or self.identity is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise StoreError(
                f"the SQLite file {self.path} was removed while connected: what is written now would be lost "
                "with it. Restore the file, or connect again (which creates a new, empty store)"
            ) from None
        except OSError:
            return  # cannot tell (a folder we may not search): SQLite reports its own errors
        if (stat.st_dev, stat.st_ino) != self.identity:
            raise StoreError(
                f"the SQLite file {self.path} was replaced by another file while connected: this connection "
                "still writes to the old one, which is gone. Connect again to use the new file"
            )

    def damaged(self, exc: BaseException) -> StoreError | None:
        """A :class:`StoreError` saying the file is damaged, when ``exc`` says so."""
        text = _secrets.redact(str(exc))
        return StoreError(damaged_message(self.where, text)) if is_damaged(text) else None


_WHAT = {"RegisterDataSource": "registering a data source", "AddScenario": "adding a scenario",
         "DefineExperiment": "defining an experiment", "Train": "training", "Evaluate": "evaluating"}


def open_failure(where: str, exc: BaseException) -> StoreConnectionError | None:
    """A :class:`StoreConnectionError` for a damaged file met while opening, else None."""
    text = _secrets.redact(str(exc))
    return StoreConnectionError(damaged_message(where, text)) if is_damaged(text) else None
