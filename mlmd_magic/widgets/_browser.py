"""The store browser: a tab per record kind, each a sortable, filterable, multi-select grid
(itables' ``ITable`` widget: DataTables through anywidget, so JupyterLab 4, Notebook 7 and
VS Code alike), paged on the store side, with a row's details as HTML below the grid.

Each tab is fed by two functions: a page function ``(where, limit, offset) -> Page`` (rows,
and the total where it is known without reading further, :meth:`Store.page`) and a details
function ``key -> HTML`` (:meth:`Store.details`). Tabs load when first opened, on Refresh,
after any action this kernel records in the store (a new version, a training, an
evaluation), and when a cheap poll sees the store changed by anyone while the panel is seen
(:mod:`._live`).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import math
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from itables.widget import ITable

from ..core import session as _session
from ..errors import MlmdMagicError
from ..store import Store
from ..store.browse import Page
from ._fallback import FallbackDisplay
from ._live import StoreWatch, VisibilitySensor

KINDS = ("experiments", "scenarios", "datasources", "runs", "models", "evaluations", "policies")
PAGE_SIZE = 20
FILTER_DELAY_S = 0.4  # the filter applies this long after the last key typed
# the runs grid: the columns shown (then up to RUN_METRICS test metrics); the rest is folded
_RUN_SHOWN = ("name", "state", "epoch", "epochs")
_RUN_TAIL = ("duration_s", "created")
RUN_METRICS = 3
# which column of a page names its row for the details function
_KEYS = {"runs": "run", "models": "model", "evaluations": "evaluation", "artifacts": "id"}


def _where(text: str) -> str | None:
    """A filter box accepts the filter language, or plain text meaning "name contains"."""
    text = text.strip()
    if not text:
        return None
    if any(op in text for op in ("==", "!=", "<", ">", "~", "=")):
        return text
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"name ~ '*{escaped}*'"


def _cell(value: Any) -> Any:
    """A value as the grid shows it: numbers stay numbers (so they sort as numbers), the rest text."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or _missing(value):
        return ""
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, (int, bool)):
        return value
    if isinstance(value, (list, dict)):
        return html.escape(json.dumps(value))
    return html.escape(str(value))


def _missing(value: Any) -> bool:
    """pandas' missing scalar (``pd.NA``, ``NaT``) in a nullable column."""
    import pandas as pd

    return value is pd.NA or value is pd.NaT


def grid_frame(frame: Any) -> Any:
    """A page's DataFrame as the grid shows it: values formatted, and each parameter that the
    row's experiment overrides marked (bold, with a tooltip); the ``overrides`` column goes."""
    import pandas as pd

    rows = []
    for row in frame.to_dict("records"):
        overrides = json.loads(row.pop("overrides", None) or "{}") if "overrides" in frame.columns else {}
        marked = set(_flat_keys(overrides))
        out = {}
        for column, value in row.items():
            cell = _cell(value)
            name = str(column)[7:] if str(column).startswith("params.") else str(column)
            if name in marked:
                cell = f"<b class='mlmd-magic-override' title='overridden by this experiment'>{cell}</b>"
            out[str(column)] = cell
        rows.append(out)
    columns = [str(c) for c in frame.columns if c != "overrides"]
    return pd.DataFrame(rows, columns=columns)


def fold_run_columns(frame: Any) -> Any:
    """A runs page (as :func:`grid_frame` made it) narrowed to fit a notebook's width: name,
    state, epoch(s), the first test metrics (accuracy and loss first), duration and time; every
    other column (the other metrics, the experiment, model, parameters — overrides still bold)
    folded into one ``more`` cell that opens on a click."""
    import pandas as pd

    if frame.empty or "name" not in frame.columns:
        return frame
    columns = [str(c) for c in frame.columns]
    tests = sorted((c for c in columns if c.startswith("test.")),
                   key=lambda c: (c not in ("test.accuracy", "test.loss"), c != "test.accuracy", c))
    shown = [c for c in _RUN_SHOWN if c in columns] + tests[:RUN_METRICS] + [c for c in _RUN_TAIL if c in columns]
    folded = [c for c in columns if c not in shown and c != "run"]
    out = frame[shown].copy()
    out["more"] = [
        f"<details class='mlmd-magic-more'><summary>{len(folded)} more</summary>"
        + "<br>".join(f"{html.escape(c)}: {row[c]}" for c in folded if row[c] != "")
        + "</details>" for row in frame[folded].to_dict("records")] if folded else ""
    return pd.DataFrame(out)


def _flat_keys(overrides: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        keys += _flat_keys(value, path + ".") if isinstance(value, dict) and value else [path]
    return keys


class _Tab(w.VBox):
    """One tab: filter, refresh, pager, grid, details (and Compare on the runs tab)."""

    def __init__(self, browser: StoreBrowser, title: str, pages: Callable[[str | None, int, int], Page],
                 details: Callable[[Any], str], key: Callable[[dict[str, Any]], Any], compare: bool = False
                 ) -> None:
        self.browser, self.title, self.pages, self.detail_of, self.key_of = browser, title, pages, details, key
        self.offset, self.loaded = 0, False
        self.page_info: Page | None = None
        self.frame: Any = None
        self.shown: Any = None  # the grid's frame as last sent
        self.fold = title == "runs"
        self._timer: asyncio.TimerHandle | None = None
        # applied as you type (a short pause after the last key), not only on Enter
        self.filter = w.Text(placeholder="filter: text in the name, or e.g. epochs >= 5",
                             layout=w.Layout(width="320px"), continuous_update=True)
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="auto"))
        self.prev = w.Button(description="◀", layout=w.Layout(width="40px"), tooltip="previous page")
        self.next = w.Button(description="▶", layout=w.Layout(width="40px"), tooltip="next page")
        self.count = w.HTML()
        self.count.add_class("mlmd-magic-count")
        # a click on a column's title sorts by it (itables would otherwise keep header text selectable);
        # one pager and one filter (ours): DataTables' own info, paging and search are off
        self.grid = ITable(grid_frame_empty(), **_GRID_OPTIONS)
        self.grid.layout = w.Layout(overflow="auto", max_width="100%")  # many parameters: scroll sideways
        self.details = w.HTML()
        self.details.add_class("mlmd-magic-details")
        self.compare_button = w.Button(description="Compare selected", icon="columns", disabled=True,
                                       layout=w.Layout(width="auto", display="" if compare else "none"))
        self.comparison = w.HTML()
        self.comparison.add_class("mlmd-magic-comparison")
        # filtering, paging and selecting are the panel's own reads, not a person's action: unrecorded
        self.filter.observe(self._on_filter, names="value")
        self.refresh_button.on_click(lambda _: self.load(self.offset))
        self.prev.on_click(lambda _: self.load(max(self.offset - PAGE_SIZE, 0)))
        self.next.on_click(lambda _: self.load(self.offset + PAGE_SIZE))
        self.grid.observe(self._on_select, names="selected_rows")
        self.compare_button.on_click(lambda _: self.compare())
        for button in (self.refresh_button, self.compare_button):
            button.layout.min_width = "fit-content"
        bar = w.HBox([self.filter, self.refresh_button, self.prev, self.count, self.next, self.compare_button],
                     layout=w.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__([bar, self.grid, self.comparison, self.details])

    def _on_filter(self, _: Any) -> None:
        """Typed in the page (a change from the frontend): read after a short pause, so that one
        read follows a word typed, not one per key; set from Python: read at once."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        typed = "value" in getattr(self.filter, "_property_lock", {})
        try:
            loop = asyncio.get_running_loop() if typed else None
        except RuntimeError:
            loop = None
        if loop is None:
            self.load(0)
            return
        self._timer = loop.call_later(FILTER_DELAY_S, self._filter_due)

    def _filter_due(self) -> None:
        self._timer = None
        self.load(0)

    def load(self, offset: int = 0, recorded: bool = False) -> None:
        """Read the page at ``offset`` (kept when the filter or the data changed under it);
        ``recorded`` when the read is a person's action (opening the browser), else unrecorded.
        A page read again that shows the same rows leaves the grid, its selection and the
        details as they were; rows that stay keep their selection."""
        self.loaded = True
        try:
            with contextlib.nullcontext() if recorded else self.browser.store.unrecorded():
                page = self.pages(_where(self.filter.value), PAGE_SIZE, offset)
                if page.frame.empty and offset:  # rows went away: back to the first page
                    page = self.pages(_where(self.filter.value), PAGE_SIZE, 0)
        except MlmdMagicError as exc:
            self.count.value = f"<span style='color:crimson'>{html.escape(str(exc))}</span>"
            return
        keys = {str(self.key_of(row)) for row in self.selected()}
        self.offset, self.page_info, self.frame = page.offset, page, page.frame
        self.prev.disabled = page.offset == 0
        self.next.disabled = not page.more
        self.count.value = f"<span style='padding:0 8px;white-space:nowrap'>{html.escape(page.describe())}</span>"
        shown = grid_frame(page.frame) if not page.frame.empty else grid_frame_empty()
        if self.fold:
            shown = fold_run_columns(shown)
        if self.shown is not None and shown.equals(self.shown):
            self.browser.update_fallback()
            return  # nothing changed: the grid, its selection and the details stay
        self.shown = shown
        records: list[dict[str, Any]] = [{str(k): v for k, v in row.items()} for row in page.frame.to_dict("records")]
        keep = [i for i, row in enumerate(records) if str(self.key_of(row)) in keys]
        # update() forgets options not passed again: allow_html would fall back to escaping
        self.grid.update(shown, selected_rows=keep, **_GRID_OPTIONS)
        if keep:
            self.show(records[keep[-1]])
        else:
            self.details.value = ""
        self.compare_button.disabled = len(keep) < 2
        self.browser.update_fallback()

    def selected(self) -> list[dict[str, Any]]:
        """The selected rows of this page, as plain dicts."""
        if self.frame is None:
            return []
        records = self.frame.to_dict("records")
        return [records[i] for i in self.grid.selected_rows if i < len(records)]

    def _on_select(self, change: dict[str, Any]) -> None:
        rows = self.selected()
        self.compare_button.disabled = len(rows) < 2
        if not rows:
            self.details.value = ""
            return
        self.show(rows[-1])

    def show(self, row: dict[str, Any]) -> None:
        """Show one row's details (the record's HTML, its versions and lineage) below the grid."""
        try:
            with self.browser.store.unrecorded():
                self.details.value = self.detail_of(self.key_of(row))
        except MlmdMagicError as exc:
            self.details.value = f"<span style='color:crimson'>{html.escape(str(exc))}</span>"

    def compare(self) -> Any:
        """Compare the selected runs (:meth:`Store.compare`) under the grid; returns the comparison."""
        ids = [int(row["run"]) for row in self.selected()]
        try:
            with _session.action_context(source=f"widget StoreBrowser: compare {', '.join(map(str, ids))}"):
                comparison = self.browser.store.compare(ids)
        except MlmdMagicError as exc:
            self.comparison.value = f"<span style='color:crimson'>{html.escape(str(exc))}</span>"
            return None
        self.comparison.value = comparison._repr_html_()
        return comparison


_GRID_OPTIONS: dict[str, Any] = {
    "select": True, "paging": False, "allow_html": True, "showIndex": False,
    "text_in_header_can_be_selected": False, "classes": "display compact nowrap",
    "layout": {"topStart": None, "topEnd": None, "bottomStart": None, "bottomEnd": None}}


def grid_frame_empty() -> Any:
    import pandas as pd

    return pd.DataFrame({"": []})


class StoreBrowser(FallbackDisplay, w.VBox):
    """Every record kind of a store in tabs, a page at a time: sort and search the page in the
    grid, filter the whole store with the filter box, select rows to see details (several runs
    to compare them). Other tools' artifact types found in the store get tabs of their own."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tabs: dict[str, _Tab] = {}
        for kind in KINDS:
            self.tabs[kind] = _Tab(self, kind, self._pages(kind), self._details(kind), self._key(kind),
                                   compare=kind == "runs")
        with store.unrecorded():
            foreign = sorted(t["name"] for t in store.types() if t["kind"] == "artifact" and not t["ours"])
        for name in (n for n in foreign if n not in KINDS):  # read when first opened, like the others
            self.tabs[name] = _Tab(self, name, self._pages("artifacts", name), self._details("artifacts", name),
                                   self._key("artifacts"))
        self.tab = w.Tab(children=list(self.tabs.values()))
        self.tab.titles = tuple(self.tabs)
        self.tab.observe(self._on_tab, names="selected_index")
        self.sensor = VisibilitySensor()
        super().__init__([self.sensor, w.HTML(f"<b>Store</b> <code>{html.escape(store.uri)}</code>"), self.tab])
        self.add_class("mlmd-magic-browser")
        self.add_class("mlmd-magic-panel")
        self.tabs["experiments"].load(0, recorded=True)  # opening it is the person's action: one listing
        _session.on_write(self)  # refreshed after every action this kernel records
        # and after what anyone records, while the panel is seen: a cheap poll of the store
        self.watch = StoreWatch(store, self.store_changed, seen=self.sensor.seen, executions=self._shows_executions)
        self.watch.start()

    def _shows_executions(self) -> bool:
        """Whether the open tab shows what executions change (runs, models, evaluations): only then
        does a running training's heartbeat call for a new read."""
        names = list(self.tabs)
        index = self.tab.selected_index or 0
        return names[index] in ("runs", "models", "evaluations") if index < len(names) else True

    def _pages(self, kind: str, type_name: str | None = None) -> Callable[[str | None, int, int], Page]:
        def pages(where: str | None, limit: int, offset: int) -> Page:
            return self.store.page(kind, where, limit=limit, offset=offset, type=type_name)
        return pages

    def _details(self, kind: str, type_name: str | None = None) -> Callable[[Any], str]:
        def details(key: Any) -> str:
            return self.store.details(kind, key, type=type_name)
        return details

    @staticmethod
    def _key(kind: str) -> Callable[[dict[str, Any]], Any]:
        column = _KEYS.get(kind)
        if column is None:
            return lambda row: f"{row['name']}@{row['version']}"
        return lambda row: row[column]

    def _on_tab(self, change: dict[str, Any]) -> None:
        index = change["new"]
        if index is not None:
            tab = list(self.tabs.values())[index]
            if not tab.loaded:
                tab.load(0)

    def store_written(self, label: str, action: str) -> None:
        """Called after this kernel recorded ``action`` in store ``label``: the open tab is read
        again (keeping its page and filter); the others when next opened."""
        if label != self.store.uri:
            return
        self.watch.mark_seen()  # read now: the poll need not read it again
        self.store_changed()

    def store_changed(self) -> None:
        """The store changed (this kernel's action, or anyone's seen by the poll): the open tab
        is read again (keeping its page, filter and selection), the others when next opened."""
        index = self.tab.selected_index or 0
        for i, tab in enumerate(self.tabs.values()):
            if i == index and tab.loaded:
                tab.load(tab.offset)
            else:
                tab.loaded = False

    def __repr__(self) -> str:
        tab = self.tabs["experiments"]
        shown = ", ".join(self._key("experiments")(row) for row in tab.selected() or
                          (tab.frame.to_dict("records") if tab.frame is not None else []))
        return (f"StoreBrowser of {self.store.uri}: experiments {tab.page_info!r}: "
                + (shown or "no experiments yet")
                + "\n(tabs: " + ", ".join(self.tab.titles) + "; interactive in JupyterLab, Notebook 7, VS Code)")
