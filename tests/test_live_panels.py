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
    s.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    return s


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes in this test stand for another process's: this process's panels are not told."""
    from mlmd_magic.backend import session

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


class _Kernel:
    """A real kernel (ipykernel) in ``cwd``, run cell by cell; its iopub messages read in order."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.later: list[dict[str, Any]] = []  # display messages read after their cell went idle

    def run(self, code: str) -> tuple[str, list[dict[str, Any]]]:
        """Run ``code``; returns its request's id and the display messages sent until it was done."""
        msg_id = self.kc.execute(code)
        seen: list[dict[str, Any]] = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=60)
            if msg["msg_type"] == "error":
                raise AssertionError(msg["content"])
            if msg["msg_type"] in ("display_data", "update_display_data"):
                seen.append(msg)
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                return msg_id, seen

    def display_until(self, text: str) -> list[dict[str, Any]]:
        """The display messages sent (by threads, tasks) after the last cell, up to the first that
        shows ``text``."""
        seen: list[dict[str, Any]] = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=60)
            if msg["msg_type"] in ("display_data", "update_display_data"):
                seen.append(msg)
                if text in str(msg["content"]["data"]):
                    return seen

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def test_the_text_output_follows_the_panel_in_a_kernel(tmp_path: Path) -> None:
    """A real kernel: saving from the policy editor updates the text output under the panel
    (update_display_data on its display id, routed to the cell that showed it), so a restart or a
    saved notebook shows "release-nipt@1", not "(new)"."""
    kernel = _Kernel(tmp_path)
    try:
        shown_in, shown = kernel.run(f"%load_ext mlmd_magic\n%mlmd connect sqlite:///{tmp_path}/k.sqlite\n"
                                     "ed = %mlmd edit policy:release-nipt\ned")
        widget, text = (m["content"] for m in shown)
        assert "PolicyEditor for release-nipt (new)" in text["data"]["text/html"]
        text_id = text["transient"]["display_id"]
        assert text_id and text_id != widget["transient"]["display_id"]
        _, updates = kernel.run("ed.add_threshold({'metric': 'accuracy', 'lower': 0.5})\nrecord = ed.save()\n"
                                "assert record is not None, ed.message")
        (update,) = [m for m in updates if m["msg_type"] == "update_display_data"]
        assert update["content"]["transient"]["display_id"] == text_id
        assert update["parent_header"]["msg_id"] == shown_in  # routed to the cell that showed it
        html = update["content"]["data"]["text/html"]
        assert "mlmd-magic-fallback-box{display:none}" in html  # still hidden while the widget lives
        assert "PolicyEditor for release-nipt@1" in html and "last: saved as release-nipt@1" in html
        assert "(new)" not in html
    finally:
        kernel.close()


def test_a_panels_text_update_leaves_other_output_where_it_goes(tmp_path: Path) -> None:
    """A real kernel: a panel's text is updated in its own cell from a task made in that cell (as
    its poll is), and at shutdown; meanwhile a thread started by a later cell displays. The
    thread's output goes to the later cell (the kernel's process-wide parent, left alone), not
    to the panel's: the panel's cell is set for the updating task only, and reset exactly."""
    kernel = _Kernel(tmp_path)
    try:
        shown_in, shown = kernel.run(
            f"%load_ext mlmd_magic\n%mlmd connect sqlite:///{tmp_path}/k.sqlite\n"
            "import asyncio, threading\n"
            "from IPython.display import HTML, display\n"
            "from mlmd_magic.widgets._fallback import replace_with_fallbacks\n"
            "ed = %mlmd edit policy:release-nipt\n"
            "go, updated = asyncio.Event(), threading.Event()\n"
            "async def later():  # made in this cell, as a panel's poll is\n"
            "    await go.wait()\n"
            "    ed.add_threshold({'metric': 'accuracy', 'lower': 0.5})\n"
            "    ed.last_action = 'updated from a task'\n"
            "    assert ed.update_fallback() == 1\n"
            "    assert replace_with_fallbacks(get_ipython()) == 1  # what a shutdown does\n"
            "    updated.set()\n"
            "task = asyncio.ensure_future(later())\n"
            "ed")
        text_id = shown[1]["content"]["transient"]["display_id"]
        started_in, _ = kernel.run(
            "def show_later():\n"
            "    assert updated.wait(60)\n"
            "    display(HTML('shown by a thread'))\n"
            "threading.Thread(target=show_later).start()\n"
            "go.set()")
        after = kernel.display_until("shown by a thread")
        updates = [m for m in after if m["msg_type"] == "update_display_data"]
        assert len(updates) == 2 and updates[0]["content"]["transient"]["display_id"] == text_id
        assert "updated from a task" in updates[0]["content"]["data"]["text/html"]
        assert all(m["parent_header"]["msg_id"] == shown_in for m in updates)  # to the panel's cell
        assert after[-1]["msg_type"] == "display_data"
        assert after[-1]["parent_header"]["msg_id"] == started_in  # the thread's cell, not the panel's
    finally:
        kernel.close()


# ---------------------------------------------------------------------------------- item 2


def test_an_open_browser_follows_what_other_processes_record(store: mm.Store, elsewhere: None) -> None:
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    reads: list[int] = []
    pages = tab.pages
    tab.pages = lambda where, limit, offset: (reads.append(offset), pages(where, limit, offset))[1]  # type: ignore
    assert not browser.watch.poll() and reads == []  # nothing changed: nothing read
    other = mm.connect(store.uri)  # another process, as far as the store knows
    other.add_experiment("t99", datasource="nipt-sim", scenario="mlp-small")
    assert browser.watch.poll()
    assert list(tab.frame["name"]) == ["t99", "t21"] and reads == [0]
    tab.grid.selected_rows = [1]  # t21 selected, its details shown
    assert "Experiment t21@1" in tab.details.value
    other.add_scenario("other", model="mlp", params={"epochs": 1})  # a change that leaves the page as it was
    assert browser.watch.poll() and reads == [0, 0]
    assert tab.grid.selected_rows == [1] and "Experiment t21@1" in tab.details.value  # left as it was
    other.add_experiment("t98", datasource="nipt-sim", scenario="mlp-small")
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


def test_a_run_started_elsewhere_shows_at_the_next_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       elsewhere: None) -> None:
    """#27: a run started in the background after ``%cd`` into another folder (the kernel starts
    it; its worker, another process, writes it), then one started by another process: each
    shows RUNNING at the runs tab's next poll, and CANCELED at the one after its cancel."""
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    store = mm.connect("sqlite:///team.sqlite")  # a relative path, as a notebook connects
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(tmp_path / "d"), n_train=16, n_eval=8, n_test=8))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 1, "learning_rate": 0.01})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    browser = StoreBrowser(store)
    browser.tab.selected_index = list(browser.tab.titles).index("runs")
    runs = browser.tabs["runs"]
    browser.watch.poll()  # the runs tab is looked after from now on
    assert not browser.watch.poll() and runs.page_info is not None and runs.page_info.describe() == "no rows"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # %cd elsewhere
    handle = store.train("t21", epochs=100_000, wait=False)
    try:
        assert browser.watch.poll()
        assert list(runs.frame["name"]) == [handle.name] and list(runs.frame["state"]) == ["RUNNING"]
    finally:
        store.cancel(handle.id)
        handle.process.wait(timeout=60)
    assert browser.watch.poll() and list(runs.frame["state"]) == ["CANCELED"]

    script = ("import sys, mlmd_magic as mm\n"
              "run = mm.connect(sys.argv[1]).train('t21', epochs=50_000, wait=False)\n"
              "print(run.id, run.name, run.process.pid)")
    started = subprocess.run([sys.executable, "-c", script, f"sqlite:///{tmp_path / 'team.sqlite'}"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path / "elsewhere")
    assert started.returncode == 0, started.stderr[-3000:]
    run_id, name, _ = started.stdout.split()[-3:]
    try:
        assert browser.watch.poll()
        assert runs.frame["name"][0] == name and list(runs.frame["state"]) == ["RUNNING", "CANCELED"]
    finally:
        store.cancel(int(run_id))
    assert browser.watch.poll() and list(runs.frame["state"]) == ["CANCELED", "CANCELED"]


def _running(other: mm.Store, name: str = "t21@1#1") -> int:
    """A RUNNING run written by another process (as a worker's first write)."""
    train = other.mlmd.get_execution_type("mlmd_magic.Train").id
    (run_id,) = other.mlmd.put_executions([pb.Execution(type_id=train, name=name,
                                                        last_known_state=pb.Execution.RUNNING)])
    return int(run_id)


def test_runs_started_while_a_tab_of_records_was_open_show_when_the_runs_tab_opens(
        store: mm.Store, elsewhere: None) -> None:
    browser = StoreBrowser(store)
    titles = list(browser.tab.titles)
    browser.tab.selected_index = titles.index("runs")
    runs = browser.tabs["runs"]
    assert runs.loaded and runs.frame.empty
    browser.tab.selected_index = titles.index("experiments")
    other = mm.connect(store.uri)
    _running(other)  # an execution: a tab of records' poll does not look for it
    assert not browser.watch.poll()
    browser.tab.selected_index = titles.index("runs")  # read again at once, not at the next poll
    assert list(runs.frame["state"]) == ["RUNNING"]
    assert browser.watch.watching_executions  # and the poll looks after runs from then on


def test_a_running_run_is_read_again_at_every_poll(store: mm.Store, elsewhere: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's last write may leave the signature as it was (stamped in the millisecond of the
    update seen last, or before another writer's update seen already): while the runs tab shows a
    RUNNING run, each poll reads the page again, so it never stays RUNNING on screen."""
    browser = StoreBrowser(store)
    browser.tab.selected_index = list(browser.tab.titles).index("runs")
    runs = browser.tabs["runs"]
    other = mm.connect(store.uri)
    run_id = _running(other)
    assert browser.watch.poll() and list(runs.frame["state"]) == ["RUNNING"]
    monkeypatch.setattr(store, "signature", lambda **kw: browser.watch.last)  # the signature does not move
    (execution,) = other.mlmd.get_executions_by_id([run_id])
    execution.last_known_state = pb.Execution.CANCELED
    other.mlmd.put_executions([execution])
    assert browser.watch.poll() and list(runs.frame["state"]) == ["CANCELED"]
    reads = _counting(runs)
    assert not browser.watch.poll() and reads == []  # nothing running: an unchanged signature reads nothing


def test_the_poll_is_three_one_row_reads(store: mm.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = StoreBrowser(store)
    counter = _Counter(monkeypatch, ("get_executions", "get_artifacts", "get_artifacts_by_id", "get_contexts",
                                     "get_executions_by_id"))
    assert not browser.watch.poll()  # a tab of records: one read (the artifact updated last)
    assert len(counter.calls) == 1 and all(opts is not None and opts.limit == 1 for _, opts in counter.calls)
    browser.tab.selected_index = list(browser.tabs).index("runs")
    browser.watch.poll()  # the poll looks after the runs tab since it was opened
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
        other.add_experiment("t99", datasource="nipt-sim", scenario="mlp-small")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(tab.frame) == 2:
                break
        assert list(tab.frame["name"]) == ["t99", "t21"]  # without Refresh
        browser.sensor.visible = False  # scrolled away, or the browser tab hidden
        await asyncio.sleep(0.1)
        polls = browser.watch.polls
        other.add_experiment("t98", datasource="nipt-sim", scenario="mlp-small")
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


def _counting(tab: Any) -> list[str | None]:
    """The filters of the pages ``tab`` reads from now on."""
    reads: list[str | None] = []
    pages = tab.pages
    tab.pages = lambda where, limit, offset: (reads.append(where), pages(where, limit, offset))[1]
    return reads


def test_a_closed_browser_stops_following_the_store(store: mm.Store) -> None:
    """Closing the panel drops the filter's read to come, the listener of this kernel's writes
    and the poll: nothing the store or the person does afterwards makes it read."""
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    clock = _Clock()
    tab.call_later = clock.call_later
    reads = _counting(tab)
    tab.filter.set_state({"value": "t2"})  # typed: a read to come
    assert len(clock.pending()) == 1
    browser.close()
    assert clock.pending() == [] and browser.watch.stopped
    clock.advance(10 * _browser.FILTER_DELAY_S)
    store.add_experiment("t22", datasource="nipt-sim", scenario="mlp-small")  # this kernel's write: not listened to
    assert reads == [] and not browser.watch.poll()
    other = StoreBrowser(store)  # a browser left open still follows
    store.add_experiment("t23", datasource="nipt-sim", scenario="mlp-small")
    assert list(other.tabs["experiments"].frame["name"]) == ["t23", "t22", "t21"]
    assert reads == []


def test_a_browser_stops_following_a_closed_store(store: mm.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """``store.close()`` under an open browser: its poll ends at once (a closed store is never asked
    again, where before it was asked every 3 s for ever), the filter's read to come is dropped and
    this kernel's writes are no longer listened to; the panel says its store was closed."""
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    clock = _Clock()
    tab.call_later = clock.call_later
    tab.filter.set_state({"value": "t2"})
    asked: list[bool] = []
    signature = store.signature
    monkeypatch.setattr(store, "signature", lambda **kw: (asked.append(True), signature(**kw))[1])
    reads = _counting(tab)
    store.close()
    assert not browser.watch.poll() and asked == []  # the closed store is not asked
    assert browser.watch.stopped and browser.watch.closed_seen
    assert clock.pending() == [] and reads == []
    assert "closed" in browser.header.value and "(closed)" in repr(browser)
    for _ in range(3):
        browser.watch.poll()
    assert asked == [] and reads == []
    again = mm.connect(store.uri)  # the same store connected again, written to from this kernel
    again.add_experiment("t22", datasource="nipt-sim", scenario="mlp-small")
    assert reads == [] and "closed" in browser.header.value

    async def polled() -> None:  # in a kernel's loop: the poll task ends by itself
        monkeypatch.setattr(_live, "POLL_S", 0.01)
        live = StoreBrowser(again)
        task = live.watch.task
        assert task is not None and not task.done()
        again.close()
        await asyncio.wait_for(task, timeout=30)
        assert live.watch.closed_seen and "closed" in live.header.value

    asyncio.run(polled())


def test_an_editor_left_open_says_at_once_that_a_newer_version_exists(store: mm.Store, elsewhere: None) -> None:
    editor = ExperimentEditor(store, "t21")
    policy = PolicyEditor(store, "release-nipt")
    editor.watch.poll()
    assert "out of date" not in editor.header.value
    other = mm.connect(store.uri)
    other.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 7})
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


class _Clock:
    """A clock for a tab's filter (``tab.call_later``): time moves only when the test says."""

    class Handle:
        def __init__(self, when: float, action: Any) -> None:
            self.when, self.action, self.cancelled = when, action, False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[_Clock.Handle] = []

    def call_later(self, delay: float, action: Any) -> _Clock.Handle:
        handle = _Clock.Handle(self.now + delay, action)
        self.handles.append(handle)
        return handle

    def pending(self) -> list[_Clock.Handle]:
        """The calls to come: neither cancelled nor made."""
        return [h for h in self.handles if not h.cancelled and h.action is not None]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for handle in sorted(self.pending(), key=lambda h: h.when):
            if handle.when <= self.now + 1e-9:
                action, handle.action = handle.action, None  # each fires once
                action()


def test_one_pager_one_filter_applied_as_you_type(store: mm.Store) -> None:
    for i in range(3):
        store.add_experiment(f"exp-{i}", datasource="nipt-sim", scenario="mlp-small")
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    layout = tab.grid._dt_args["layout"]
    # DataTables' own info ("Showing 1 to 20 of 20 entries"), pager and search box are off
    assert layout == {"topStart": None, "topEnd": None, "bottomStart": None, "bottomEnd": None}
    assert tab.grid._dt_args["paging"] is False
    assert tab.filter.continuous_update
    clock = _Clock()
    tab.call_later = clock.call_later
    reads: list[str | None] = []
    pages = tab.pages
    tab.pages = lambda where, limit, offset: (reads.append(where), pages(where, limit, offset))[1]  # type: ignore
    delay = _browser.FILTER_DELAY_S
    for text in ("e", "ex", "exp-1"):  # keys typed in the page (changes from the frontend), 0.1 s apart
        tab.filter.set_state({"value": text})
        clock.advance(0.1)
    assert reads == [] and len(clock.pending()) == 1  # each key put the read off: one to come
    clock.advance(delay - 0.1 - 0.01)
    assert reads == []  # not yet: the pause after the last key is not over
    clock.advance(0.01)
    assert reads == ["name ~ '*exp-1*'"] and list(tab.frame["name"]) == ["exp-1"]  # one read, the last text's
    assert clock.pending() == []
    clock.advance(10 * delay)
    assert len(reads) == 1
    assert tab.grid._dt_args["layout"] == layout  # still one pager after the grid was updated
    tab.filter.value = "t21"  # set from Python: read at once
    assert list(tab.frame["name"]) == ["t21"] and clock.pending() == []


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


def _run_row(**more: Any) -> dict[str, Any]:
    return {"name": "t21@1#1", "run": 5, "experiment": "t21@1", "trial": "", "state": "COMPLETE", "model": 6,
            "epoch": 3, "epochs": 3, "optimizer.name": "adam", "optimizer.lr": 0.01, "duration_s": 1.5,
            "created": "2025-01-01 10:00:00", **more}


@pytest.mark.parametrize("splits, shown", [
    (("train", "eval"), ["eval.accuracy", "eval.loss", "eval.auc"]),  # no test split: eval's
    (("train", "validation"), ["validation.accuracy", "validation.loss", "validation.auc"]),  # a split of its own
    (("train",), ["train.accuracy", "train.loss", "train.auc"]),
    (("train", "eval", "test"), ["test.accuracy", "test.loss", "test.auc"]),  # test first, as ever
    ((), []),  # a run still going: no metric yet, and a dotted parameter is no split
])
def test_the_runs_grid_shows_the_metrics_of_the_split_there_is(splits: tuple[str, ...], shown: list[str]) -> None:
    import pandas as pd

    metrics = {f"{split}.{m}": 0.5 for split in splits for m in ("auc", "loss", "recall_T21", "accuracy")}
    frame = _browser.grid_frame(pd.DataFrame([_run_row(**metrics), _run_row(name="t21@1#2", run=7)]))
    folded = _browser.fold_run_columns(frame)
    assert list(folded.columns) == ["name", "state", "epoch", "epochs", *shown, "duration_s", "created", "more"]
    assert "optimizer.lr: 0.01" in folded["more"][0]  # folded, not taken for a metric


def test_the_runs_grid_keeps_the_trial_of_a_sweeps_runs() -> None:
    import pandas as pd

    rows = [_run_row(**{"eval.accuracy": 0.9, "eval.loss": 0.3}),
            _run_row(name="grid@1#1", experiment="grid@1~3", trial="grid@1#3", **{"eval.accuracy": 0.8})]
    folded = _browser.fold_run_columns(_browser.grid_frame(pd.DataFrame(rows)))
    assert list(folded.columns)[:3] == ["name", "trial", "state"] and list(folded["trial"]) == ["", "grid@1#3"]
    assert list(folded.columns)[5:7] == ["eval.accuracy", "eval.loss"]
    plain = _browser.fold_run_columns(_browser.grid_frame(pd.DataFrame(rows[:1])))
    assert "trial" not in plain.columns  # no trial on the page: no empty column


# ---------------------------------------------------------------------------------- item 9


def _many(store: mm.Store, n: int) -> None:
    for i in range(n):
        store.add_experiment(f"exp-{i:04d}", datasource="nipt-sim", scenario="mlp-small")


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


def test_the_runs_grid_shows_the_columns_its_filter_names() -> None:
    """A runs tab filtered by a parameter or a metric that would be folded shows that column."""
    import pandas as pd

    frame = _browser.grid_frame(pd.DataFrame([_run_row(**{"test.accuracy": 0.9, "eval.recall_T21": 0.7})]))
    folded = _browser.fold_run_columns(frame, _browser._filter_keys("optimizer.name == adam and eval.recall_T21 > 0.5"))
    assert list(folded.columns)[:3] == ["name", "optimizer.name", "eval.recall_T21"]
    assert "optimizer.name:" not in folded["more"][0]
    assert list(_browser.fold_run_columns(frame, _browser._filter_keys("params.optimizer.lr < 1")).columns)[1] == \
        "optimizer.lr"
    assert _browser._filter_keys("t21") == ["name"] and _browser._filter_keys("epochs >>= 2") == []
