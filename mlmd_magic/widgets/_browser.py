"""The store browser: a tab per record kind, paged on the store side, with details and lineage."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from ..errors import MlmdMagicError
from ..store import Store
from ..store.lineage import Lineage

KINDS = ("experiments", "scenarios", "datasources", "runs", "models")
PAGE_SIZE = 20


def _where(text: str) -> str | None:
    """A filter box accepts the filter language, or plain text meaning "name contains"."""
    text = text.strip()
    if not text:
        return None
    if any(op in text for op in ("==", "!=", "<", ">", "~", "=")):
        return text
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"name ~ '*{escaped}*'"


class _Tab(w.VBox):
    def __init__(self, browser: StoreBrowser, kind: str, type_name: str | None = None) -> None:
        # type_name: another tool's artifact type (TFX's Examples, Model, ...), listed as artifacts
        self.browser, self.kind, self.type_name, self.page = browser, kind, type_name, 0
        self.filter = w.Text(placeholder="filter: text in the name, or e.g. epochs >= 5",
                             layout=w.Layout(width="420px"))
        self.prev = w.Button(description="◀", layout=w.Layout(width="40px"))
        self.next = w.Button(description="▶", layout=w.Layout(width="40px"))
        self.page_label = w.Label()
        self.rows = w.Select(options=[], rows=10, layout=w.Layout(width="620px"))
        self.details = w.HTML()
        # filtering, paging and selecting are the panel's own reads, not a person's action: unrecorded
        self.filter.observe(lambda _: self._quietly(self.load, 0), names="value")
        self.prev.on_click(lambda _: self._quietly(self.load, max(self.page - 1, 0)))
        self.next.on_click(lambda _: self._quietly(self.load, self.page + 1))
        self.rows.observe(lambda change: self._quietly(self.show, change["new"]), names="value")
        super().__init__([self.filter, w.HBox([self.prev, self.page_label, self.next]), self.rows, self.details])
        self.frame: Any = None

    def _quietly(self, method: Any, *args: Any) -> None:
        with self.browser.store.unrecorded():
            method(*args)

    def load(self, page: int) -> None:
        store = self.browser.store
        try:
            frame = store.list(self.kind, where=_where(self.filter.value), limit=PAGE_SIZE + 1,
                               offset=page * PAGE_SIZE, type=self.type_name)
        except MlmdMagicError as exc:
            self.details.value = f"<span style='color:crimson'>{html.escape(str(exc))}</span>"
            return
        self.page = page
        self.prev.disabled = page == 0
        self.next.disabled = len(frame) <= PAGE_SIZE
        self.frame = frame.head(PAGE_SIZE)
        self.page_label.value = f"page {page + 1}"
        self.rows.options = [(self._label(row), i) for i, row in enumerate(self.frame.to_dict("records"))]
        self.rows.value = None
        self.details.value = ""

    def _label(self, row: dict[str, Any]) -> str:
        if self.kind == "artifacts":
            return f"#{row['id']}  {row['producer'] or row['name']}  {row['uri']}"
        if self.kind == "runs":
            return f"run #{row['run']}  {row['experiment']}  {row['state']}  {row['metrics']}"
        if self.kind == "models":
            return f"model #{row['model']}  {row['name']}  {row['task']}"
        extra = row.get("model") or row.get("format") or ""
        return f"{row['name']}@{row['version']}  {extra}"

    def show(self, index: Any) -> None:
        if index is None or self.frame is None:
            return
        row = self.frame.to_dict("records")[index]
        store = self.browser.store
        lineage: Lineage | None
        try:
            if self.kind == "artifacts":
                body = store.show(row["id"])._repr_html_()
                lineage = store.lineage(row["id"])
            elif self.kind in ("runs", "models"):
                target = f"run:{row['run']}" if self.kind == "runs" else f"model:{row['model']}"
                body = f"<pre>{html.escape(str(row))}</pre>"
                lineage = store.lineage(target) if row.get("model") else None
            else:
                ref = f"{row['name']}@{row['version']}"
                record = store.get(ref, kind=self.kind)
                history = store.history(ref, kind=self.kind)[["version", "created"]].to_html(index=False)
                body = record._repr_html_() + f"<details><summary>versions</summary>{history}</details>"
                lineage = store.lineage(ref, kind=self.kind)
        except MlmdMagicError as exc:
            self.details.value = f"<span style='color:crimson'>{html.escape(str(exc))}</span>"
            return
        svg = f"<details open><summary>lineage</summary>{lineage._repr_svg_()}</details>" if lineage else ""
        self.details.value = body + svg


class StoreBrowser(w.VBox):
    """Every record kind of a store in tabs, a page at a time; selecting a row shows its details,
    versions and lineage. Foreign artifact types found in the store get tabs of their own."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tabs: dict[str, _Tab] = {kind: _Tab(self, kind) for kind in KINDS}
        # other tools' artifact types (TFX's): a tab each, read when first opened
        foreign = sorted(t["name"] for t in store.types() if t["kind"] == "artifact" and not t["ours"])
        self.tabs.update({name: _Tab(self, "artifacts", name) for name in foreign if name not in KINDS})
        self.tab = w.Tab(children=list(self.tabs.values()))
        self.tab.titles = tuple(self.tabs)
        self.tab.observe(self._on_tab, names="selected_index")
        super().__init__([w.HTML(f"<b>Store</b> <code>{html.escape(store.uri)}</code>"), self.tab])
        self.add_class("mlmd-magic-browser")
        self.tabs["experiments"].load(0)
        self._loaded = {"experiments"}

    def _on_tab(self, change: dict[str, Any]) -> None:
        index = change["new"]
        names = list(self.tabs)
        if index is not None and index < len(names) and names[index] not in self._loaded:
            with self.store.unrecorded():
                self.tabs[names[index]].load(0)
            self._loaded.add(names[index])

    def __repr__(self) -> str:
        tab = self.tabs["experiments"]
        names = [label for label, _ in tab.rows.options]
        return (f"StoreBrowser of {self.store.uri}: experiments page {tab.page + 1}: "
                + (", ".join(names) or "no experiments yet")
                + "\n(tabs: " + ", ".join(self.tab.titles) + "; interactive in JupyterLab, Notebook 7, VS Code)")
