"""Cancelling is not an error, and less noise: a stopped training says one calm line (and what
became of the version its --set made); record cells show a gist with the rest folded; a
comparison with a baseline shows the changes where they matter, marks coloured; a background
run's log is named by the run — through the API, the magic and the CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.cli import main
from mlmd_magic.errors import RunCancelled
from mlmd_magic.faces.registry import REGISTRY
from mlmd_magic.trainer import register_model

from .test_magics import run


@register_model("calm-interrupted")
def _interrupted(input_dim: int, output: object, params: dict[str, object], normalizer: object) -> object:
    raise KeyboardInterrupt  # as if Ctrl-C arrived while the model was being built


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=120, n_eval=40, n_test=60)


def _interrupting_store(uri: str, nipt: dict[str, Any]) -> mm.Store:
    store = mm.connect(uri)
    store.add_datasource("d", **nipt)
    store.add_scenario("s", model="calm-interrupted", params={"epochs": 2})
    store.add_experiment("e", datasource="d", scenario="s")
    return store


LINE = r"run e@2#{k} cancelled after 0 of 3 epochs, \d+ s"
CREATED = r"; --set created e@2 for it, which stays: e now gives it \(%mlmd history e shows the versions\)"
REUSED = r"; no new version: --set gave e@2, which existed already"


def test_a_cancelled_training_cell_prints_one_calm_line(ip: Any, nipt: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    run(ip, "%mlmd connect memory://")
    store = REGISTRY.current().store
    store.add_datasource("d", **nipt)
    store.add_scenario("s", model="calm-interrupted", params={"epochs": 2})
    store.add_experiment("e", datasource="d", scenario="s")
    capsys.readouterr()
    for k, said in ((1, CREATED), (2, REUSED)):  # a second try with the same values: the same version
        result = ip.run_cell("%mlmd train e --set epochs=3 --quiet", store_history=True)
        shown = capsys.readouterr()
        # (a terminal IPython prints the stop's empty traceback as an empty line)
        assert re.fullmatch(LINE.format(k=k) + said + "\n\n?", shown.out), shown.out
        assert "UsageError" not in shown.err and "Traceback" not in shown.err, shown.err
        # the cell still counts as stopped: a kernel skips the cells queued after it
        assert isinstance(result.error_in_exec, RunCancelled)
    assert list(store.history("e")["version"]) == [1, 2]
    assert list(store.ls("runs")["state"]) == ["CANCELED", "CANCELED"]
    assert ip.run_cell("1 + 1").success  # the next cell is not marked
    # the rest of a stopped cell does not run (a loop of trainings stops at the first Ctrl-C)
    result = ip.run_cell("%mlmd train e --set epochs=3 --quiet\nafter_the_stop = 1", store_history=True)
    assert isinstance(result.error_in_exec, RunCancelled) and "after_the_stop" not in ip.user_ns


def test_a_cancelled_training_in_python_and_in_a_terminal(nipt: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    uri = f"sqlite:///{tmp_path}/calm.sqlite"
    store = _interrupting_store(uri, nipt)
    with pytest.raises(RunCancelled) as info:
        store.train("e", epochs=3, progress=False)
    assert re.fullmatch(LINE.format(k=1) + CREATED, str(info.value)), str(info.value)
    assert (info.value.version_created, info.value.version_reused) == ("e@2", "")
    # the library says the overrides gave a version that was there already, not only the faces
    with pytest.raises(RunCancelled) as info:
        store.train("e", overrides={"epochs": 3}, progress=False)
    assert re.fullmatch(LINE.format(k=2) + REUSED, str(info.value)), str(info.value)
    assert (info.value.version_created, info.value.version_reused) == ("", "e@2")
    with pytest.raises(RunCancelled) as info:  # no overrides: nothing said of versions
        store.train("e@2", progress=False)
    assert re.fullmatch(LINE.format(k=3), str(info.value)), str(info.value)
    store.close()
    assert main(["--uri", uri, "train", "e", "--set", "epochs=3", "--quiet"]) == 130
    shown = capsys.readouterr()
    assert re.fullmatch("mlmd-magic: " + LINE.format(k=4) + REUSED + "\n", shown.err), shown.err


def test_a_cancelled_training_pickles_whole(nipt: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop crosses processes (a background worker, a Ray task): its fields and line survive."""
    import pickle

    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    store = _interrupting_store(f"sqlite:///{tmp_path}/pickled.sqlite", nipt)
    stops = []
    for _ in range(2):  # the version created, then reused
        with pytest.raises(RunCancelled) as info:
            store.train("e", epochs=3, progress=False)
        stops.append(info.value)
    stops.append(RunCancelled("t21-long@2#1", 39.4, 7, 40, requested=True))
    for stop in stops:
        back = pickle.loads(pickle.dumps(stop))
        assert type(back) is RunCancelled and isinstance(back, KeyboardInterrupt)
        assert str(back) == str(stop) and back.args == stop.args
        fields = ("run", "seconds", "epochs_done", "epochs", "version_created", "version_reused", "requested")
        assert [getattr(back, f) for f in fields] == [getattr(stop, f) for f in fields]
    assert stops[1].version_reused == "e@2" and "no new version" in str(pickle.loads(pickle.dumps(stops[1])))
    assert str(pickle.loads(pickle.dumps(stops[2]))) == "run t21-long@2#1 cancelled by a cancel request after 7 of " \
                                                         "40 epochs, 39 s"


def test_record_cells_show_a_gist_with_the_rest_folded(ip: Any, nipt: dict[str, Any]) -> None:
    run(ip, "%mlmd connect memory://")
    source = run(ip, f"%%datasource nipt-sim\nuri: {nipt['uri']}\nformat: tfrecord\nlabel: label\n"
                     "splits: {train: train, eval: eval.tfrecord, test: test.tfrecord}\n"
                     "label_names: [euploid, T21, T18, T13]\n")
    run(ip, "%%scenario mlp-small\nmodel: mlp\n"
            "params: {hidden: [16], epochs: 1, batch_size: 32, learning_rate: 0.01}\n")
    experiment = run(ip, "%%experiment t21\ndatasource: nipt-sim\nscenario: mlp-small\noverrides: {epochs: 2}\n"
                         "description: first try\n")
    for record, most in ((source, 7), (experiment, 7)):
        formatted, _ = ip.display_formatter.format(record)
        text, page = formatted["text/plain"], formatted["text/html"]
        assert len(text.splitlines()) <= most, text
        assert "<details class='mlmd-magic-all'>" in page and page.index("<summary>all ") > page.index("</table>")
    text = ip.display_formatter.format(source)[0]["text/plain"]
    assert "splits: eval (40), test (60), train (120)" in text and "classes: euploid, T21, T18, T13" in text
    text = ip.display_formatter.format(experiment)[0]["text/plain"]
    assert 'overrides: {"epochs": 2}' in text and "description: first try" in text
    assert "model mlp" in text and "epochs 2" in text
    assert "learning_rate" in experiment.full_text() and "features" in source.full_text()


def test_a_baseline_comparison_shows_changes_where_they_matter(ip: Any, nipt: dict[str, Any], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    run(ip, "%mlmd connect memory://")
    store = REGISTRY.current().store
    store.add_datasource("nipt-sim", **nipt)
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 1, "batch_size": 32,
                                                         "learning_rate": 0.01, "seed": 1})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    store.train("t21", progress=False)
    store.train("t21", epochs=2, progress=False)
    evaluation = run(ip, "%%evaluate t21@2 --baseline t21@1\ndata: test\nthresholds:\n"
                         "  - {metric: accuracy, lower: 1.01}\n  - {metric: abnormal_auc, change: -0.5}\n")
    text, page = (ip.display_formatter.format(evaluation)[0][k] for k in ("text/plain", "text/html"))
    assert "(baseline" not in text
    deltas = [line.split()[0] for line in text.splitlines() if "Δ" in line and not line.startswith("(")]
    assert deltas == ["accuracy", "abnormal_auc"], text  # a failed check and a change threshold; no other
    assert "from baseline t21@1#1" in text
    assert "<span style='color:#cf222e'>✗</span>" in page and "<span style='color:#1a7f37'>✓</span>" in page
    shown, _, folded = page.partition("<details><summary>every value beside the baseline's</summary>")
    assert shown.count("Δ") == 3 and folded.count("Δ") > 20  # two cells and the note; the rest folded


def test_a_background_log_is_named_by_its_run(tmp_path: Path) -> None:
    from mlmd_magic.store.background import BackgroundRun

    class Store:
        def run_by_external_id(self, external_id: str) -> tuple[int, str]:
            return 7, "t21-long@2#1"

    first = tmp_path / "background" / "0123abcd.log"
    first.parent.mkdir()
    first.write_text("Epoch 1/40\n")
    started = BackgroundRun(Store(), "mlmd_magic:0123abcd", where="process 42",  # type: ignore[arg-type]
                            log=str(first)).started(timeout_s=5)
    named = tmp_path / "background" / "t21-long@2#1.log"
    assert started.log == str(named) and named.read_text() == "Epoch 1/40\n" and not first.exists()
    assert repr(started) == (f"started run t21-long@2#1 (run:7) on process 42, its output in {named}; follow it "
                             "with %mlmd watch run:7, stop it with %mlmd cancel run:7")


def test_a_background_log_whose_name_is_taken_gets_a_suffix(tmp_path: Path) -> None:
    """Two stores sharing a runs folder may both have a run ``t21-long@2#1``: the second log is
    ``t21-long@2#1-2.log`` (then ``-3``), and the start line names the file it is."""
    from mlmd_magic.store.background import BackgroundRun

    class Store:
        def run_by_external_id(self, external_id: str) -> tuple[int, str]:
            return 7, "t21-long@2#1"

    folder = tmp_path / "background"
    folder.mkdir()
    (folder / "t21-long@2#1.log").write_text("the other store's run\n")
    for number, first_name in ((2, "0123abcd"), (3, "4567ef01")):
        first = folder / f"{first_name}.log"
        first.write_text(f"Epoch 1/40 of the run logged as -{number}\n")
        started = BackgroundRun(Store(), f"mlmd_magic:{first_name}", where="process 42",  # type: ignore[arg-type]
                                log=str(first)).started(timeout_s=5)
        named = folder / f"t21-long@2#1-{number}.log"
        assert started.log == str(named) and not first.exists(), started.log
        assert named.read_text() == f"Epoch 1/40 of the run logged as -{number}\n"
        assert f"its output in {named};" in repr(started)
    assert (folder / "t21-long@2#1.log").read_text() == "the other store's run\n"  # untouched
