"""The Keras trainer on CPU: builders, tasks, formats, determinism, interrupts, JAX."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.trainer import builders, register_model, train


def _params(store: mm.Store, source: dict[str, Any], model: str, **params: Any) -> dict[str, Any]:
    store.add_datasource("d", **source)
    store.add_scenario("s", model=model, params={"epochs": 1, "batch_size": 32, "seed": 7, **params})
    store.add_experiment("e", datasource="d", scenario="s")
    return store.get_experiment("e")


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=240, n_eval=60, n_test=60, shards=2)


@pytest.mark.parametrize("model", ["mlp", "cnn1d"])
def test_each_builder_trains_on_tfrecords(model: str, nipt: dict[str, Any], tmp_path: Path) -> None:
    params = _params(mm.connect("memory://"), nipt, model, hidden=[16])
    result = train(params, workdir=str(tmp_path / "run"), progress=False)
    assert result.task == "multiclass" and result.num_classes == 4
    assert set(result.metrics) == {"train", "eval", "test"}
    assert 0.0 <= result.metrics["test"]["accuracy"] <= 1.0
    assert os.path.exists(result.model_path) and result.model_path.endswith("model.keras")
    assert result.device == "cpu" and result.backend == "tensorflow"
    assert result.input_dim == 28 and result.examples_per_second > 0
    assert json.loads(json.dumps(result.to_dict()))["epochs"] == 1


def test_binary_on_csv_learns_the_real_data(tmp_path: Path) -> None:
    params = _params(mm.connect("memory://"), datasets.breast_cancer(str(tmp_path / "bc")), "mlp",
                     epochs=15, hidden=[16], learning_rate=0.01)
    result = train(params, workdir=str(tmp_path / "run"), progress=False)
    assert result.task == "binary"
    assert result.metrics["test"]["auc"] > 0.95


def test_regression_on_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "npz").mkdir()
    for split, n in (("train", 200), ("eval", 50)):
        x = rng.normal(size=(n, 3)).astype("float32")
        np.savez(tmp_path / "npz" / f"{split}.npz", x=x, target=(x @ np.array([1.0, -2.0, 0.5])).astype("float32"))
    source = {"uri": str(tmp_path / "npz"), "format": "npz", "splits": {"train": "train.npz", "eval": "eval.npz"},
              "label": "target"}
    params = _params(mm.connect("memory://"), source, "mlp", epochs=3, hidden=[8])
    result = train(params, workdir=str(tmp_path / "run"), progress=False)
    assert result.task == "regression" and "mae" in result.metrics["eval"]


def test_task_can_be_set_in_params(nipt: dict[str, Any], tmp_path: Path) -> None:
    params = _params(mm.connect("memory://"), nipt, "mlp", hidden=[4], task="regression")
    assert train(params, workdir=str(tmp_path), progress=False).task == "regression"


@pytest.fixture
def progression(tmp_path: Path) -> dict[str, Any]:
    """A CSV data source whose label is a disease-progression score: whole numbers 25..346, hundreds of values."""
    rng = np.random.default_rng(0)
    root = tmp_path / "progression"
    root.mkdir()
    for split, n in (("train", 300), ("eval", 80)):
        with open(root / f"{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["age", "bmi", "bp", "score"])
            for _ in range(n):
                age, bmi, bp = rng.normal(size=3)
                score = float(np.clip(np.round(150 + 60 * bmi + 30 * bp + rng.normal() * 20), 25, 346))
                writer.writerow([age, bmi, bp, score])
    return {"uri": str(root), "format": "csv", "splits": {"train": "train.csv", "eval": "eval.csv"},
            "label": "score"}


def test_integral_regression_labels_train_as_regression(store_with_experiment: mm.Store,
                                                         progression: dict[str, Any],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Hundreds of distinct whole-number labels are a regression, not hundreds of classes; the
    task and why are printed as training starts and shown on the run."""
    store = store_with_experiment
    store.add_datasource("diabetes", **progression)
    store.add_scenario("reg", model="mlp", params={"epochs": 2, "hidden": [8], "learning_rate": 0.05})
    store.add_experiment("progress", datasource="diabetes", scenario="reg")
    result = store.train("progress")
    assert result.details["task"] == "regression"
    assert "distinct whole-number labels, more than 20" in result.details["task_reason"]
    assert "mae" in result.metrics["eval"] and "accuracy" not in result.metrics["eval"]
    assert "task: regression (inferred:" in capsys.readouterr().out  # printed as training starts
    assert "task regression: inferred" in repr(result)
    assert list(store.ls("runs")["task"]) == ["regression"]


def test_task_rule_and_params_task_wins() -> None:
    """Up to 20 distinct whole numbers are classes, more (or any fraction or negative) a
    regression; ``params.task`` overrides; text labels are refused."""
    from mlmd_magic.trainer import explain_task

    assert explain_task(np.array([0, 1, 1, 0]), {}).task == "binary"
    assert explain_task(np.array([0, 1, 2, 3] * 5), {}).num_classes == 4
    assert explain_task(np.arange(20.0), {}).num_classes == 20  # at most 20 distinct whole numbers: classes
    assert explain_task(np.arange(21.0), {}).task == "regression"
    assert explain_task(np.array([0.5, 1.5]), {}).task == "regression"
    assert explain_task(np.array([-1, 0, 1]), {}).task == "regression"
    assert explain_task(np.arange(30.0), {"task": "multiclass"}).reason == "params.task = 'multiclass'"
    with pytest.warns(UserWarning, match="training a 348-class model"):
        explain_task(np.array([0, 5, 347]), {})
    with pytest.raises(ValueError, match="labels are text"):
        explain_task(np.array(["euploid", "T21"]), {})


def test_same_seed_same_model_on_cpu(nipt: dict[str, Any], tmp_path: Path) -> None:
    params = _params(mm.connect("memory://"), nipt, "mlp", hidden=[16], epochs=2)
    a = train(params, workdir=str(tmp_path / "a"), progress=False)
    b = train(params, workdir=str(tmp_path / "b"), progress=False)
    assert a.history == b.history and a.metrics == b.metrics
    import keras

    wa = keras.saving.load_model(a.model_path).get_weights()
    wb = keras.saving.load_model(b.model_path).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    params["params"]["seed"] = 8
    c = train(params, workdir=str(tmp_path / "c"), progress=False)
    assert c.history != a.history


def test_keyboard_interrupt_stops_cleanly(nipt: dict[str, Any], tmp_path: Path) -> None:
    params = _params(mm.connect("memory://"), nipt, "mlp", hidden=[4], epochs=5)
    seen: list[Any] = []

    class Stop:
        def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
            seen.append(epoch)
            raise KeyboardInterrupt

        def on_train_end(self, info: dict[str, Any]) -> None:
            seen.append(info["status"])

    with pytest.raises(KeyboardInterrupt):
        train(params, workdir=str(tmp_path), callbacks=[Stop()], progress=False)
    assert seen == [0, "canceled"]
    assert not (tmp_path / "model.keras").exists()


def test_progress_lines_in_a_terminal(nipt: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = _params(mm.connect("memory://"), nipt, "mlp", hidden=[4], epochs=2)
    train(params, workdir=str(tmp_path), progress=True)
    out = capsys.readouterr().out
    assert "training mlp on cpu (tensorflow): 2 epochs of " in out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "Epoch 3/2" not in out and "val_accuracy: " in out
    assert re.search(r"^\d+/\d+ ━+ \d+s \d+ms/step - accuracy: ", out, re.MULTILINE)  # Keras-style, per epoch


def test_users_register_their_own_builder(nipt: dict[str, Any], tmp_path: Path) -> None:
    @register_model("tiny-linear")
    def tiny(input_dim: int, output: Any, params: dict[str, Any], normalizer: Any) -> Any:
        import keras

        inputs = keras.Input((input_dim,))
        return keras.Model(inputs, output.layer()(normalizer(inputs)))

    assert "tiny-linear" in builders()
    params = _params(mm.connect("memory://"), nipt, "tiny-linear")
    assert train(params, workdir=str(tmp_path), progress=False).metrics["test"]["accuracy"] >= 0


def test_bad_params_are_clear(nipt: dict[str, Any], tmp_path: Path) -> None:
    store = mm.connect("memory://")
    params = _params(store, nipt, "mlp")
    params["scenario"]["model"] = "no-such-builder"  # a builder this process does not know
    with pytest.raises(ValueError, match="unknown model builder 'no-such-builder'"):
        train(params, workdir=str(tmp_path), progress=False)
    params["scenario"]["model"] = "mlp"
    params["params"]["optimizer"] = "adamant"
    with pytest.raises(ValueError, match="unknown optimizer 'adamant'"):
        train(params, workdir=str(tmp_path), progress=False)
    params["params"]["optimizer"] = "adam"
    params["params"]["features"] = ["nope"]
    with pytest.raises(ValueError, match="lacks"):
        train(params, workdir=str(tmp_path), progress=False)


def test_trainer_imports_no_mlmd_or_widgets() -> None:
    heavy = "('ml_metadata', 'ipywidgets', 'keras', 'tensorflow')"
    code = f"import sys, mlmd_magic.trainer; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_jax_backend_in_memory(tmp_path: Path) -> None:
    pytest.importorskip("jax", reason="jax is not installed (pip install -e '.[dev]' brings jax[cpu])")
    source = datasets.breast_cancer(str(tmp_path / "bc"))
    params = _params(mm.connect("memory://"), source, "mlp", epochs=2, hidden=[8])
    script = (
        "import json, sys; from mlmd_magic.trainer import train; "
        "r = train(json.loads(sys.argv[1]), workdir=sys.argv[2], progress=False); "
        "print(json.dumps({'backend': r.backend, 'task': r.task, 'auc': r.metrics['test']['auc']}))"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-c", script, json.dumps(params), str(tmp_path / "run")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax" and result["task"] == "binary" and result["auc"] > 0.5
