"""Runs of your own training code (``Store.start_run``): recorded as the built-in trainer's runs
are — inputs, name, curves, metrics per split, model — and ended COMPLETE, FAILED or CANCELED
as the block ends."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.errors import RunCancelled, ValidationError
from tests.test_magics import run as _cell  # a cell run as a notebook runs it


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=60, n_eval=20, n_test=20)


@pytest.fixture
def store(tmp_path: Path, nipt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> mm.Store:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    s = mm.connect(f"sqlite:///{tmp_path}/own.sqlite")
    s.add_datasource("nipt-sim", **nipt)
    s.add_scenario("gb", model="mlp", params={"epochs": 3, "learning_rate": 0.1, "max_depth": 2})
    s.add_experiment("t21", datasource="nipt-sim", scenario="gb")
    return s


def _execution(store: mm.Store, run_id: int) -> Any:
    (execution,) = store.mlmd.get_executions_by_id([run_id])
    return execution


def _events(store: mm.Store, run_id: int, kind: int) -> list[Any]:
    ids = [e.artifact_id for e in store.mlmd.get_events_by_execution_ids([run_id]) if e.type == kind]
    return store.mlmd.get_artifacts_by_id(ids)


def test_a_block_is_a_run_with_inputs_curves_metrics_and_its_model(store: mm.Store, nipt: dict[str, Any]) -> None:
    """A scikit-learn model trained in a block: listed, filtered, compared, in the lineage."""
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    with store.start_run("t21") as run:
        assert run.params == {"epochs": 3, "learning_rate": 0.1, "max_depth": 2} and run.name == "t21@1#1"
        running = store.ls("runs")
        assert list(running["state"]) == ["RUNNING"]
        model = GradientBoostingClassifier(n_estimators=run.params["epochs"], max_depth=run.params["max_depth"])
        model.fit(x, y)
        for step in range(3):
            run.log({"loss": 1.0 / (step + 1), "eval.accuracy": 0.6 + step / 10}, step=step)
        path = run.log_model(model)
    result = run.result
    assert result is not None and result.state == "COMPLETE" and result.model_uri == path
    assert result.metrics == {"train": {"loss": pytest.approx(1 / 3)}, "eval": {"accuracy": pytest.approx(0.8)}}
    assert result.history["eval.accuracy"] == pytest.approx([0.6, 0.7, 0.8])
    assert joblib.load(path).predict(x).shape == (40,)
    execution = _execution(store, run.id)
    assert execution.last_known_state == pb.Execution.COMPLETE and execution.name == "t21@1#1"
    assert {a.name for a in _events(store, run.id, pb.Event.INPUT)} == {"t21@1", "nipt-sim@1", "gb@1"}
    (model_art,) = _events(store, run.id, pb.Event.OUTPUT)
    assert model_art.properties["framework"].string_value == "scikit-learn"
    assert json.loads(model_art.properties["versions"].string_value)["scikit-learn"]
    listed = store.ls("runs", where="eval.accuracy > 0.75")
    assert list(listed["name"]) == ["t21@1#1"] and list(listed["state"]) == ["COMPLETE"]
    assert list(store.ls("models")["name"]) == ["t21@1#1"]
    assert "t21@1#1" in repr(store.compare([run.id]))
    lineage = store.lineage(f"model:{result.model_id}")
    assert {"Experiment t21@1", "DataSource nipt-sim@1", "Scenario gb@1"} <= {node.label for node in lineage.nodes}
    assert store.run(run.id).state == "COMPLETE"
    # what only the built-in trainer's models can do says so in one line
    for refused in (lambda: store.evaluate(f"model:{result.model_id}"), lambda: store.reproduce(result.model_id)):
        with pytest.raises(ValidationError, match="was trained by your own code") as said:
            refused()
        assert "\n" not in str(said.value)


def test_an_exception_in_the_block_is_failed_and_goes_on(store: mm.Store) -> None:
    with pytest.raises(ZeroDivisionError), store.start_run("t21") as run:
        run.log({"loss": 0.5})
        1 / 0  # noqa: B018
    execution = _execution(store, run.id)
    assert execution.last_known_state == pb.Execution.FAILED
    assert "ZeroDivisionError" in execution.properties["error"].string_value
    assert not _events(store, run.id, pb.Event.OUTPUT) and run.result is not None and run.result.state == "FAILED"


def test_a_block_without_a_model_is_complete_and_says_so(store: mm.Store) -> None:
    with store.start_run("t21", epochs=5) as run:  # overrides define a new version first
        assert run.params["epochs"] == 5 and run.experiment == "t21@2"
        run.log({"loss": 0.1})
    assert run.result is not None and run.result.state == "COMPLETE" and run.result.model_id is None
    execution = _execution(store, run.id)
    assert execution.properties["outcome"].string_value == "logged 1 steps; no model logged"
    assert "no model was logged" in json.dumps(run.result.details)


def test_ctrl_c_in_the_block_is_canceled(store: mm.Store) -> None:
    with pytest.raises(RunCancelled) as stopped, store.start_run("t21") as run:
        run.log({"loss": 0.3}, step=0)
        assert os.path.exists(run.log_model(os.devnull))
        signal.raise_signal(signal.SIGINT)
    assert str(stopped.value).startswith("run t21@1#1 cancelled after 1 of 3 epochs")
    assert _execution(store, run.id).last_known_state == pb.Execution.CANCELED
    assert not os.path.exists(run.run_dir)  # its model went with it
    assert run.result is not None and run.result.state == "CANCELED" and run.result.model_id is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the run's watch is gone


def test_a_run_is_a_with_block(store: mm.Store) -> None:
    """Outside its block a run takes no metrics; it starts no thread or Ctrl-C watch before it."""
    import threading

    run = store.start_run("t21")
    assert not [t for t in threading.enumerate() if t.name.startswith("mlmd-magic live")]
    with pytest.raises(ValidationError, match="use it as a with block"):
        run.log({"loss": 1.0})
    with run:
        run.log({"loss": 1.0})
        with pytest.raises(ValidationError, match="was entered already"), run:
            pass
    assert run.result is not None and run.result.state == "COMPLETE"


def test_a_cancel_request_stops_the_block_at_its_next_log(store: mm.Store, tmp_path: Path) -> None:
    other = mm.connect(f"sqlite:///{tmp_path}/own.sqlite")
    with pytest.raises(RunCancelled) as stopped, store.start_run("t21") as run:
        other.cancel(run.name, wait_s=0)
        for step in range(10_000):  # the run's writer thread sees the request within a second or so
            run.log({"loss": 1.0}, step=step)
            time.sleep(0.01)
    assert stopped.value.requested and _execution(store, run.id).last_known_state == pb.Execution.CANCELED
    other.close()


@pytest.mark.parametrize("metrics, said", [
    ({"loss": "low"}, "metric 'loss' must be a number, got 'low'"),
    ({"loss": float("nan")}, "metric 'loss' must be a finite number"),
    ({"": 1.0}, "a metric name must be a word"),
    ([("loss", 1.0)], "run.log takes a mapping"),
])
def test_bad_metrics_are_refused_in_one_line(store: mm.Store, metrics: Any, said: str) -> None:
    with store.start_run("t21") as run:
        with pytest.raises(ValidationError) as refused:
            run.log(metrics)
        assert str(refused.value).startswith(said) and "\n" not in str(refused.value)
        run.log({"loss": 0.2})
    assert run.result is not None and run.result.history == {"loss": [0.2]}


def test_a_file_written_already_is_the_model(store: mm.Store, tmp_path: Path) -> None:
    written = tmp_path / "model.ubj"
    written.write_bytes(b"xgboost")
    with store.start_run("t21") as run:
        kept = run.log_model(str(written))
        with pytest.raises(ValidationError, match="no model at"):
            run.log_model(str(tmp_path / "missing.pt"))
    assert Path(kept).read_bytes() == b"xgboost" and Path(kept).parent == Path(run.run_dir)
    (model_art,) = _events(store, run.id, pb.Event.OUTPUT)
    assert model_art.properties["framework"].string_value == "xgboost"
    with pytest.raises(ValidationError, match="has ended"):
        run.log({"loss": 1.0})


# ------------------------------------------------------------------------------------ %%train cells

def test_a_train_cell_is_a_run_of_its_own_code(store: mm.Store, tmp_path: Path, ip: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``%%train`` runs its body with ``params`` and ``run`` bound and records it as the API's
    block does: the cell's source on the run (its password redacted), FAILED with the cell's own
    error (a traceback of the user's code, not a bug of ours), a bad line refused in one line."""
    from IPython.core.error import UsageError

    uri = f"sqlite:///{tmp_path}/own.sqlite"
    store.close()
    _cell(ip, f"%mlmd connect {uri}")
    done = _cell(ip, "%%train t21 --set epochs=2 -o trained\n"
                     "from sklearn.dummy import DummyClassifier\n"
                     "token = 'hunter2-secret'  # mysql://me:hunter2@db/x\n"
                     "for step in range(params['epochs']):\n"
                     "    run.log({'loss': 1 / (step + 1), 'eval.accuracy': 0.5}, step=step)\n"
                     "run.log_model(DummyClassifier().fit([[0], [1]], [0, 1]))\n")
    assert done.state == "COMPLETE" and done.experiment == "t21@2" and done.model_id is not None
    assert ip.user_ns["trained"] is done and ip.user_ns["params"] == {"epochs": 2, "learning_rate": 0.1,
                                                                       "max_depth": 2}
    with mm.connect(uri) as reader:
        (execution,) = reader.mlmd.get_executions_by_id([done.id])
        recorded = str(execution)
        assert "run.log_model(DummyClassifier()" in recorded and "hunter2@" not in recorded
        assert list(reader.ls("runs", where="eval.accuracy == 0.5")["name"]) == ["t21@2#1"]
    with pytest.raises(ZeroDivisionError):
        _cell(ip, "%%train t21\nrun.log({'loss': 1.0})\n1 / 0\n")
    assert ip.user_ns["run"].result.state == "FAILED"
    with pytest.raises(UsageError) as refused:
        _cell(ip, "%%train nosuch\npass\n")
    assert "no experiment" in str(refused.value) and "\n" not in str(refused.value)
    runs = len(store_runs(uri))
    with pytest.raises(SyntaxError):
        _cell(ip, "%%train t21 --set epochs=9\nfor\n")
    assert len(store_runs(uri)) == runs  # no run, no version for a cell that cannot run
    _cell(ip, "%mlmd close")


def store_runs(uri: str) -> list[Any]:
    with mm.connect(uri) as reader:
        return list(reader.mlmd.get_executions_by_type("mlmd_magic.Train"))


def test_a_store_failing_at_the_end_never_hides_the_blocks_own_error(store: mm.Store,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from mlmd_magic.errors import StoreError
    from mlmd_magic.store import runs

    def failing(*args: Any, **kwargs: Any) -> None:
        raise StoreError("the store did not answer")

    monkeypatch.setattr(runs, "write_last", failing)
    with pytest.raises(ZeroDivisionError), store.start_run("t21"):
        1 / 0  # noqa: B018
