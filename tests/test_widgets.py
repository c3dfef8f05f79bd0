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
    s.experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 2})
    return s


def test_editor_types_validation_diff_and_save(store: mm.Store) -> None:
    editor = ExperimentEditor(store, "t21")
    kinds = {path: type(widget).__name__ for path, widget in editor.inputs.items()}
    typed = [widget for widget in editor.inputs.values() if not isinstance(widget, w.Checkbox)]
    assert typed and all(widget.continuous_update for widget in typed)  # validated as you type
    assert editor.diff.layout.min_height  # room kept: the buttons do not jump when the diff appears
    assert kinds == {"epochs": "IntText", "hidden": "Text", "learning_rate": "FloatText",
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


def test_editor_versions_of_scenario_and_datasource(store: mm.Store) -> None:
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 1, "learning_rate": 0.01,
                                                         "optimizer": {"name": "adam"}, "shuffle": True,
                                                         "dropout": 0.1})
    editor = ExperimentEditor(store, "t21@1")
    assert editor.scenario.options == ("mlp-small@1", "mlp-small@2")
    editor.scenario.value = "mlp-small@2"
    assert "dropout" in editor.inputs and editor.inputs["epochs"].value == 2  # the override is kept
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


def test_browser_pages_on_the_store_side(store: mm.Store) -> None:
    for i in range(PAGE_SIZE + 5):
        store.experiment(f"exp-{i:02d}", datasource="nipt-sim", scenario="mlp-small")
    browser = StoreBrowser(store)
    tab = browser.tabs["experiments"]
    assert len(tab.rows.options) == PAGE_SIZE and not tab.next.disabled and tab.prev.disabled
    assert tab.rows.options[0][0].startswith("exp-24@1")  # newest first
    tab.next.click()
    assert tab.page_label.value == "page 2" and len(tab.rows.options) == 6 and tab.next.disabled
    tab.filter.value = "exp-1"
    assert {label.split("@")[0] for label, _ in tab.rows.options} == {f"exp-1{i}" for i in range(10)}
    tab.filter.value = "name == t21"
    tab.rows.value = 0
    assert "Experiment t21@1" in tab.details.value and "<svg" in tab.details.value
    assert "versions" in tab.details.value
    browser.tab.selected_index = 2
    assert [label for label, _ in browser.tabs["datasources"].rows.options] == ["nipt-sim@1  tfrecord"]
    assert "StoreBrowser of sqlite://" in repr(browser)


def test_browser_shows_foreign_types(store: mm.Store) -> None:
    tfx_type = store.mlmd.put_artifact_type(pb.ArtifactType(name="Examples"))
    [aid] = store.mlmd.put_artifacts([pb.Artifact(type_id=tfx_type, uri="/pipelines/examples/1", name="examples-1")])
    browser = StoreBrowser(store)
    assert "Examples" in browser.tab.titles
    foreign = browser.tabs["Examples"]
    assert foreign.rows.options == ()  # read when first opened, not when the browser is built
    browser.tab.selected_index = list(browser.tab.titles).index("Examples")
    assert [label for label, _ in foreign.rows.options] == [f"#{aid}  examples-1  /pipelines/examples/1"]
    foreign.rows.value = 0
    assert "/pipelines/examples/1" in foreign.details.value and "<svg" in foreign.details.value


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
