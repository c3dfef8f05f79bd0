"""Panels that follow the store and say what they did last.

* a panel's text output (what a saved notebook, a restarted kernel or a frontend without
  widgets shows) is updated when the panel saves, so it names the version it saved;
* an open browser follows what other processes record (a new record, a run going from
  RUNNING to CANCELED in place) through a cheap poll that runs while the panel is seen and
  ends when it is closed;
* one pager and one filter, applied as you type (after a short pause);
* a listing's first page reads one page, however many records the store holds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.metadata_store import metadata_store as ms_module
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.widgets import ExperimentEditor, PolicyEditor, StoreBrowser, _browser, _live


@pytest.fixture
def store(tmp_path: Path) -> mm.Store:
    s = mm.connect(f"sqlite:///{tmp_path}/live.sqlite")
    s.add_datasource("nipt-sim", **datasets.simulate_nipt(str(tmp_path / "d"), n_train=16, n_eval=8, n_test=8))
    s.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 1, "learning_rate": 0.01})
    s.experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    return s


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes in this test stand for another process's: this process's panels are not told."""
    from mlmd_magic.core import session

    monkeypatch.setattr(session, "notify_write", lambda label, action: None)


class _Counter:
    """Counts MLMD reads (calls, and nodes handed back) by patching MetadataStore's methods."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.nodes = 0
        for name in names:
            original = getattr(ms_module.MetadataStore, name)

            def counted(this: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
                found = _original(this, *args, **kwargs)
                self.calls.append((_name, kwargs.get("list_options")))
                self.nodes += len(found)
                return found

            monkeypatch.setattr(ms_module.MetadataStore, name, counted)


# ---------------------------------------------------------------------------------- item 1


def test_an_editor_says_what_it_saved_and_trained_in_its_text(store: mm.Store) -> None:
    editor = ExperimentEditor(store, "t21")
    assert editor.update_fallback() == 0  # never displayed in a kernel: nothing to update
    editor.inputs["learning_rate"].value = 0.003
    assert editor.save() is not None
    text = repr(editor)
    assert text.startswith("ExperimentEditor for t21@2") and "learning_rate = 0.003" in text
    assert "last: saved as t21@2 (params.learning_rate 0.01 -> 0.003)" in text
    assert "saved as t21@2" in editor.fallback_html()
    policy = PolicyEditor(store, "release-nipt")
    assert "(new)" in repr(policy)
    policy.add_threshold({"metric": "accuracy", "lower": 0.5})
    assert policy.save() is not None
    assert repr(policy).startswith("PolicyEditor for release-nipt@1") and "last: saved as release-nipt@1" in repr(
        policy)


def test_the_text_output_follows_the_panel_in_a_kernel(tmp_path: Path) -> None:
    """A real kernel: saving from the policy editor updates the text output under the panel
    (update_display_data on its display id, routed to the cell that showed it), so a restart or a
    saved notebook shows "release-nipt@1", not "(new)"."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()

    def run(code: str) -> tuple[str, list[dict[str, Any]]]:
        msg_id = kc.execute(code)
        seen: list[dict[str, Any]] = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["msg_type"] == "error":
                raise AssertionError(msg["content"])
            if msg["msg_type"] in ("display_data", "update_display_data"):
                seen.append(msg)
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                return msg_id, seen

    try:
        kc.wait_for_ready(timeout=60)
        shown_in, shown = run(f"%load_ext mlmd_magic\n%mlmd connect sqlite:///{tmp_path}/k.sqlite\n"
                              "ed = %mlmd edit policy:release-nipt\ned")
        widget, text = (m["content"] for m in shown)
        assert "PolicyEditor for release-nipt (new)" in text["data"]["text/html"]
        text_id = text["transient"]["display_id"]
        assert text_id and text_id != widget["transient"]["display_id"]
        _, updates = run("ed.add_threshold({'metric': 'accuracy', 'lower': 0.5})\nrecord = ed.save()\n"
                         "assert record is not None, ed.message")
        (update,) = [m for m in updates if m["msg_type"] == "update_display_data"]
        assert update["content"]["transient"]["display_id"] == text_id
        assert update["parent_header"]["msg_id"] == shown_in  # routed to the cell that showed it
        html = update["content"]["data"]["text/html"]
        assert "mlmd-magic-fallback-box{display:none}" in html  # still hidden while the widget lives
        assert "PolicyEditor for release-nipt@1" in html and "last: saved as release-nipt@1" in html
        assert "(new)" not in html
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


# ---------------------------------------------------------------------------------- item 2


def test_an_open_browser_follows_what_other_processes_record(store: mm.Store, elsewhere: None) -> None:
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    reads: list[int] = []
    pages = tab.pages
    tab.pages = lambda where, limit, offset: (reads.append(offset), pages(where, limit, offset))[1]  # type: ignore
    assert not browser.watch.poll() and reads == []  # nothing changed: nothing read
    other = mm.connect(store.uri)  # another process, as far as the store knows
    other.experiment("t99", datasource="nipt-sim", scenario="mlp-small")
    assert browser.watch.poll()
    assert list(tab.frame["name"]) == ["t99", "t21"] and reads == [0]
    tab.grid.selected_rows = [1]  # t21 selected, its details shown
    assert "Experiment t21@1" in tab.details.value
    other.add_scenario("other", model="mlp", params={"epochs": 1})  # a change that leaves the page as it was
    assert browser.watch.poll() and reads == [0, 0]
    assert tab.grid.selected_rows == [1] and "Experiment t21@1" in tab.details.value  # left as it was
    other.experiment("t98", datasource="nipt-sim", scenario="mlp-small")
    assert browser.watch.poll()
    assert list(tab.frame["name"]) == ["t98", "t99", "t21"]
    assert tab.grid.selected_rows == [2] and "Experiment t21@1" in tab.details.value  # t21 still selected

    # a run updated in place by another process: RUNNING, then CANCELED
    browser.tab.selected_index = list(browser.tab.titles).index("runs")
    runs = browser.tabs["runs"]
    train = other.mlmd.get_execution_type("mlmd_magic.Train").id
    execution = pb.Execution(type_id=train, name="t21@1#1", last_known_state=pb.Execution.RUNNING)
    (run_id,) = other.mlmd.put_executions([execution])
    assert browser.watch.poll()
    assert list(runs.frame["state"]) == ["RUNNING"]
    (execution,) = other.mlmd.get_executions_by_id([run_id])
    execution.last_known_state = pb.Execution.CANCELED
    time.sleep(0.01)  # MLMD stamps the update in milliseconds
    other.mlmd.put_executions([execution])
    assert browser.watch.poll()
    assert list(runs.frame["state"]) == ["CANCELED"]
    assert not browser.tabs["experiments"].loaded  # the others are read when next opened


def test_the_poll_is_three_one_row_reads(store: mm.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = StoreBrowser(store)
    counter = _Counter(monkeypatch, ("get_executions", "get_artifacts", "get_artifacts_by_id", "get_contexts",
                                     "get_executions_by_id"))
    assert not browser.watch.poll()  # a tab of records: one read (the artifact updated last)
    assert len(counter.calls) == 1 and all(opts is not None and opts.limit == 1 for _, opts in counter.calls)
    browser.tab.selected_index = list(browser.tabs).index("runs")
    browser.watch.poll()  # the runs tab was not looked after while the experiments tab was open: read
    counter.calls.clear()
    counter.nodes = 0
    browser.watch.poll()  # the runs tab: executions too (a run going from RUNNING to CANCELED)
    assert len(counter.calls) == 3 and all(opts is not None and opts.limit == 1 for _, opts in counter.calls)
    assert counter.nodes <= 3


def test_the_poll_runs_while_seen_and_ends_when_closed(store: mm.Store, monkeypatch: pytest.MonkeyPatch,
                                                      elsewhere: None) -> None:
    monkeypatch.setattr(_live, "POLL_S", 0.05)
    other = mm.connect(store.uri)

    async def scenario() -> None:
        browser = StoreBrowser(store)  # built in a running loop (a kernel's): it polls by itself
        tab = browser.tabs["experiments"]
        assert browser.watch.task is not None and not browser.watch.task.done()
        other.experiment("t99", datasource="nipt-sim", scenario="mlp-small")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(tab.frame) == 2:
                break
        assert list(tab.frame["name"]) == ["t99", "t21"]  # without Refresh
        browser.sensor.visible = False  # scrolled away, or the browser tab hidden
        await asyncio.sleep(0.1)
        polls = browser.watch.polls
        other.experiment("t98", datasource="nipt-sim", scenario="mlp-small")
        await asyncio.sleep(0.3)
        assert browser.watch.polls == polls and len(tab.frame) == 2  # not seen: the store is not asked
        browser.sensor.visible = True
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(tab.frame) == 3:
                break
        assert list(tab.frame["name"]) == ["t98", "t99", "t21"]
        monkeypatch.setattr(_live, "SEEN_FOR_S", 0.0)  # no word from the frontend for long: not seen
        polls = browser.watch.polls
        await asyncio.sleep(0.2)
        assert browser.watch.polls == polls
        task = browser.watch.task
        browser.close()
        await asyncio.sleep(0.1)
        assert task is not None and task.done() and browser.watch.stopped

    asyncio.run(scenario())


def test_an_editor_left_open_says_at_once_that_a_newer_version_exists(store: mm.Store, elsewhere: None) -> None:
    editor = ExperimentEditor(store, "t21")
    policy = PolicyEditor(store, "release-nipt")
    editor.watch.poll()
    assert "out of date" not in editor.header.value
    other = mm.connect(store.uri)
    other.experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 7})
    other.add_policy("release-nipt", thresholds=[{"metric": "accuracy", "lower": 0.5}])
    assert editor.watch.poll() and policy.watch.poll()
    assert "out of date" in editor.header.value and editor.save_button.disabled
    assert "t21@2 was recorded after this panel opened" in editor.status.value
    assert "last: out of date" in repr(editor)
    assert "out of date" in policy.header.value and policy.save_button.disabled
    editor.close()
    policy.close()
    assert editor.watch.stopped and not editor.watch.poll()


# ---------------------------------------------------------------------------------- item 7


def test_one_pager_one_filter_applied_as_you_type(store: mm.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        store.experiment(f"exp-{i}", datasource="nipt-sim", scenario="mlp-small")
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    layout = tab.grid._dt_args["layout"]
    # DataTables' own info ("Showing 1 to 20 of 20 entries"), pager and search box are off
    assert layout == {"topStart": None, "topEnd": None, "bottomStart": None, "bottomEnd": None}
    assert tab.grid._dt_args["paging"] is False
    assert tab.filter.continuous_update
    monkeypatch.setattr(_browser, "FILTER_DELAY_S", 0.05)
    reads: list[str | None] = []
    pages = tab.pages
    tab.pages = lambda where, limit, offset: (reads.append(where), pages(where, limit, offset))[1]  # type: ignore

    async def typing() -> None:
        for text in ("e", "ex", "exp-1"):  # keys typed in the page: changes from the frontend
            tab.filter.set_state({"value": text})
            await asyncio.sleep(0.005)
        assert reads == []  # not yet: a pause after the last key first
        await asyncio.sleep(0.2)

    asyncio.run(typing())
    assert reads == ["name ~ '*exp-1*'"] and list(tab.frame["name"]) == ["exp-1"]
    assert tab.grid._dt_args["layout"] == layout  # still one pager after the grid was updated
    tab.filter.value = "t21"  # set from Python: read at once
    assert list(tab.frame["name"]) == ["t21"]


def test_run_metrics_fit_a_notebook_width() -> None:
    import pandas as pd

    frame = pd.DataFrame([{"name": "t21@1#1", "run": 5, "experiment": "t21@1", "state": "COMPLETE", "model": 6,
                           "task": "multiclass", "device": "cpu", "epochs": 3, "duration_s": 1.5, "user": "me",
                           "created": "2025-01-01 10:00:00",
                           **{f"{split}.{m}": 0.5 for split in ("train", "eval", "test")
                              for m in ("accuracy", "loss", "auc", "recall_T21", "recall_T18", "recall_T13")},
                           "epochs_param": 3, "hidden": "[8]", "learning_rate": 0.01}])
    folded = _browser.fold_run_columns(frame)
    assert list(folded.columns) == ["name", "state", "epochs", "test.accuracy", "test.loss", "test.auc",
                                    "duration_s", "created", "more"]
    assert "<summary>23 more</summary>" in folded["more"][0] and "train.loss: 0.5" in folded["more"][0]
    assert "test.recall_T21: 0.5" in folded["more"][0] and "learning_rate: 0.01" in folded["more"][0]


# ---------------------------------------------------------------------------------- item 9


def _many(store: mm.Store, n: int) -> None:
    for i in range(n):
        store.experiment(f"exp-{i:04d}", datasource="nipt-sim", scenario="mlp-small")


@pytest.mark.parametrize("n", [30, 150])
def test_a_first_page_reads_one_page_whatever_the_store_holds(store: mm.Store, n: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _many(store, n)
    counter = _Counter(monkeypatch, ("get_artifacts", "get_artifacts_by_id"))
    page = store.page("experiments", limit=20)
    assert len(page.frame) == 20 and page.more and page.total is None and page.pages is None
    assert repr(page) == "rows 1–20 of many (page 1)"
    # about one page of artifacts (and the few before it the walk looks at), not all n + 1
    assert counter.nodes <= 80, counter.nodes
    last = store.page("experiments", limit=20, offset=n - 5)
    assert last.total == n + 1 and not last.more and last.describe() == f"rows {n - 4}–{n + 1} of {n + 1} · page " \
        f"{(n - 5) // 20 + 1} of {(n + 1 + 19) // 20}"
    browser = StoreBrowser(store)
    assert "rows 1–20 of many · page 1" in browser.tabs["experiments"].count.value
    assert not browser.tabs["experiments"].next.disabled
