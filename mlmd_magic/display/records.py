"""The HTML of a record (:class:`~mlmd_magic.core.record.Record`) and of a diff
(:class:`~mlmd_magic.core.values.Diff`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.values import KIND_TYPES, flatten, item_changes, show_value
from .html import Html, esc, table

if TYPE_CHECKING:
    from ..core.record import Record
    from ..core.values import Change, Diff


def record_html(record: Record) -> str:
    """A few lines (the record's summary lines), and the whole record folded: hyperparameters
    first (overridden values in bold, marked), then the rest; a data source's feature schema
    folded away again."""
    gist = table(record.summary_lines(), cls="mlmd-magic-gist")
    return (
        f"<div class='mlmd-magic-record'><b>{KIND_TYPES[record.kind]} {esc(record.ref)}</b> "
        f"<i>({esc(record.summary())})</i>{gist}"
        f"<details class='mlmd-magic-all'><summary>all {len(flatten(record.data))} fields</summary>"
        f"{_full_html(record)}</details></div>"
    )


def _code(key: Any) -> Html:
    return Html(f"<code>{esc(key)}</code>")


def _full_html(record: Record) -> str:
    data = dict(record.data)
    extra = record.extra
    overrides = set(flatten(extra.get("overrides") or {})) if extra.get("overrides") else set()
    rows: list[list[Any]] = []
    params = data.pop("params", None)
    if isinstance(params, dict):
        note = " <small>(✎ overridden by this experiment)</small>" if overrides else ""
        rows.append([Html(f"<th colspan='2'>hyperparameters{note}</th>")])
        for key, value in flatten(params).items():
            text = esc(show_value(value))
            rows.append([_code(key), Html(f"<b>{text}</b> ✎" if key in overrides else text)])
    folded = []
    source = data.get("datasource")
    if isinstance(source, dict) and "features" in source:
        data["datasource"] = {k: v for k, v in source.items() if k != "features"}
        folded.append(("data source features", source["features"]))
    if record.kind == "datasources" and "features" in data:
        folded.append(("features", data.pop("features")))
    shown = {**{k: v for k, v in extra.items() if v and k != "overrides"}, **flatten(data)}
    rows += [[_code(k), show_value(v)] for k, v in shown.items()]
    details = "".join(
        f"<details><summary>{esc(title)} ({len(value)})</summary>"
        + table([[_code(k), show_value(v)] for k, v in (value.items() if isinstance(value, dict) else [])])
        + "</details>" for title, value in folded)
    return table(rows) + details


def diff_html(diff: Diff) -> str:
    """Key by key, the two values side by side; a list of mappings item by item."""
    if not diff.changes:
        return f"<p>{esc(diff.a)} and {esc(diff.b)} are identical</p>"

    def sides(change: Change) -> list[Any]:
        items = item_changes(change)
        if items is None:
            return [show_value(change.a), show_value(change.b)]
        gone = "<br>".join(esc(i) for i in items if i.startswith("-"))
        new = "<br>".join(esc(i) for i in items if i.startswith(("+", "(")))
        return [Html(gone), Html(new)]

    return table([[_code(c.key), *sides(c)] for c in diff.changes], head=["key", diff.a, diff.b],
                 cls="mlmd-magic-diff")
