"""What a new user found silently wrong through the faces (issue: correct on every path).

Each test here failed on the code before its fix:

1. runs started from a cell, a panel or the CLI lost their experiment in ``ls runs`` / compare;
2. an integral regression label was trained as hundreds of classes;
3. a re-registered model builder was answered with the old builder's cached model;
4. an unknown artifact id gave a bare ``IndexError`` ("please report this");
5. the store browser recorded an execution per keystroke in its filter box;
6. error types lived outside ``mlmd_magic.errors`` and were not exported.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import mlmd_magic as mm
from mlmd_magic import datasets, errors

from .test_magics import run


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> mm.Store:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    store = mm.connect(f"sqlite:///{tmp_path}/c.sqlite")
    store.add_datasource("nipt", **datasets.simulate_nipt(str(tmp_path / "nipt"), n_train=80, n_eval=30, n_test=30))
    store.add_scenario("s", model="mlp", params={"epochs": 1, "hidden": [4], "seed": 1})
    store.experiment("e", datasource="nipt", scenario="s")
    return store


# 1 ------------------------------------------------------------------------------------------


def test_runs_from_cells_keep_their_experiment(ip: InteractiveShell, trained: mm.Store) -> None:
    run(ip, f"%mlmd connect {trained.uri}")
    run(ip, "%mlmd train e --quiet")
    run(ip, "%mlmd train e --quiet --set epochs=2")
    table = run(ip, "%mlmd ls runs")  # newest first
    assert list(table["experiment"]) == ["e@2", "e@1"]
    comparison = run(ip, f"%mlmd compare {' '.join(str(r) for r in reversed(list(table['run'])))}")
    assert [r["experiment"] for r in comparison.runs] == ["e@1", "e@2"]
    assert comparison.params == {"params.epochs": [1, 2]}


# 2 ------------------------------------------------------------------------------------------


@pytest.fixture
def progression(tmp_path: Path) -> dict[str, Any]:
    """A CSV whose label is a disease-progression score: whole numbers 25..346, hundreds of values."""
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


def test_integral_regression_labels_train_as_regression(trained: mm.Store, progression: dict[str, Any],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    trained.add_datasource("diabetes", **progression)
    trained.add_scenario("reg", model="mlp", params={"epochs": 2, "hidden": [8], "learning_rate": 0.05})
    trained.experiment("progress", datasource="diabetes", scenario="reg")
    result = trained.train("progress")
    assert result.details["task"] == "regression"
    assert "distinct whole-number labels, more than 20" in result.details["task_reason"]
    assert "mae" in result.metrics["eval"] and "accuracy" not in result.metrics["eval"]
    assert "task: regression (inferred:" in capsys.readouterr().out  # printed as training starts
    assert "task regression: inferred" in repr(result)
    assert list(trained.list("runs")["task"]) == ["regression"]


def test_task_rule_and_params_task_wins() -> None:
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


# 3 ------------------------------------------------------------------------------------------


def test_re_registered_builder_is_not_answered_from_the_cache(trained: mm.Store) -> None:
    from mlmd_magic.trainer import register_model

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
        trained.experiment("n-exp", datasource="nipt", scenario="n")
        first = trained.train("n-exp", progress=False)
        again = trained.train("n-exp", progress=False)
        assert not first.cached and again.cached and again.model_id == first.model_id
        if width == 4:
            old_model = first.model_id
    assert first.model_id != old_model  # the width-6 builder trained anew


def test_builder_without_readable_source_is_never_cached(trained: mm.Store) -> None:
    from mlmd_magic.trainer import register_model

    namespace: dict[str, Any] = {}
    exec(compile("def anon(d, out, p, norm):\n    import keras\n    i = keras.Input((d,))\n"
                 "    return keras.Model(i, out.layer()(norm(i)))\n", "<made-by-exec>", "exec"), namespace)
    register_model("anon-test")(namespace["anon"])
    trained.add_scenario("a", model="anon-test", params={"epochs": 1})
    trained.experiment("a-exp", datasource="nipt", scenario="a")
    first = trained.train("a-exp", progress=False)
    second = trained.train("a-exp", progress=False)
    assert not first.cached and not second.cached and second.model_id != first.model_id
    assert "not cached: the source of model builder 'anon-test' cannot be read" in repr(second)


# 4 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [99999, "99999", "model:99999", "run:99999", "no-such-record", "nope@2"])
def test_unknown_references_are_not_found(trained: mm.Store, target: Any) -> None:
    with pytest.raises(mm.NotFoundError, match=r"99999|no-such-record|nope"):
        trained.lineage(target)


def test_unknown_references_through_the_faces(ip: InteractiveShell, trained: mm.Store) -> None:
    run(ip, f"%mlmd connect {trained.uri}")
    for line, expected in (("lineage 99999", "no artifact with id 99999"),
                           ("lineage run:424242", "no training run #424242"),
                           ("compare 424242", "no training run #424242"),
                           ("evaluate model:424242", "no model with id 424242")):
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("mlmd", line)
        assert expected in str(info.value) and "please report" not in str(info.value)
    done = subprocess.run([sys.executable, "-m", "mlmd_magic.cli", "--uri", trained.uri, "lineage", "99999"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no artifact with id 99999" in done.stderr


# 5 ------------------------------------------------------------------------------------------


def test_browser_filtering_paging_and_selecting_record_nothing(trained: mm.Store) -> None:
    from mlmd_magic.widgets import StoreBrowser

    for i in range(25):
        trained.experiment(f"exp-{i:02d}", datasource="nipt", scenario="s")
    before = len(trained.mlmd.get_executions())
    browser = StoreBrowser(trained)  # opening it is the person's action: one listing
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
    # a person's reads outside the panel are still recorded
    trained.list("experiments", where="name ~ 'exp-1*'")
    assert len(trained.mlmd.get_executions()) == before + 2


def test_unrecorded_reads_still_record_writes(trained: mm.Store) -> None:
    before = len(trained.mlmd.get_executions())
    with trained.unrecorded():
        trained.get_experiment("e")
        trained.history("e")
        record = trained.experiment("e", datasource="nipt", scenario="s", overrides={"epochs": 3})
    assert record.version == 2 and len(trained.mlmd.get_executions()) == before + 1


# 6 ------------------------------------------------------------------------------------------


def test_every_error_type_lives_in_errors_and_is_exported() -> None:
    import mlmd_magic

    defined_elsewhere = []
    for info in pkgutil.walk_packages(mlmd_magic.__path__, "mlmd_magic."):
        if info.name.startswith("mlmd_magic.widgets") or info.name == "mlmd_magic.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, errors.MlmdMagicError)
                    and value.__module__ == info.name and info.name != "mlmd_magic.errors"):
                defined_elsewhere.append(f"{info.name}.{name}")
    assert defined_elsewhere == []
    classes = {n for n, v in vars(errors).items() if inspect.isclass(v) and issubclass(v, errors.MlmdMagicError)}
    assert classes <= set(errors.__all__) and set(errors.__all__) <= set(mm.__all__)
    assert all(getattr(mm, n) is getattr(errors, n) for n in errors.__all__)
    assert "TrainingError" in (mm.Store.train.__doc__ or "")
    assert "NoConnectionError" in (mm.current_store.__doc__ or "")
