"""%%experiment --run, %mlmd train (--set included), %%evaluate and %mlmd evaluate through a real
InteractiveShell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.faces.registry import REGISTRY

from .test_magics import run

EVALUATE = """%%evaluate t21@2 --baseline t21@1 -o ev
data: test
class_names: [euploid, T21, T18, T13]
slices:
  - {feature: fetal_fraction, bins: [0.04, 0.08], names: [ff_low, ff_mid, ff_high]}
thresholds:
  - {metric: accuracy, lower: 0.3, slices: [ff_mid, ff_high]}
  - {metric: abnormal_auc, change: -0.5}
"""


def test_train_and_evaluate_from_cells(ip: InteractiveShell, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    data = datasets.simulate_nipt(str(tmp_path / "nipt"), n_train=200, n_eval=50, n_test=200)
    run(ip, "%mlmd connect memory://")
    run(ip, f"%%datasource nipt-sim\nuri: {data['uri']}\nformat: tfrecord\nlabel: label\n"
            "splits: {train: train, eval: eval.tfrecord, test: test.tfrecord}\n")
    run(ip, "%%scenario mlp-small\nmodel: mlp\n"
            "params: {hidden: [16], epochs: 1, batch_size: 32, learning_rate: 0.01}\n")
    first = run(ip, "%%experiment t21 --run\ndatasource: nipt-sim\nscenario: mlp-small\n")
    out = capsys.readouterr().out
    assert "Experiment t21@1 (created version 1)" in out and "Epoch 1/1" in out
    assert first.state == "COMPLETE" and first.experiment == "t21@1"

    second = run(ip, "%mlmd train t21 --set epochs=2 --quiet -o r2")
    assert second.experiment == "t21@2" and ip.user_ns["r2"] is second
    assert "Epoch 1/2" not in capsys.readouterr().out
    cached = run(ip, "%mlmd train t21@2 --quiet")
    assert cached.cached and "cached from run" in repr(cached)

    evaluation = run(ip, EVALUATE)
    assert ip.user_ns["ev"] is evaluation and evaluation.baseline_model_id == first.model_id
    assert list(evaluation.result.metrics) == ["overall", "ff_low", "ff_mid", "ff_high"]
    formatted, _ = ip.display_formatter.format(evaluation)
    assert "recall_T21" in formatted["text/plain"] and "✓" in formatted["text/plain"]
    assert "<table>" in formatted["text/html"]

    # a typo in a slice or metric name is an error naming the valid ones, never a NOT BLESSED verdict
    with pytest.raises(UsageError, match="did you mean 'ff_high'"):
        run(ip, EVALUATE.replace("slices: [ff_mid, ff_high]", "slices: [ff_mid, ff_hi]"))
    with pytest.raises(UsageError, match="did you mean 'recall_T21'"):
        run(ip, EVALUATE.replace("{metric: accuracy,", "{metric: recal_T21,"))

    spec = tmp_path / "spec.yaml"
    spec.write_text("thresholds:\n  - {metric: accuracy, lower: 1.01}\n")
    failing = run(ip, f"%mlmd evaluate t21 --spec {spec} --data eval")
    assert not failing.blessed and "NOT BLESSED" in repr(failing)

    runs = run(ip, "%mlmd ls runs")
    assert list(runs["state"]) == ["CACHED", "COMPLETE", "COMPLETE"]  # newest first
    # metrics people can sort: a numeric column per split and metric, rounded
    assert "metrics" not in runs.columns and str(runs["test.accuracy"].dtype) == "Float64"
    assert runs["test.loss"][1] == round(runs["test.loss"][1], 4) and list(runs["epochs"]) == [2, 2, 1]
    assert len(run(ip, "%mlmd ls models")) == 2
    store = REGISTRY.current().store
    sources = [e.properties["source"].string_value for e in store.mlmd.get_executions_by_type("mlmd_magic.Evaluate")]
    assert sources[0].startswith("%%evaluate t21@2 --baseline t21@1")


def test_training_errors_are_usage_errors(ip: InteractiveShell, tmp_path: Path) -> None:
    run(ip, "%mlmd connect memory://")
    with pytest.raises(UsageError, match="no experiment named 'nope'"):
        run(ip, "%mlmd train nope")
    with pytest.raises(UsageError, match="--set takes KEY=VALUE"):
        run(ip, "%mlmd train nope --set epochs")
    with pytest.raises(UsageError, match="unknown key"):
        run(ip, "%%evaluate t21\nslicez: []\n")


def test_a_cancelled_training_is_one_line(ip: InteractiveShell, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in a training cell: one line naming the run, the time and the epoch, not a traceback;
    and the version a --set defined for the run is said to stay."""
    from mlmd_magic.trainer import register_model

    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))

    @register_model("interrupted-test")
    def interrupted(input_dim: int, output: object, params: dict[str, object], normalizer: object) -> object:
        raise KeyboardInterrupt  # as if Ctrl-C arrived while the model was being built

    data = datasets.simulate_nipt(str(tmp_path / "nipt"), n_train=40, n_eval=10, n_test=10)
    run(ip, "%mlmd connect memory://")
    store = REGISTRY.current().store
    store.add_datasource("d", **data)
    store.add_scenario("s", model="interrupted-test", params={"epochs": 2})
    store.add_experiment("e", datasource="d", scenario="s")
    result = ip.run_cell("%mlmd train e --set epochs=3 --quiet")  # printed, not raised (tests/test_calm_output.py)
    message = str(result.error_in_exec)
    assert re.fullmatch(r"run e@2#1 cancelled after 0 of 3 epochs, \d+ s; --set created e@2 for it, which stays: "
                        r"e now gives it \(%mlmd history e shows the versions\)", message), message
    assert list(store.ls("runs")["state"]) == ["CANCELED"]


def test_runs_from_cells_keep_their_experiment(ip: InteractiveShell, store_with_experiment: mm.Store) -> None:
    """Runs trained from cells (one with --set, a new experiment version) are listed by
    ``ls runs`` and compared with the experiment version each trained."""
    run(ip, f"%mlmd connect {store_with_experiment.uri}")
    run(ip, "%mlmd train e --quiet")
    run(ip, "%mlmd train e --quiet --set epochs=2")
    table = run(ip, "%mlmd ls runs")  # newest first
    assert list(table["experiment"]) == ["e@2", "e@1"]
    comparison = run(ip, f"%mlmd compare {' '.join(str(r) for r in reversed(list(table['run'])))}")
    assert [r["experiment"] for r in comparison.runs] == ["e@1", "e@2"]
    assert comparison.params == {"params.epochs": [1, 2]}


# ---------------------------------------------------------------------------- --set against train's keywords


@pytest.fixture
def trainable(ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> mm.Store:
    """A connected in-memory store with experiment ``e`` of a tiny data set, runs under tmp_path/runs."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    ip.run_line_magic("mlmd", "connect memory://")
    store = mm.current_store()
    store.add_datasource("d", **datasets.simulate_nipt(str(tmp_path / "nipt"), n_train=40, n_eval=10, n_test=10))
    store.add_scenario("sc", model="mlp", params={"hidden": [4], "epochs": 1, "batch_size": 16})
    store.add_experiment("e", datasource="d", scenario="sc")
    return store


@pytest.mark.parametrize("assignment", ["force=true", "progress=false", "callbacks=[1]", "workdir=ELSEWHERE",
                                        "overrides={epochs:2}"])
def test_set_never_reaches_train_keywords(ip: InteractiveShell, trainable: mm.Store, assignment: str,
                                          tmp_path: Path) -> None:
    """``--set`` sets a scenario's parameter, never one of ``Store.train``'s own keywords."""
    key = assignment.split("=", 1)[0]
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(UsageError, match=f"override '{key}' is not a parameter of the scenario"):
        ip.run_line_magic("mlmd", f"train e --quiet --set {assignment.replace('ELSEWHERE', str(elsewhere))}")
    assert trainable.mlmd.get_artifacts_by_type("mlmd_magic.Model") == []
    assert not elsewhere.exists()


def test_set_overrides_parameters_named_like_train_keywords(ip: InteractiveShell, trainable: mm.Store,
                                                            tmp_path: Path) -> None:
    """A scenario's parameters named ``workdir``, ``force`` or ``progress`` are set by --set as
    any other, and leave training where it was going."""
    trainable.add_scenario("named", model="mlp", params={"hidden": [4], "epochs": 1, "batch_size": 16,
                                                        "workdir": "w", "force": False, "progress": "p"})
    trainable.add_experiment("n", datasource="d", scenario="named")
    trained = ip.run_line_magic("mlmd", f"train n --quiet --set workdir={tmp_path / 'not-here'} --set force=true "
                                        "--set progress=q")
    assert trained.state == "COMPLETE" and trained.experiment == "n@2"
    assert trainable.get_experiment("n")["params"] | {"workdir": "x"} == {
        "hidden": [4], "epochs": 1, "batch_size": 16, "workdir": "x", "force": True, "progress": "q"}
    assert not (tmp_path / "not-here").exists() and str(tmp_path / "runs") in (trained.model_uri or "")
    with pytest.raises(mm.ValidationError, match="'epochs' given both"):
        trainable.train("n", overrides={"epochs": 2}, epochs=3)


def test_a_long_set_value_is_refused_through_the_magic(ip: InteractiveShell, tmp_path: Path) -> None:
    """A --set value of 10,000 characters is refused by its kind; a line over 100,000 characters
    is refused before it is split (shlex splits in linear time up to there): nothing trained."""
    ip.run_line_magic("mlmd", "connect memory://")
    store = mm.current_store()
    store.add_datasource("d", **datasets.simulate_nipt(str(tmp_path), n_train=4, n_eval=2, n_test=2))
    store.add_scenario("sc", model="mlp", params={"epochs": 1})
    store.add_experiment("e", datasource="d", scenario="sc")

    with pytest.raises(UsageError, match="must be a whole number"):
        ip.run_line_magic("mlmd", f"train e --set epochs={'a' * 10_000}")
    with pytest.raises(UsageError, match=r"^the line holds more than 100,000 characters; put long values in a cell"):
        ip.run_line_magic("mlmd", f"train e --set epochs={'a' * 1_000_000}")
    assert store.mlmd.get_executions_by_type("mlmd_magic.Train") == []
