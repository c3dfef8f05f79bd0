"""The ``Record`` view: one version of a data source, scenario or experiment, as the library returns it."""

from __future__ import annotations

import copy
import datetime as _dt
import html
import json
import pprint
from dataclasses import dataclass, field
from typing import Any

from .values import KIND_TYPES, flatten, show_value

__all__ = ["Record"]


@dataclass(frozen=True)
class Record:
    """One version of a data source, scenario or experiment, as returned by the library.

    ``data`` is the plain, JSON-serialisable dict (the one ``get_*`` returns); ``status``
    says what the call did: ``"created"`` a new version, ``"unchanged"`` found an
    identical existing one, ``"fetched"`` read it.
    """

    kind: str
    name: str
    version: int
    id: int
    created: _dt.datetime
    data: dict[str, Any] = field(repr=False)
    status: str = "fetched"
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of :attr:`data`."""
        return copy.deepcopy(self.data)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def summary(self) -> str:
        """What the call did: ``created version N``, ``unchanged: identical to version N`` or ``version N``."""
        if self.status == "created":
            return f"created version {self.version}"
        if self.status == "unchanged":
            return f"unchanged: identical to version {self.version}"
        return f"version {self.version}"

    def __repr__(self) -> str:
        body = pprint.pformat(self.data, width=100, sort_dicts=False)
        extra = "".join(f"\n{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in self.extra.items() if v)
        return f"{KIND_TYPES[self.kind]} {self.ref} ({self.summary()}){extra}\n{body}"

    def _repr_html_(self) -> str:
        shown = {**{k: v for k, v in self.extra.items() if v}, **flatten(self.data)}
        rows = "".join(
            f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(show_value(v))}</td></tr>"
            for k, v in shown.items()
        )
        return (
            f"<div class='mlmd-magic-record'><b>{KIND_TYPES[self.kind]} {html.escape(self.ref)}</b> "
            f"<i>({html.escape(self.summary())})</i><table>{rows}</table></div>"
        )
