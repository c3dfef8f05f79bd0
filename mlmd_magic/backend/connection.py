"""Opening an MLMD ``MetadataStore`` from a :class:`~mlmd_magic.backend.uri.StoreURI`, one class per backend.

For MySQL/MariaDB the server is checked with pymysql first, so a wrong password, an
unknown host, a refused port or an account MLMD cannot log in with each get a message
that says what to do instead of MLMD's ``mysql_real_connect failed: errno: , error: ...``.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import StoreConnectionError
from . import secrets as _secrets
from .storeguard import is_damaged, open_failure, read_only_reason, sqlite_filename
from .uri import PASSWORD_ENV, StoreURI

_DB_NAME_RE = re.compile(r"[A-Za-z0-9_$-]{1,64}")  # fullmatch: "$" would accept a final newline
_RETRYABLE_OPEN = ("locked", "busy", "already exists", "aborted", "unique constraint", "subset of tables",
                   "retry the connection", "retry connection", "deadlock", "duplicate")


def mysql_password(uri: StoreURI) -> str | None:
    """The password to use: from the URI, ``$MLMD_MAGIC_MYSQL_PASSWORD`` or ``~/.my.cnf``."""
    if uri.password is not None:
        return uri.password
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        _secrets.remember(from_env)
        return from_env
    cnf = os.path.expanduser("~/.my.cnf")
    if os.path.isfile(cnf):
        parser = configparser.ConfigParser(allow_no_value=True, strict=False, interpolation=None)
        try:
            parser.read(cnf)
        except configparser.Error:
            return None
        if parser.has_option("client", "password"):
            value = (parser.get("client", "password") or "").strip().strip("'\"")
            _secrets.remember(value)
            return value
    return None


@dataclass(frozen=True)
class SideStorage:
    """Where a tool that keeps its own tables (Optuna's studies) stores them beside the MLMD store.

    ``kind`` is ``"journal"`` (``path``: Optuna's journal file beside a SQLite store, ``label``
    the same path: what ``optuna-dashboard`` takes) or ``"sqlalchemy"``
    (``url``: a database next to the store's on the same MySQL server; the password is in
    ``connect_args`` only — never show them).
    """

    kind: str
    label: str
    path: str = ""
    url: str = dataclasses.field(default="", repr=False)
    connect_args: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


class Backend:
    """What differs between the kinds of store: opening one, and the defaults that depend on it.

    One subclass per URI scheme (:class:`MemoryBackend`, :class:`SqliteBackend`,
    :class:`MySQLBackend`); :func:`backend_for` picks it.
    """

    scheme = ""
    #: whether a lost connection can be opened again (a restarted server); an in-memory or
    #: file store cannot lose its connection
    can_reconnect = False

    def __init__(self, uri: StoreURI) -> None:
        self.uri = uri
        self._runs_root = os.path.abspath("mlmd-magic-runs")

    def config(self) -> Any:
        """The ``ConnectionConfig`` MLMD opens (after any checks this backend makes first)."""
        raise NotImplementedError

    def open(self) -> Any:
        """A connected ``ml_metadata`` ``MetadataStore``.

        Raises
        ------
        StoreConnectionError
            When the store cannot be opened; the message says why and what to do.
        """
        from ml_metadata.metadata_store import metadata_store

        _secrets.install_log_filter()
        config = self.config()
        try:
            return _create_with_retries(metadata_store, config, self)
        finally:
            self.after_open()

    def explain(self, exc: Exception) -> StoreConnectionError:
        """MLMD's error on opening, as a message that says what to do."""
        return _explain_open_failure(self.uri, exc)

    def after_open(self) -> None:
        """Release what :meth:`config` held while MLMD opened the store."""

    def default_alias(self) -> str:
        """The name ``%mlmd connect`` gives this store when none is asked for."""
        return "store"

    def record_lock(self, key: str) -> contextlib.AbstractContextManager[bool]:
        """Held while a new version of record ``key`` is numbered and written, so that writers of
        one name take turns instead of racing (the unique ``NAME@N`` keeps it correct anyway).
        Gives whether a lock is held (then the newest version is worth checking before writing)."""
        return contextlib.nullcontext(False)

    def close(self) -> None:
        """Release what the backend holds besides MLMD's connection."""

    def runs_root(self) -> str:
        """Where run folders go by default: ``mlmd-magic-runs`` in the folder current when the
        store was opened (a later ``%cd`` moves nothing)."""
        return self._runs_root

    def password(self) -> str | None:
        """The password a worker process needs to open this store too (MySQL only), else None."""
        return mysql_password(self.uri) if self.scheme == "mysql" else None

    def side_storage(self, suffix: str) -> SideStorage | None:
        """Storage for another tool's tables beside this store (None for an in-memory store).

        Raises
        ------
        StoreConnectionError
            When that storage cannot be created (e.g. the account may not create the database).
        """
        return None

    def worker_uri(self) -> str:
        """The URI another process opens this very store with, less any password: a SQLite
        file's absolute path as fixed when the store was opened (whatever the folder current
        now), each part percent-encoded once (see :meth:`StoreURI.quoted`)."""
        return self.uri.quoted()


class MemoryBackend(Backend):
    """``memory://``: a fresh in-memory store (tests, examples)."""

    scheme = "memory"

    def config(self) -> Any:
        from ml_metadata.proto import metadata_store_pb2

        config = metadata_store_pb2.ConnectionConfig()
        config.fake_database.SetInParent()
        return config

    def default_alias(self) -> str:
        return "memory"


class SqliteBackend(Backend):
    """``sqlite:///path``: one file, created if missing (then in write-ahead-log mode).

    A relative path names the file of the folder current when the backend is made (when the
    store is opened), for the store's whole life: a later ``%cd`` or ``os.chdir`` must not
    move where it, its run folders, its sweeps' studies or the workers it starts record.
    """

    scheme = "sqlite"

    def __init__(self, uri: StoreURI) -> None:
        super().__init__(uri)
        #: the store's file, absolute, fixed now
        self.path = os.path.abspath(uri.path)
        wal = uri.wal
        # A file that exists with something in it is someone's store (a TFX pipeline's, one on a
        # network file system where WAL is unsafe): its journal mode is its owner's choice. An
        # empty one was made for the store (tempfile, touch) and holds nothing to change.
        self._switch_wal = wal if wal is not None else not _has_content(self.path)

    def config(self) -> Any:
        from ml_metadata.proto import metadata_store_pb2

        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            raise StoreConnectionError(
                f"cannot create the SQLite store {self.uri.path!r}: folder {parent!r} does not exist; "
                "create it first or choose another path"
            )
        config = metadata_store_pb2.ConnectionConfig()
        if read_only_reason(self.path):  # reads only, recording nothing (see storeguard)
            config.sqlite.filename_uri = sqlite_filename(self.path, read_only=True)
            config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        else:
            config.sqlite.filename_uri = self.path
            config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
            if self._switch_wal:
                self._switch_wal = False  # once: a later open (a second connection) finds MLMD holding the file
                enable_wal(self.path)
        return config

    def default_alias(self) -> str:
        return os.path.splitext(os.path.basename(self.uri.path))[0]

    def runs_root(self) -> str:
        return os.path.join(os.path.dirname(self.path), "mlmd-magic-runs")

    def side_storage(self, suffix: str) -> SideStorage:
        path = f"{self.path}.{suffix}.journal"  # was FILE.SUFFIX, a SQLite file (see store.sweeps)
        return SideStorage("journal", label=path, path=path)

    def worker_uri(self) -> str:
        return dataclasses.replace(self.uri, path=self.path).quoted()


class MySQLBackend(Backend):
    """``mysql://user@host/db``: a shared server; the database is created if missing.

    The server is checked with pymysql first, so a wrong password, an unknown host, a refused
    port or an account MLMD cannot log in with each get a message that says what to do; a
    named lock lets processes opening a fresh database create MLMD's schema one at a time.
    """

    scheme = "mysql"
    can_reconnect = True

    def __init__(self, uri: StoreURI) -> None:
        super().__init__(uri)
        self._guard: Any = None
        self._locks: Any = None  # a pymysql connection for named locks, opened on first use

    @contextlib.contextmanager
    def record_lock(self, key: str) -> Iterator[bool]:
        """A MySQL named lock (``GET_LOCK``) per record name: concurrent writers of one record
        queue for it in turn; without it, under heavy contention, a writer can lose the race for
        the next version number hundreds of times in a row. The lock only orders writers — the
        store's unique names keep versions right without it, so a lock that cannot be had (a
        restarting server) is skipped, not waited for."""
        name = "mlmd_magic:" + hashlib.sha1(f"{self.uri.database}\0{key}".encode()).hexdigest()
        held = False
        try:
            held = self._lock_call("SELECT GET_LOCK(%s, 60)", name) == 1
        except Exception:
            self._drop_lock_connection()
        try:
            yield held
        finally:
            if held:
                try:
                    self._lock_call("SELECT RELEASE_LOCK(%s)", name)
                except Exception:
                    self._drop_lock_connection()  # a lost connection released its locks

    def _lock_call(self, sql: str, name: str) -> Any:
        import pymysql

        if self._locks is None:
            self._locks = pymysql.connect(**_pymysql_params(self.uri, mysql_password(self.uri)))
        with self._locks.cursor() as cur:
            cur.execute(sql, (name,))
            row = cur.fetchone()
        return row[0] if row else None

    def _drop_lock_connection(self) -> None:
        if self._locks is not None:
            with contextlib.suppress(Exception):
                self._locks.close()
            self._locks = None

    def close(self) -> None:
        self._drop_lock_connection()

    def config(self) -> Any:
        from ml_metadata.proto import metadata_store_pb2

        uri = self.uri
        password = mysql_password(uri)
        self._guard = _check_mysql_server(uri, password)
        config = metadata_store_pb2.ConnectionConfig()
        config.mysql.host = uri.host
        config.mysql.port = uri.port
        config.mysql.database = uri.database
        config.mysql.user = uri.user
        config.mysql.skip_db_creation = True  # created (or checked) by _check_mysql_server
        if password:
            config.mysql.password = password
        opts = uri.option_dict
        if "socket" in opts:
            config.mysql.socket = opts["socket"]
        for key, field in (("ssl_ca", "ca"), ("ssl_cert", "cert"), ("ssl_key", "key"),
                           ("ssl_capath", "capath"), ("ssl_cipher", "cipher")):
            if key in opts:
                setattr(config.mysql.ssl_options, field, opts[key])
        if "ssl_verify" in opts:
            config.mysql.ssl_options.verify_server_cert = opts["ssl_verify"].lower() in ("1", "true", "yes")
        return config

    def after_open(self) -> None:
        if self._guard is not None:
            self._guard.close()  # releases the initialisation lock
            self._guard = None

    def default_alias(self) -> str:
        return self.uri.database

    def side_storage(self, suffix: str) -> SideStorage:
        """A database named ``DATABASE_SUFFIX`` on the store's server, created if missing, reached
        through SQLAlchemy with PyMySQL and the store's own account."""
        import pymysql
        from sqlalchemy.engine import URL

        uri = self.uri
        name = f"{uri.database}_{suffix}"
        if len(name) > 64:  # MySQL's limit: keep it unique with a hash of the whole name
            name = f"{name[:51]}_{hashlib.sha1(name.encode()).hexdigest()[:12]}"
        password = mysql_password(uri)
        params = _pymysql_params(uri, password)
        try:
            conn = pymysql.connect(**params)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")  # not one of MLMD's tables
            finally:
                conn.close()
        except pymysql.MySQLError as exc:
            raise StoreConnectionError(
                f"cannot create database {name!r} on {uri.host}:{uri.port} for the sweeps' studies: "
                f"{_secrets.redact(str(exc))}; grant {uri.user!r} CREATE on it, or create it") from None
        # the password travels in connect_args (as UTF-8 bytes, as MLMD sends it), never in the URL
        url = URL.create("mysql+pymysql", username=uri.user, host=uri.host, port=uri.port, database=name,
                         query={"charset": "utf8mb4"})
        connect_args = {k: v for k, v in params.items() if k in ("unix_socket", "ssl", "password") and v}
        label = f"mysql+pymysql://{uri.user}@{uri.host}:{uri.port}/{name}"  # SQLAlchemy's URL, less the password
        return SideStorage("sqlalchemy", label=label, url=url.render_as_string(),
                           connect_args=connect_args)

    def explain(self, exc: Exception) -> StoreConnectionError:
        lowered = str(exc).lower()
        if "caching_sha2" in lowered or "authentication plugin" in lowered:
            return StoreConnectionError(_caching_sha2_advice(self.uri))
        return super().explain(exc)


_BACKENDS: dict[str, type[Backend]] = {"memory": MemoryBackend, "sqlite": SqliteBackend, "mysql": MySQLBackend}


def backend_for(uri: StoreURI) -> Backend:
    """The :class:`Backend` of ``uri``'s scheme."""
    return _BACKENDS[uri.scheme](uri)


def open_store(uri: StoreURI) -> Any:
    """Return a connected ``ml_metadata`` ``MetadataStore`` for ``uri`` (see :meth:`Backend.open`)."""
    return backend_for(uri).open()


def _create_with_retries(metadata_store: Any, config: Any, backend: Backend) -> Any:
    last: Exception | None = None
    # Processes opening a fresh store at once race on MLMD's schema creation (MySQL ones are
    # serialised by a named lock, SQLite ones are not); the loser sees a locked database, a
    # half-made schema or a duplicate row, and simply tries again.
    for attempt in range(60):
        try:
            return metadata_store.MetadataStore(config)
        except Exception as exc:  # MLMD raises its StatusError subclasses and RuntimeError
            last = exc
            # a damaged file may read as a half-made schema ("retry the connection"): never retried
            if is_damaged(str(exc)) or not any(word in str(exc).lower() for word in _RETRYABLE_OPEN):
                break
            time.sleep(min(0.05 * (attempt + 1), 0.5))
    assert last is not None
    raise backend.explain(last) from None


_WAL_SET: set[str] = set()


def _has_content(path: str) -> bool:
    """Whether ``path`` is a file with something in it (a store someone made before)."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def enable_wal(path: str) -> None:
    """Put a SQLite store in write-ahead-log mode (kept in the file), so that readers never
    block writers and several kernels can share it; MLMD itself never asks for WAL.

    Called for a store that connecting creates, or one opened with ``?wal=1`` (see
    :class:`SqliteBackend`): WAL changes the file for every tool that opens it, and is unsafe
    on a network file system, so an existing store is never switched unasked.

    Python's ``sqlite3`` is a second copy of SQLite beside MLMD's: POSIX locks are per
    process, so closing its connection would drop locks MLMD holds on the same file. It is
    therefore used only on a file that no MLMD connection of this process has opened, and
    the journal mode is read from the file header (bytes 18-19 are 2 in WAL mode) first.
    """
    import sqlite3

    if path in _WAL_SET:
        return
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
        if len(header) == 20 and header[18] == 2 and header[19] == 2:
            _WAL_SET.add(path)
            return
    except OSError:
        pass  # a new file: created below
    try:
        conn = sqlite3.connect(path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
    except sqlite3.Error:
        return  # not a SQLite file (MLMD reports it), or a file system without WAL support
    _WAL_SET.add(path)


def _explain_open_failure(uri: StoreURI, exc: Exception) -> StoreConnectionError:
    damaged = open_failure(uri.masked(), exc)
    if damaged is not None:
        return damaged
    detail = _secrets.redact(str(exc)).strip()
    lowered = detail.lower()
    newer = re.search(r"database version (\d+) is greater than library version (\d+)", detail)
    if newer:
        return StoreConnectionError(
            f"the store {uri.masked()} has MLMD schema version {newer.group(1)}, newer than the "
            f"ml-metadata installed here understands (schema version {newer.group(2)}): it was written by a "
            "newer ml-metadata. Open it with that version (pip install -U ml-metadata mlmd-magic); nothing "
            "was changed in the store"
        )
    if "schema version" in lowered or "migration" in lowered or "older than" in lowered:
        return StoreConnectionError(
            f"the store {uri.masked()} was written by an older ml-metadata schema version ({detail}); "
            "open it with the ml-metadata version that wrote it, or back it up and upgrade it with "
            "ml_metadata's MetadataStore(config, enable_upgrade_migration=True)"
        )
    return StoreConnectionError(f"could not open the store {uri.masked()}: {detail}")


def _caching_sha2_advice(uri: StoreURI) -> str:
    return (
        f"MySQL account {uri.user!r} logs in with caching_sha2_password, which ml-metadata "
        "cannot use; ask your DBA to run: ALTER USER "
        f"'{uri.user}'@'%' IDENTIFIED WITH mysql_native_password BY '<password>' "
        "(or use a MariaDB server, whose default plugin works)"
    )


def _check_mysql_server(uri: StoreURI, password: str | None) -> Any:
    """Log in with pymysql, create the database if needed, and explain any failure.

    Returns the open pymysql connection holding a named lock for this database, so that
    processes opening a fresh database at once let MLMD create its schema one at a time;
    closing the connection releases the lock.
    """
    import pymysql

    if not _DB_NAME_RE.fullmatch(uri.database):
        raise StoreConnectionError(
            f"invalid MySQL database name {uri.database!r}: use 1-64 letters, digits, '_', '$' or '-'"
        )
    opts = uri.option_dict
    if "socket" not in opts:
        try:
            socket.getaddrinfo(uri.host, uri.port)
        except socket.gaierror:
            raise StoreConnectionError(
                f"unknown MySQL host {uri.host!r}: check the host name in {uri.masked()}"
            ) from None
    try:
        conn = pymysql.connect(**_pymysql_params(uri, password))
    except pymysql.err.OperationalError as exc:
        raise StoreConnectionError(_explain_pymysql(uri, exc, password)) from None
    except Exception as exc:  # SSL errors, protocol errors
        raise StoreConnectionError(
            f"could not connect to MySQL at {uri.masked()}: {_secrets.redact(str(exc))}"
        ) from None
    try:
        with conn.cursor() as cur:
            plugin = _account_plugin(cur)
            if plugin in ("caching_sha2_password", "sha256_password"):
                raise StoreConnectionError(_caching_sha2_advice(uri))
            try:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{uri.database}`")
            except pymysql.err.MySQLError as exc:
                cur.execute("SHOW DATABASES LIKE %s", (uri.database,))
                if not cur.fetchall():
                    raise StoreConnectionError(
                        f"database {uri.database!r} does not exist and account {uri.user!r} may not "
                        f"create it ({_secrets.redact(str(exc.args[-1]))}); ask your DBA to create it or "
                        "to GRANT CREATE on it, or use a database you own"
                    ) from None
            lock = "mlmd_magic_init_" + hashlib.sha1(uri.database.encode()).hexdigest()[:40]
            cur.execute("SELECT GET_LOCK(%s, 120)", (lock,))
    except BaseException:
        conn.close()
        raise
    return conn


def _pymysql_params(uri: StoreURI, password: str | None) -> dict[str, Any]:
    """pymysql's connection arguments for ``uri`` (without a database)."""
    opts = uri.option_dict
    ssl: dict[str, Any] | None = None
    ssl_keys = {"ssl_ca": "ca", "ssl_cert": "cert", "ssl_key": "key", "ssl_capath": "capath", "ssl_cipher": "cipher"}
    if any(k in opts for k in ssl_keys):
        ssl = {v: opts[k] for k, v in ssl_keys.items() if k in opts}
        if "ssl_verify" in opts:
            ssl["check_hostname"] = opts["ssl_verify"].lower() in ("1", "true", "yes")
    # pymysql would encode a str password as Latin-1; the server and MLMD's client use UTF-8
    return {"host": uri.host, "port": uri.port, "user": uri.user, "password": (password or "").encode("utf-8"),
            "unix_socket": opts.get("socket"), "ssl": ssl, "connect_timeout": 10}


def _account_plugin(cur: Any) -> str | None:
    """The authentication plugin of the current account, when the server tells us."""
    try:
        cur.execute(
            "SELECT plugin FROM mysql.user WHERE CONCAT(user, '@', host) = CURRENT_USER()"
        )
        row = cur.fetchone()
        return str(row[0]) if row else None
    except Exception:  # no privilege on mysql.user: MLMD's own error is translated later
        return None


def _explain_pymysql(uri: StoreURI, exc: Exception, password: str | None) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = _secrets.redact(str(exc.args[-1] if exc.args else exc))
    where = f"{uri.host}:{uri.port}"
    if code == 1045:
        source = (
            "the URI" if uri.password is not None
            else f"${PASSWORD_ENV}" if os.environ.get(PASSWORD_ENV) is not None
            else "~/.my.cnf" if password is not None
            else "nowhere (no password given)"
        )
        return (
            f"MySQL at {where} refused user {uri.user!r}: wrong user name or password "
            f"(password taken from {source}); set {PASSWORD_ENV} or the [client] password in "
            "~/.my.cnf, rather than writing it into the notebook"
        )
    if code in (1698, 1251) or ("auth" in text.lower() and "plugin" in text.lower()):
        return _caching_sha2_advice(uri)
    if code == 2003:
        if "refused" in text.lower():
            return (
                f"nothing accepts connections at {where} (connection refused): is the MySQL/MariaDB "
                "server running, and is the port right?"
            )
        if "timed out" in text.lower():
            return f"connecting to MySQL at {where} timed out: check the host, port and firewall"
        return f"cannot reach MySQL at {where}: {text}"
    return f"MySQL at {where} refused the connection: {text}"
