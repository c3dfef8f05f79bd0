"""The open stores of a session and which one is current (one registry per process).

Magics, widgets and the fluent helpers all find "the current store" here; tests call
:meth:`ConnectionRegistry.reset`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.names import NAME_RULE, check_name
from ..errors import InvalidNameError, NoConnectionError
from ..store import Store, StoreOptions, connect


@dataclass(frozen=True)
class Connection:
    alias: str
    store: Store


class ConnectionRegistry:
    """Stores opened in this session, by alias, and the current one."""

    def __init__(self) -> None:
        self._stores: dict[str, Store] = {}
        self._current: str | None = None
        #: settings shared by every store opened here (the magics' traitlets change them)
        self.options = StoreOptions()

    def connect(self, uri: str | None = None, alias: str | None = None) -> Connection:
        """Open ``uri`` (see :func:`mlmd_magic.connect`) under ``alias`` and make it current."""
        if alias is not None:
            try:
                check_name(alias, "alias")
            except InvalidNameError:
                raise InvalidNameError(f"invalid alias {alias!r}: {NAME_RULE}") from None
        store = connect(uri, options=self.options)
        alias = alias or self._default_alias(store)
        old = self._stores.get(alias)
        if old is not None and old is not store:
            old.close()
        self._stores[alias] = store
        self._current = alias
        return Connection(alias, store)

    def _default_alias(self, store: Store) -> str:
        base = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in store.default_alias)
        base = base.lstrip("._-") or "store"
        alias, n = base, 1
        while alias in self._stores and self._stores[alias].uri != store.uri:
            n += 1
            alias = f"{base}-{n}"
        return alias

    def current(self) -> Connection:
        """The current connection.

        Raises
        ------
        NoConnectionError
            When nothing is connected; the message says to connect first.
        """
        if self._current is None:
            raise NoConnectionError("no store is connected: run %mlmd connect [URI] first (or mlmd_magic.connect())")
        return Connection(self._current, self._stores[self._current])

    def use(self, alias: str) -> Connection:
        """Make the store opened as ``alias`` current."""
        if alias not in self._stores:
            known = ", ".join(sorted(self._stores)) or "none"
            raise NoConnectionError(f"no connection named {alias!r} (open: {known}); see %mlmd connections")
        self._current = alias
        return Connection(alias, self._stores[alias])

    def close(self, alias: str | None = None) -> str:
        """Close ``alias`` (default: the current store); returns the alias closed."""
        alias = alias or self.current().alias
        if alias not in self._stores:
            raise NoConnectionError(f"no connection named {alias!r}; see %mlmd connections")
        self._stores.pop(alias).close()
        if self._current == alias:
            self._current = next(iter(sorted(self._stores)), None)
        return alias

    def connections(self) -> list[tuple[str, str, bool]]:
        """``(alias, masked URI, is_current)`` for every open store."""
        return [(a, s.uri, a == self._current) for a, s in sorted(self._stores.items())]

    def reset(self) -> None:
        """Close everything (tests, ``%unload_ext``)."""
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        self._current = None
        self.options = StoreOptions()


REGISTRY = ConnectionRegistry()
