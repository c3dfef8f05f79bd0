"""The panels, built on a real store: traits set and buttons pressed from Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.widgets import ExperimentEditor, StoreBrowser, compare
from mlmd_magic.widgets._browser import PAGE_SIZE


@pytest.fixture
def store(tmp_path: Path) -> mm.Store:
    s = mm.connect(f"sqlite:///{tmp_path}/w.sqlite")
    s.add_datasource("nipt-sim", **datasets.simulate_nipt(str(tmp_path / "d"), n_train=64, n_eval=32, n_test=32))
    s.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 1, "learning_rate": 0.01,
                                                     "optimizer": {"name": "adam"}, "shuffle": True})
    s.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 2})
    return s


def test_editor_types_validation_diff_and_save(store: mm.Store) -> None:
    editor = ExperimentEditor(store, "t21")
    kinds = {path: type(widget).__name__ for path, widget in editor.inputs.items()}
    typed = [widget for widget in editor.inputs.values() if not isinstance(widget, w.Checkbox)]
    assert typed and all(widget.continuous_update for widget in typed)  # validated as you type
    assert editor.diff.layout.min_height  # room kept: the buttons do not jump when the diff appears
    assert kinds == {"epochs": "IntField", "hidden": "Text", "learning_rate": "FloatField",
                     "optimizer.name": "Text", "shuffle": "Checkbox"}
    assert editor.save_button.disabled and "no changes" in editor.status.value
    editor.inputs["epochs"].value = 4
    assert not editor.save_button.disabled and "params.epochs" in editor.diff.value
    editor.inputs["hidden"].value = "[8, 4"
    assert editor.save_button.disabled and "not valid JSON" in editor.status.value
    editor.inputs["hidden"].value = "[8, 4]"
    editor.inputs["hidden"].value = '"wide"'  # the library's own check: a list must stay a list
    assert editor.save_button.disabled and "must be a list" in editor.status.value
    editor.inputs["hidden"].value = "[8, 4]"
    editor.save_button.click()
    assert "saved as t21@2" in editor.status.value
    saved = store.get_experiment("t21")
    assert saved["version"] == 2 and saved["params"]["epochs"] == 4 and saved["params"]["hidden"] == [8, 4]
    define = store.mlmd.get_executions_by_type("mlmd_magic.DefineExperiment")[-1]
    source = define.properties["source"].string_value
    assert source == "widget ExperimentEditor t21@1: params.epochs 2 -> 4; params.hidden [8] -> [8, 4]"
    assert "t21@2" in editor.header.value and editor.save_button.disabled
    assert "ExperimentEditor for t21@2" in repr(editor) and "epochs = 4" in repr(editor)


def test_an_editor_left_open_does_not_undo_a_version_recorded_since(store: mm.Store) -> None:
    editor = ExperimentEditor(store, "t21")
    # t21@2, recorded elsewhere
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 7})
    editor.inputs["learning_rate"].value = 0.5
    assert editor.save() is None
    assert "t21@2 was recorded after this panel opened" in editor.status.value
    assert "%mlmd edit t21" in editor.status.value and "out of date" in editor.header.value
    assert editor.save_button.disabled
    assert store.get_experiment("t21")["version"] == 2  # nothing written
    fresh = ExperimentEditor(store, "t21")
    fresh.inputs["learning_rate"].value = 0.5
    saved = fresh.save()
    assert saved is not None and saved.ref == "t21@3" and saved.data["params"]["epochs"] == 7
    fresh.inputs["learning_rate"].value = 0.25  # its own saves do not make it stale
    assert fresh.save() is not None and store.get_experiment("t21")["version"] == 4
    old = ExperimentEditor(store, "t21@1")  # an older version opened on purpose may still be saved from
    old.inputs["epochs"].value = 3
    assert old.save() is not None and store.get_experiment("t21")["params"]["epochs"] == 3


def test_editor_versions_of_scenario_and_datasource(store: mm.Store) -> None:
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 1, "learning_rate": 0.01,
                                                         "optimizer": {"name": "adam"}, "shuffle": True,
                                                         "dropout": 0.1})
    editor = ExperimentEditor(store, "t21@1")
    assert editor.scenario.options == ("mlp-small@1", "mlp-small@2")
    editor.scenario.value = "mlp-small@2"
    assert "dropout" in editor.inputs and editor.inputs["epochs"].value == "2"  # the override is kept
    record = editor.save()
    assert record is not None and record.data["scenario"]["version"] == 2
    assert store.get_experiment("t21")["params"]["dropout"] == 0.1


def test_editor_trains(store: mm.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    editor = ExperimentEditor(store, "t21")
    seen: list[int] = []
    editor.progress.observe(lambda change: seen.append(change["new"]), names="value")
    run = editor.train()
    assert run is not None and run.state == "COMPLETE"
    assert seen[-2:] == [1, 2] and editor.progress.max == 2  # the bar moves with each epoch
    assert "complete: t21@1" in editor.progress_label.value
    (train,) = store.mlmd.get_executions_by_type("mlmd_magic.Train")
    assert train.properties["source"].string_value == "widget ExperimentEditor t21@1: train"


def test_train_waits_while_the_form_holds_unsaved_changes(store: mm.Store, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Train trains the saved version: with changes not saved (or an invalid form) it is disabled,
    says why, and a call trains nothing."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    editor = ExperimentEditor(store, "t21")
    assert not editor.train_button.disabled
    editor.inputs["epochs"].value = 3
    assert editor.train_button.disabled and "save first" in editor.train_button.tooltip
    assert editor.train() is None and "not trained: Train trains t21@1 as saved" in editor.status.value
    editor.inputs["hidden"].value = "[8"  # invalid: no Train either
    assert editor.train_button.disabled
    assert store.mlmd.get_executions_by_type("mlmd_magic.Train") == []
    editor.inputs["hidden"].value = "[8]"
    assert editor.save() is not None and not editor.train_button.disabled  # saved: t21@2 trains


def test_an_older_version_opened_says_which_version_a_save_records(store: mm.Store) -> None:
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 7})  # t21@2
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 9})  # t21@3
    editor = ExperimentEditor(store, "t21@1")
    assert "saving records version 4 if anything changed" in editor.header.value
    editor.inputs["epochs"].value = 5
    assert editor.save().ref == "t21@4"  # type: ignore[union-attr]


def test_browser_pages_on_the_store_side(store: mm.Store) -> None:
    for i in range(PAGE_SIZE + 5):
        store.add_experiment(f"exp-{i:02d}", datasource="nipt-sim", scenario="mlp-small")
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    assert len(tab.frame) == PAGE_SIZE and not tab.next.disabled and tab.prev.disabled
    assert "rows 1–20 of many · page 1" in tab.count.value  # the total would read every record: not asked
    grid = tab.grid.df
    assert grid["name"][0] == "exp-24"  # newest first
    # one column per parameter; an overridden value marked (t21 overrides epochs)
    assert {"epochs", "hidden", "learning_rate", "optimizer.name", "shuffle"} <= set(grid.columns)
    assert "overrides" not in grid.columns
    tab.next.click()
    assert "rows 21–26 of 26 · page 2 of 2" in tab.count.value and len(tab.frame) == 6 and tab.next.disabled
    t21 = tab.grid.df[tab.grid.df["name"] == "t21"].iloc[0]
    assert "mlmd-magic-override" in t21["epochs"] and ">2</b>" in t21["epochs"]
    assert "override" not in str(t21["learning_rate"])
    tab.filter.value = "exp-1"
    assert set(tab.frame["name"]) == {f"exp-1{i}" for i in range(10)} and "of 10 · page 1 of 1" in tab.count.value
    tab.filter.value = "epohcs >= 2"
    assert "did you mean" in tab.count.value  # the filter's error, and no rows that would pass for its matches
    assert tab.grid.df.empty and tab.frame is None and tab.next.disabled and tab.prev.disabled
    tab.filter.value = "name == t21"
    tab.grid.selected_rows = [0]
    details = tab.details.value
    assert "Experiment t21@1" in details and "<svg" in details and "versions" in details
    assert details.index("epochs") < details.index("nipt-sim")  # hyperparameters first
    text = repr(browser)
    assert text.startswith("StoreBrowser of sqlite://") and "experiments filtered by 'name == t21'" in text
    assert "rows 1–1 of 1 (page 1 of 1): t21@1" in text
    browser.tab.selected_index = 2
    assert list(browser.tabs["datasources"].frame["name"]) == ["nipt-sim"]
    # the panel's text (what a restarted kernel leaves) says what it shows now: the tab last opened
    text = repr(browser)
    assert "datasources rows 1–1 of 1 (page 1 of 1): nipt-sim@1" in text and "t21" not in text.splitlines()[0]
    # opening the panel is the person's action (one listing); nothing the panel read after was recorded
    assert len([e for e in store.mlmd.get_executions() if "ListRecords" in str(e.type)]) == 1


def test_browser_filtering_paging_and_selecting_record_nothing(store_with_experiment: mm.Store) -> None:
    """Opening the browser is the person's action: one recorded listing. Typing in its filter,
    paging, selecting a row or a tab record nothing; a read outside the panel still is recorded."""
    trained = store_with_experiment
    for i in range(25):
        trained.add_experiment(f"exp-{i:02d}", datasource="nipt", scenario="s")
    before = len(trained.mlmd.get_executions())
    browser = StoreBrowser(trained)
    assert len(trained.mlmd.get_executions()) == before + 1
    tab = browser.tabs["experiments"]
    for text in ("e", "ex", "exp", "exp-", "exp-1"):
        tab.filter.value = text
    tab.filter.value = ""
    tab.next.click()
    tab.prev.click()
    tab.grid.selected_rows = [0]
    browser.tab.selected_index = 3
    assert "Experiment" in tab.details.value and len(trained.mlmd.get_executions()) == before + 1
    trained.ls("experiments", where="name ~ 'exp-1*'")
    assert len(trained.mlmd.get_executions()) == before + 2


def test_browser_refreshes_after_an_action_of_this_kernel(store: mm.Store) -> None:
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    assert list(tab.frame["name"]) == ["t21"]
    browser.tabs["scenarios"].load()
    store.add_experiment("t22", datasource="nipt-sim", scenario="mlp-small")  # an action of this kernel
    assert list(tab.frame["name"]) == ["t22", "t21"] and "rows 1–2 of 2" in tab.count.value
    assert not browser.tabs["scenarios"].loaded  # read again when next opened
    other = mm.connect(store.uri.replace("w.sqlite", "other.sqlite"))
    other.add_scenario("x", model="mlp", params={"epochs": 1})  # another store: no reload
    assert list(tab.frame["name"]) == ["t22", "t21"]
    tab.refresh_button.click()
    assert list(tab.frame["name"]) == ["t22", "t21"]


def test_browser_runs_compare_and_evaluations(store: mm.Store, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    first = store.train("t21", progress=False)
    second = store.train("t21", epochs=3, progress=False)
    store.evaluate(second, baseline=first, thresholds=[{"metric": "accuracy", "lower": 1.01}])
    browser = StoreBrowser(store)
    browser.tab.selected_index = list(browser.tab.titles).index("runs")
    runs = browser.tabs["runs"]
    grid = runs.grid.df
    assert list(grid["name"]) == ["t21@2#1", "t21@1#1"]
    assert {"test.accuracy", "eval.loss", "train.loss", "epochs", "hidden"} <= set(runs.frame.columns)
    assert "params.epochs" not in runs.frame.columns  # one column per parameter
    assert "metrics" not in runs.frame.columns
    assert all(v == round(v, 4) for v in runs.frame["test.loss"])  # rounded, split named
    # the grid fits a notebook's width: test metrics as columns, the rest folded into "more"
    assert list(grid.columns)[:2] == ["name", "state"] and "test.accuracy" in grid.columns
    assert len(grid.columns) <= 10 and "eval.loss" not in grid.columns
    more = grid["more"][0]
    assert more.startswith("<details") and "eval.loss: " in more and "train.loss: " in more
    assert ">3</b>" in str(grid["epochs"][0])  # the override still marked, in its own column
    assert runs.compare_button.disabled
    runs.grid.selected_rows = [0, 1]
    assert not runs.compare_button.disabled and f"Run {first.name}" in runs.details.value
    comparison = runs.compare_button.click()
    assert comparison is None and "params.epochs" in runs.comparison.value
    assert "t21@2#1" in runs.comparison.value and "data:image/png;base64," in runs.comparison.value
    compared = [e for e in store.mlmd.get_executions() if e.type_id == store.mlmd.get_execution_type(
        "mlmd_magic.CompareRuns").id]
    assert compared[-1].properties["source"].string_value.startswith("widget StoreBrowser: compare")
    browser.tab.selected_index = list(browser.tab.titles).index("evaluations")
    evaluations = browser.tabs["evaluations"].frame
    row = evaluations.iloc[0]
    assert (row["model"], row["baseline"], row["verdict"]) == ("t21@2#1", "t21@1#1", "NOT BLESSED")
    assert row["thresholds"] == "accuracy >= 1.01" and row["failed_checks"] == "overall: accuracy >= 1.01"
    browser.tabs["evaluations"].grid.selected_rows = [0]
    assert "NOT BLESSED" in browser.tabs["evaluations"].details.value
    assert "baseline" in browser.tabs["evaluations"].details.value
    listed = store.ls("evaluations", where="verdict == 'NOT BLESSED'")
    assert list(listed["evaluation"]) == [int(row["evaluation"])]


def test_the_browsers_text_follows_its_tabs(store: mm.Store, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """After a kernel restart the cell shows the browser's text as it was last: the tab the
    person was on (and the run or evaluation selected there), not the experiments tab it opened
    on; switching to a tab read before updates that text too."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    first = store.train("t21", progress=False)
    store.evaluate(first, thresholds=[{"metric": "accuracy", "lower": 1.01}])
    browser = StoreBrowser(store)
    texts: list[str] = []
    monkeypatch.setattr(browser, "update_fallback", lambda: texts.append(repr(browser)) or 1)
    titles = list(browser.tab.titles)
    browser.tab.selected_index = titles.index("runs")
    assert "runs rows 1–1 of 1 (page 1 of 1): t21@1#1 (COMPLETE)" in texts[-1]
    browser.tab.selected_index = titles.index("evaluations")
    evaluations = browser.tabs["evaluations"]
    evaluation = int(evaluations.frame["evaluation"][0])
    assert f"evaluations rows 1–1 of 1 (page 1 of 1): #{evaluation} t21@1#1: NOT BLESSED" in texts[-1]
    browser.tab.selected_index = titles.index("runs")  # read before: not read again, its text still says so
    assert texts[-1].startswith(f"StoreBrowser of {store.uri}: runs rows 1–1") and "experiments" not in \
        texts[-1].splitlines()[0]
    browser.tabs["runs"].grid.selected_rows = [0]
    assert "t21@1#1 (COMPLETE)" in texts[-1]
    browser.tab.selected_index = titles.index("models")
    assert "models rows 1–1 of 1" in texts[-1]


def test_the_runs_grid_of_a_store_without_a_test_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data source with train and eval splits only: the runs grid shows eval's metrics."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    s = mm.connect(f"sqlite:///{tmp_path}/noteset.sqlite")
    data = datasets.simulate_nipt(str(tmp_path / "d"), n_train=64, n_eval=32, n_test=8)
    data["splits"] = {k: v for k, v in data["splits"].items() if k != "test"}
    s.add_datasource("no-test", **data)
    s.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 1, "learning_rate": 0.01})
    s.add_experiment("t21", datasource="no-test", scenario="mlp-small")
    s.train("t21", progress=False)
    browser = StoreBrowser(s)
    browser.tab.selected_index = list(browser.tab.titles).index("runs")
    grid = browser.tabs["runs"].grid.df
    assert [c for c in grid.columns if "." in c] == ["eval.accuracy", "eval.loss"]  # not train's
    assert "train.loss: " in grid["more"][0]


def test_browser_shows_foreign_types(store: mm.Store) -> None:
    tfx_type = store.mlmd.put_artifact_type(pb.ArtifactType(name="Examples"))
    [aid] = store.mlmd.put_artifacts([pb.Artifact(type_id=tfx_type, uri="/pipelines/examples/1", name="examples-1")])
    browser = StoreBrowser(store)
    assert "Examples" in browser.tab.titles
    foreign = browser.tabs["Examples"]
    assert foreign.frame is None  # read when first opened, not when the browser is built
    browser.tab.selected_index = list(browser.tab.titles).index("Examples")
    assert list(foreign.frame["id"]) == [aid] and list(foreign.frame["name"]) == ["examples-1"]
    assert "rows 1–1 of 1" in foreign.count.value
    foreign.grid.selected_rows = [0]
    details = foreign.details.value
    assert "/pipelines/examples/1" in details and "<svg" in details


def test_compare_and_lineage(store: mm.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    first = store.train("t21", progress=False)
    second = store.train("t21", epochs=3, progress=False)
    comparison = compare(store, [first.id, f"run:{second.id}"])
    assert comparison.params == {"params.epochs": [2, 3]}
    assert set(comparison.metrics) == {"train", "eval", "test"}
    assert "data:image/png;base64," in comparison._repr_html_() and "params.epochs" in repr(comparison)
    with pytest.raises(mm.NotFoundError, match="no training run"):
        compare(store, [9999])
    graph = store.lineage(f"model:{second.model_id}")
    labels = [n.label for n in graph.nodes]
    assert any(label.startswith("DataSource nipt-sim@1") for label in labels)
    assert any(label.startswith("train: d/train") for label in labels)
    assert any(label.startswith("Experiment t21@2") for label in labels)
    assert "<svg" in graph._repr_svg_() and "lineage of Model" in repr(graph)
    _check_lineage_fits_and_clicks(graph)
    evaluation = store.evaluate(second, thresholds=[{"metric": "accuracy", "lower": 0.0}])
    downstream = store.lineage("t21@2")
    assert any(n.label == f"Evaluation #{evaluation.id} ✓" for n in downstream.nodes)


def test_panels_from_magics(store: mm.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from mlmd_magic.faces.registry import REGISTRY

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "mlmd_magic")
    try:
        ip.run_line_magic("mlmd", f"connect {store.uri}")
        editor: Any = ip.run_line_magic("mlmd", "edit t21")
        assert isinstance(editor, ExperimentEditor)
        assert isinstance(ip.run_line_magic("mlmd", "browse"), StoreBrowser)
        graph = ip.run_line_magic("mlmd", "lineage t21")
        formatted, _ = ip.display_formatter.format(graph)
        assert "image/svg+xml" in formatted and "lineage of Experiment t21@1" in formatted["text/plain"]
    finally:
        ip.run_line_magic("unload_ext", "mlmd_magic")
        REGISTRY.reset()


def _check_lineage_fits_and_clicks(graph: Any) -> None:
    """Top-down, scaled to the cell's width, every node a label for a radio that reveals its record."""
    import re
    import xml.etree.ElementTree as ET

    svg = graph._repr_svg_()
    root = ET.fromstring(svg)
    assert root.get("width") == "100%" and re.fullmatch(r"0 0 \d+ \d+", root.get("viewBox") or "")
    pos, width, _ = graph.layout()
    assert len({y for _, y in pos.values()}) >= 4 and width <= 1000  # layers downwards, narrow enough
    by_label = {n.label.split(" ")[0]: n.key for n in graph.nodes}
    # data flows down: each edge's target sits on a lower layer than its source
    assert all(pos[b][1] > pos[a][1] for a, b in graph.edges)
    assert pos[by_label["Model"]][1] > pos[by_label["Experiment"]][1] > pos[by_label["DataSource"]][1]
    page = graph._repr_html_()
    ET.fromstring(page.replace("<style>", "<style><![CDATA[").replace("</style>", "]]></style>"))  # well formed
    radios = re.findall(r"<input type='radio' name='([^']+)' id='([^']+)'", page)
    labels = re.findall(r"<label xmlns='http://www.w3.org/1999/xhtml' for='([^']+)'", page)
    assert len(radios) == len(graph.nodes) and sorted(labels) == sorted(i for _, i in radios)
    panels = re.findall(r"<div class='mlmd-magic-record mlmd-magic-record-(\d+)' data-key='([^']+)'>", page)
    assert [key for _, key in panels] == [n.key for n in graph.nodes]
    datasource = next(i for i, n in enumerate(graph.nodes) if n.kind == "DataSource")
    assert f"#{radios[0][0]}-{datasource}:checked ~ .mlmd-magic-records > .mlmd-magic-record-{datasource}" in page
    assert "fingerprint" in page and "display:none" in page  # records there, hidden until clicked


@pytest.mark.parametrize(("line", "text_start"), [("browse", "StoreBrowser of sqlite"),
                                                  ("edit policy:release-nipt", "PolicyEditor for release-nipt (new)")])
def test_panels_leave_their_text_when_the_kernel_stops(tmp_path: Path, line: str, text_start: str) -> None:
    """A real kernel: a panel is two outputs (the widget, then its text hidden by CSS while the
    widget lives); when the kernel is asked to restart it replaces the widget by the text."""
    import queue
    import time

    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute(f"%load_ext mlmd_magic\n%mlmd connect sqlite:///{tmp_path}/k.sqlite\n%mlmd {line}")
        shown: list[dict[str, Any]] = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            assert msg["msg_type"] != "error", msg["content"]
            if msg["msg_type"] == "display_data":
                shown.append(msg["content"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert len(shown) == 2
        widget, text = shown
        assert "application/vnd.jupyter.widget-view+json" in widget["data"] and widget["transient"]["display_id"]
        assert "mlmd-magic-fallback-box{display:none}" in text["data"]["text/html"]
        assert ".jp-OutputArea-child:has(.jupyter-widgets-disconnected)" in text["data"]["text/html"]
        assert text_start in text["data"]["text/html"]
        km.restart_kernel(now=False)
        updates = []
        deadline = time.time() + 30
        while time.time() < deadline and not updates:
            try:
                msg = kc.get_iopub_msg(timeout=2)
            except queue.Empty:
                continue
            if msg["msg_type"] == "update_display_data":
                updates.append(msg)
        (update,) = updates
        assert update["parent_header"]["msg_id"] == msg_id  # routed to the cell that showed it
        assert update["content"]["transient"]["display_id"] == widget["transient"]["display_id"]
        assert set(update["content"]["data"]) == {"text/html", "text/plain"}
        assert update["content"]["data"]["text/plain"].startswith(text_start)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
