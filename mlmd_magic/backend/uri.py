"""Parsing store URIs: ``sqlite:///path``, ``memory://`` and ``mysql://user@host/db``.

A URI is percent-decoded once, here; :meth:`StoreURI.quoted` encodes each part once again, so
the URI a worker process is given names the very file or database this one opened, whatever
characters its path, user name or options hold (a folder named ``s3%41`` stays ``s3%41``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from ..errors import StoreConnectionError
from . import secrets as _secrets

DEFAULT_URI = "sqlite:///mlmd.sqlite"
URI_ENV = "MLMD_MAGIC_URI"
PASSWORD_ENV = "MLMD_MAGIC_MYSQL_PASSWORD"
MYSQL_QUERY_KEYS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_verify", "socket")
SQLITE_QUERY_KEYS = ("wal",)
_YES, _NO = ("1", "true", "yes"), ("0", "false", "no")
_FORMS = (
    "use sqlite:///path/to/file.sqlite[?wal=1], memory:// or "
    "mysql://user@host[:port]/database (password from MLMD_MAGIC_MYSQL_PASSWORD or ~/.my.cnf)"
)
_ENCODE = (
    "URL-encode special characters in the password ('#' as %23, '?' as %3F, '/' as %2F, '@' as %40, "
    "'%' as %25: urllib.parse.quote(password, safe='')), or better leave it out of the URI and set "
    f"{PASSWORD_ENV}"
)


@dataclass(frozen=True)
class StoreURI:
    """A parsed store URI. ``password`` never appears in ``repr``, :meth:`masked` or :meth:`quoted`.

    ``path`` (SQLite) is as given: a relative one is made absolute by the backend when the
    store is opened. ``options`` are the query's ``key=value`` pairs, decoded.
    """

    scheme: str
    path: str = ""
    user: str = ""
    password: str | None = field(default=None, repr=False, compare=False)
    host: str = ""
    port: int = 3306
    database: str = ""
    options: tuple[tuple[str, str], ...] = ()

    def masked(self) -> str:
        """The URI as users may see it: any password replaced by ``***``, nothing percent-encoded
        (for showing, not for parsing again: see :meth:`quoted`)."""
        if self.scheme == "memory":
            return "memory://"
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"
        cred = self.user + (":" + _secrets.MASK if self.password else "")
        query = "&".join(f"{k}={v}" for k, v in self.options)
        return f"mysql://{cred}@{self.host}:{self.port}/{self.database}" + (f"?{query}" if query else "")

    def quoted(self) -> str:
        """The URI that :func:`parse_uri` reads back as this one, less the password: each part
        percent-encoded once, as parsing decodes it once. What another process is given (a
        worker takes the password from its stdin or environment, never from a command line).

        >>> parse_uri("sqlite:////data/s3%2541 x/mlmd.sqlite?wal=1").quoted()
        'sqlite:////data/s3%2541%20x/mlmd.sqlite?wal=1'
        >>> parse_uri("mysql://a%40b@[::1]/nipt").quoted()
        'mysql://a%40b@[::1]:3306/nipt'
        """
        query = urlencode(self.options, quote_via=quote, safe="/", errors="surrogateescape")
        query = f"?{query}" if query else ""
        if self.scheme == "memory":
            return "memory://"
        if self.scheme == "sqlite":
            return f"sqlite:///{_quote(self.path, safe='/')}{query}"
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"mysql://{_quote(self.user, safe='')}@{host}:{self.port}/{_quote(self.database, safe='')}{query}"

    @property
    def wal(self) -> bool | None:
        """A SQLite URI's ``wal`` option: True (``wal=1``: switch the store to write-ahead-log
        mode), False (``wal=0``: never switch it) or None (not given: a store created by
        connecting is switched, an existing one left as it is)."""
        value = self.option_dict.get("wal")
        return None if value is None else value.lower() in _YES

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
    >>> parse_uri("sqlite:///my%20runs/s3%2541.sqlite?wal=1").path
    'my runs/s3%41.sqlite'

    A SQLite URI takes one option: ``?wal=1`` switches the store to write-ahead-log mode
    (readers never block the writer, so several kernels share it well) even when it exists
    already; ``?wal=0`` never switches it, not even a store created by connecting (a file on a
    network file system, where WAL is unsafe). Without it, only a store created by connecting
    is switched. Percent-encode ``%`` and ``?`` in the path (``%25``, ``%3F``).
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
        rest, _, query = rest.partition("?")
        path = rest[1:] if rest.startswith("/") else rest
        path = unquote(path, errors="surrogateescape")  # a file name's undecodable bytes as os.fsdecode has them
        if not path:
            raise StoreConnectionError(f"sqlite URI has no file name; {_FORMS}")
        options = _query_options(query, SQLITE_QUERY_KEYS, "SQLite", " (write '?' in a file name as %3F)")
        wal = dict(options).get("wal")
        if wal is not None and wal.lower() not in _YES + _NO:
            raise StoreConnectionError(
                f"wal={wal} in the SQLite URI: write wal=1 (switch the store to write-ahead-log mode) or wal=0 "
                "(never switch it, e.g. on a network file system)"
            )
        return StoreURI("sqlite", path=path, options=options)
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
        options = _query_options(parts.query, MYSQL_QUERY_KEYS, "MySQL")
        password = unquote(parts.password) if parts.password is not None else None
        _secrets.remember(password)
        return StoreURI(
            "mysql",
            user=unquote(parts.username or ""),
            password=password,
            host=parts.hostname,
            port=port,
            database=unquote(database),
            options=options,
        )
    raise StoreConnectionError(f"unsupported store URI scheme {scheme!r}; {_FORMS}")


def _query_options(query: str, known: tuple[str, ...], what: str, hint: str = "") -> tuple[tuple[str, str], ...]:
    """A URI query's ``key=value`` pairs, each decoded once (the last of a repeated key wins)."""
    options: list[tuple[str, str]] = []
    for key, values in parse_qs(query, keep_blank_values=True, errors="surrogateescape").items():
        if key not in known:
            raise StoreConnectionError(
                f"unknown option {key!r} in the {what} URI; known options: {', '.join(known)}{hint}"
            )
        options.append((key, values[-1]))
    return tuple(options)


def _quote(text: str, safe: str) -> str:
    """``text`` percent-encoded once (UTF-8; undecodable file-name bytes as they were)."""
    return quote(text, safe=safe, errors="surrogateescape")


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
