"""Releasing a model: policies as records, evaluation under a policy, push, model cards —
through the API, the magics, the console script and the policy editor widget."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.cli import main
from mlmd_magic.errors import NotBlessedError, NotFoundError, ValidationError
from mlmd_magic.widgets import PolicyEditor

from .test_magics import run

SLICES = [{"feature": "fetal_fraction", "bins": [0.04, 0.08], "names": ["ff_low", "ff_mid", "ff_high"]}]
PASSES = [{"metric": "accuracy", "lower": 0.05, "slices": ["ff_mid", "ff_high"]}]
FAILS = [{"metric": "recall_T21", "lower": 0.999, "slices": ["ff_mid", "ff_high"]},
         {"metric": "accuracy", "lower": 0.05}]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("release")
    uri = f"sqlite:///{root}/release.sqlite"
    store = mm.connect(uri, runs_dir=str(root / "runs"))
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(root / "nipt"), n_train=300, n_eval=60,
                                                              n_test=200))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [16], "learning_rate": 0.01, "batch_size": 32,
                                                         "epochs": 1, "seed": 1})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    result = store.train("t21", progress=False)
    store.close()
    return {"uri": uri, "root": root, "run": result}


@pytest.fixture
def store(trained: dict[str, Any]) -> Any:
    s = mm.connect(trained["uri"], runs_dir=str(trained["root"] / "runs"))
    yield s
    s.close()


def _events(store: mm.Store, execution_id: int, kind: int) -> list[Any]:
    ids = [e.artifact_id for e in store.mlmd.get_events_by_execution_ids([execution_id]) if e.type == kind]
    return list(store.mlmd.get_artifacts_by_id(ids))


def test_policy_versions_and_evaluation_under_it(store: mm.Store, trained: dict[str, Any]) -> None:
    first = store.add_policy("release-api", slices=SLICES, thresholds=FAILS, owner="lead", description="v1")
    assert first.ref == "release-api@1" and first.data["owner"] == "lead"
    assert store.add_policy("release-api", slices=SLICES, thresholds=FAILS, owner="lead",
                            description="v1").status == "unchanged"
    second = store.add_policy("release-api", slices=SLICES, thresholds=PASSES, owner="lead", description="v2")
    assert second.ref == "release-api@2"
    assert store.get_policy("release-api@1")["thresholds"][0]["metric"] == "recall_T21"
    assert "thresholds" in str(store.diff("release-api@1", "release-api@2"))
    model = f"model:{trained['run'].model_id}"
    failed = store.evaluate(model, policy="release-api@1")
    assert not failed.blessed and failed.policy == "release-api@1" and "under policy release-api@1" in repr(failed)
    blessed = store.evaluate(model, policy="release-api")
    assert blessed.blessed and blessed.policy == "release-api@2"
    (execution,) = [e for e in store.mlmd.get_executions_by_type("mlmd_magic.Evaluate")
                    if _events(store, e.id, pb.Event.OUTPUT)[0].id == blessed.id]
    assert "release-api@2" in {a.name for a in _events(store, execution.id, pb.Event.INPUT)}
    models = store.ls("models")
    assert "release-api@2: BLESSED" in models.loc[models["model"] == trained["run"].model_id, "verdicts"].iloc[0]
    evaluations = store.ls("evaluations")
    row = evaluations[evaluations["evaluation"] == failed.id].iloc[0]
    assert row["policy"] == "release-api@1" and row["verdict"] == "NOT BLESSED"
    assert "ff_mid: recall_T21 >= 0.999" in row["failed_checks"] and row["model"] == trained["run"].name
    assert set(store.ls("policies")["name"]) >= {"release-api"}


@pytest.mark.parametrize(("slices", "thresholds", "message"), [
    (SLICES, [{"metric": "accuracy", "lower": 0.5, "slices": ["ff_hi"]}], "did you mean 'ff_high'"),
    (SLICES, [], "at least one threshold"),
    ([{"feature": "ff", "bins": [0.2, 0.1]}], PASSES, "increasing"),
])
def test_a_bad_policy_is_refused_and_leaves_no_record(store: mm.Store, slices: Any, thresholds: Any,
                                                      message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        store.add_policy("bad-policy", slices=slices, thresholds=thresholds)
    assert "bad-policy" not in store.names("policies")


def test_policy_and_explicit_thresholds_do_not_mix(store: mm.Store, trained: dict[str, Any]) -> None:
    store.add_policy("mix", slices=SLICES, thresholds=PASSES)
    with pytest.raises(ValidationError, match="not both"):
        store.evaluate(trained["run"], policy="mix", thresholds=PASSES)
    with pytest.raises(mm.NotFoundError, match="no policy named 'mixx'"):
        store.evaluate(trained["run"], policy="mixx")


def test_push_refuses_then_forces_then_serves(store: mm.Store, trained: dict[str, Any], tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    target = tmp_path / "serving" / "nipt"
    model = trained["run"].model_id
    store.add_policy("release-push", slices=SLICES, thresholds=FAILS, owner="lead")
    with pytest.raises(NotBlessedError, match="no evaluation under policy release-push"):
        store.push(f"model:{model}", to=str(target), policy="release-push")
    store.evaluate(f"model:{model}", policy="release-push")
    with pytest.raises(NotBlessedError) as info:
        store.push(f"model:{model}", to=str(target), policy="release-push")
    assert "NOT BLESSED under release-push@1" in str(info.value)
    assert "✗ ff_mid: recall_T21 >= 0.999" in str(info.value) and "force=True" in str(info.value)
    assert not target.exists()  # nothing written
    refused = store.mlmd.get_executions_by_type("mlmd_magic.Push")
    assert [e.last_known_state for e in refused] == [pb.Execution.FAILED] * 2
    assert store.mlmd.get_artifacts_by_type("mlmd_magic.PushedModel") == []

    forced = store.push(f"model:{model}", to=str(target), policy="release-push", force=True)
    assert forced.version == 1 and not forced.blessed and forced.by and len(forced.overridden) == 2
    store.add_policy("release-push", slices=SLICES, thresholds=PASSES, owner="lead")
    store.evaluate(f"model:{model}", policy="release-push")
    pushed = store.push(f"model:{model}", to=str(target), policy="release-push")
    assert (pushed.version, pushed.blessed, pushed.policy) == (2, True, "release-push@2")
    assert sorted(os.listdir(target)) == ["1", "2"]

    # the Push executions and PushedModel artifacts
    artifacts = sorted(store.mlmd.get_artifacts_by_type("mlmd_magic.PushedModel"), key=lambda a: a.id)
    assert [a.properties["version"].int_value for a in artifacts] == [1, 2]
    assert artifacts[1].uri == str(target / "2") and artifacts[1].properties["pushed_model"].int_value == model
    assert artifacts[1].properties["policy"].string_value == "release-push@2"
    override = json.loads(artifacts[0].properties["override"].string_value)
    assert override["by"] == forced.by and override["checks"] == forced.overridden
    assert "override" not in artifacts[1].properties
    execution = store.mlmd.get_executions_by_type("mlmd_magic.Push")[-1]
    assert {a.id for a in _events(store, execution.id, pb.Event.INPUT)} >= {model}
    # in the model's lineage, the refused pushes are not drawn like the ones that happened
    graph = store.lineage(f"model:{model}")
    pushes = {n.key: n for n in graph.nodes if n.label.startswith("Push #")}
    failed = {f"e:{e.id}" for e in refused}
    assert failed <= set(pushes) and all(pushes[k].state == "failed" and "(failed)" in pushes[k].label for k in failed)
    assert all(not n.state and "(" not in n.label for k, n in pushes.items() if k not in failed)
    svg = graph._repr_svg_()
    assert svg.count("stroke-dasharray") == len(failed) and "(failed)" in repr(graph)

    # served from the SavedModel: the same predictions as the Keras model
    from mlmd_magic.trainer._data import input_spec, load_arrays

    params = store.get_experiment("t21")
    spec = input_spec(params["datasource"], params["params"])
    x, _, columns = load_arrays(params["datasource"], "test", spec, extra=spec.features)
    served = tf.saved_model.load(str(target / "2")).signatures["serving_default"]
    signature = json.loads((target / "2" / "serving_signature.json").read_text())
    feeds = {name: tf.constant(np.asarray(columns[name]).astype(info["dtype"]))
             for name, info in signature["inputs"].items()}
    assert set(feeds) == set(spec.features)
    scores = served(**feeds)["scores"].numpy()
    expected = keras.saving.load_model(trained["run"].model_uri, compile=False)(x).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)

    # the card beside it lists every slice, the policy and the verdict
    card = json.loads((target / "2" / "model_card.json").read_text())
    policies = card["quantitative_analysis"]["policies"]
    latest = [p for p in policies if p["policy"] == "release-push@2"]
    assert latest and latest[0]["verdict"] == "BLESSED"
    assert latest[0]["slices"] == ["overall", "ff_low", "ff_mid", "ff_high"]
    assert "ff_high" in (target / "2" / "model_card.html").read_text()


def test_model_card_fields_come_from_the_records(store: mm.Store, trained: dict[str, Any], tmp_path: Path) -> None:
    store.evaluate(trained["run"], thresholds=[{"metric": "accuracy", "lower": 0.99}])  # under no policy
    store.add_policy("release-card", slices=SLICES, thresholds=PASSES, owner="screening-lead")
    store.evaluate(trained["run"], policy="release-card")
    store.add_policy("release-card-2", slices=SLICES, thresholds=PASSES, owner="screening-lead")
    store.evaluate(trained["run"], policy="release-card-2")
    store.evaluate(trained["run"], policy="release-card")  # evaluated again: leads again
    store.evaluate(trained["run"], thresholds=[{"metric": "accuracy", "lower": 0.99}])  # newest, under no policy
    card = store.model_card(trained["run"], to=str(tmp_path / "card"))
    assert sorted(os.listdir(tmp_path / "card")) == ["model_card.html", "model_card.json"]
    data = json.loads((tmp_path / "card" / "model_card.json").read_text())
    assert {"model_details", "model_parameters", "quantitative_analysis", "considerations"} <= set(data)
    details = data["model_details"]
    assert details["name"] == trained["run"].name and {"name": "screening-lead", "contact": ""} in details["owners"]
    assert details["version"]["name"] and details["path"] == trained["run"].model_uri
    assert "experiment t21@1" in details["documentation"]
    splits = {d["split"]: d for d in data["model_parameters"]["data"]}
    assert set(splits) == {"train", "eval", "test"} and splits["test"]["examples"] == 200
    assert sum(splits["test"]["label_distribution"].values()) == 200 and "euploid" in splits["test"][
        "label_distribution"]
    assert len(splits["train"]["fingerprint"]) == 64
    metrics = data["quantitative_analysis"]["performance_metrics"]
    assert {m["slice"] for m in metrics if m["policy"] == "release-card@1"} == {"overall", "ff_low", "ff_mid",
                                                                                  "ff_high"}
    assert all({"type", "value", "slice"} <= set(m) for m in metrics)
    assert any(m["threshold"].startswith("✓ accuracy") for m in metrics)
    assert "release-card@1" in card._repr_html_() and "BLESSED" in card._repr_html_()
    # the card leads with the release policies' verdicts, whatever was evaluated after them
    policies = data["quantitative_analysis"]["policies"]
    assert policies[-1]["policy"] == "(no policy)"
    assert [p["policy"] for p in policies[:2]] == ["release-card@1", "release-card-2@1"]
    assert metrics[0]["policy"] == "release-card@1"
    card_exec = store.mlmd.get_executions_by_type("mlmd_magic.WriteModelCard")[-1]
    assert card_exec.last_known_state == pb.Execution.COMPLETE


def test_magics_policy_cell_evaluate_push_and_card(trained: dict[str, Any], ip: InteractiveShell, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, f"%mlmd connect {trained['uri']}")
    record = run(ip, "%%policy release-magic\nowner: lead\nslices:\n"
                     "  - {feature: fetal_fraction, bins: [0.04, 0.08], names: [ff_low, ff_mid, ff_high]}\n"
                     "thresholds:\n  - {metric: accuracy, lower: 0.05, slices: [ff_mid, ff_high]}\n")
    assert record.ref == "release-magic@1"
    with pytest.raises(UsageError, match="YAML error in the %%policy cell at line 5"):
        run(ip, "%%policy broken\nthresholds:\n  - {metric: accuracy, lower: 0.5}\n  - [\n")
    with pytest.raises(UsageError, match="did you mean 'recall_T21'"):  # refused when defined, not when used
        run(ip, "%%policy typo\nthresholds:\n  - {metric: recal_T21, lower: 0.5}\n")
    evaluation = run(ip, f"%mlmd evaluate {trained['run'].name} --policy release-magic")
    assert evaluation.blessed and evaluation.policy == "release-magic@1"
    from_cell = run(ip, f"%%evaluate {trained['run'].name}\npolicy: release-magic@1\n")
    assert from_cell.blessed and from_cell.policy == "release-magic@1"
    table = run(ip, "%mlmd ls models")
    assert "release-magic@1: BLESSED" in " ".join(table["verdicts"])
    pushed = run(ip, f"%mlmd push model:{trained['run'].model_id} --to {tmp_path / 'srv'} --policy release-magic")
    assert pushed.version == 1 and (tmp_path / "srv" / "1" / "saved_model.pb").exists()
    card = run(ip, f"%mlmd card {trained['run'].name} --to {tmp_path / 'card'}")
    assert (tmp_path / "card" / "model_card.html").exists() and "release-magic@1" in card._repr_html_()
    editor = run(ip, "%mlmd edit policy:release-magic")
    assert isinstance(editor, PolicyEditor) and "release-magic@1" in repr(editor)
    assert isinstance(run(ip, "%mlmd edit release-magic"), PolicyEditor)  # a policy's name is enough
    assert "New policy brand-new" in run(ip, "%mlmd edit policy:brand-new").header.value
    assert "policies" in run(ip, "%mlmd help ls").text


def test_cli_push_refuses_an_unblessed_model(trained: dict[str, Any], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    store = mm.connect(trained["uri"])
    store.add_policy("release-cli", slices=SLICES, thresholds=FAILS)
    spec = tmp_path / "release-cli.yaml"
    assert main(["--uri", trained["uri"], "export", "release-cli", "-f", str(spec)]) == 0
    assert "kind: policy" in spec.read_text() and "recall_T21" in spec.read_text()
    assert main(["--uri", trained["uri"], "import", str(spec)]) == 0
    assert "unchanged" in capsys.readouterr().out
    store.close()
    model = f"model:{trained['run'].model_id}"
    assert main(["--uri", trained["uri"], "--json", "evaluate", model, "--policy", "release-cli"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["policy"] == "release-cli@1" and not evaluated["blessed"]
    assert evaluated["confusion"]["overall"] and evaluated["class_labels"][1] == "T21"
    assert main(["--uri", trained["uri"], "push", model, "--to", str(tmp_path / "srv"), "--policy",
                 "release-cli"]) != 0
    err = capsys.readouterr().err
    assert "NOT BLESSED under release-cli@1" in err and "recall_T21 >= 0.999" in err
    assert not (tmp_path / "srv").exists()
    assert main(["--uri", trained["uri"], "--json", "push", model, "--to", str(tmp_path / "srv"), "--policy",
                 "release-cli", "--force"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == 1 and not out["blessed"] and out["overridden"]
    assert main(["--uri", trained["uri"], "--json", "ls", "evaluations"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["policy"] == "release-cli@1" and r["verdict"] == "NOT BLESSED" for r in rows)
    assert main(["--uri", trained["uri"], "card", model, "--to", str(tmp_path / "card")]) == 0
    card = json.loads((tmp_path / "card" / "model_card.json").read_text())
    assert any(p["policy"] == "release-cli@1" for p in card["quantitative_analysis"]["policies"])
    assert "pushed as version 1" in card["model_details"]["documentation"]
    graph = mm.connect(trained["uri"]).lineage(model)
    assert any(node.kind == "PushedModel" for node in graph.nodes)


def test_policy_editor_adds_changes_removes_and_saves(store: mm.Store, trained: dict[str, Any]) -> None:
    editor = PolicyEditor(store, "release-widget")
    assert "New policy release-widget" in editor.header.value and editor.save_button.disabled
    assert editor.message.startswith("a new policy: add a threshold") and "a new policy" in repr(editor)
    editor.add_slice()
    row = editor.slice_box.children[0]
    row.feature.value, row.bins.value, row.names.value = "fetal_fraction", "0.04, 0.08", "ff_low, ff_mid, ff_high"
    editor.add_threshold()
    threshold = editor.threshold_box.children[0]
    threshold.metric.value, threshold.value.value, threshold.slices.value = "accuracy", 0.05, "ff_mid, ff_hi"
    assert "did you mean 'ff_high'" in html.unescape(editor.status.value) and editor.save_button.disabled
    assert editor.message.startswith("✗ thresholds[0] names slice") and "did you mean 'ff_high'" in editor.message
    threshold.slices.value = "ff_mid, ff_high"
    assert "valid" in editor.status.value and not editor.save_button.disabled
    assert "thresholds" in editor.diff.value
    # a metric no evaluation computes: refused as you type, with what was probably meant
    threshold.metric.value = "sensitivity_T21"
    assert editor.message.startswith("✗ thresholds[0] names metric 'sensitivity_T21', which no evaluation computes")
    assert "did you mean 'recall_T21'?" in editor.message and editor.save_button.disabled
    # names the store's data does not have: savable, but flagged, with what was probably meant
    assert "T18" in " ".join(editor.metric_choices) and "auc" not in editor.metric_choices  # the data's own metrics
    threshold.metric.value = "recall_T22"
    assert editor.message.startswith("⚠ can be saved, but check:")  # no green tick above a warning
    assert "⚠ threshold 1: 'recall_T22' is not a metric of this store's data; did you mean 'recall_T21'?" \
        in editor.message
    row.feature.value = "seq_depth"
    assert "⚠ slice 1: 'seq_depth' is not a feature of this store's data" in editor.message
    assert not editor.save_button.disabled
    row.feature.value, threshold.metric.value = "fetal_fraction", "accuracy"
    assert editor.message == "✓ valid"
    threshold.value.value = 0.0  # where a new row starts: a bound that cannot fail
    assert "threshold 1: accuracy is a rate between 0 and 1, so this bound always passes" in editor.message
    threshold.value.value = 0.05
    first = editor.save()
    assert first.ref == "release-widget@1" and editor.message == "✓ saved as release-widget@1"
    assert store.evaluate(trained["run"], policy="release-widget").blessed
    editor.add_threshold({"metric": "recall_T21", "lower": 0.999})
    editor.threshold_box.children[0].remove.click()
    second = editor.save()
    assert second.ref == "release-widget@2"
    assert [t["metric"] for t in store.get_policy("release-widget")["thresholds"]] == ["recall_T21"]
    assert not store.evaluate(trained["run"], policy="release-widget").blessed
    editor.slice_box.children[0].remove.click()
    assert editor.slice_box.children == ()
    source = store.mlmd.get_executions_by_type("mlmd_magic.AddPolicy")[-1].properties["source"].string_value
    assert source.startswith("widget PolicyEditor release-widget@1: thresholds")
    # a panel left open while the policy got a newer version elsewhere does not save over it
    stale = PolicyEditor(store, "release-widget")
    store.add_policy("release-widget", slices=SLICES, thresholds=[{"metric": "accuracy", "lower": 0.01}])  # @3
    stale.add_threshold({"metric": "recall_T21", "lower": 0.5})
    assert stale.save() is None and "release-widget@3 was recorded after this panel opened" in stale.message
    assert "out of date" in stale.header.value and stale.save_button.disabled
    assert store.get_policy("release-widget")["version"] == 3


_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.just(float("inf")),
                   st.text(max_size=8), st.lists(st.floats(-1, 1), max_size=3))
_THRESHOLD = st.dictionaries(st.sampled_from(["metric", "lower", "upper", "change", "relative", "direction",
                                              "slices", "colour"]), _VALUE, max_size=5)
_SLICE = st.dictionaries(st.sampled_from(["feature", "bins", "names", "values", "extra"]), _VALUE, max_size=4)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slices=st.one_of(st.none(), st.lists(_SLICE, max_size=3), _VALUE),
       thresholds=st.one_of(st.lists(_THRESHOLD, max_size=3), _VALUE))
def test_hostile_policies_are_recorded_whole_or_refused(mem_store: mm.Store, slices: Any, thresholds: Any) -> None:
    before = len(mem_store.mlmd.get_artifacts_by_type("mlmd_magic.Policy"))
    try:
        record = mem_store.add_policy("hostile", slices=slices, thresholds=thresholds)
    except ValidationError:
        assert len(mem_store.mlmd.get_artifacts_by_type("mlmd_magic.Policy")) == before
        return
    assert record.data["thresholds"] and mem_store.get_policy(record.ref)["thresholds"] == record.data["thresholds"]


def test_the_store_browser_has_a_policies_tab_and_evaluations_name_their_policy(store: mm.Store,
                                                                                trained: dict[str, Any]) -> None:
    from mlmd_magic.widgets import StoreBrowser

    store.add_policy("release-tab", slices=SLICES, thresholds=PASSES, owner="lead")
    evaluation = store.evaluate(trained["run"], policy="release-tab")
    page = store.page("policies", where="name == 'release-tab'")
    assert page.total == 1 and page.frame.iloc[0]["owner"] == "lead"
    assert "release-tab@1" in store.details("policies", "release-tab@1")
    store.add_policy("release-tab", slices=SLICES, thresholds=FAILS, owner="lead", description="stricter")
    versions = store.details("policies", "release-tab@2").split("<summary>versions</summary>", 1)[1]
    assert "stricter" in versions and "recall_T21 &gt;= 0.999" in versions  # who changed what, per version
    row = store.ls("evaluations", where=f"evaluation == {evaluation.id}").iloc[0]
    assert row["policy"] == "release-tab@1" and row["verdict"] == "BLESSED"
    assert store.evaluation(evaluation.id).policy == "release-tab@1"
    assert "confusion matrix, overall" in store.evaluation(evaluation.id)._repr_html_()
    browser = StoreBrowser(store)
    assert "policies" in browser.tab.titles


def test_a_failed_verdict_is_explained_on_every_face(store: mm.Store, trained: dict[str, Any], ip: InteractiveShell,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    store.add_policy("release-explain", slices=SLICES, thresholds=FAILS)
    evaluation = store.evaluate(trained["run"], policy="release-explain")
    assert not evaluation.blessed
    failed_slices = list(dict.fromkeys(c.slice for c in evaluation.result.failed))
    api = store.evaluation(evaluation.id).explain()
    assert [p.slice for p in api.slices] == failed_slices
    assert all(p.matrix == evaluation.result.confusion[p.slice] for p in api.slices)
    assert any(s.startswith("recall_T21 = ") and " examples, " in s for s in api.slices[0].sentences)
    run(ip, f"%mlmd connect {trained['uri']}")
    magic = run(ip, f"%mlmd explain {evaluation.id}")
    # what was recorded explains the verdict exactly as the evaluation did when it was made
    assert magic.to_dict() == api.to_dict()
    assert [(p.slice, p.matrix, p.sentences) for p in api.slices] == [
        (p.slice, p.matrix, p.sentences) for p in evaluation.explain().slices]
    assert store.evaluation(evaluation.id).result.task == evaluation.result.task == "multiclass"
    # read back in the order it was computed (slices as the policy names them, metrics as the task lists them)
    assert store.evaluation(evaluation.id).result.table() == evaluation.result.table()
    one = run(ip, f"%mlmd explain evaluation:{evaluation.id} --slice ff_high")
    assert [p.slice for p in one.slices] == ["ff_high"]
    assert api.title == f"Evaluation #{evaluation.id} of {trained['run'].name} under policy release-explain@1"
    assert repr(api).startswith(api.title + ": NOT BLESSED")
    assert {k: api.to_dict()[k] for k in ("evaluation", "model_id", "policy")} == {
        "evaluation": evaluation.id, "model_id": trained["run"].model_id, "policy": "release-explain@1"}
    # a model instead of an id: its newest evaluation (under --policy, if given)
    assert run(ip, "%mlmd explain t21 --policy release-explain").to_dict() == api.to_dict()
    assert run(ip, f"%mlmd explain model:{trained['run'].model_id}").title.startswith("Evaluation #")
    with pytest.raises(UsageError, match="no evaluation under policy release-prefix-none"):
        store.add_policy("release-prefix-none", slices=SLICES, thresholds=PASSES)
        run(ip, "%mlmd explain t21 --policy release-prefix-none")
    with pytest.raises(UsageError, match="an evaluation id names one already"):
        run(ip, f"%mlmd explain {evaluation.id} --policy release-explain")
    with pytest.raises(UsageError, match="no slice 'ff_none'"):
        run(ip, f"%mlmd explain {evaluation.id} --slice ff_none")
    capsys.readouterr()
    assert main(["--uri", trained["uri"], "--json", "explain", str(evaluation.id)]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(api.to_dict()))
    assert main(["--uri", trained["uri"], "explain", str(evaluation.id)]) == 0
    assert capsys.readouterr().out.strip() == repr(api)
    assert "why it failed" in store.details("evaluations", evaluation.id)  # the browser's details pane


def test_kind_prefixed_references_name_a_policy_on_every_face(store: mm.Store, ip: InteractiveShell,
                                                              capsys: pytest.CaptureFixture[str],
                                                              trained: dict[str, Any]) -> None:
    store.add_policy("release-prefix", slices=SLICES, thresholds=PASSES)
    store.add_policy("release-prefix", slices=SLICES, thresholds=FAILS)
    assert list(store.history("policy:release-prefix")["version"]) == [1, 2]
    assert store.record("policy:release-prefix@1").ref == "release-prefix@1"
    changed = store.diff("policy:release-prefix@1", "policy:release-prefix@2")
    assert any(c.key.startswith("thresholds") for c in changed.changes)
    # a policy's thresholds differ item by item, not as two long lists
    shown = repr(changed)
    assert '- {"lower": 0.05, "metric": "accuracy", "slices": ["ff_mid", "ff_high"]}' in shown
    assert '+ {"lower": 0.999, "metric": "recall_T21", "slices": ["ff_mid", "ff_high"]}' in shown
    with pytest.raises(ValidationError, match="names a policy but kind='experiment'"):
        store.history("policy:release-prefix", kind="experiment")
    with pytest.raises(NotFoundError, match="no policy is named 'release-prefx'; did you mean 'release-prefix'"):
        store.kind_of("policy:release-prefx")
    run(ip, f"%mlmd connect {trained['uri']}")
    assert list(run(ip, "%mlmd history policy:release-prefix")["version"]) == [1, 2]
    assert run(ip, "%mlmd diff policy:release-prefix@1 policy:release-prefix@2").changes == changed.changes
    capsys.readouterr()
    assert main(["--uri", trained["uri"], "--json", "history", "policy:release-prefix"]) == 0
    assert [r["version"] for r in json.loads(capsys.readouterr().out)] == [1, 2]
    assert run(ip, "%mlmd show policy:release-prefix@1").ref == "release-prefix@1"
    assert "name: release-prefix" in run(ip, "%mlmd export policy:release-prefix").text
    assert any(n.kind == "Policy" for n in store.lineage("policy:release-prefix@1").nodes)
    assert isinstance(run(ip, "%mlmd edit Policy:release-prefix"), PolicyEditor)
    with pytest.raises(UsageError, match="names its kind twice"):
        run(ip, "%mlmd show policy:policy:release-prefix")
    with pytest.raises(UsageError, match="the editor edits experiments and policies"):
        run(ip, "%mlmd edit scenario:mlp-small")
    # the release gate takes the prefixed form too: evaluated under policy:NAME, pushed under it
    store.add_policy("release-prefix-gate", slices=SLICES, thresholds=PASSES)
    evaluated = store.evaluate(trained["run"], policy="policy:release-prefix-gate")
    assert evaluated.blessed and evaluated.policy == "release-prefix-gate@1"
    pushed = store.push(trained["run"], to=str(trained["root"] / "srv-prefix"), policy="policy:release-prefix-gate@1")
    assert pushed.policy == "release-prefix-gate@1" and pushed.blessed
