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
_ENCODE = (
    "URL-encode special characters in the password ('#' as %23, '?' as %3F, '/' as %2F, '@' as %40, "
    "'%' as %25: urllib.parse.quote(password, safe='')), or better leave it out of the URI and set "
    f"{PASSWORD_ENV}"
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
        typo = isinstance(uri, str) and uri.partition(":")[0].lower() in ("mysql", "mariadb", "sqlite", "memory")
        hint = " (the scheme needs '://' after it)" if typo else ""
        raise StoreConnectionError(f"not a store URI: {parse_safe(str(uri))!r}{hint}; {_FORMS}")
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
        if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
            # '#', '?' or '/' in the password ended the host part early: what follows is no host
            raise StoreConnectionError(
                f"cannot read the MySQL URI {parse_safe(uri)!r}: an '@' comes after the host part, so the "
                f"password (or user name) seems to hold '#', '?', '/' or '@'; {_ENCODE}"
            )
        try:
            port = parts.port or 3306
        except ValueError:
            # Never show the parser's message: without a user@ part, the "port" may be a password.
            if "@" in parts.netloc:
                raise StoreConnectionError(
                    f"invalid port in {parse_safe(uri)!r}: write a number after the host, e.g. db.example:3306"
                ) from None
            raise StoreConnectionError(
                f"cannot read the MySQL URI 'mysql://{parts.netloc.partition(':')[0]}:{_secrets.MASK}...': the text "
                "after ':' is no port number. Write mysql://user:password@host[:port]/database; if that ':' "
                f"starts a password, {_ENCODE}"
            ) from None
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
    """``uri`` with any password masked, for error messages — even a URI that does not parse.

    Everything between the ``:`` after the user name and the last ``@`` is masked.

    >>> parse_safe("mysql:/u:Sekr3t@host/db")
    'mysql:/u:***@host/db'
    >>> parse_safe("mysql://u:Sekr3tHash#tail@host/db")
    'mysql://u:***@host/db'
    """
    text = _secrets.redact(uri)
    scheme, sep, rest = text.partition(":")
    if not sep or "@" not in rest:
        return text
    userinfo, _, host = rest.rpartition("@")
    slashes = len(userinfo) - len(userinfo.lstrip("/"))
    user, colon, _ = userinfo[slashes:].partition(":")
    return f"{scheme}:{'/' * slashes}{user}{':' + _secrets.MASK if colon else ''}@{host}"
