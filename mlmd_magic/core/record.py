"""The ``Record`` view: one version of a data source, scenario or experiment, as the library returns it."""

from __future__ import annotations

import copy
import datetime as _dt
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
    says what the call did: ``"created"`` a new version, ``"unchanged"`` found the latest
    version identical, ``"fetched"`` read it. A sweep's trial has ``trial``, its reference
    ``NAME@N~SWEEP@V#K`` (``version`` is then the base version's it varies).
    """

    kind: str
    name: str
    version: int
    id: int
    created: _dt.datetime
    data: dict[str, Any] = field(repr=False)
    status: str = "fetched"
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    trial: str = ""

    @property
    def ref(self) -> str:
        return self.trial or f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of :attr:`data`."""
        return copy.deepcopy(self.data)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def summary(self) -> str:
        """What the call did: ``created version N`` (``, the same as NAME@K`` when it equals an older
        version), ``unchanged: identical to version N`` or ``version N``."""
        if self.trial:
            return f"trial {self.trial.partition('~')[2]} of version {self.version}"
        same = self.extra.get("same_as")
        if self.status == "created":
            return f"created version {self.version}" + (f", the same as {same}" if same else "")
        if self.status == "unchanged":
            return f"unchanged: identical to version {self.version}"
        return f"version {self.version}" + (f" (the same as {same})" if same else "")

    def summary_lines(self) -> list[tuple[str, str]]:
        """The few lines a notebook shows of the record (the rest is folded): ``(label, text)``."""
        d, out, after = self.data, [], []
        if self.kind == "datasources":
            counts = d.get("examples") or {}
            splits = d.get("splits") or {}
            out.append(("data", f"{d.get('uri', '')} · {d.get('format', '')} · label {d.get('label', '')}"))
            out.append(("splits", ", ".join(f"{k} ({counts[k]})" if k in counts else str(k) for k in splits)))
            features = d.get("features") or {}
            if features:
                out.append(("features", f"{len(features)}: {_short(', '.join(map(str, features)))}"))
            if d.get("label_names"):
                out.append(("classes", ", ".join(map(str, d["label_names"]))))
        elif self.kind == "experiments":
            ds, sc = d.get("datasource") or {}, d.get("scenario") or {}
            # hyperparameters first: what a person reads an experiment for
            after.append(("from", f"data source {ds.get('name')}@{ds.get('version')} · scenario "
                                  f"{sc.get('name')}@{sc.get('version')} · model {sc.get('model', '')}"))
        elif self.kind == "scenarios":
            out.append(("model", str(d.get("model", ""))))
        elif self.kind == "policies":
            out.append(("checks", f"{len(d.get('thresholds') or [])} thresholds on {len(d.get('slices') or [])} "
                                  f"slice specs" + (f" · owner {d['owner']}" if d.get("owner") else "")))
        out += [(key, json.dumps(value, ensure_ascii=False)) for key, value in self.extra.items()
                if value and key != "description"]
        if isinstance(d.get("params"), dict):
            out.insert(0, ("params", _short(" · ".join(f"{k} {show_value(v)}"
                                                       for k, v in flatten(d["params"]).items()))))
        out += after
        description = d.get("description") or self.extra.get("description")
        if description:
            out.append(("description", _short(str(description))))
        return out

    def __repr__(self) -> str:
        """A few lines: what the call did and the record's gist; the whole record is
        :meth:`to_dict` (or :meth:`full_text`)."""
        lines = [f"{KIND_TYPES[self.kind]} {self.ref} ({self.summary()})"]
        lines += [f"  {label}: {value}" for label, value in self.summary_lines()]
        lines.append(f"  (all {len(flatten(self.data))} fields: .to_dict() or .full_text())")
        return "\n".join(lines)

    def full_text(self) -> str:
        """The whole record as text: the header, then every field."""
        body = pprint.pformat(self.data, width=100, sort_dicts=False)
        extra = "".join(f"\n{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in self.extra.items() if v)
        return f"{KIND_TYPES[self.kind]} {self.ref} ({self.summary()}){extra}\n{body}"

    def _repr_html_(self) -> str:
        """A few lines (see :meth:`summary_lines`), and the whole record folded: hyperparameters
        first (overridden values in bold, marked), then the rest; a data source's feature schema
        folded away again."""
        from ..display.records import record_html

        return record_html(self)


def _short(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
