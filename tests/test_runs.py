"""Training and evaluation on record: Train/Evaluate executions, caching (model builders
included), cancel, lineage (unknown references too), verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from ml_metadata.metadata_store import metadata_store as ms
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.errors import TrainingError

SLICES = [{"feature": "fetal_fraction", "bins": [0.04, 0.08], "names": ["ff_low", "ff_mid", "ff_high"]}]
CLASSES = ["euploid", "T21", "T18", "T13"]


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=400, n_eval=100, n_test=300)


@pytest.fixture
def store(tmp_path: Path, nipt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> mm.Store:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    return _setup(mm.connect(f"sqlite:///{tmp_path}/runs.sqlite"), nipt)


def _setup(s: mm.Store, nipt: dict[str, Any]) -> mm.Store:
    s.add_datasource("nipt-sim", **nipt)
    s.add_scenario("mlp-small", model="mlp", params={"hidden": [32], "learning_rate": 0.01, "batch_size": 32,
                                                     "epochs": 2, "seed": 1})
    s.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    return s


def _train_executions(store: mm.Store) -> list[Any]:
    return store.mlmd.get_executions_by_type("mlmd_magic.Train")


def test_train_records_inputs_outputs_and_progress(store: mm.Store) -> None:
    run = store.train("t21", progress=False)
    assert run.state == "COMPLETE" and not run.cached and Path(run.model_uri or "").exists()
    assert run.experiment == "t21@1" and set(run.metrics) == {"train", "eval", "test"}
    (execution,) = _train_executions(store)
    assert execution.id == run.id and execution.last_known_state == pb.Execution.COMPLETE
    events = store.mlmd.get_events_by_execution_ids([execution.id])
    inputs = {store.mlmd.get_artifacts_by_id([e.artifact_id])[0].name for e in events if e.type == pb.Event.INPUT}
    assert inputs == {"t21@1", "nipt-sim@1", "mlp-small@1"}
    (model_id,) = [e.artifact_id for e in events if e.type == pb.Event.OUTPUT]
    assert model_id == run.model_id
    model = store.mlmd.get_artifacts_by_id([model_id])[0]
    assert model.state == pb.Artifact.LIVE and model.properties["experiment"].string_value == "t21@1"
    assert json.loads(execution.properties["progress"].string_value)["epoch"] == 2
    details = json.loads(execution.properties["details"].string_value)
    assert details["history"]["loss"] and details["device"] == "cpu"
    runs, models = store.ls("runs"), store.ls("models")
    assert list(runs["state"]) == ["COMPLETE"] and list(runs["experiment"]) == ["t21@1"]
    # who trained it, on the run: listed, and a filter can ask for it
    from mlmd_magic.backend.session import current_session

    user = current_session().user
    assert list(runs["user"]) == [user] and execution.properties["user"].string_value == user
    assert len(store.ls("runs", where=f"user == '{user}'")) == 1
    assert store.ls("runs", where="user == 'somebody-else'").empty
    assert list(models["model"]) == [model_id]


def test_runs_do_not_crowd_the_experiment_context(store: mm.Store) -> None:
    for epochs in (1, 2, 3, 4):
        store.train("t21", epochs=epochs, progress=False)
    ctx = store.mlmd.get_context_by_type_and_name("mlmd_magic.Experiment", "t21")
    types = {t.id: t.name for t in store.mlmd.get_artifact_types()}
    attributed = {types[a.type_id] for a in store.mlmd.get_artifacts_by_context(ctx.id)}
    assert "mlmd_magic.Model" not in attributed  # the context holds versions: Store._latest reads it
    fresh = mm.connect(store.uri)  # nothing cached: the lookup goes through the context
    assert fresh.get_experiment("t21")["version"] == 5


def test_identical_run_is_cached_unless_forced(store: mm.Store) -> None:
    first = store.train("t21", progress=False)
    again = store.train("t21", progress=False)
    assert again.cached and again.model_id == first.model_id and again.state == "CACHED"
    forced = store.train("t21", force=True, progress=False)
    assert not forced.cached and forced.model_id != first.model_id
    states = [e.last_known_state for e in _train_executions(store)]
    assert states == [pb.Execution.COMPLETE, pb.Execution.CACHED, pb.Execution.COMPLETE]


def test_re_registered_builder_is_not_answered_from_the_cache(store_with_experiment: mm.Store) -> None:
    """A model builder registered again under its name with other code trains anew: the cache
    knows a builder by its source, not its name."""
    from mlmd_magic.trainer import register_model

    trained = store_with_experiment
    namespace: dict[str, Any] = {}
    for width in (4, 6):
        source = textwrap.dedent(f"""
            def narrow(input_dim, output, params, normalizer):
                import keras
                inputs = keras.Input((input_dim,))
                x = keras.layers.Dense({width}, activation="relu")(normalizer(inputs))
                return keras.Model(inputs, output.layer()(x))
        """)
        path = Path(trained.uri.split("///", 1)[1]).parent / f"builder_{width}.py"
        path.write_text(source)
        exec(compile(source, str(path), "exec"), namespace)  # a real file: inspect can read the source
        register_model("narrow-test")(namespace["narrow"])
        trained.add_scenario("n", model="narrow-test", params={"epochs": 1})
        trained.add_experiment("n-exp", datasource="nipt", scenario="n")
        first = trained.train("n-exp", progress=False)
        again = trained.train("n-exp", progress=False)
        assert not first.cached and again.cached and again.model_id == first.model_id
        if width == 4:
            old_model = first.model_id
    assert first.model_id != old_model  # the width-6 builder trained anew


def test_builder_without_readable_source_is_never_cached(store_with_experiment: mm.Store) -> None:
    """A builder whose source cannot be read (made by exec) is trained every time, and the run says why."""
    from mlmd_magic.trainer import register_model

    trained = store_with_experiment
    namespace: dict[str, Any] = {}
    exec(compile("def anon(d, out, p, norm):\n    import keras\n    i = keras.Input((d,))\n"
                 "    return keras.Model(i, out.layer()(norm(i)))\n", "<made-by-exec>", "exec"), namespace)
    register_model("anon-test")(namespace["anon"])
    trained.add_scenario("a", model="anon-test", params={"epochs": 1})
    trained.add_experiment("a-exp", datasource="nipt", scenario="a")
    first = trained.train("a-exp", progress=False)
    second = trained.train("a-exp", progress=False)
    assert not first.cached and not second.cached and second.model_id != first.model_id
    assert "not cached: the source of model builder 'anon-test' cannot be read" in repr(second)


def test_overrides_train_a_new_experiment_version(store: mm.Store) -> None:
    run = store.train("t21", epochs=3, progress=False)
    assert run.experiment == "t21@2" and run.details["epochs"] == 3
    assert store.get_experiment("t21")["params"]["epochs"] == 3


def test_interrupt_is_recorded_canceled_with_no_model(store: mm.Store, tmp_path: Path) -> None:
    class Stop:
        def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.train("t21", callbacks=[Stop()], progress=False)
    (execution,) = _train_executions(store)
    assert execution.last_known_state == pb.Execution.CANCELED
    assert "interrupted" in execution.properties["error"].string_value
    assert store.mlmd.get_artifacts_by_type("mlmd_magic.Model") == []
    assert not list((tmp_path / "runs").rglob("model.keras"))


def test_trainer_failure_is_recorded_failed(store: mm.Store) -> None:
    store.add_scenario("broken", model="mlp", params={"optimizer": "adamant", "epochs": 1})
    store.add_experiment("bad", datasource="nipt-sim", scenario="broken")
    with pytest.raises(TrainingError, match="unknown optimizer 'adamant'"):
        store.train("bad", progress=False)
    (execution,) = _train_executions(store)
    assert execution.last_known_state == pb.Execution.FAILED
    assert store.mlmd.get_artifacts_by_type("mlmd_magic.Model") == []


def test_evaluate_on_slices_against_a_baseline_with_lineage(store: mm.Store) -> None:
    baseline = store.train("t21", progress=False)
    candidate = store.train("t21", epochs=6, progress=False)
    evaluation = store.evaluate(
        candidate, slices=SLICES, baseline=baseline, class_names=CLASSES,
        thresholds=[{"metric": "accuracy", "lower": 0.5, "slices": ["ff_high"]},
                    {"metric": "abnormal_auc", "change": -0.05, "slices": ["overall"]}],
    )
    result = evaluation.result
    assert list(result.metrics) == ["overall", "ff_low", "ff_mid", "ff_high"]
    assert "recall_T21" in result.metrics["overall"] and result.baseline_metrics is not None
    assert evaluation.blessed == all(c.passed for c in result.checks) and len(result.checks) == 2
    art = store.mlmd.get_artifacts_by_id([evaluation.id])[0]
    assert art.custom_properties["blessed"].int_value == int(evaluation.blessed)
    assert art.custom_properties["current_model_id"].int_value == candidate.model_id
    assert art.custom_properties["baseline_model_id"].int_value == baseline.model_id
    # TFX-style query for blessed evaluations
    blessed = store.mlmd.get_artifacts(list_options=ms.ListOptions(
        filter_query="custom_properties.blessed.int_value = 1"))
    assert [a.id for a in blessed] == ([evaluation.id] if evaluation.blessed else [])
    # lineage: evaluation <- Evaluate <- model <- Train <- data source (files) and scenario
    names = _upstream(store, evaluation.id)
    assert {"nipt-sim@1", "mlp-small@1", "t21@2"} <= names
    ds = store.mlmd.get_artifact_by_type_and_name("mlmd_magic.DataSource", "nipt-sim@1")
    assert Path(ds.uri, "eval.tfrecord").exists()


def _upstream(store: mm.Store, artifact_id: int) -> set[str]:
    seen, frontier, names = set(), [artifact_id], set()
    while frontier:
        aid = frontier.pop()
        if aid in seen:
            continue
        seen.add(aid)
        producers = [e.execution_id for e in store.mlmd.get_events_by_artifact_ids([aid]) if e.type == pb.Event.OUTPUT]
        for ev in store.mlmd.get_events_by_execution_ids(producers):
            if ev.type == pb.Event.INPUT:
                frontier.append(ev.artifact_id)
        names.add(store.mlmd.get_artifacts_by_id([aid])[0].name)
    return names


def test_evaluation_verdicts(store: mm.Store) -> None:
    run = store.train("t21", progress=False)
    blessed = store.evaluate(run, thresholds=[{"metric": "accuracy", "lower": 0.0}], slices=SLICES)
    assert blessed.blessed and "BLESSED" in repr(blessed)
    empty_slice = [{"feature": "fetal_fraction", "bins": [0.0001, 0.001], "names": ["none", "tiny", "rest"]}]
    failed = store.evaluate("t21", slices=empty_slice, data="eval",
                            thresholds=[{"metric": "accuracy", "lower": 0.0, "slices": ["none"]}])
    assert not failed.blessed and failed.result.split == "eval"
    assert "empty" in failed.result.checks[0].reason
    assert store.evaluate(f"model:{run.model_id}", data="nipt-sim@1:test").result.split == "test"
    with pytest.raises(mm.NotFoundError, match="no trained model"):
        store.add_experiment("fresh", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 1})
        store.evaluate("fresh")
    with pytest.raises(mm.ValidationError, match="no split 'holdout'"):
        store.evaluate(run, data="holdout")
    with pytest.raises(mm.ValidationError, match="no such feature"):
        store.evaluate(run, slices=[{"feature": "nope"}])
    failed_evals = [e for e in store.mlmd.get_executions_by_type("mlmd_magic.Evaluate")
                    if e.last_known_state == pb.Execution.FAILED]
    assert len(failed_evals) == 3


@pytest.mark.mysql
def test_train_and_evaluate_on_mariadb(mysql_uri: str, nipt: dict[str, Any], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared MariaDB store: every per-epoch update fits MLMD's MySQL columns."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    store = _setup(mm.connect(mysql_uri), nipt)
    run = store.train("t21", progress=False)
    assert run.state == "COMPLETE"
    (execution,) = _train_executions(store)
    assert json.loads(execution.properties["progress"].string_value)["epoch"] == 2
    assert execution.last_update_time_since_epoch > execution.create_time_since_epoch  # the heartbeat
    evaluation = store.evaluate(run, slices=SLICES, thresholds=[{"metric": "accuracy", "lower": 0.0}])
    art = store.mlmd.get_artifacts_by_id([evaluation.id])[0]
    assert evaluation.blessed and art.custom_properties["blessed"].int_value == 1
    assert art.custom_properties["current_model_id"].int_value == run.model_id
    assert mm.connect(mysql_uri).reaped_runs == []


def test_class_names_live_on_the_data_source(store: mm.Store, nipt: dict[str, Any], tmp_path: Path) -> None:
    run = store.train("t21", progress=False)
    evaluation = store.evaluate(run, thresholds=[{"metric": "recall_T21", "lower": 0.0}])  # no class_names given
    overall = evaluation.result.metrics["overall"]
    assert "recall_T21" in overall and "recall_1" not in overall
    assert store.get_datasource("nipt-sim")["label_names"] == ["euploid", "T21", "T18", "T13"]
    assert store.export("nipt-sim")["label_names"] == ["euploid", "T21", "T18", "T13"]
    with pytest.raises(mm.ValidationError, match=r"names 2 classes .* but the data has label 2"):
        store.add_datasource("short", **{**nipt, "label_names": ["euploid", "T21"]})
    with pytest.raises(mm.ValidationError, match="repeats 'T21'"):
        store.add_datasource("twice", **{**nipt, "label_names": ["euploid", "T21", "T21", "T13"]})


# ---------------------------------------------------------------------------- unknown references


@pytest.mark.parametrize("target", [99999, "99999", "model:99999", "run:99999", "no-such-record", "nope@2"])
def test_unknown_references_are_not_found(store_with_experiment: mm.Store, target: Any) -> None:
    """An unknown artifact id, model, run or record is a NotFoundError naming it (not an IndexError)."""
    with pytest.raises(mm.NotFoundError, match=r"99999|no-such-record|nope"):
        store_with_experiment.lineage(target)


def test_unknown_references_through_the_faces(ip: InteractiveShell, store_with_experiment: mm.Store) -> None:
    """Through the magic and the console script: a usage error naming what is missing, never
    "please report"."""
    ip.run_line_magic("mlmd", f"connect {store_with_experiment.uri}")
    for line, expected in (("lineage 99999", "no artifact with id 99999"),
                           ("lineage run:424242", "no training run #424242"),
                           ("compare 424242", "no training run #424242"),
                           ("evaluate model:424242", "no model with id 424242")):
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("mlmd", line)
        assert expected in str(info.value) and "please report" not in str(info.value)
    done = subprocess.run([sys.executable, "-m", "mlmd_magic.cli", "--uri", store_with_experiment.uri, "lineage",
                           "99999"], capture_output=True, text=True)
    assert done.returncode == 2 and "no artifact with id 99999" in done.stderr
