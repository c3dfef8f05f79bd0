"""mlmd-magic: notebook experiments on record in ML Metadata.

Register data sources, named hyperparameter scenarios and experiments that combine them;
fetch one, change a few values and train again — with every action recorded in an ML
Metadata (MLMD) store: an embedded SQLite file by default, a MySQL/MariaDB database when a
team shares it.

Example
-------
>>> import mlmd_magic as mm
>>> store = mm.connect("memory://")
>>> store
<mlmd_magic.Store memory://>

In IPython or Jupyter, ``%load_ext mlmd_magic`` adds the ``%mlmd`` magics.
"""

from __future__ import annotations

from typing import Any

from .core.record import Record
from .core.values import Diff
from .errors import (
    AmbiguousRefError,
    CommandError,
    DataSourceError,
    InvalidNameError,
    MlmdMagicError,
    NoConnectionError,
    NotBlessedError,
    NotFoundError,
    RunCancelled,
    StoreConnectionError,
    StoreError,
    TrainingError,
    ValidationError,
)
from .store import Store, StoreOptions, Sweep

__all__ = [
    "AmbiguousRefError",
    "CommandError",
    "DataSourceError",
    "Diff",
    "InvalidNameError",
    "MlmdMagicError",
    "NoConnectionError",
    "NotBlessedError",
    "NotFoundError",
    "Record",
    "RunCancelled",
    "Store",
    "StoreConnectionError",
    "StoreError",
    "StoreOptions",
    "Sweep",
    "TrainingError",
    "ValidationError",
    "__version__",
    "connect",
    "current_store",
    "load_ipython_extension",
    "unload_ipython_extension",
]

__version__ = "0.1.0"


def connect(uri: str | None = None, *, runs_dir: str | None = None, stale_run_after_s: float | None = None
            ) -> Store:
    """Open a store and return it.

    Parameters
    ----------
    uri : str, optional
        ``sqlite:///relative/path.sqlite`` or ``sqlite:////absolute/path.sqlite`` (created
        if missing), ``memory://`` (a fresh in-memory store), or
        ``mysql://user[:password]@host[:port]/database[?ssl_ca=...&socket=...]`` (the
        database is created if missing). Without it: ``$MLMD_MAGIC_URI``, else
        ``sqlite:///mlmd.sqlite`` in the working directory. For MySQL, prefer to leave the
        password out of the URI: it is read from ``$MLMD_MAGIC_MYSQL_PASSWORD`` or the
        ``[client]`` section of ``~/.my.cnf``. A relative SQLite path names the file of the
        folder current now, for the store's whole life (a later ``%cd`` does not move it, nor
        the background runs and sweep workers it starts); percent-encode ``%`` and ``?`` in
        a path (``%25``, ``%3F``). A SQLite store this call creates is switched to
        write-ahead-log mode (several kernels share it well); an existing one keeps its
        journal mode unless the URI asks with ``?wal=1`` (``?wal=0``: never switch, e.g. on
        a network file system).
    runs_dir : str, optional
        Where run folders go (default ``$MLMD_MAGIC_RUNS_DIR``, else beside a SQLite store).
    stale_run_after_s : float, optional
        A RUNNING training without a heartbeat for this long is marked FAILED when a store
        is opened (default ``$MLMD_MAGIC_STALE_RUN_AFTER_S``, else 10 minutes).

    Raises
    ------
    StoreConnectionError
        When the URI is malformed or the store cannot be opened; the message says what to do.

    Example
    -------
    >>> store = connect("memory://")
    >>> store.uri
    'memory://'
    """
    from .store import connect as open_store

    return open_store(uri, options=StoreOptions(runs_dir=runs_dir, stale_run_after_s=stale_run_after_s))


def current_store() -> Store:
    """The store made current by ``%mlmd connect`` / ``%mlmd use`` in this session.

    Raises
    ------
    NoConnectionError
        When no store is connected; the message says to run ``%mlmd connect`` first.

    Example
    -------
    >>> from mlmd_magic.faces.registry import REGISTRY
    >>> _ = REGISTRY.connect("memory://", alias="doc")
    >>> current_store().uri
    'memory://'
    >>> REGISTRY.reset()
    """
    from .faces.registry import REGISTRY

    return REGISTRY.current().store


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext mlmd_magic``: registers the magics (imports no TensorFlow)."""
    from .faces.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext mlmd_magic``."""
    from .faces.magics import unload

    unload(ipython)
