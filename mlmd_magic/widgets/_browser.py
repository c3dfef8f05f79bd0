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
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w
from itables.widget import ITable

from ..errors import MlmdMagicError
from ..store import Store
from ..store import session as _session
from ..store.browse import Page
from ._fallback import FallbackDisplay
from ._live import StoreWatch, VisibilitySensor

KINDS = ("experiments", "scenarios", "datasources", "runs", "models", "evaluations", "policies")
PAGE_SIZE = 20
FILTER_DELAY_S = 0.4  # the filter applies this long after the last key typed
# the runs grid: the columns shown (``trial`` where a row has one; then up to RUN_METRICS metrics of
# one split, test's where the page has it, else eval's, else another's); the rest is folded
_RUN_SHOWN = ("name", "trial", "state", "epoch", "epochs")
_RUN_TAIL = ("duration_s", "created")
RUN_METRICS = 3
_KNOWN_SPLITS = ("test", "eval", "train")
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


def _filter_keys(text: str) -> list[str]:
    """The keys the filter box's text names (none for plain text or a filter that is refused)."""
    from ..core.query import atoms, parse_where

    try:
        tree = parse_where(_where(text))
    except MlmdMagicError:
        return []
    return [] if tree is None else [atom.key for atom in atoms(tree)]


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


def metric_split(frame: Any) -> str | None:
    """Which split's metrics a runs grid (``frame``) shows as columns: ``test`` where a row has
    test metrics, else ``eval``, else another split (a data source's own name for it, e.g.
    ``validation``), ``train`` last; None when no row has a metric. A split is a column prefix
    ``SPLIT.`` that is ``test``, ``eval`` or ``train``, or that has a ``SPLIT.loss`` column (every
    evaluation reports its loss), so a dotted parameter (``optimizer.name``) is none."""
    columns = [str(c) for c in frame.columns]
    prefixes = {c.partition(".")[0] for c in columns if "." in c}
    splits = [p for p in prefixes if p in _KNOWN_SPLITS or f"{p}.loss" in columns]
    present = [p for p in splits if any(not _blank(v) for c in columns if c.startswith(f"{p}.") for v in frame[c])]
    ordered = sorted(present, key=lambda p: (p != "test", p != "eval", p == "train", p))
    return ordered[0] if ordered else None


def _blank(value: Any) -> bool:
    """An empty cell: missing (None, NaN, pandas' NA) or empty text."""
    if value is None or _missing(value):
        return True
    return (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def fold_run_columns(frame: Any, named: Sequence[str] = ()) -> Any:
    """A runs page (as :func:`grid_frame` made it) narrowed to fit a notebook's width: name, the
    trial (where a row is a sweep's trial), state, epoch(s), the first metrics of one split (test,
    else eval, else the one there is: :func:`metric_split`; accuracy and loss first), duration and
    time; every other column (the other metrics, the experiment, model, parameters — overrides
    still bold) folded into one ``more`` cell that opens on a click. The columns of the keys
    ``named`` (the filter's: ``optimizer``, ``params.optimizer``, ``eval.accuracy``) stay shown,
    after the name."""
    import pandas as pd

    if frame.empty or "name" not in frame.columns:
        return frame
    columns = [str(c) for c in frame.columns]
    split = metric_split(frame)
    metrics = sorted((c for c in columns if split is not None and c.startswith(f"{split}.")),
                     key=lambda c: (c.partition(".")[2] not in ("accuracy", "loss"),
                                    c.partition(".")[2] != "accuracy", c))
    has_trial = "trial" in columns and not all(_blank(v) for v in frame["trial"])
    lead = [c for c in _RUN_SHOWN if c in columns and (c != "trial" or has_trial)]
    shown = lead + metrics[:RUN_METRICS] + [c for c in _RUN_TAIL if c in columns]
    asked = [c for key in named for c in (key, key.removeprefix("params.").removeprefix("metrics."))
             if c in columns and c not in shown and c != "run"]
    shown[1:1] = list(dict.fromkeys(asked))
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
        #: schedules the filter's read: ``call_later(delay, action)`` returning a handle with
        #: ``cancel()``; None: the running event loop's (a kernel's). A test hands its own clock.
        self.call_later: Callable[[float, Callable[[], None]], Any] | None = None
        self._timer: Any = None  # the filter's read to come, while a key was typed lately
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
        """Typed in the page (a change from the frontend): read :data:`FILTER_DELAY_S` after the
        last key, so that one read follows a word typed, not one per key; set from Python, or
        with no event loop to wait on: read at once."""
        self.cancel_filter()
        typed = "value" in getattr(self.filter, "_property_lock", {})
        call_later = self.call_later
        if typed and call_later is None:
            try:
                call_later = asyncio.get_running_loop().call_later
            except RuntimeError:
                call_later = None
        if not typed or call_later is None:
            self.load(0)
            return
        self._timer = call_later(FILTER_DELAY_S, self._filter_due)

    def cancel_filter(self) -> None:
        """Drop the filter's read to come, if any (another key typed, or the panel closed)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

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
        except MlmdMagicError as exc:  # no rows under a filter that is refused: the last ones would pass for its
            self.count.value = f"<span style='color:crimson'>{html.escape(str(exc))}</span>"
            self.offset, self.page_info, self.frame = 0, None, None
            self.prev.disabled = self.next.disabled = self.compare_button.disabled = True
            self.shown = grid_frame_empty()
            self.grid.update(self.shown, selected_rows=[], **_GRID_OPTIONS)
            self.details.value = ""
            self.browser.update_fallback()
            return
        keys = {str(self.key_of(row)) for row in self.selected()}
        self.offset, self.page_info, self.frame = page.offset, page, page.frame
        self.prev.disabled = page.offset == 0
        self.next.disabled = not page.more
        # the count is set after the grid: a page's count never stands beside another page's rows
        count = f"<span style='padding:0 8px;white-space:nowrap'>{html.escape(page.describe())}</span>"
        shown = grid_frame(page.frame) if not page.frame.empty else grid_frame_empty()
        if self.fold:
            shown = fold_run_columns(shown, _filter_keys(self.filter.value))
        if self.shown is not None and shown.equals(self.shown):
            self.count.value = count
            self.browser.update_fallback()
            return  # nothing changed: the grid, its selection and the details stay
        self.shown = shown
        records: list[dict[str, Any]] = [{str(k): v for k, v in row.items()} for row in page.frame.to_dict("records")]
        keep = [i for i, row in enumerate(records) if str(self.key_of(row)) in keys]
        # update() forgets options not passed again: allow_html would fall back to escaping
        self.grid.update(shown, selected_rows=keep, **_GRID_OPTIONS)
        self.count.value = count
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
        else:
            self.show(rows[-1])
        self.browser.update_fallback()  # its text names the rows selected

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
        self.header = w.HTML(f"<b>Store</b> <code>{html.escape(store.uri)}</code>")
        super().__init__([self.sensor, self.header, self.tab])
        self.add_class("mlmd-magic-browser")
        self.add_class("mlmd-magic-panel")
        self.tabs["experiments"].load(0, recorded=True)  # opening it is the person's action: one listing
        _session.on_write(self)  # refreshed after every action this kernel records
        # and after what anyone records, while the panel is seen: a cheap poll of the store
        self.watch = StoreWatch(store, self.store_changed, seen=self.sensor.seen, executions=self._shows_executions,
                                on_closed=self.on_store_closed, going=self._shows_running)
        self.watch.start()

    def release(self) -> None:
        """Stop following the store: the filters' reads to come, the listener of this kernel's
        writes and the poll (the panel closed, or its store)."""
        for tab in getattr(self, "tabs", {}).values():
            tab.cancel_filter()
        _session.off_write(self)
        watch = getattr(self, "watch", None)
        if watch is not None:
            watch.stop()

    def close(self) -> None:
        """Close the panel: it stops following the store (:meth:`release`)."""
        self.release()
        super().close()

    def on_store_closed(self) -> None:
        """The store was closed (``store.close()``, ``%mlmd close``): the panel stops following it
        and says so; what it shows stays."""
        self.release()
        self.header.value = (f"<b>Store</b> <code>{html.escape(self.store.uri)}</code> <i>(closed: connect again "
                             "and run %mlmd browse for a live panel)</i>")
        self.update_fallback()

    def _shows_executions(self) -> bool:
        """Whether the open tab shows what executions change (runs, models, evaluations): only then
        does a running training's heartbeat call for a new read."""
        names = list(self.tabs)
        index = self.tab.selected_index or 0
        return names[index] in ("runs", "models", "evaluations") if index < len(names) else True

    def _shows_running(self) -> bool:
        """Whether the open tab shows a RUNNING run: then each poll reads it again (see StoreWatch)."""
        name, tab = self.shown_tab()
        frame = tab.frame
        return name == "runs" and frame is not None and "state" in frame.columns and bool(
            (frame["state"] == "RUNNING").any())

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
        """Another tab opened: read it when first opened, and at once (not at the next poll) when the
        poll looked at other things while it was hidden (runs started while a tab of records was
        open); else it stays as read, and the panel's text names it."""
        index = change["new"]
        if index is None:
            return
        tab = list(self.tabs.values())[index]
        looked_after = self._shows_executions() == self.watch.watching_executions
        if not looked_after:
            self.watch.mark_seen()  # the poll looks after what this tab shows from now on
        if not tab.loaded or not looked_after:
            tab.load(tab.offset if tab.loaded else 0)  # which brings the panel's text up to date
        else:
            self.update_fallback()

    def store_written(self, label: str, action: str) -> None:
        """Called after this kernel recorded ``action`` in store ``label``: the open tab is read
        again (keeping its page and filter); the others when next opened."""
        if label != self.store.uri or self.watch.store_closed():
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

    def shown_tab(self) -> tuple[str, _Tab]:
        """The tab open now (the one the person looked at last): its title and itself."""
        names = list(self.tabs)
        index = self.tab.selected_index or 0
        name = names[index] if index < len(names) else names[0]
        return name, self.tabs[name]

    def __repr__(self) -> str:
        """The panel as text: the tab it shows, its page and filter, and the rows selected
        there (else the page's rows)."""
        name, tab = self.shown_tab()
        rows = tab.selected() or (tab.frame.to_dict("records") if tab.frame is not None else [])
        shown = ", ".join(_row_label(name, row) for row in rows)
        where = tab.filter.value.strip()
        filtered = f" filtered by {where!r}" if where else ""
        page = f" {tab.page_info!r}" if tab.page_info is not None else " (not read)"
        empty = f"no {name} match the filter" if where else f"no {name} yet"
        watch = getattr(self, "watch", None)
        closed = " (closed)" if watch is not None and watch.closed_seen else ""
        return (f"StoreBrowser of {self.store.uri}{closed}: {name}{filtered}{page}: " + (shown or empty)
                + "\n(tabs: " + ", ".join(self.tab.titles) + "; interactive in JupyterLab, Notebook 7, VS Code)")


def _row_label(kind: str, row: dict[str, Any]) -> str:
    """How the panel's text names a row: ``t21@2`` (a record's version), ``t21@2#1 (RUNNING)`` (a
    run), ``#7 t21@2#1: NOT BLESSED`` (an evaluation), else its name or id."""
    def text(key: str) -> str:
        value = row.get(key)
        return "" if _blank(value) else str(value)

    if kind == "evaluations":
        return f"#{text('evaluation')} {text('model')}: {text('verdict')}"
    if kind == "runs":
        return f"{text('name')} ({text('state')})"
    if text("name") and text("version"):
        return f"{text('name')}@{text('version')}"
    return text("name") or f"#{text('model') or text('id')}"
