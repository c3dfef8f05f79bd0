"""Sweeps under faults: workers killed at any point, dead children, spaces too large to keep.

* A grid sweep whose worker is SIGKILLed — before it asks for its trial, before the trial's run,
  mid-training — trains every grid point exactly once when it is run again: an interrupted
  trial is owed again with its own point, a point queued twice is trained once.
* The spawner reaps each dead worker at once, however long the others live; a trial whose owner
  process on this machine is dead (gone, or a zombie) is owed again at once.
* A space Optuna cannot keep (a parameter's distribution over 65,535 bytes of JSON, a grid of
  more than 100,000 points) is refused when the sweep is defined, before anything is written,
  on SQLite and MariaDB alike; a sweep run that fails midway leaves nothing RUNNING.

Faults are injected into real worker processes through a ``sitecustomize`` module on their
``PYTHONPATH`` (see :data:`_FAULTS`): the worker SIGKILLs itself at a chosen point, or its model
builder blocks mid-training until the test kills it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.core.values import canonical_json
from mlmd_magic.errors import MlmdMagicError, ValidationError
from mlmd_magic.store.maintenance import Owner, owner_token
from mlmd_magic.trainer import register_model

MODEL = "sweep-faults-mlp"  # the mlp, under a name a worker's sitecustomize can make faulty
RATES = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05]
GRID: dict[str, Any] = {"experiment": "base", "space": {"learning_rate": {"choice": RATES}}, "objective": "eval.loss",
        "sampler": "grid", "trials": len(RATES)}

# Imported by every Python process started with this folder on its PYTHONPATH, where it registers
# the model sweep-faults-mlp. SWEEP_FAULT says where the process dies: "none" (nowhere), "ask"
# (SIGKILL as it asks the study for a trial), "owner" (SIGKILL once it has its trial, before it
# writes itself as the trial's owner), "define" (SIGKILL before the trial's experiment version and
# run are written), "train" (the model builder writes SWEEP_FAULT_FLAGS/PID and blocks: the test
# kills it mid-training); SWEEP_FAULT_AT: after how many calls (0: the first).
_FAULTS = '''
import os, signal, time

_FAULT = os.environ.get("SWEEP_FAULT", "")
_AT = int(os.environ.get("SWEEP_FAULT_AT", "0"))
_calls = [0]


def _due():
    _calls[0] += 1
    return _calls[0] > _AT


if _FAULT:
    from mlmd_magic.trainer import register_model
    from mlmd_magic.trainer._builders import mlp

    @register_model("sweep-faults-mlp")
    def _model(input_dim, output, params, normalizer):
        if _FAULT == "train" and _due():
            flags = os.environ["SWEEP_FAULT_FLAGS"]
            os.makedirs(flags, exist_ok=True)
            with open(os.path.join(flags, str(os.getpid())), "w") as fh:
                fh.write("training")
            time.sleep(600)
        return mlp(input_dim, output, params, normalizer)

    if _FAULT in ("ask", "owner", "define"):
        import optuna
        from mlmd_magic.store.records import Records

        def _killing(original, when=lambda *args: True):
            def wrapper(*args, **kwargs):
                if when(*args) and _due():
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(*args, **kwargs)
            return wrapper

        if _FAULT == "ask":
            optuna.study.Study.ask = _killing(optuna.study.Study.ask)
        elif _FAULT == "owner":
            optuna.trial.Trial.set_user_attr = _killing(optuna.trial.Trial.set_user_attr,
                                                        lambda trial, key, *rest: key == "owner")
        else:
            Records.define_trial = _killing(Records.define_trial)
'''


@register_model(MODEL)
def _model(input_dim: int, output: Any, params: dict[str, Any], normalizer: Any) -> Any:
    from mlmd_magic.trainer._builders import mlp

    return mlp(input_dim, output, params, normalizer)


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("fault-data")), n_train=120, n_eval=40, n_test=40)


def _prepare(uri: str, nipt: dict[str, Any]) -> mm.Store:
    store = mm.connect(uri)
    store.add_datasource("nipt", **nipt)
    store.add_scenario("tiny", model=MODEL, params={"hidden": [4], "learning_rate": 0.01, "epochs": 1,
                                                    "batch_size": 64, "seed": 1, "activation": "relu"})
    store.add_experiment("base", datasource="nipt", scenario="tiny")
    return store


def _faulty_env(tmp: Path, fault: str, at: int) -> dict[str, str]:
    folder = tmp / "faults"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_FAULTS)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "SWEEP_FAULT": fault, "SWEEP_FAULT_AT": str(at),
            "SWEEP_FAULT_FLAGS": str(tmp / "flags"), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _state(pid: int) -> str | None:
    """The state letter of process ``pid`` (``Z`` for a zombie), None once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0]
    except OSError:
        return None


def _trained_rates(store: mm.Store, name: str) -> list[float]:
    """The learning rate of each Train run of sweep ``name`` that trained (COMPLETE), sorted."""
    ctx = store.mlmd.get_context_by_type_and_name("mlmd_magic.Sweep", name)
    train_type = store.mlmd.get_execution_type("mlmd_magic.Train").id
    rates = []
    for execution in store.mlmd.get_executions_by_context(ctx.id):
        if execution.type_id == train_type and execution.last_known_state == pb.Execution.COMPLETE:
            (event,) = [e for e in store.mlmd.get_events_by_execution_ids([execution.id])
                        if e.type == pb.Event.INPUT and store.mlmd.get_artifacts_by_id([e.artifact_id])[0].type_id
                        == store.mlmd.get_artifact_type("mlmd_magic.Experiment").id]
            (experiment,) = store.mlmd.get_artifacts_by_id([event.artifact_id])
            rates.append(store.get_experiment(experiment.name)["params"]["learning_rate"])
    return sorted(rates)


def _study(store: mm.Store) -> Any:
    import optuna

    storage = store._sweeps._open_storage()
    (summary,) = storage.get_all_studies()
    return optuna.load_study(study_name=summary.study_name, storage=storage)


# ---------------------------------------------------------------- 1. a grid point lost after a worker died


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "at"), [("ask", 2), ("owner", 2), ("define", 2), ("train", 2), ("define", 0)])
def test_a_grid_sweep_whose_worker_is_killed_trains_every_point_once(
        fault: str, at: int, nipt: dict[str, Any], tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 's.sqlite'}"
    _prepare(uri, nipt).close()
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(GRID))
    env = {**os.environ, **_faulty_env(tmp_path, fault, at)}
    worker = subprocess.Popen([sys.executable, "-m", "mlmd_magic.cli", "--uri", uri, "sweep", "g", "-f",
                               str(tmp_path / "g.yaml"), "--quiet"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        if fault == "train":  # mid-training: its model builder blocks, and the test kills it
            _until(lambda: (tmp_path / "flags" / str(worker.pid)).exists() or worker.poll() is not None, 240,
                   "the worker to start training its third trial")
            worker.send_signal(signal.SIGKILL)
        output = worker.communicate(timeout=240)[0]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == -signal.SIGKILL, output[-2000:]
    with mm.connect(uri) as store:
        assert len(_trained_rates(store, "g")) == at  # what it trained before it died
        done = store.sweep("g", **GRID)  # the cell run again
        assert _trained_rates(store, "g") == RATES, done.trials  # every point trained, none twice
        assert done.summary().startswith(f"{len(RATES)} of {len(RATES)} trials done: {len(RATES)} trained, 0 cached, "
                                         "0 failed"), done.summary()
        assert sorted(done.trials.loc[done.trials["state"] == "COMPLETE", "learning_rate"]) == RATES
        assert "running" not in done.summary()
        again = store.sweep("g", **GRID)  # and once more: nothing is owed, nothing trains
        assert _trained_rates(store, "g") == RATES and list(again.trials["run"]) == list(done.trials["run"])


def test_a_grid_point_queued_twice_is_trained_once(nipt: dict[str, Any], tmp_path: Path) -> None:
    """Workers topping up the queue at once may queue one point twice; a worker that dies after it
    queued a point leaves it WAITING; a trial the sampler drew is no grid point: each point still
    trains once."""
    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)
    body: dict[str, Any] = {**GRID, "space": {"learning_rate": {"choice": RATES[:4]}}, "trials": 1}
    first = store.sweep("q", **body)
    (rate,) = first.trials["learning_rate"]
    study = _study(store)
    # two workers queued the same owed point, a third one another, and then all died
    owed = [r for r in RATES[:4] if r != rate]
    for queued in (owed[0], owed[0], owed[1], rate):  # the last: a point already trained
        study.enqueue_trial({"learning_rate": canonical_json(queued)})
    done = store.sweep("q", **{**body, "trials": 4})
    assert _trained_rates(store, "q") == sorted(RATES[:4]), done.trials
    assert done.summary().startswith("4 of 4 trials done: 4 trained, 0 cached, 0 failed"), done.summary()
    assert sorted(done.trials["learning_rate"]) == sorted(RATES[:4]) and set(done.trials["state"]) == {"COMPLETE"}
    store.close()


def test_a_grid_study_of_an_older_version_is_completed_and_told_truthfully(nipt: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    """A study Optuna's GridSampler ran (an older version) ran one point twice and left another
    out, and said "4 of 4 trials done": continued, the point left out is trained, and the point
    run twice counts once."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)
    rates = RATES[:4]
    body: dict[str, Any] = {**GRID, "space": {"learning_rate": {"choice": rates}}, "trials": 1}
    store.sweep("old", **body)
    study = _study(store)
    (first,) = study.get_trials()
    ran = canonical_json(first.params["learning_rate"])
    distribution = CategoricalDistribution([canonical_json(r) for r in rates])
    other = next(canonical_json(r) for r in rates if canonical_json(r) != ran)
    for number, value in enumerate((other, other), start=1):  # as GridSampler marks its trials
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=1.0 + number, params={"learning_rate": value},
            distributions={"learning_rate": distribution}, system_attrs={"grid_id": number, "search_space": {}}))
    done = store.sweep("old", **{**body, "trials": 4})
    assert _trained_rates(store, "old") == sorted(r for r in rates if canonical_json(r) not in (other,)), done.trials
    assert done.summary().startswith("4 of 4 trials done: 4 trained, 0 cached, 0 failed; 1 duplicate (a grid point "
                                     "run before; not counted)"), done.summary()
    assert list(done.trials.sort_values("trial")["state"]) == ["COMPLETE", "COMPLETE", "DUPLICATE", "COMPLETE",
                                                               "COMPLETE"]
    store.close()


@pytest.mark.slow
def test_grid_workers_racing_train_each_point_once(uri: str, nipt: dict[str, Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Three worker processes share one grid (the Optuna study on a SQLite journal, or on MariaDB):
    each takes queued points, none is trained twice, none left out."""
    for key, value in _faulty_env(tmp_path, "none", 0).items():  # the workers know the test's model
        monkeypatch.setenv(key, value)
    store = _prepare(uri, nipt)
    space = {"learning_rate": {"choice": RATES}, "hidden": {"choice": [[4], [2]]}}
    done = store.sweep("race", **{**GRID, "space": space, "trials": 12, "workers": 3})
    assert done.summary().startswith("12 of 12 trials done: 12 trained, 0 cached, 0 failed"), done.trials
    points = sorted(zip(done.trials["learning_rate"], map(tuple, done.trials["hidden"])))
    assert points == sorted((r, h) for r in RATES for h in ((4,), (2,)))
    assert _trained_rates(store, "race") == sorted(RATES * 2)
    assert len(store.mlmd.get_executions_by_type("mlmd_magic.Sweep")) == 4  # the cell and its three workers
    store.close()


def test_a_worker_whose_trial_was_taken_for_dead_goes_on(nipt: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker may take a live worker's trial for dead (it looked in the instant between
    Optuna handing the trial out and its worker writing itself as owner) and mark it interrupted:
    the worker goes on, the point is owed again, and the run it finished is reused (CACHED)."""
    import optuna

    from mlmd_magic.store.runs import Runs

    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)
    train = Runs.train
    taken: list[int] = []

    def train_while_taken(self: Runs, *args: Any, **kwargs: Any) -> Any:
        if not taken:  # the first trial: another worker marks it interrupted as it trains
            (trial,) = [t for t in _study(store).get_trials() if t.state.name == "RUNNING"]
            _study(store).tell(trial.number, state=optuna.trial.TrialState.FAIL)  # as a worker interrupts one
            taken.append(trial.number)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Runs, "train", train_while_taken)
    body: dict[str, Any] = {**GRID, "space": {"learning_rate": {"choice": RATES[:2]}}, "trials": 2}
    done = store.sweep("taken", **body)
    assert done.summary().startswith("2 of 2 trials done: 1 trained, 1 cached, 0 failed; 1 interrupted"), done.summary()
    assert _trained_rates(store, "taken") == RATES[:2]  # each point trained once
    store.close()


def test_a_journal_lock_left_by_a_killed_worker_is_taken_over(nipt: dict[str, Any], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker SIGKILLed while it held the lock of the study's journal (it appends under
    Optuna's lock file) leaves the lock behind: the next worker takes it over after the grace
    period, and the sweep goes on."""
    from mlmd_magic.store import sweeps

    monkeypatch.setattr(sweeps, "_LOCK_GRACE_S", 3)
    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)
    body: dict[str, Any] = {**GRID, "space": {"learning_rate": {"choice": RATES[:2]}}}
    store.sweep("lock", **{**body, "trials": 1})
    journal = f"{tmp_path / 's.sqlite'}.sweeps.journal"
    holder = ("import os, signal, sys\nfrom optuna.storages.journal import JournalFileSymlinkLock\n"
              "JournalFileSymlinkLock(sys.argv[1]).acquire()\nos.kill(os.getpid(), signal.SIGKILL)\n")
    died = subprocess.run([sys.executable, "-c", holder, journal], timeout=60)
    assert died.returncode == -signal.SIGKILL and os.path.lexists(journal + ".lock")
    started = time.monotonic()
    done = store.sweep("lock", **{**body, "trials": 2})
    assert time.monotonic() - started >= 3  # it waited out the grace period, no longer
    assert done.summary().startswith("2 of 2 trials done: 2 trained"), done.summary()
    assert _trained_rates(store, "lock") == RATES[:2] and not os.path.lexists(journal + ".lock")
    store.close()


# ---------------------------------------------------------------- 2. dead children and dead owners


@pytest.mark.slow
def test_the_spawner_reaps_each_dead_worker_at_once(nipt: dict[str, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The second worker dies while the first still trains: it must not stay a zombie until the
    first ends (the spawner used to stop polling at the first live child)."""
    uri = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = _prepare(uri, nipt)
    for key, value in _faulty_env(tmp_path, "train", 0).items():  # the spawned workers' environment
        monkeypatch.setenv(key, value)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            store.sweep("w", experiment="base", space={"learning_rate": {"uniform": [0.001, 0.1]}},
                        objective="eval.loss", sampler="random", trials=2, workers=2)
        except BaseException as exc:
            errors.append(exc)

    spawner = threading.Thread(target=run)
    spawner.start()
    flags = tmp_path / "flags"
    try:
        pids = _until(lambda: len(list(flags.glob("*"))) == 2 and sorted(int(p.name) for p in flags.glob("*")), 240,
                      "both workers to start training")
        first, second = pids
        os.kill(second, signal.SIGKILL)
        # reaped within a round or two of the spawner's polling, though the first worker lives on
        _until(lambda: _state(second) is None, 5, f"the spawner to reap worker {second} (state {_state(second)})")
        assert _state(first) not in (None, "Z")
    finally:
        for flag in flags.glob("*"):
            if _state(int(flag.name)) not in (None, "Z"):
                os.kill(int(flag.name), signal.SIGKILL)
        spawner.join(60)
    assert not spawner.is_alive()
    (error,) = errors
    assert "every sweep worker failed" in str(error)
    store.close()


def _dead_owner(zombie: bool) -> tuple[str, subprocess.Popen[bytes]]:
    """The owner string of a process of this machine that is dead: SIGKILLed and left a zombie by
    its parent (this test), or reaped."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    token = _until(lambda: owner_token(child.pid).rsplit(":", 1)[1] and owner_token(child.pid), 10, "its start time")
    child.send_signal(signal.SIGKILL)
    _until(lambda: _state(child.pid) == "Z", 10, "the child to become a zombie")
    if not zombie:
        child.wait()
    return token, child


@pytest.mark.parametrize("owner", ["zombie", "reaped", "this-process"])
def test_a_trial_whose_owner_process_here_is_dead_is_owed_again_at_once(
        owner: str, nipt: dict[str, Any], tmp_path: Path) -> None:
    """A trial owned by a process of this machine that is gone, a zombie, or this very process
    when it no longer works on it (it stopped before the trial's end) is owed again at once."""
    store = _prepare(f"sqlite:///{tmp_path / 's.sqlite'}", nipt)
    body: dict[str, Any] = {"experiment": "base", "space": {"learning_rate": {"uniform": [0.001, 0.1]}},
                            "objective": "eval.loss"}
    store.sweep("o", **body, trials=1)
    (trial,) = _study(store).get_trials()
    assert Owner.parse(trial.user_attrs["owner"]) == Owner.parse(owner_token())  # trials are owned by owner_token()
    token, child = _dead_owner(owner == "zombie") if owner != "this-process" else (owner_token(), None)
    try:
        taken = _study(store).ask()  # a worker of this machine took trial 1, and died (or stopped)
        taken.set_user_attr("owner", token)
        done = store.sweep("o", **body, trials=2)
    finally:
        if child is not None:
            child.wait()
    assert list(done.trials.sort_values("trial")["state"]) == ["COMPLETE", "INTERRUPTED", "COMPLETE"], done.trials
    assert "2 of 2 trials done: 2 trained" in done.summary() and "running" not in done.summary()
    store.close()


# ---------------------------------------------------------------- 3. spaces too large, runs half done


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store on SQLite, and on MariaDB (the ``mysql_uri`` fixture)."""
    if request.param == "mysql":
        return str(request.getfixturevalue("mysql_uri"))
    return f"sqlite:///{tmp_path / 's.sqlite'}"


LONG_CHOICES = [f"act{i:04d}-" + "x" * 300 for i in range(300)]  # ~100 KB of distribution JSON


def _nothing_written(store: mm.Store) -> None:
    assert store.mlmd.get_artifacts_by_type("mlmd_magic.Sweep") == []
    assert store.mlmd.get_executions_by_type("mlmd_magic.Train") == []
    assert store._sweeps._open_storage().get_all_studies() == []


def test_a_choice_too_large_for_the_study_is_refused_before_anything_is_written(uri: str,
                                                                                nipt: dict[str, Any]) -> None:
    store = _prepare(uri, nipt)
    with pytest.raises(ValidationError) as info:
        store.sweep("big", experiment="base", space={"activation": {"choice": LONG_CHOICES}}, objective="eval.loss",
                    sampler="random", trials=2)
    said = str(info.value)
    assert "\n" not in said
    assert re.match(r"space 'activation': Optuna keeps its distribution as \d\d,\d{3} bytes of JSON, more than the "
                    r"65,535 its study storage holds .*; use fewer or shorter choices", said), said
    _nothing_written(store)
    store.close()


def test_a_grid_of_too_many_points_is_refused_before_anything_is_written(uri: str, nipt: dict[str, Any]) -> None:
    store = _prepare(uri, nipt)
    space = {"hidden": {"choice": [[n] for n in range(1, 401)]},
             "learning_rate": {"choice": [round(0.0001 * n, 4) for n in range(1, 401)]}}
    with pytest.raises(ValidationError) as info:
        store.sweep("huge", experiment="base", space=space, objective="eval.loss", sampler="grid", trials=2)
    said = str(info.value)
    assert "\n" not in said
    assert said.startswith("the grid has 160,000 points (hidden: 400 × learning_rate: 400), more than 100,000"), said
    assert "sampler: random or tpe" in said and "coarser step" in said
    _nothing_written(store)
    store.close()


def test_a_huge_int_grid_is_counted_not_listed(tmp_path: Path) -> None:
    """``int: [1, 10**9]`` is 10**9 points: counted, never listed (a list of them is ~36 GB)."""
    script = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from mlmd_magic.core.sweeps import parse_spec
        from mlmd_magic.errors import ValidationError
        try:
            parse_spec(experiment="base", space={"epochs": {"int": [1, 10**9]}}, objective="eval.loss",
                       sampler="grid", trials=3)
        except ValidationError as exc:
            print(exc)
        else:
            print("accepted")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("the grid has 1,000,000,000 points (epochs: 1,000,000,000), more than 100,000"), (
        done.stdout)


def test_a_sweep_run_that_fails_midway_leaves_nothing_running(uri: str, nipt: dict[str, Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from mlmd_magic.store.runs import Runs

    store = _prepare(uri, nipt)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("No space left on device")

    body: dict[str, Any] = {"experiment": "base", "space": {"learning_rate": {"uniform": [0.001, 0.1]}},
                            "objective": "eval.loss", "trials": 2}
    with monkeypatch.context() as patch, pytest.raises(MlmdMagicError, match="No space left on device"):
        patch.setattr(Runs, "train", broken)
        store.sweep("half", **body)
    (execution,) = store.mlmd.get_executions_by_type("mlmd_magic.Sweep")
    assert execution.last_known_state == pb.Execution.FAILED
    assert "No space left on device" in execution.properties["error"].string_value
    assert execution.properties["outcome"].string_value == "failed: OSError: No space left on device"
    sweep = store.sweep_results("half")
    assert "running" not in sweep.summary(), sweep.summary()
    (row,) = sweep.trials.to_dict("records")
    assert row["state"] == "INTERRUPTED" and "No space left on device" in row["error"], row
    done = store.sweep("half", **body)  # owed again once the disk is back
    assert done.summary().startswith("2 of 2 trials done: 2 trained"), done.summary()
    store.close()
