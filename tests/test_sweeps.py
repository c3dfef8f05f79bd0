"""Sweeps: Optuna searches whose trials are experiment versions of their own and ordinary runs.

A small sweep on simulated cfDNA data (tiny models, one epoch) through the API, the
``%%sweep`` magic and the ``mlmd-magic sweep`` command; re-running trains nothing; a stopped
sweep resumes with the trials it owes; a failed trial is recorded and the sweep goes on; bad
input says what to write; two workers in subprocesses on SQLite, three worker processes on
MariaDB sharing one Optuna study, with no trial run twice and every trial recorded once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.errors import ValidationError
from mlmd_magic.store import sweeps

SPACE = {"learning_rate": {"loguniform": [1.0e-3, 1.0e-1]}, "hidden": {"choice": [[4], [8, 4]]}}
OBJECTIVE = {"metric": "eval.accuracy", "direction": "maximize"}
BODY = {"experiment": "base", "objective": OBJECTIVE, "sampler": "tpe", "trials": 3, "space": SPACE}
def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}  # read late: a fixture sets the MySQL password


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("sweep-data")), n_train=120, n_eval=40, n_test=40)


def _prepare(uri: str, nipt: dict[str, Any]) -> mm.Store:
    store = mm.connect(uri)
    store.add_datasource("nipt", **nipt)
    store.add_scenario("tiny", model="mlp", params={"hidden": [4], "learning_rate": 0.01, "epochs": 1,
                                                    "batch_size": 64, "seed": 1})
    store.add_experiment("base", datasource="nipt", scenario="tiny")
    return store


def _trains(store: mm.Store) -> list[Any]:
    return [e for e in store.mlmd.get_executions_by_type("mlmd_magic.Train")]


def _trained(store: mm.Store) -> int:
    return sum(1 for e in _trains(store) if e.last_known_state == pb.Execution.COMPLETE)


def _trial_runs(store: mm.Store, name: str) -> list[Any]:
    """The Train executions in the sweep's context, each with its trial number."""
    ctx = store.mlmd.get_context_by_type_and_name("mlmd_magic.Sweep", name)
    train_type = store.mlmd.get_execution_type("mlmd_magic.Train").id
    return [e for e in store.mlmd.get_executions_by_context(ctx.id) if e.type_id == train_type]


def _cli(uri: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("mlmd-magic", path=os.path.dirname(sys.executable)) or "mlmd-magic"
    done = subprocess.run([exe, "--uri", uri, "--json", *args], capture_output=True, text=True, env=_env(), timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


class Faces:
    """Define-and-run, and compare, through each face; each gives the sweep as plain values."""

    def __init__(self, face: str, uri: str, tmp: Path, ip: Any) -> None:
        self.face, self.uri, self.tmp, self.ip = face, uri, tmp, ip
        if face == "magic":
            ip.run_line_magic("mlmd", f"connect {uri}")

    def run(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.face == "api":
            with mm.connect(self.uri) as store:
                return store.sweep(name, **body).to_dict()
        if self.face == "magic":
            result = self.ip.run_cell(f"%%sweep {name} -o sw\n{yaml.safe_dump(body)}")
            result.raise_error()
            return dict(self.ip.user_ns["sw"].to_dict())
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(body))
        return dict(json.loads(_cli(self.uri, "sweep", name, "-f", str(path), "--quiet").stdout))

    def compare(self, name: str) -> dict[str, Any]:
        if self.face == "api":
            with mm.connect(self.uri) as store:
                return store.sweep_results(name).to_dict()
        if self.face == "magic":
            return dict(self.ip.run_line_magic("mlmd", f"compare sweep:{name}").to_dict())
        return dict(json.loads(_cli(self.uri, "compare", f"sweep:{name}").stdout))


@pytest.mark.slow  # about 20-35 s a face: three trainings, and for the CLI three processes importing TensorFlow
@pytest.mark.parametrize("face", ["api", "magic", "cli"])
def test_a_sweep_runs_its_trials_and_a_rerun_trains_nothing(face: str, nipt: dict[str, Any], tmp_path: Path,
                                                             ip: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'store.sqlite'}"
    _prepare(uri, nipt).close()
    faces = Faces(face, uri, tmp_path, ip)
    first = faces.run("lr-search", BODY)
    assert first["sweep"] == "lr-search@1" and first["budget"] == 3
    assert [t["state"] for t in first["trials"]] == ["COMPLETE"] * 3
    values = [t["eval.accuracy"] for t in first["trials"]]
    assert values == sorted(values, reverse=True)  # best first
    assert first["best"] == first["trials"][0]["run"]
    # each trial: a version of the base of its own (never what NAME gives), and an ordinary Train run
    with mm.connect(uri) as store:
        for trial in first["trials"]:
            assert trial["experiment"] == f"base@1~lr-search@1#{trial['trial']}"
            params = store.get_experiment(trial["experiment"])["params"]
            assert params["hidden"] == trial["hidden"]
            assert params["learning_rate"] == pytest.approx(trial["learning_rate"])
        assert store.get_experiment("base")["version"] == 1 and "trial" not in store.get_experiment("base")
        assert list(store.history("base")["version"]) == [1]
        listed = store.ls("experiments")
        assert list(listed["name"]) == ["base"] and "trial" not in listed
        marked = store.ls("experiments", trials=True)
        assert sorted(marked["trial"]) == ["", "base@1~lr-search@1#0", "base@1~lr-search@1#1", "base@1~lr-search@1#2"]
        runs = _trial_runs(store, "lr-search")
        assert sorted(e.properties["trial"].int_value for e in runs) == [0, 1, 2]
        trained = _trained(store)
        assert trained == 3
    again = faces.run("lr-search", BODY)
    assert again["sweep"] == "lr-search@1"
    assert [t["run"] for t in again["trials"]] == [t["run"] for t in first["trials"]]
    with mm.connect(uri) as store:
        assert _trained(store) == trained and len(_trial_runs(store, "lr-search")) == 3  # nothing new
        sweeps = store.mlmd.get_executions_by_type("mlmd_magic.Sweep")
        assert [pb.Execution.State.Name(e.last_known_state) for e in sweeps] == ["COMPLETE", "COMPLETE"]
        assert store.mlmd.get_artifact_by_type_and_name("mlmd_magic.Sweep", "lr-search@1") is not None
    compared = faces.compare("lr-search")
    assert [t["run"] for t in compared["trials"]] == [t["run"] for t in first["trials"]]
    with mm.connect(uri) as store:
        (comparison,) = store.mlmd.get_executions_by_type("mlmd_magic.CompareRuns")
        assert [e.artifact_id for e in store.mlmd.get_events_by_execution_ids([comparison.id])] == [
            store.mlmd.get_artifact_by_type_and_name("mlmd_magic.Sweep", "lr-search@1").id]
    # a larger budget continues the same search: one more trial, nothing retrained
    more = faces.run("lr-search", {**BODY, "trials": 4})
    assert more["sweep"] == "lr-search@1" and len(more["trials"]) == 4
    with mm.connect(uri) as store:
        assert _trained(store) == trained + 1


def test_the_html_marks_the_best_and_plots_each_parameter(nipt: dict[str, Any], tmp_path: Path) -> None:
    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)
    seen: list[int] = []
    sweep = store.sweep("s", experiment="base", space=SPACE, objective=OBJECTIVE, sampler="random", trials=2,
                        on_update=lambda s: seen.append(len(s.trials)))
    assert seen == [1, 2]  # the foreground display refreshes as each trial finishes
    page = sweep._repr_html_()
    assert page.count("<img") == 1 and "data:image/png;base64," in page
    assert page.index("★") < page.index(sweep.trials.iloc[1]["run"])
    assert sweep.best is not None and sweep.best.name == sweep.trials.iloc[0]["run"]
    assert sweep.plot_png().startswith(b"\x89PNG")
    assert "2 of 2 trials done: 2 trained, 0 cached, 0 failed" in repr(sweep)
    store.close()


def test_a_stopped_sweep_resumes_with_the_trials_it_owes(nipt: dict[str, Any], tmp_path: Path) -> None:
    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)

    def stop(sweep: mm.Sweep) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first trial

    with pytest.raises(KeyboardInterrupt):
        store.sweep("r", experiment="base", space=SPACE, objective=OBJECTIVE, trials=3, on_update=stop)
    assert _trained(store) == 1
    (execution,) = store.mlmd.get_executions_by_type("mlmd_magic.Sweep")
    assert execution.last_known_state == pb.Execution.CANCELED
    done = store.sweep("r", experiment="base", space=SPACE, objective=OBJECTIVE, trials=3)
    assert _trained(store) == 3 and len(done.trials) == 3
    assert set(done.trials["state"]) == {"COMPLETE"}
    store.close()


def _foreign_trial(store: mm.Store) -> Any:
    """A trial taken by a worker on another machine (its owner names another host), left RUNNING."""
    import optuna

    storage = store._sweeps._open_storage()
    (summary,) = storage.get_all_studies()
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    trial = study.ask()
    trial.set_user_attr("owner", "another-machine:4242")
    return trial


def test_a_trial_of_a_worker_dead_on_another_machine_is_owed_again(nipt: dict[str, Any], tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = _prepare(uri, nipt)
    body = {"experiment": "base", "space": {"learning_rate": {"uniform": [0.001, 0.1]}}, "objective": "eval.loss"}
    store.sweep("far", **body, trials=1)
    _foreign_trial(store)  # that worker took trial 1 and has not got as far as its run
    # while it may still be alive, its trial counts against the budget, and nothing more is trained
    waiting = store.sweep("far", **body, trials=2)
    assert "1 running" in waiting.summary() and _trained(store) == 1
    store.close()
    # a run never started and older than a run may go without a heartbeat: that worker is dead
    store = mm.connect(uri, stale_run_after_s=0.5)
    time.sleep(1.0)
    done = store.sweep("far", **body, trials=2)
    assert list(done.trials.sort_values("trial")["state"]) == ["COMPLETE", "INTERRUPTED", "COMPLETE"]
    assert _trained(store) == 2
    store.close()


@pytest.mark.slow
@pytest.mark.parametrize("far", [False, True], ids=["this-machine", "another-machine"])
def test_a_trial_whose_process_is_killed_is_owed_again(nipt: dict[str, Any], tmp_path: Path, far: bool) -> None:
    uri = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = _prepare(uri, nipt)
    store.add_scenario("long", model="mlp", params={"hidden": [4], "learning_rate": 0.01, "epochs": 60,
                                                    "batch_size": 8, "seed": 1})
    store.add_experiment("slow", datasource="nipt", scenario="long")
    body = {"experiment": "slow", "space": {"learning_rate": {"uniform": [0.001, 0.1]}}, "objective": "eval.loss",
            "trials": 1}
    (tmp_path / "k.yaml").write_text(yaml.safe_dump(body))
    # a kernel killed mid-trial: the process running the sweep is stopped with SIGKILL while it trains
    worker = subprocess.Popen([shutil.which("mlmd-magic", path=os.path.dirname(sys.executable)) or "mlmd-magic",
                               "--uri", uri, "sweep", "k", "-f", str(tmp_path / "k.yaml"), "--quiet"], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        running: list[Any] = []
        for _ in range(1200):
            running = [e for e in _trains(store) if e.last_known_state == pb.Execution.RUNNING]
            if running and "progress" in running[0].properties:
                break
            time.sleep(0.05)
        assert running, "the sweep never started training"
    finally:
        worker.kill()
        worker.wait()
    store.close()
    store = mm.connect(uri)  # the dead process's run is marked FAILED when the store is opened
    assert [r.state for r in store.ls("runs").itertuples()] == ["FAILED"]
    if far:  # as if the worker had run on another machine: found dead by its run, not by its process
        import optuna

        storage = store._sweeps._open_storage()
        (summary,) = storage.get_all_studies()
        (trial,) = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
        storage.set_trial_user_attr(trial._trial_id, "owner", "another-machine:4242")
    done = store.sweep("k", **body)
    assert list(done.trials.sort_values("trial")["state"]) == ["INTERRUPTED", "COMPLETE"]
    assert "1 of 1 trials done: 1 trained" in done.summary() and "1 interrupted (owed again)" in done.summary()
    assert _trained(store) == 1
    store.close()


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(nipt: dict[str, Any], tmp_path: Path) -> None:
    from mlmd_magic.trainer import register_model

    @register_model("sweep-flaky")
    def flaky(input_dim: int, output: Any, params: dict[str, Any], normalizer: Any) -> Any:
        import keras

        if params["width"] == 3:
            raise ValueError("width 3 is not supported")
        inputs = keras.Input((input_dim,))
        return keras.Model(inputs, output.layer()(keras.layers.Dense(params["width"])(inputs)))

    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)
    store.add_scenario("flaky", model="sweep-flaky", params={"width": 2, "epochs": 1})
    store.add_experiment("fl", datasource="nipt", scenario="flaky")
    sweep = store.sweep("f", experiment="fl", space={"width": {"choice": [2, 3, 4]}}, objective="eval.loss",
                        sampler="grid", trials=5)
    assert sweep.budget == 3  # a grid has three points
    states = dict(zip(sweep.trials["width"], sweep.trials["state"]))
    assert states == {2: "COMPLETE", 3: "FAILED", 4: "COMPLETE"}
    assert "2 trained, 0 cached, 1 failed — 1× TrainingError: training fl@" in sweep.summary()
    assert "width 3 is not supported" in sweep.summary()
    failed = [e for e in _trial_runs(store, "f") if e.last_known_state == pb.Execution.FAILED]
    assert len(failed) == 1 and "width 3" in failed[0].properties["error"].string_value
    store.close()


def test_grid_points_are_the_same_for_every_worker(nipt: dict[str, Any], tmp_path: Path) -> None:
    """Workers seed their samplers differently; a grid's trial N must still be the same point in
    each, or two workers try one point twice and leave another untried."""
    store = _prepare(f"sqlite:///{tmp_path / 'g.sqlite'}", nipt)
    rates = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
    space = {"learning_rate": {"choice": rates}}
    store.sweep("g", experiment="base", space=space, objective=OBJECTIVE, sampler="grid", trials=3, seed=0)
    for offset in (1, 2, 3):  # three more workers, each seeded as `mlmd-magic sweep --worker` seeds them
        sweep = store.sweep_worker("g", trials=3 + offset, seed_offset=offset)
    assert sorted(sweep.trials["learning_rate"]) == rates
    assert set(sweep.trials["state"]) == {"COMPLETE"}
    store.close()


BAD = [
    ({"space": {"learning_rat": {"loguniform": [1e-4, 1e-1]}}},
     "space key 'learning_rat' is not a parameter of experiment base@1; did you mean 'learning_rate'?"),
    ({"space": {"learning_rate": {"lognormal": [1e-4, 1e-1]}}},
     "unknown distribution 'lognormal'; did you mean 'loguniform'? write one of {loguniform: [1.0e-4, 1.0e-1]} "
     "(low > 0, low < high); {uniform: [0.0, 0.5]}"),
    ({"space": {"epochs": {"int": [10, 3]}}}, "the range [10, 3] is empty (low > high); write epochs: {int: [3, 10]}"),
    ({"space": {"epochs": {"uniform": [1, 3]}}},
     "space 'epochs': the parameter is a whole number (1), and uniform draws fractions; write epochs: {int: [3, 10]}"),
    ({"space": {"hidden": {"choice": []}}}, "write hidden: {choice: [[32], [64, 32], [128, 64]]}"),
    ({"objective": {"metric": "eval.precision"}},
     "objective metric 'eval.precision' is not reported by the trainer for this multiclass experiment; it reports "
     "eval.loss, eval.accuracy, test.loss, test.accuracy, train.loss, train.accuracy"),
]


@pytest.mark.parametrize("face", ["api", "magic", "cli"])
def test_bad_input_says_what_to_write(face: str, nipt: dict[str, Any], tmp_path: Path, ip: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'store.sqlite'}"
    _prepare(uri, nipt).close()
    if face == "magic":
        ip.run_line_magic("mlmd", f"connect {uri}")
    for change, message in BAD:
        body = {**BODY, **change}
        if face == "api":
            with mm.connect(uri) as store, pytest.raises(ValidationError) as info:
                store.sweep("bad", **body)
            said = str(info.value)
        elif face == "magic":
            result = ip.run_cell(f"%%sweep bad\n{yaml.safe_dump(body)}")
            said = str(result.error_in_exec)
        else:
            path = tmp_path / "bad.yaml"
            path.write_text(yaml.safe_dump(body))
            done = _cli(uri, "sweep", "bad", "-f", str(path), check=False)
            assert done.returncode == 2
            said = done.stderr
        assert message in said, said
    with mm.connect(uri) as store:
        assert store.mlmd.get_artifacts_by_type("mlmd_magic.Sweep") == []  # nothing half-written
        assert _trains(store) == []


@pytest.mark.slow
def test_a_twelve_trial_cell_runs_under_two_workers_and_a_rerun_trains_nothing(nipt: dict[str, Any],
                                                                                tmp_path: Path, ip: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = _prepare(uri, nipt)
    ip.run_line_magic("mlmd", f"connect {uri}")
    cell = f"%%sweep par -o sw\n{yaml.safe_dump({**BODY, 'trials': 12, 'workers': 2})}"
    ip.run_cell(cell).raise_error()
    sweep = ip.user_ns["sw"]
    assert len(sweep.trials) == 12 and set(sweep.trials["state"]) == {"COMPLETE"}, sweep.trials
    runs = _trial_runs(store, "par")
    assert sorted(e.properties["trial"].int_value for e in runs) == list(range(12))  # each trial once
    assert len({e.name for e in runs}) == 12
    # this cell and the two worker processes, each one Sweep execution
    assert len(store.mlmd.get_executions_by_type("mlmd_magic.Sweep")) == 3
    trained = _trained(store)
    ip.run_cell(cell).raise_error()
    assert _trained(store) == trained and len(_trial_runs(store, "par")) == 12  # nothing new
    assert list(ip.user_ns["sw"].trials["run"]) == list(sweep.trials["run"])
    with pytest.raises(ValidationError, match="memory:// store"):
        _prepare("memory://", nipt).sweep("m", experiment="base", space=SPACE, objective=OBJECTIVE, workers=2)
    store.close()


# ---------------------------------------------------------------- Optuna's own storage, read by any Optuna tool

_OPEN_AS_A_DASHBOARD = """
import json, sys
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

path, name = sys.argv[1:]
opened = [JournalStorage(JournalFileBackend(path))]  # as any Optuna program, and optuna-dashboard PATH, open it
try:
    from optuna_dashboard._storage_url import get_storage
except ImportError:
    pass
else:
    opened.append(get_storage(path))
out = []
for storage in opened:
    study = optuna.load_study(study_name=name, storage=storage)
    out.append({"studies": [s.study_name for s in optuna.get_all_study_summaries(storage)],
                "params": [t.params for t in study.trials if t.state.name == "COMPLETE"],
                "best": study.best_value, "direction": study.direction.name})
print(json.dumps(out))
"""


def test_a_sweeps_study_opens_with_plain_optuna_in_another_process(nipt: dict[str, Any], tmp_path: Path) -> None:
    """The study of a sweep on a SQLite store is Optuna's journal file beside it, named on the
    sweep's record: a fresh process opens it with Optuna alone (optuna-dashboard's way)."""
    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)
    sweep = store.sweep("dash", experiment="base", space=SPACE, objective="eval.loss", sampler="random", trials=2)
    (version,) = store.mlmd.get_artifacts_by_type("mlmd_magic.Sweep")
    path = version.properties["study"].string_value
    assert path == f"{tmp_path / 's.sqlite'}.sweeps.journal"
    store.close()
    done = subprocess.run([sys.executable, "-c", _OPEN_AS_A_DASHBOARD, path, "mlmd_magic.Sweep:dash@1"],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for seen in json.loads(done.stdout):
        assert seen["studies"] == ["mlmd_magic.Sweep:dash@1"] and seen["direction"] == "MINIMIZE"
        assert seen["best"] == pytest.approx(sweep.trials.iloc[0]["eval.loss"])
        assert sorted(p["learning_rate"] for p in seen["params"]) == sorted(sweep.trials["learning_rate"])
    assert not (tmp_path / "s.sqlite.sweeps").exists()  # no study of mlmd-magic's own beside it
    assert not Path(path + ".lock").exists()  # Optuna's lock, released after each write


def _as_an_earlier_version(journal: Path, logs: list[str]) -> Path:
    """The store's sweeps as an earlier version kept them: these log entries of Optuna's in a
    SQLite file of its own, FILE.sweeps, table optuna_journal, in WAL mode."""
    import sqlite3

    legacy = journal.with_suffix("")  # s.sqlite.sweeps.journal -> s.sqlite.sweeps
    db = sqlite3.connect(legacy, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE optuna_journal (n INTEGER PRIMARY KEY, log TEXT NOT NULL)")
    db.executemany("INSERT INTO optuna_journal (n, log) VALUES (?, ?)", list(enumerate(logs)))
    db.close()
    return legacy


def test_the_sweeps_of_an_earlier_version_are_moved_into_optunas_journal_once(nipt: dict[str, Any],
                                                                             tmp_path: Path) -> None:
    """A store whose sweeps an earlier version kept in a SQLite journal of its own: its studies
    move into Optuna's journal file when first opened, exactly (the same trials, nothing
    retrained), and once — a move cut short is finished, a journal holding other studies is
    refused with what to do."""
    from mlmd_magic.errors import StoreError

    uri = f"sqlite:///{tmp_path / 's.sqlite'}"
    body = {"experiment": "base", "space": SPACE, "objective": "eval.loss", "sampler": "random"}
    store = _prepare(uri, nipt)
    before = store.sweep("old", **body, trials=2)
    store.close()
    journal = tmp_path / "s.sqlite.sweeps.journal"
    logs = journal.read_text().splitlines()
    journal.unlink()
    legacy = _as_an_earlier_version(journal, logs)
    moved = r"moved the sweeps' studies from .*s\.sqlite\.sweeps \(an earlier mlmd-magic's\) into Optuna's journal"
    read = sweeps._legacy_logs
    locked_while_reading = []

    def reading(path: str) -> Any:  # a large old file is read before the journal's lock is taken
        locked_while_reading.append(os.path.lexists(f"{journal}.lock"))
        return read(path)

    with mm.connect(uri) as store, pytest.warns(UserWarning, match=moved), \
            mock.patch.object(sweeps, "_legacy_logs", reading):
        assert list(store.sweep_results("old").trials["run"]) == list(before.trials["run"])
    assert locked_while_reading == [False]
    assert journal.read_text().splitlines() == logs
    assert not legacy.exists() and legacy.with_name("s.sqlite.sweeps.migrated").exists()
    with mm.connect(uri) as store:  # the search goes on where it was: one more trial trains one more run
        more = store.sweep("old", **body, trials=3)
        assert set(before.trials["run"]) < set(more.trials["run"]) and _trained(store) == 3
    # a move cut short (the journal written, the old file not yet renamed): only the rename is left to do
    legacy.write_bytes(legacy.with_name("s.sqlite.sweeps.migrated").read_bytes())
    lines = journal.read_text()
    with mm.connect(uri) as store, pytest.warns(UserWarning, match="moved the sweeps' studies"):
        assert len(store.sweep_results("old").trials) == 3
    assert journal.read_text() == lines and not legacy.exists()
    # an old file that is not what the journal begins with: refused, saying what to do
    _as_an_earlier_version(journal, [logs[0].replace("old@1", "other@1")])
    with mm.connect(uri) as store, pytest.raises(StoreError) as info:
        store.sweep_results("old")
    said = str(info.value)
    assert "\n" not in said and said.startswith(f"the sweeps' studies are in two files: {legacy} ") and "move" in said
    assert journal.read_text() == lines and legacy.exists()


@pytest.mark.slow
@pytest.mark.mysql
def test_three_workers_on_mariadb_share_one_sweep(nipt: dict[str, Any], mysql_uri: str) -> None:
    store = _prepare(mysql_uri, nipt)
    store.sweep("shared", experiment="base", space=SPACE, objective=OBJECTIVE, sampler="tpe", trials=1)
    exe = shutil.which("mlmd-magic", path=os.path.dirname(sys.executable)) or "mlmd-magic"
    workers = [subprocess.Popen([exe, "--uri", mysql_uri, "sweep", "shared", "--worker", "--trials", "7", "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
               for _ in range(3)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    password = os.environ["MLMD_MAGIC_MYSQL_PASSWORD"]
    assert not any(password in out for out in outputs)
    (sweep_version,) = store.mlmd.get_artifacts_by_type("mlmd_magic.Sweep")
    assert password not in str(sweep_version) and "_sweeps" in sweep_version.properties["study"].string_value
    sweep = store.sweep_results("shared")
    assert len(sweep.trials) == 7 and set(sweep.trials["state"]) == {"COMPLETE"}
    runs = _trial_runs(store, "shared")
    numbers = [e.properties["trial"].int_value for e in runs]
    assert sorted(numbers) == list(range(7))  # every trial recorded once, none twice
    assert len({e.name for e in runs}) == 7
    assert sorted(sweep.trials["run"]) == sorted(e.name for e in runs)
    assert _trained(store) == 7
    # each worker's invocation is on record
    assert len(store.mlmd.get_executions_by_type("mlmd_magic.Sweep")) == 4
    store.close()


@pytest.mark.mysql
@pytest.mark.slow
def test_sweep_workers_get_the_password_on_stdin_only(nipt: dict[str, Any], mysql_uri: str,
                                                      mysql_server: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's worker processes take the store's password from their stdin: it is in neither
    their command line nor their environment (any process of the same user reads both)."""
    import threading
    from urllib.parse import quote

    monkeypatch.delenv("MLMD_MAGIC_MYSQL_PASSWORD")
    password = mysql_server["password"].encode()
    user = "mysql://mlmd_magic_test"
    store = _prepare(mysql_uri.replace(f"{user}@", f"{user}:{quote(mysql_server['password'], safe='')}@"), nipt)
    seen: list[bytes] = []
    done = threading.Event()

    def children() -> None:
        while not done.is_set():
            for entry in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        if int(fh.read().rsplit(")", 1)[1].split()[1]) != os.getpid():
                            continue
                    with open(f"/proc/{entry}/cmdline", "rb") as fh:
                        cmdline = fh.read()
                    with open(f"/proc/{entry}/environ", "rb") as fh:
                        environ = fh.read()
                except (OSError, ValueError, IndexError):
                    continue
                if b"mlmd_magic.store.worker" in cmdline:
                    seen.append(cmdline + environ)
            time.sleep(0.05)

    looking = threading.Thread(target=children)
    looking.start()
    try:
        sweep = store.sweep("pw", experiment="base", space=SPACE, objective=OBJECTIVE, sampler="random", trials=2,
                            workers=2)
    finally:
        done.set()
        looking.join()
    assert len(sweep.trials) == 2 and set(sweep.trials["state"]) == {"COMPLETE"}
    assert seen and not any(password in text for text in seen)
    store.close()
