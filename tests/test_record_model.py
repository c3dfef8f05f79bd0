"""The record model (docs/records.md), checked as a model: a Hypothesis state machine drives
random sequences of define / redefine / revert / override / sweep trial / train / import
against a plain in-memory model of the rules, and after each step checks that ``NAME``,
``NAME@N``, ``history`` and ``ls`` agree with it — through the API and, for a sample of steps,
through the magics (a real ``InteractiveShell``) and the console script (a real process).

The model's rules:

* ``NAME`` gives the version defined last; defining content equal to the latest version is
  ``unchanged`` (no new version), any other content is version N+1, which says ``same_as``
  the first version with that content when an older one has it;
* an experiment pins the versions its data source and scenario name give when it is defined;
* a sweep's trials are experiment versions of their own (``BASE@N~SWEEP@V#K``): never what
  ``NAME`` gives, not in ``history``, hidden from ``ls experiments`` unless asked for, marked
  there; a sweep's versions follow the same rules as records;
* a run trains the version its reference gives; one whose parameters and data were trained
  already (a revert, a scenario defined again, another name with the same values) is CACHED.

``MLMD_MAGIC_MODEL_EXAMPLES`` sets how many sequences run (default 12 of up to 14 steps;
nightly: 400).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import mlmd_magic as mm

EXAMPLES = int(os.environ.get("MLMD_MAGIC_MODEL_EXAMPLES", "12"))
NAMES = ["s1", "s2"]
EXPERIMENTS = ["e1", "e2"]
FACES = st.sampled_from(["api", "api", "api", "magic", "cli"])
EPOCHS = st.integers(1, 3)
SPACE = {"learning_rate": {"choice": [0.01, 0.05]}}


def _write_data(root: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 24), ("eval", 12)):
        x = rng.normal(size=(n, 3)).astype("float32")
        np.savez(root / f"{split}.npz", x=x, label=(x.sum(axis=1) > 0).astype("int64"))
    return {"uri": str(root), "format": "npz", "splits": {"train": "train.npz", "eval": "eval.npz"},
            "label": "label"}


def _cell(ip: Any, cell: str) -> mm.Record:
    """A record cell run in the shell: the record it shows."""
    result = ip.run_cell(cell)
    result.raise_error()
    assert isinstance(result.result, mm.Record), result.result
    return result.result


def _cli(uri: str, *args: str) -> Any:
    exe = shutil.which("mlmd-magic", path=os.path.dirname(sys.executable)) or "mlmd-magic"
    done = subprocess.run([exe, "--uri", uri, "--json", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout) if done.stdout.strip() else None


class RecordModel(RuleBasedStateMachine):
    """The store, through its faces, against plain lists of versions."""

    uri: str = ""  # set by the test on each backend
    root: Path = Path()
    ip: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.store = mm.connect(self.uri)
        self.store.add_datasource("ds", **_write_data(self.root / "data"))
        # (kind, name) -> the content of each version, in order; and what each says it is the same as
        self.versions: dict[tuple[str, str], list[Any]] = {}
        self.same: dict[tuple[str, str], list[int | None]] = {}
        self.trials: dict[str, Any] = {}  # trial reference -> (scenario version, epochs, learning rate)
        self.trained: set[str] = set()  # the parameters trained (a run is keyed by what it trains)
        self.step = 0
        self.trains = 0
        if self.ip is not None:
            self.ip.run_line_magic("mlmd", f"connect {self.uri}")

    def teardown(self) -> None:
        self.store.close()

    # ------------------------------------------------------------ the model's rule

    def _define(self, kind: str, name: str, content: Any) -> tuple[str, int, int | None]:
        """What defining ``content`` under ``name`` must do: (status, version, same_as)."""
        versions = self.versions.setdefault((kind, name), [])
        same = self.same.setdefault((kind, name), [])
        if versions and versions[-1] == content:
            return "unchanged", len(versions), same[-1]
        first = next((i + 1 for i, c in enumerate(versions) if c == content), None)
        versions.append(content)
        same.append(first)
        return "created", len(versions), first

    def _scenario_params(self, ref: str) -> dict[str, Any]:
        name, _, version = ref.partition("@")
        epochs, lr = self.versions[("scenarios", name)][int(version) - 1]
        return {"epochs": epochs, "learning_rate": lr, "hidden": [2], "batch_size": 8, "seed": 1}

    def _check_record(self, kind: str, name: str, record: mm.Record, expected: tuple[str, int, int | None]) -> None:
        status, version, same = expected
        assert (record.status, record.version) == (status, version), (kind, name, record.summary())
        assert record.extra.get("same_as", "") == (f"{name}@{same}" if same else "")

    # ------------------------------------------------------------ rules

    @initialize(name=st.sampled_from(NAMES), epochs=EPOCHS)
    def first_scenario(self, name: str, epochs: int) -> None:
        self.define_scenario(name, epochs, "api")

    @rule(name=st.sampled_from(NAMES), epochs=EPOCHS, face=FACES)
    def define_scenario(self, name: str, epochs: int, face: str) -> None:
        expected = self._define("scenarios", name, (epochs, 0.01))
        params = {"epochs": epochs, "learning_rate": 0.01, "hidden": [2], "batch_size": 8, "seed": 1}
        if face == "api":
            record = self.store.add_scenario(name, model="mlp", params=params)
        elif face == "magic":
            record = _cell(self.ip, f"%%scenario {name}\nmodel: mlp\nparams: {json.dumps(params)}\n")
        else:
            record = self._imported({"kind": "scenario", "name": name, "model": "mlp", "params": params})
        self._check_record("scenarios", name, record, expected)

    def _imported(self, spec: dict[str, Any]) -> mm.Record:
        """``mlmd-magic import FILE`` of ``spec``: the record it names, with the status it printed."""
        path = self.root / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        said = _cli(self.uri, "import", str(path))["message"]  # "scenario s1@2: created version 2"
        ref, _, summary = said.partition(": ")
        record = self.store.record(ref.replace(" ", ":"))
        return mm.Record(**{**record.__dict__, "status": summary.split()[0].rstrip(":")})

    @precondition(lambda self: any(len(v) > 1 for (k, _), v in self.versions.items() if k == "scenarios"))
    @rule(data=st.data())
    def revert_scenario(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(n for (k, n), v in self.versions.items()
                                                if k == "scenarios" and len(v) > 1)))
        old = data.draw(st.integers(1, len(self.versions[("scenarios", name)]) - 1))
        epochs, _ = self.versions[("scenarios", name)][old - 1]
        self.define_scenario(name, epochs, data.draw(FACES))

    @precondition(lambda self: any(k == "scenarios" for k, _ in self.versions))
    @rule(name=st.sampled_from(EXPERIMENTS), data=st.data(), epochs=st.none() | EPOCHS, face=FACES)
    def define_experiment(self, name: str, data: st.DataObject, epochs: int | None, face: str) -> None:
        scenario = data.draw(st.sampled_from(sorted(n for k, n in self.versions if k == "scenarios")))
        pin = data.draw(st.none() | st.integers(1, len(self.versions[("scenarios", scenario)])))
        pinned = f"{scenario}@{pin or len(self.versions[('scenarios', scenario)])}"
        overrides = {"epochs": epochs} if epochs is not None else {}
        expected = self._define("experiments", name, (pinned, epochs))
        ref = scenario if pin is None else pinned
        if face == "api":
            record = self.store.add_experiment(name, datasource="ds", scenario=ref, overrides=overrides)
        elif face == "magic":
            record = _cell(self.ip, f"%%experiment {name}\ndatasource: ds\nscenario: {ref}\n"
                                    f"overrides: {json.dumps(overrides)}\n")
        else:
            record = self._imported({"kind": "experiment", "name": name, "datasource": "ds", "scenario": ref,
                                     "overrides": overrides})
        self._check_record("experiments", name, record, expected)
        assert record["scenario"]["version"] == int(pinned.rpartition("@")[2])

    @precondition(lambda self: any(k == "experiments" for k, _ in self.versions))
    @rule(data=st.data())
    def import_exported(self, data: st.DataObject) -> None:
        """Exporting a version and importing it again defines that content again (a revert)."""
        name = data.draw(st.sampled_from(sorted(n for k, n in self.versions if k == "experiments")))
        version = data.draw(st.integers(1, len(self.versions[("experiments", name)])))
        spec = self.store.export(f"experiment:{name}@{version}")
        expected = self._define("experiments", name, self.versions[("experiments", name)][version - 1])
        (record,) = self.store.import_records([spec])
        self._check_record("experiments", name, record, expected)

    @precondition(lambda self: any(k == "experiments" for k, _ in self.versions) and self.trains < 2)
    @rule(data=st.data(), epochs=st.none() | EPOCHS)
    def train(self, data: st.DataObject, epochs: int | None) -> None:
        """``train NAME`` trains what NAME gives; with an override, a version defined for it first."""
        name = data.draw(st.sampled_from(sorted(n for k, n in self.versions if k == "experiments")))
        self.trains += 1
        if epochs is not None:
            pinned, _ = self.versions[("experiments", name)][-1]
            expected = self._define("experiments", name, (pinned, epochs))
            run = self.store.train(name, epochs=epochs, progress=False)
        else:
            expected = ("unchanged", len(self.versions[("experiments", name)]), None)
            run = self.store.train(name, progress=False)
        version = expected[1]
        assert run.experiment == f"{name}@{version}"
        pinned, epochs = self.versions[("experiments", name)][version - 1]
        params = self._scenario_params(pinned)
        if epochs is not None:
            params["epochs"] = epochs
        content = json.dumps(params, sort_keys=True)
        assert run.cached == (content in self.trained), (run.experiment, content, self.trained)
        self.trained.add(content)

    @precondition(lambda self: any(k == "experiments" for k, _ in self.versions)
                  and len(self.versions.get(("sweeps", "sw"), [])) < 2)
    @rule(data=st.data())
    def sweep(self, data: st.DataObject) -> None:
        """A grid sweep over NAME: two trials of the version NAME gives, none of them NAME."""
        name = data.draw(st.sampled_from(sorted(n for k, n in self.versions if k == "experiments")))
        base = f"{name}@{len(self.versions[('experiments', name)])}"
        _, version, _ = self._define("sweeps", "sw", base)
        result = self.store.sweep("sw", experiment=name, space=SPACE, objective="eval.loss", sampler="grid",
                                  trials=2)
        assert result.ref == f"sw@{version}"
        pinned, epochs = self.versions[("experiments", name)][-1]
        rows = sorted(zip(result.trials["experiment"], result.trials["learning_rate"]))
        assert [ref for ref, _ in rows] == [f"{base}~sw@{version}#0", f"{base}~sw@{version}#1"]
        for ref, lr in rows:
            self.trials[ref] = (pinned, epochs, lr)
            params = {**self._scenario_params(pinned), "learning_rate": lr}
            if epochs is not None:
                params["epochs"] = epochs
            self.trained.add(json.dumps(params, sort_keys=True))

    # ------------------------------------------------------------ what must hold after every step

    @invariant()
    def names_give_what_was_defined_last(self) -> None:
        self.step += 1
        face = ["api", "api", "magic", "api", "cli"][self.step % 5] if self.ip is not None else "api"
        for (kind, name), versions in self.versions.items():
            if kind == "sweeps":
                continue
            if face == "magic":
                got = self.ip.run_line_magic("mlmd", f"get {kind[:-1]}:{name}")
            elif face == "cli" and kind == "experiments":
                got = _cli(self.uri, "get", name)
            else:
                got = self.store.record(f"{kind[:-1]}:{name}").data
            version = got["version"]
            assert version == len(versions), (kind, name, version, len(versions))
            assert "trial" not in got
            if kind == "experiments":
                pinned, epochs = versions[-1]
                params = self._scenario_params(pinned)
                if epochs is not None:
                    params["epochs"] = epochs
                assert got["params"] == params
                assert f"{got['scenario']['name']}@{got['scenario']['version']}" == pinned
            else:
                assert (got["params"]["epochs"], got["params"]["learning_rate"]) == versions[-1]

    @invariant()
    def pinned_versions_and_history_agree(self) -> None:
        for (kind, name), versions in self.versions.items():
            if kind == "sweeps":
                continue
            history = self.store.history(f"{kind[:-1]}:{name}")
            assert list(history["version"]) == list(range(1, len(versions) + 1))
            same = [f"{name}@{s}" if s else "" for s in self.same[(kind, name)]]
            assert (list(history["same_as"]) if "same_as" in history else [""] * len(versions)) == same
            last = self.store.record(f"{kind[:-1]}:{name}@{len(versions)}")
            assert last.version == len(versions)

    @invariant()
    def listings_show_the_latest_and_mark_trials(self) -> None:
        experiments = self.store.ls("experiments")
        assert dict(zip(experiments["name"], experiments["version"])) == {
            n: len(v) for (k, n), v in self.versions.items() if k == "experiments"}
        assert "trial" not in experiments
        if self.trials:
            every = self.store.ls("experiments", trials=True)
            marked = every[every["trial"] != ""]
            assert sorted(marked["trial"]) == sorted(self.trials)
        for ref, (pinned, epochs, lr) in self.trials.items():
            got = self.store.get_experiment(ref)
            assert got["trial"] == ref and f"{got['scenario']['name']}@{got['scenario']['version']}" == pinned
            params = {**self._scenario_params(pinned), "learning_rate": lr}
            if epochs is not None:
                params["epochs"] = epochs
            assert got["params"] == params
            base = ref.partition("~")[0]
            assert f"{got['experiment']}@{got['version']}" == base


@pytest.mark.slow
def test_the_record_model_on_sqlite(tmp_path: Path, ip: Any) -> None:
    counter = iter(range(10**6))

    class Fresh(RecordModel):
        def __init__(self) -> None:
            type(self).uri = f"sqlite:///{tmp_path / f'store-{next(counter)}.sqlite'}"
            super().__init__()

    Fresh.root, Fresh.ip = tmp_path, ip
    Fresh.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=14, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
    Fresh.TestCase().runTest()


@pytest.mark.slow
@pytest.mark.mysql
def test_the_record_model_on_mariadb(mysql_server: dict[str, Any], tmp_path: Path, ip: Any,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from tests.conftest import DB_PREFIX, MYSQL_BASE, MYSQL_PASSWORD, _created_dbs

    monkeypatch.setenv("MLMD_MAGIC_MYSQL_PASSWORD", MYSQL_PASSWORD)

    class Fresh(RecordModel):
        def __init__(self) -> None:
            name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
            _created_dbs.append(name)
            type(self).uri = f"{MYSQL_BASE.rstrip('/')}/{name}"
            super().__init__()

    Fresh.root, Fresh.ip = tmp_path, ip
    Fresh.TestCase.settings = settings(max_examples=max(EXAMPLES // 2, 3), stateful_step_count=14, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
    Fresh.TestCase().runTest()
