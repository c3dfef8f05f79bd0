"""``ls runs`` people can sort and compare: one column per differing parameter, numeric metric
columns per split, whole numbers kept whole after a cancelled run, the epoch a stopped run
reached, sweep trials marked — through the API, the magic and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.cli import main
from mlmd_magic.errors import RunCancelled

from .test_magics import run


class _StopAfterFirstEpoch:
    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=120, n_eval=40, n_test=40)


@pytest.fixture
def filled(tmp_path: Path, nipt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """A store with a complete run, a cancelled one (after its first epoch), and a trial's run."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    uri = f"sqlite:///{tmp_path}/runs.sqlite"
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **nipt)
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "learning_rate": 0.01, "batch_size": 32,
                                                         "epochs": 1, "seed": 1})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    store.train("t21", progress=False)
    with pytest.raises(RunCancelled):
        store.train("t21", epochs=3, learning_rate=0.02, progress=False, callbacks=[_StopAfterFirstEpoch()])
    trial = store._records.define_trial("t21@1", "lr-search@1", 1, {"learning_rate": 0.05})
    store.train(trial, progress=False)
    store.close()
    return uri


def _check(rows: list[dict[str, Any]]) -> None:
    trial, cancelled, complete = rows
    assert [r["state"] for r in rows] == ["COMPLETE", "CANCELED", "COMPLETE"]
    assert trial["trial"] == "lr-search@1#1" and complete["trial"] == cancelled["trial"] == ""
    # the epoch each reached: a cancelled run's from its progress
    assert [r["epoch"] for r in rows] == [1, 1, 1] and [r["epochs"] for r in rows] == [1, 3, 1]
    assert [r["learning_rate"] for r in rows] == [0.05, 0.02, 0.01]
    assert cancelled["eval.accuracy"] is None and isinstance(complete["eval.accuracy"], float)
    for gone in ("metrics", "params.epochs", "hidden", "seed"):  # one column per differing parameter
        assert gone not in rows[0]


def test_the_runs_table_through_the_api(filled: str) -> None:
    store = mm.connect(filled)
    frame = store.ls("runs")
    for column in ("run", "model", "epoch", "epochs"):
        assert str(frame[column].dtype) == "Int64", column  # whole numbers, also beside a missing value
    assert str(frame["eval.accuracy"].dtype) == "Float64" and frame["eval.accuracy"].isna().tolist() == [
        False, True, False]
    assert "28.0" not in frame.to_string() and "NaN" not in frame.to_string()
    rows = [{k: (None if v is pd_na() else v) for k, v in row.items()} for row in frame.to_dict("records")]
    _check(rows)
    ordered = frame.sort_values("eval.accuracy", ascending=False)  # sortable: numbers, not text
    assert len(ordered) == 3
    # the filter language reads the new columns (and any parameter, differing or not)
    assert list(store.ls("runs", where="learning_rate > 0.015")["name"]) == [
        frame["name"][0], frame["name"][1]]
    assert len(store.ls("runs", where="eval.accuracy >= 0")) == 2
    assert len(store.ls("runs", where="hidden == '[8]'")) == 3  # a list, as its column shows it
    assert len(store.ls("runs", where="seed == 1")) == 3
    assert list(store.ls("runs", where="trial ~ 'lr-search*'")["trial"]) == ["lr-search@1#1"]


def pd_na() -> Any:
    import pandas as pd

    return pd.NA


def test_the_runs_table_through_the_magic(ip: Any, filled: str) -> None:
    run(ip, f"%mlmd connect {filled}")
    frame = run(ip, "%mlmd ls runs --where 'epoch >= 1'")
    assert str(frame["epoch"].dtype) == "Int64" and "metrics" not in frame.columns
    _check([{k: (None if v is pd_na() else v) for k, v in row.items()} for row in frame.to_dict("records")])


def test_the_runs_table_through_the_cli(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--uri", filled, "--json", "ls", "runs"]) == 0
    rows = json.loads(capsys.readouterr().out)
    _check(rows)
    assert all(isinstance(r["epoch"], int) for r in rows)  # 1, not 1.0
    assert main(["--uri", filled, "ls", "runs"]) == 0
    text = capsys.readouterr().out
    assert "eval.accuracy" in text and "learning_rate" in text and "NaN" not in text


def test_the_browsers_runs_page_has_one_column_per_parameter(filled: str) -> None:
    """The grid's page adds the parameters that do not differ and the overrides, never a second
    column for one the listing has (``params.epochs`` beside ``epochs``)."""
    with mm.connect(filled) as store:
        columns = [str(c) for c in store.page("runs").frame.columns]
    assert len(columns) == len(set(columns)), columns
    for name in ("epochs", "learning_rate", "hidden", "seed", "overrides"):
        assert columns.count(name) == 1, columns
    assert not [c for c in columns if c.startswith("params.")], columns


class _FailAfterFirstEpoch:
    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        raise ValueError("a callback gave up")


@pytest.fixture
def no_epochs(tmp_path: Path, nipt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """A store whose runs have no ``epochs`` parameter (the trainer's default, 10): a complete
    run, a cancelled one and a failed one (both after their first epoch)."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    uri = f"sqlite:///{tmp_path}/no-epochs.sqlite"
    with mm.connect(uri) as store:
        store.add_datasource("nipt-sim", **nipt)
        store.add_scenario("mlp-default", model="mlp", params={"hidden": [8], "batch_size": 32, "seed": 1})
        store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-default")
        store.train("t21", progress=False)
        with pytest.raises(RunCancelled):
            store.train("t21", seed=2, progress=False, callbacks=[_StopAfterFirstEpoch()])
        with pytest.raises(mm.TrainingError, match="a callback gave up"):
            store.train("t21", seed=3, progress=False, callbacks=[_FailAfterFirstEpoch()])
    return uri


def _check_no_epochs(rows: list[dict[str, Any]]) -> None:
    assert [r["state"] for r in rows] == ["FAILED", "CANCELED", "COMPLETE"]
    # no epochs parameter: the epochs the trainer said it would train, not <NA>
    assert [r["epochs"] for r in rows] == [10, 10, 10] and [r["epoch"] for r in rows] == [1, 1, 10]
    # a stopped run's task and device, as a finished one's
    assert [(r["task"], r["device"]) for r in rows] == [("multiclass", "cpu")] * 3


def test_runs_with_no_epochs_parameter_list_the_epochs_trained_and_a_stopped_runs_task(no_epochs: str) -> None:
    store = mm.connect(no_epochs)
    frame = store.ls("runs")
    assert str(frame["epochs"].dtype) == "Int64" and "<NA>" not in frame[["epoch", "epochs"]].to_string()
    _check_no_epochs([{k: (None if v is pd_na() else v) for k, v in row.items()} for row in frame.to_dict("records")])
    assert len(store.ls("runs", where="epochs == 10")) == 3  # the filter reads it as the column shows it
    failed, cancelled = (store.run(int(frame["run"][i])) for i in (0, 1))
    for stopped in (failed, cancelled):
        assert stopped.details["task"] == "multiclass" and stopped.details["device"] == "cpu"
        assert stopped.details["backend"] and stopped.details["task_reason"]
        shown = repr(stopped).splitlines()
        assert shown[0].endswith("; no model") and shown[1] == f"  multiclass on cpu ({stopped.details['backend']})"
    assert store.watch(cancelled.id).epochs == 10  # its progress: 1 of 10


def test_runs_with_no_epochs_parameter_through_the_cli(no_epochs: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--uri", no_epochs, "--json", "ls", "runs"]) == 0
    _check_no_epochs(json.loads(capsys.readouterr().out))
    assert main(["--uri", no_epochs, "ls", "runs"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert "epochs" in header and "task" in header, header
