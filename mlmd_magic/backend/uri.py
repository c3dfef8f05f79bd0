"""Parsing store URIs: ``sqlite:///path``, ``memory://`` and ``mysql://user@host/db``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from ..core import secrets as _secrets
from ..errors import StoreConnectionError

DEFAULT_URI = "sqlite:///mlmd.sqlite"
URI_ENV = "MLMD_MAGIC_URI"
PASSWORD_ENV = "MLMD_MAGIC_MYSQL_PASSWORD"
MYSQL_QUERY_KEYS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_verify", "socket")
_FORMS = (
    "use sqlite:///path/to/file.sqlite, memory:// or "
    "mysql://user@host[:port]/database (password from MLMD_MAGIC_MYSQL_PASSWORD or ~/.my.cnf)"
)


@dataclass(frozen=True)
class StoreURI:
    """A parsed store URI. ``password`` never appears in ``repr`` or :meth:`masked`."""

    scheme: str
    path: str = ""
    user: str = ""
    password: str | None = field(default=None, repr=False, compare=False)
    host: str = ""
    port: int = 3306
    database: str = ""
    options: tuple[tuple[str, str], ...] = ()

    def masked(self) -> str:
        """The URI as users may see it: any password replaced by ``***``."""
        if self.scheme == "memory":
            return "memory://"
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"
        cred = self.user + (":" + _secrets.MASK if self.password else "")
        query = "&".join(f"{k}={v}" for k, v in self.options)
        return f"mysql://{cred}@{self.host}:{self.port}/{self.database}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.masked()

    @property
    def option_dict(self) -> dict[str, str]:
        return dict(self.options)


def resolve_uri(uri: str | None) -> str:
    """The URI to use: the argument, else ``$MLMD_MAGIC_URI``, else the embedded SQLite file."""
    if uri:
        return uri
    return os.environ.get(URI_ENV) or DEFAULT_URI


def parse_uri(uri: str) -> StoreURI:
    """Parse a store URI; raise :class:`StoreConnectionError` with the accepted forms.

    >>> parse_uri("mysql://alice:pw@db.example/nipt").masked()
    'mysql://alice:***@db.example:3306/nipt'
    >>> parse_uri("sqlite:////tmp/x.sqlite").path
    '/tmp/x.sqlite'
    >>> parse_uri("sqlite:///mlmd.sqlite").path
    'mlmd.sqlite'
    """
    if not isinstance(uri, str) or "://" not in uri:
        raise StoreConnectionError(f"not a store URI: {_secrets.redact(str(uri))!r}; {_FORMS}")
    scheme, _, rest = uri.partition("://")
    scheme = scheme.lower()
    if scheme == "memory":
        if rest.strip("/"):
            raise StoreConnectionError("memory:// takes no path; it opens a fresh in-memory store")
        return StoreURI("memory")
    if scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative.sqlite, sqlite:////absolute/path.sqlite
        path = rest[1:] if rest.startswith("/") else rest
        path = unquote(path)
        if not path:
            raise StoreConnectionError(f"sqlite URI has no file name; {_FORMS}")
        return StoreURI("sqlite", path=path)
    if scheme in ("mysql", "mariadb"):
        parts = urlsplit("mysql://" + rest)
        try:
            port = parts.port or 3306
        except ValueError as exc:
            raise StoreConnectionError(f"invalid port in {parse_safe(uri)!r}: {exc}") from None
        database = parts.path.lstrip("/")
        if not parts.hostname or not database:
            raise StoreConnectionError(
                f"incomplete MySQL URI {parse_safe(uri)!r}: it needs a host and a database, "
                "e.g. mysql://alice@127.0.0.1:3306/nipt_t21"
            )
        options: list[tuple[str, str]] = []
        for key, values in parse_qs(parts.query, keep_blank_values=True).items():
            if key not in MYSQL_QUERY_KEYS:
                raise StoreConnectionError(
                    f"unknown option {key!r} in the MySQL URI; known options: {', '.join(MYSQL_QUERY_KEYS)}"
                )
            options.append((key, values[-1]))
        password = unquote(parts.password) if parts.password is not None else None
        _secrets.remember(password)
        return StoreURI(
            "mysql",
            user=unquote(parts.username or ""),
            password=password,
            host=parts.hostname,
            port=port,
            database=unquote(database),
            options=tuple(options),
        )
    raise StoreConnectionError(f"unsupported store URI scheme {scheme!r}; {_FORMS}")


def parse_safe(uri: str) -> str:
    """``uri`` with any password masked, for error messages."""
    return _secrets.redact(uri)
