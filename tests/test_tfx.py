"""One store with TFX: a store shaped like a TFX 1.x pipeline's (see :mod:`mlmd_magic.testing.tfx_store`),
opened by mlmd-magic, browsed, listed, shown, and used as a data source; TFX's rows unchanged."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic.testing import tfx_store

COMPONENTS_UPSTREAM = {"CsvExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer", "Resolver",
                       "Evaluator", "Pusher"}  # ExampleValidator's anomalies feed nothing downstream


@pytest.fixture
def tfx(tmp_path: Path) -> Iterator[tuple[mm.Store, tfx_store.TfxStore, str]]:
    uri = f"sqlite:///{tmp_path}/metadata.sqlite"
    # TFX writes first, through plain ml_metadata; mlmd-magic opens the store afterwards
    from ml_metadata.metadata_store import metadata_store

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    built = tfx_store.build(metadata_store.MetadataStore(config), str(tmp_path / "pipeline"), runs=2)
    store = mm.connect(uri)
    yield store, built, uri
    store.close()


def _cli(uri: str, *args: str) -> Any:
    exe = shutil.which("mlmd-magic", path=os.path.dirname(sys.executable)) or "mlmd-magic"
    done = subprocess.run([exe, "--uri", uri, "--json", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _magic(ip: Any, line: str) -> Any:
    result = ip.run_cell(line)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_store_is_shaped_like_tfx(tfx: tuple[mm.Store, tfx_store.TfxStore, str]) -> None:
    store, built, _ = tfx
    ex = store.mlmd.get_artifacts_by_id([built.last.artifacts["examples"]])[0]
    assert json.loads(ex.properties["split_names"].string_value) == ["eval", "train"]
    assert ex.custom_properties["file_format"].string_value == "tfrecords_gzip"
    for split in ("train", "eval"):
        path = Path(ex.uri) / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz"
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    names = {c.name for c in store.mlmd.get_contexts_by_execution(built.last.executions["Trainer"])}
    run = built.last.run_id
    assert names == {tfx_store.PIPELINE, f"{tfx_store.PIPELINE}.{run}", f"{tfx_store.PIPELINE}.{run}.Trainer"}


@pytest.mark.parametrize("face", ["api", "magic", "cli"])
def test_lineage_of_pushed_model_reaches_every_component(face: str, tfx: tuple[mm.Store, tfx_store.TfxStore, str],
                                                        ip: Any) -> None:
    store, built, uri = tfx
    pushed = built.last.artifacts["pushed_model"]
    if face == "api":
        graph = store.lineage(pushed).to_dict()
    elif face == "magic":
        _magic(ip, f"%mlmd connect {uri}")
        graph = _magic(ip, f"%mlmd lineage {pushed}").to_dict()
    else:
        graph = _cli(uri, "lineage", str(pushed))
    labels = [n["label"] for n in graph["nodes"]]
    components = {label.split(" #")[0] for n, label in zip(graph["nodes"], labels) if n["kind"] == "execution"}
    assert components == COMPONENTS_UPSTREAM
    blessing = built.last.artifacts["blessing"]
    assert f"ModelBlessing #{blessing} ✓" in labels
    assert f"Examples #{built.last.artifacts['examples']}" in labels
    assert f"Model #{built.last.artifacts['model']}" in labels
    # the Resolver handed the first run's model to the Evaluator as its baseline
    baseline = built.runs[0].artifacts["model"]
    assert [f"e:{built.last.executions['latest_blessed_model_resolver']}", f"a:{baseline}"] in graph["edges"]
    assert [f"a:{baseline}", f"e:{built.last.executions['Evaluator']}"] in graph["edges"]


def test_lineage_downstream_of_examples_and_unblessed_verdict(tmp_path: Path) -> None:
    store = mm.connect("memory://")
    built = tfx_store.build(store.mlmd, str(tmp_path), runs=3)
    graph = store.lineage(built.runs[2].artifacts["examples"])
    labels = {n.label.split(" #")[0] for n in graph.nodes}
    assert {"StatisticsGen", "ExampleValidator", "ExampleAnomalies", "Trainer", "Evaluator"} <= labels
    assert f"ModelBlessing #{built.runs[2].artifacts['blessing']} ✗" in {n.label for n in graph.nodes}
    assert "Pusher" not in labels  # the third run's model was not blessed, so not pushed
    from mlmd_magic.store.lineage import lineage

    bounded = lineage(store.mlmd, store.mlmd.get_artifacts_by_id([built.last.artifacts["examples"]])[0], max_nodes=5)
    assert len(bounded.nodes) <= 6 and all(a in {n.key for n in bounded.nodes} for edge in bounded.edges
                                           for a in edge)


@pytest.mark.parametrize("face", ["api", "magic", "cli"])
def test_foreign_artifacts_listed_paged_and_shown(face: str, tfx: tuple[mm.Store, tfx_store.TfxStore, str],
                                                  ip: Any) -> None:
    store, built, uri = tfx
    if face == "magic":
        _magic(ip, f"%mlmd connect {uri}")
    newest = [built.last.artifacts["transformed_examples"], built.last.artifacts["examples"],
              built.runs[0].artifacts["transformed_examples"], built.runs[0].artifacts["examples"]]

    def ls(*args: str) -> list[dict[str, Any]]:
        if face == "api":
            kw: dict[str, Any] = dict(zip(args[1::2], args[2::2]))
            kw = {k.lstrip("-"): int(v) if v.isdigit() else v for k, v in kw.items()}
            return store.ls("artifacts", type=args[0], **kw).to_dict("records")  # type: ignore[no-any-return]
        if face == "magic":
            line = " ".join(f'"{a}"' if " " in a else a for a in args)
            return _magic(ip, "%mlmd ls " + line).to_dict("records")  # type: ignore[no-any-return]
        return _cli(uri, "ls", *args)  # type: ignore[no-any-return]

    first = ls("Examples", "--limit", "2")
    second = ls("Examples", "--limit", "2", "--offset", "2")
    assert [r["id"] for r in first + second] == newest
    assert first[1]["producer"] == f"CsvExampleGen #{built.last.executions['CsvExampleGen']}"
    assert first[0]["uri"].endswith(os.path.join("Transform", "transformed_examples", "2"))
    assert [r["id"] for r in ls("Examples", "--where", "producer_component == 'CsvExampleGen'")] == newest[1::2]
    target = str(built.last.artifacts["blessing"])
    if face == "api":
        shown = store.show(int(target)).to_dict()
        trainer = store.ls("executions", type="Trainer").to_dict("records")
        types = {(t["kind"], t["name"]): t["count"] for t in store.types(counts=True)}
    elif face == "magic":
        shown = _magic(ip, f"%mlmd show {target}").to_dict()
        trainer = _magic(ip, "%mlmd ls Trainer").to_dict("records")
        frame = _magic(ip, "%mlmd types")
        types = {(r["kind"], r["name"]): int(r["count"]) for r in frame.to_dict("records")}
    else:
        shown = _cli(uri, "show", target)
        trainer = _cli(uri, "ls", "executions", "--type", "Trainer")
        types = {(r["kind"], r["name"]): int(r["count"]) for r in _cli(uri, "types")}
    assert shown["type"] == "ModelBlessing" and shown["custom_properties"]["blessed"] == 1
    producer = [link for link in shown["links"] if link["direction"] == "output"]
    assert [link["label"] for link in producer] == [f"Evaluator #{built.last.executions['Evaluator']}"]
    assert {c["type"] for c in shown["contexts"]} == {"pipeline", "run", "component_run"}
    assert [r["component"] for r in trainer] == ["Trainer", "Trainer"]
    assert types[("artifact", "Examples")] == 4 and types[("context", "component_run")] == 18
    assert types[("execution", "tfx.components.pusher.component.Pusher")] == 2


def test_show_errors_and_html(tfx: tuple[mm.Store, tfx_store.TfxStore, str]) -> None:
    store, built, _ = tfx
    with pytest.raises(mm.NotFoundError, match="no artifact with id 99999"):
        store.show(99999)
    with pytest.raises(mm.ValidationError, match="execution:ID"):
        store.show("Trainer")
    details = store.show(f"execution:{built.last.executions['Trainer']}")
    assert details.label == f"Trainer #{built.last.executions['Trainer']}"
    assert "wrote Model #" in repr(details) and "<details open><summary>contexts" in details._repr_html_()


def test_type_names_reach_filters_quoted(tmp_path: Path) -> None:
    """A type name from the store with quotes in it lists its own artifacts, nothing else."""
    store = mm.connect("memory://")
    odd = "Ex' OR type = 'Examples"
    tid = store.mlmd.put_artifact_type(pb.ArtifactType(name=odd))
    tfx_store.build(store.mlmd, str(tmp_path), runs=1, files=False)
    store.mlmd.put_artifacts([pb.Artifact(type_id=tid, uri="/odd")])
    rows = store.ls("artifacts", type=odd)
    assert list(rows["uri"]) == ["/odd"]
    counts = {t["name"]: t["count"] for t in store.types(counts=True) if t["kind"] == "artifact"}
    assert counts[odd] == 1 and counts["Examples"] == 2


def test_datasource_from_examples_trains_and_keeps_tfx_rows(tfx: tuple[mm.Store, tfx_store.TfxStore, str],
                                                            tmp_path: Path, ip: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Define, train, evaluate and browse (the data source through the API and a cell, the rest
    as notebook cells): every row TFX wrote is unchanged, TFX's types are never re-registered."""
    store, built, uri = tfx
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    before = tfx_store.snapshot(store.mlmd, built)
    examples = built.last.artifacts["examples"]
    record = store.add_datasource("taxi", from_artifact=examples, label=tfx_store.LABEL)
    ds = store.get_datasource("taxi")
    assert ds["splits"] == {"eval": "Split-eval", "train": "Split-train"} and ds["format"] == "tfrecord"
    assert ds["features"] == {"fare": {"dtype": "float", "shape": [1]}, "hour": {"dtype": "int64", "shape": [1]},
                              "trip_miles": {"dtype": "float", "shape": [1]}}  # from schema.pbtxt
    assert ds["examples"] == {"eval": 80, "train": 240}
    _magic(ip, f"%mlmd connect {uri}")
    ip.run_cell_magic("datasource", "taxi", f"from_artifact: {examples}\nlabel: {tfx_store.LABEL}\n")
    assert store.record("taxi").ref == record.ref  # same files, same record: unchanged
    # the rest as a notebook does it: cells in a real InteractiveShell
    ip.run_cell_magic("scenario", "small", "model: mlp\nparams: {hidden: [8], epochs: 2, batch_size: 32, seed: 1}\n")
    ip.run_cell_magic("experiment", "tips -o params --run", "datasource: taxi\nscenario: small\n")
    [run] = store.ls("runs").to_dict("records")
    assert run["state"] == "COMPLETE"
    model = f"model:{run['model']}"
    evaluation = ip.run_cell_magic("evaluate", f"{model} --data eval", "thresholds: [{metric: accuracy, lower: 0.0}]\n")
    # training read the gzip TFRecords through tf.data, the evaluation through the no-TensorFlow reader
    assert re.search(r"example_count\s+80\b", repr(evaluation))
    graph = _magic(ip, f"%mlmd lineage {model}")
    labels = {n.label for n in graph.nodes}
    assert f"Examples #{examples}" in labels and any(x.startswith("CsvExampleGen #") for x in labels)
    browser = _magic(ip, "%mlmd browse")
    browser.tab.selected_index = list(browser.tab.titles).index("Examples")
    browser.tabs["Examples"].grid.selected_rows = [0]
    assert f"Examples #{examples}" in browser.tabs["Examples"].details.value
    for line in ("%mlmd ls Examples", f"%mlmd show {examples}", "%mlmd types",
                 f"%mlmd lineage {built.last.artifacts['pushed_model']}"):
        _magic(ip, line)
    mm.connect(uri).close()  # opening again registers nothing of TFX's
    assert tfx_store.snapshot(store.mlmd, built) == before


def test_datasource_from_artifact_errors(tfx: tuple[mm.Store, tfx_store.TfxStore, str]) -> None:
    store, built, _ = tfx
    with pytest.raises(mm.ValidationError, match="no split_names"):
        store.add_datasource("m", from_artifact=built.last.artifacts["model"], label="tips")
    with pytest.raises(mm.ValidationError, match="drop uri"):
        store.add_datasource("m", from_artifact=built.last.artifacts["examples"], uri="/x", label="tips")
    with pytest.raises(mm.ValidationError, match="no label 'nope'"):
        store.add_datasource("m", from_artifact=built.last.artifacts["examples"], label="nope")
    moved = store.mlmd.get_artifacts_by_id([built.runs[0].artifacts["examples"]])[0].uri
    shutil.move(moved, moved + "-moved")
    with pytest.raises(mm.DataSourceError, match=re.escape(f"{moved}' does not exist")):
        store.add_datasource("m", from_artifact=built.runs[0].artifacts["examples"], label="tips")
    assert store.ls("datasources").empty  # nothing half-written


def test_browser_pages_foreign_tabs_with_details_and_lineage(tmp_path: Path) -> None:
    from mlmd_magic.widgets import StoreBrowser

    store = mm.connect("memory://")
    built = tfx_store.build(store.mlmd, str(tmp_path), runs=12, files=False)
    browser = StoreBrowser(store)
    assert {"Examples", "ModelBlessing", "PushedModel"} <= set(browser.tab.titles)
    tab = browser.tabs["Examples"]
    browser.tab.selected_index = list(browser.tab.titles).index("Examples")
    assert len(tab.frame) == 20 and not tab.next.disabled  # 24 Examples: two pages
    assert "rows 1–20 of many · page 1" in tab.count.value  # the first page reads one page, not the total
    tab.next.click()
    assert "page 2 of 2" in tab.count.value and len(tab.frame) == 4 and tab.next.disabled
    tab.filter.value = "producer_component == 'CsvExampleGen'"
    assert len(tab.frame) == 12 and "rows 1–12 of 12" in tab.count.value
    tab.grid.selected_rows = [0]
    newest = built.last.artifacts["examples"]
    assert f"Examples #{newest}" in tab.details.value and "CsvExampleGen" in tab.details.value
    assert "<svg" in tab.details.value and "StatisticsGen" in tab.details.value


def test_datasource_from_examples_without_schema_infers_features(tmp_path: Path) -> None:
    store = mm.connect("memory://")
    ids = tfx_store.register_types(store.mlmd)
    folder = tmp_path / "ImportExampleGen" / "examples" / "1"
    tfx_store.write_examples(str(folder), {"train": 30, "test": 10})
    art = pb.Artifact(type_id=ids["artifact"]["Examples"], uri=str(folder))
    art.properties["split_names"].string_value = '["train", "test"]'
    [aid] = store.mlmd.put_artifacts([art])  # no file_format: TFX's default, gzip TFRecords
    record = store.add_datasource("plain", from_artifact=f"artifact:{aid}", label=tfx_store.LABEL)
    ds = store.get_datasource(record.ref)
    assert ds["features"] == {"fare": {"dtype": "float", "shape": [1]}, "hour": {"dtype": "int64", "shape": [1]},
                              "trip_miles": {"dtype": "float", "shape": [1]}}
    assert ds["examples"] == {"test": 10, "train": 30}
    executions = store.mlmd.get_executions_by_type("mlmd_magic.RegisterDataSource")
    inputs = [e.artifact_id for e in store.mlmd.get_events_by_execution_ids([executions[-1].id])
              if e.type == pb.Event.INPUT]
    assert inputs == [aid]


@pytest.mark.mysql
def test_tfx_store_on_mariadb(mysql_uri: str, tmp_path: Path) -> None:
    """The same on MariaDB: lineage through every component, a paged listing, a data source
    from Examples, and TFX's rows unchanged."""
    store = mm.connect(mysql_uri)
    built = tfx_store.build(store.mlmd, str(tmp_path), runs=2)
    before = tfx_store.snapshot(store.mlmd, built)
    graph = store.lineage(built.last.artifacts["pushed_model"])
    assert {n.label.split(" #")[0] for n in graph.nodes if n.kind == "execution"} == COMPONENTS_UPSTREAM
    page = store.ls("artifacts", type="Examples", limit=1, offset=1)
    assert list(page["id"]) == [built.last.artifacts["examples"]]
    store.add_datasource("taxi", from_artifact=built.last.artifacts["examples"], label=tfx_store.LABEL)
    readers = [link["label"] for link in store.show(built.last.artifacts["examples"]).links
               if link["direction"] == "input"]
    assert any(label.startswith("RegisterDataSource #") for label in readers)
    store.close()
    assert tfx_store.snapshot(mm.connect(mysql_uri).mlmd, built) == before
