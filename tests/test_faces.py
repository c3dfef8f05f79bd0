"""The faces matrix: the core flows through every face that offers them, one expectation.

Register, define, fetch, change, train, evaluate, ``ls runs`` / ``ls models``, compare,
lineage, history, diff, export / import run through

* ``api``: the Python API (``mlmd_magic.Store``),
* ``magic``: cells in a real IPython ``InteractiveShell`` (``run_cell``, as a notebook does),
* ``cli``: the ``mlmd-magic`` console script in a subprocess (``--json`` output),
* ``widget``: the panels, by setting traits and clicking buttons (flows no panel offers are
  done through the API, and only the store they leave is checked).

Every face must return the same answers and leave the same records: same experiment names
and versions, run states, the experiment each run trained, models, verdicts and metrics.
The metrics are also checked against the bare trainer (``mlmd_magic.trainer.train``) on the
same parameters, so every face records what training really gave.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import datasets

FACES = ["api", "magic", "cli", "widget"]
SCENARIO = {"kind": "scenario", "name": "mlp", "model": "mlp",
            "params": {"hidden": [8], "epochs": 3, "learning_rate": 0.01, "batch_size": 32, "seed": 3}}
EXPERIMENT = {"kind": "experiment", "name": "t21", "datasource": "nipt-sim", "scenario": "mlp",
              "overrides": {"epochs": 1}}
EVALUATION = {"data": "test", "class_names": ["euploid", "T21", "T18", "T13"],
              "slices": [{"feature": "fetal_fraction", "bins": [0.08], "names": ["ff_low", "ff_high"]}],
              "thresholds": [{"metric": "accuracy", "lower": 0.0, "slices": ["ff_high"]},
                             {"metric": "accuracy", "change": -1.0, "slices": ["overall"]}]}
WRITES = [("RegisterDataSource", "COMPLETE"), ("AddScenario", "COMPLETE"), ("DefineExperiment", "COMPLETE"),
          ("RegisterDataSource", "CACHED"), ("AddScenario", "CACHED"), ("DefineExperiment", "CACHED"),
          ("Train", "COMPLETE"), ("Train", "CACHED"), ("DefineExperiment", "COMPLETE"), ("Train", "COMPLETE"),
          ("Evaluate", "COMPLETE")]
_REFERENCE: dict[str, dict[str, dict[str, float]]] = {}


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("faces-data")), n_train=160, n_eval=60, n_test=120)


def _datasource_spec(nipt: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "datasource", "name": "nipt-sim", **{k: nipt[k] for k in ("uri", "format", "splits", "label")}}


# ------------------------------------------------------------------------------------ faces


class ApiFace:
    """The Python API."""

    offers: frozenset[str] = frozenset({"register", "get", "train", "change", "evaluate", "ls", "compare",
                                        "lineage", "history", "diff", "export", "import"})

    def __init__(self, uri: str, tmp: Path) -> None:
        self.uri, self.tmp = uri, tmp
        self.store = mm.connect(uri)

    def register(self, specs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(r.ref, r.status) for r in self.store.import_records(specs)]

    def get(self, ref: str) -> dict[str, Any]:
        return self.store.get_experiment(ref)

    def train(self, ref: str) -> dict[str, Any]:
        return self.store.train(ref, progress=False).to_dict()

    def change_and_train(self, ref: str, overrides: dict[str, Any]) -> dict[str, Any]:
        return self.store.train(ref, progress=False, **overrides).to_dict()

    def evaluate(self, model: str, baseline: str) -> dict[str, Any]:
        return self.store.evaluate(model, baseline=baseline, **EVALUATION).to_dict()

    def ls(self, kind: str) -> list[dict[str, Any]]:
        return self.store.ls(kind).to_dict("records")

    def compare(self, runs: list[Any]) -> dict[str, Any]:
        return self.store.compare(runs).to_dict()

    def lineage(self, ref: str) -> set[str]:
        return {n.label for n in self.store.lineage(ref).nodes}

    def history(self, ref: str) -> list[int]:
        return list(self.store.history(ref)["version"])

    def diff(self, a: str, b: str) -> dict[str, Any]:
        return self.store.diff(a, b).to_dict()

    def export(self, ref: str) -> dict[str, Any]:
        return self.store.export(ref)

    def import_into(self, other_uri: str, specs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(r.ref, r.status) for r in mm.connect(other_uri).import_records(specs)]

    def close(self) -> None:
        self.store.close()


class MagicFace:
    """Cells in a real InteractiveShell, run as a notebook runs them."""

    offers = ApiFace.offers

    def __init__(self, uri: str, tmp: Path) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.uri, self.tmp = uri, tmp
        self.ip = InteractiveShell.instance()
        self.ip.run_line_magic("load_ext", "mlmd_magic")
        self.cell(f"%mlmd connect {uri} --alias faces")

    def cell(self, source: str) -> Any:
        result = self.ip.run_cell(source, store_history=True)
        if not result.success:
            raise AssertionError(f"cell failed: {source!r}: {result.error_in_exec or result.error_before_exec}")
        return result.result

    def register(self, specs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        out = []
        for spec in specs:
            body = yaml.safe_dump({k: v for k, v in spec.items() if k not in ("kind", "name")})
            record = self.cell(f"%%{spec['kind']} {spec['name']}\n{body}")
            out.append((record.ref, record.status))
        return out

    def get(self, ref: str) -> dict[str, Any]:
        self.cell(f"params = %mlmd get {ref}")
        return self.ip.user_ns["params"]

    def train(self, ref: str) -> dict[str, Any]:
        return self.cell(f"%mlmd train {ref} --quiet").to_dict()

    def change_and_train(self, ref: str, overrides: dict[str, Any]) -> dict[str, Any]:
        sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in overrides.items())
        return self.cell(f"%mlmd train {ref} {sets} --quiet").to_dict()

    def evaluate(self, model: str, baseline: str) -> dict[str, Any]:
        return self.cell(f"%%evaluate {model} --baseline {baseline}\n{yaml.safe_dump(EVALUATION)}").to_dict()

    def ls(self, kind: str) -> list[dict[str, Any]]:
        return self.cell(f"%mlmd ls {kind}").to_dict("records")

    def compare(self, runs: list[Any]) -> dict[str, Any]:
        return self.cell(f"%mlmd compare {' '.join(map(str, runs))}").to_dict()

    def lineage(self, ref: str) -> set[str]:
        return {n.label for n in self.cell(f"%mlmd lineage {ref}").nodes}

    def history(self, ref: str) -> list[int]:
        return list(self.cell(f"%mlmd history {ref}")["version"])

    def diff(self, a: str, b: str) -> dict[str, Any]:
        return self.cell(f"%mlmd diff {a} {b}").to_dict()

    def export(self, ref: str) -> dict[str, Any]:
        path = self.tmp / f"magic-export-{ref}.yaml"
        self.cell(f"%mlmd export {ref} -f {path}")
        return yaml.safe_load(path.read_text())

    def import_into(self, other_uri: str, specs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        path = self.tmp / "magic-import.yaml"
        path.write_text(yaml.safe_dump(specs))
        self.cell(f"%mlmd connect {other_uri} --alias other")
        try:
            message = self.cell(f"%mlmd import {path}")
        finally:
            self.cell("%mlmd use faces")
        return _import_lines(repr(message))

    def close(self) -> None:
        from mlmd_magic.faces.registry import REGISTRY

        self.ip.run_line_magic("unload_ext", "mlmd_magic")
        REGISTRY.reset()


def _import_lines(text: str) -> list[tuple[str, str]]:
    """``experiment t21@1: created version 1`` lines -> ``[("t21@1", "created")]``."""
    out = []
    for line in text.splitlines():
        match = re.fullmatch(r"\w+ (\S+): (created|unchanged).*", line)
        assert match, line
        out.append((match.group(1), match.group(2)))
    return out


class CliFace:
    """The mlmd-magic console script, one process per command."""

    offers = ApiFace.offers

    def __init__(self, uri: str, tmp: Path) -> None:
        self.uri, self.tmp = uri, tmp
        self.exe = shutil.which("mlmd-magic", path=os.path.dirname(sys.executable)) or "mlmd-magic"

    def run(self, *args: str, uri: str | None = None) -> Any:
        done = subprocess.run([self.exe, "--uri", uri or self.uri, "--json", *args], capture_output=True, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
        assert done.returncode == 0, f"mlmd-magic {' '.join(args)}: {done.stderr[-2000:]}"
        return json.loads(done.stdout)

    def _write(self, name: str, docs: list[dict[str, Any]]) -> str:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(docs if len(docs) > 1 else docs[0]))
        return str(path)

    def register(self, specs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        out = []
        for i, spec in enumerate(specs):
            message = self.run("import", self._write(f"cli-register-{i}.yaml", [spec]))
            out += _import_lines(message["message"])
        return out

    def get(self, ref: str) -> dict[str, Any]:
        return self.run("get", ref)

    def train(self, ref: str) -> dict[str, Any]:
        return self.run("train", ref, "--quiet")

    def change_and_train(self, ref: str, overrides: dict[str, Any]) -> dict[str, Any]:
        sets = [arg for k, v in overrides.items() for arg in ("--set", f"{k}={json.dumps(v)}")]
        return self.run("train", ref, *sets, "--quiet")

    def evaluate(self, model: str, baseline: str) -> dict[str, Any]:
        spec = self._write("cli-evaluation.yaml", [EVALUATION])
        return self.run("evaluate", model, "--baseline", baseline, "--spec", spec)

    def ls(self, kind: str) -> list[dict[str, Any]]:
        return self.run("ls", kind)

    def compare(self, runs: list[Any]) -> dict[str, Any]:
        return self.run("compare", *map(str, runs))

    def lineage(self, ref: str) -> set[str]:
        return {n["label"] for n in self.run("lineage", ref)["nodes"]}

    def history(self, ref: str) -> list[int]:
        return [row["version"] for row in self.run("history", ref)]

    def diff(self, a: str, b: str) -> dict[str, Any]:
        return self.run("diff", a, b)

    def export(self, ref: str) -> dict[str, Any]:
        path = self.tmp / f"cli-export-{ref}.yaml"
        self.run("export", ref, "-f", str(path))
        return yaml.safe_load(path.read_text())

    def import_into(self, other_uri: str, specs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return _import_lines(self.run("import", self._write("cli-import.yaml", specs), uri=other_uri)["message"])

    def close(self) -> None:
        pass


class WidgetFace(ApiFace):
    """The panels: the editor's Save and Train buttons, the browser's tabs, rows and details.

    What no panel offers (registering, fetching, evaluating, ...) goes through the API.
    """

    offers: frozenset[str] = frozenset({"train", "change", "ls", "lineage", "compare"})

    def train(self, ref: str) -> dict[str, Any]:
        from mlmd_magic.widgets import ExperimentEditor

        editor = ExperimentEditor(self.store, ref)
        editor.train_button.click()
        assert editor.last_run is not None, editor.status.value
        return editor.last_run.to_dict()

    def change_and_train(self, ref: str, overrides: dict[str, Any]) -> dict[str, Any]:
        from mlmd_magic.widgets import ExperimentEditor

        editor = ExperimentEditor(self.store, ref)
        for key, value in overrides.items():
            editor.inputs[key].value = value
        editor.save_button.click()
        assert "saved as" in editor.status.value, editor.status.value
        editor.train_button.click()
        assert editor.last_run is not None, editor.status.value
        return editor.last_run.to_dict()

    def ls(self, kind: str) -> list[dict[str, Any]]:
        from mlmd_magic.widgets import StoreBrowser

        browser = StoreBrowser(self.store)
        browser.tab.selected_index = browser.tab.titles.index(kind)
        return browser.tabs[kind].frame.to_dict("records")

    def lineage(self, ref: str) -> set[str]:
        from mlmd_magic.widgets import StoreBrowser

        browser = StoreBrowser(self.store)
        browser.tab.selected_index = browser.tab.titles.index("models")
        tab = browser.tabs["models"]
        model_id = int(ref.split(":", 1)[1])
        tab.grid.selected_rows = [[row["model"] for row in tab.frame.to_dict("records")].index(model_id)]
        return {html_unescape(t) for t in re.findall(r"<title>(.*?)</title>", tab.details.value)}

    def compare(self, runs: list[Any]) -> dict[str, Any]:
        """Select the runs' rows in the browser's runs tab (NAME@N: its newest run) and press Compare."""
        from mlmd_magic.widgets import StoreBrowser

        browser = StoreBrowser(self.store)
        browser.tab.selected_index = browser.tab.titles.index("runs")
        tab = browser.tabs["runs"]
        rows = tab.frame.to_dict("records")
        picked = [next(i for i, row in enumerate(rows) if ref in (row["name"], row["experiment"])) for ref in runs]
        tab.grid.selected_rows = picked
        assert not tab.compare_button.disabled
        comparison = tab.compare()
        assert comparison is not None, tab.comparison.value
        return comparison.to_dict()


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def _face(name: str, uri: str, tmp: Path) -> Any:
    return {"api": ApiFace, "magic": MagicFace, "cli": CliFace, "widget": WidgetFace}[name](uri, tmp)


# ------------------------------------------------------------------------------------ expectations


def _reference_metrics(params: dict[str, Any], tmp: Path) -> dict[str, dict[str, float]]:
    """What the bare trainer gives on these parameters (no MLMD, no face)."""
    from mlmd_magic.trainer import train

    key = json.dumps(params, sort_keys=True)
    if key not in _REFERENCE:
        _REFERENCE[key] = train(params, workdir=str(tmp / f"reference-{len(_REFERENCE)}"), progress=False).metrics
    return _REFERENCE[key]


def _approx(metrics: dict[str, dict[str, float]]) -> Any:
    return {split: pytest.approx(values, rel=1e-5, abs=1e-6) for split, values in metrics.items()}


def _snapshot(uri: str) -> dict[str, Any]:
    """What the flows left in the store, read with plain ml_metadata (face-independent)."""
    store = mm.connect(uri)
    mlmd = store.mlmd
    types = {t.id: t.name.split(".")[-1] for t in mlmd.get_artifact_types()}
    etypes = {t.id: t.name.split(".")[-1] for t in mlmd.get_execution_types()}
    artifacts = sorted((types[a.type_id], a.name, pb.Artifact.State.Name(a.state)) for a in mlmd.get_artifacts()
                       if types[a.type_id] not in ("Evaluation",))
    evaluations = [(a.custom_properties["blessed"].int_value,) for a in mlmd.get_artifacts_by_type(
        "mlmd_magic.Evaluation")]
    writes = [(etypes[e.type_id], pb.Execution.State.Name(e.last_known_state)) for e in mlmd.get_executions()
              if etypes[e.type_id] in ("RegisterDataSource", "AddScenario", "DefineExperiment", "Train", "Evaluate")]
    store.close()
    return {"artifacts": artifacts, "evaluations": evaluations, "writes": writes}


@pytest.mark.slow
@pytest.mark.parametrize("face_name", FACES)
def test_core_flows_through_every_face(face_name: str, nipt: dict[str, Any], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    uri = f"sqlite:///{tmp_path}/faces.sqlite"
    face = _face(face_name, uri, tmp_path)
    api = face if isinstance(face, ApiFace) else ApiFace(uri, tmp_path)

    def via(flow: str) -> Any:
        """The face under test where it offers the flow, else the API (so every store sees the same flows)."""
        return face if flow in face.offers else api

    specs = [_datasource_spec(nipt), SCENARIO, EXPERIMENT]
    try:
        # register and define; again: nothing new
        assert via("register").register(specs) == [("nipt-sim@1", "created"), ("mlp@1", "created"),
                                                   ("t21@1", "created")]
        assert via("register").register(specs) == [("nipt-sim@1", "unchanged"), ("mlp@1", "unchanged"),
                                                   ("t21@1", "unchanged")]
        # fetch
        params = via("get").get("t21")
        assert params["experiment"] == "t21" and params["version"] == 1
        assert params["params"] == {**SCENARIO["params"], "epochs": 1}
        assert params["datasource"]["name"] == "nipt-sim" and params["scenario"] == {
            "name": "mlp", "version": 1, "model": "mlp"}
        # train, train again (cached), change a value and train
        first = via("train").train("t21")
        assert (first["name"], first["experiment"], first["state"], first["cached"]) == (
            "t21@1#1", "t21@1", "COMPLETE", False)
        again = via("train").train("t21")
        assert (again["name"], again["state"], again["cached"]) == ("t21@1#2", "CACHED", True)
        assert again["model"] == first["model"]
        second = via("change").change_and_train("t21", {"epochs": 2})
        assert (second["name"], second["experiment"], second["state"], second["cached"]) == (
            "t21@2#1", "t21@2", "COMPLETE", False)
        assert second["details"]["task"] == "multiclass"
        v2 = api.get("t21@2")
        assert v2["params"] == {**SCENARIO["params"], "epochs": 2}
        assert second["metrics"] == _approx(_reference_metrics(v2, tmp_path))
        # evaluate v2 against v1
        evaluation = via("evaluate").evaluate("t21@2", "t21@1")
        assert evaluation["blessed"] is True and evaluation["model"] == second["model"]
        assert evaluation["baseline_model"] == first["model"]
        assert (evaluation["model_name"], evaluation["baseline_name"]) == ("t21@2#1", "t21@1#1")
        assert list(evaluation["metrics"]) == ["overall", "ff_low", "ff_high"]
        # listings: every run knows its experiment, whichever face started it
        runs = via("ls").ls("runs")  # newest first
        assert [r["name"] for r in runs] == ["t21@2#1", "t21@1#2", "t21@1#1"]
        assert [(r["experiment"], r["state"]) for r in runs] == [
            ("t21@2", "COMPLETE"), ("t21@1", "CACHED"), ("t21@1", "COMPLETE")]
        assert [r["model"] for r in runs] == [second["model"], first["model"], first["model"]]
        models = via("ls").ls("models")
        assert [(m["model"], m["experiment"]) for m in models] == [(second["model"], "t21@2"),
                                                                  (first["model"], "t21@1")]
        assert [(e["name"], e["version"]) for e in via("ls").ls("experiments")] == [("t21", 2)]
        (listed,) = via("ls").ls("evaluations")
        assert (listed["evaluation"], listed["model"], listed["baseline"], listed["verdict"]) == (
            evaluation["evaluation"], "t21@2#1", "t21@1#1", "BLESSED")
        # compare
        comparison = via("compare").compare(["t21@1#1", "t21@2"])  # by name; NAME@N is its latest run
        assert [r["name"] for r in comparison["runs"]] == ["t21@1#1", "t21@2#1"]
        assert [r["experiment"] for r in comparison["runs"]] == ["t21@1", "t21@2"]
        assert comparison["params"] == {"params.epochs": [1, 2]}
        assert comparison["metrics"]["test"][1] == pytest.approx(second["metrics"]["test"], rel=1e-6)
        # lineage of the new model
        labels = via("lineage").lineage(f"model:{second['model']}")
        for expected in ("DataSource nipt-sim@1", "Scenario mlp@1", "Experiment t21@2"):
            assert expected in labels
        assert any(label.startswith("Train #") for label in labels)
        assert any(label.startswith("Evaluation #") and label.endswith("✓") for label in labels)
        # history, diff, export, import into another store
        assert via("history").history("t21") == [1, 2]
        diff = via("diff").diff("t21@1", "t21@2")
        assert diff["params.epochs"] == {"a": 1, "b": 2} and diff["version"] == {"a": 1, "b": 2}
        exported = via("export").export("t21")
        assert exported == {"kind": "experiment", "name": "t21", "datasource": "nipt-sim@1", "scenario": "mlp@1",
                            "overrides": {"epochs": 2}, "description": ""}
        other = f"sqlite:///{tmp_path}/other.sqlite"
        copied = via("import").import_into(other, [via("export").export("nipt-sim"), via("export").export("mlp"),
                                                   exported])
        assert copied == [("nipt-sim@1", "created"), ("mlp@1", "created"), ("t21@1", "created")]
        assert mm.connect(other).get_experiment("t21")["params"] == v2["params"]
    finally:
        face.close()
        api.close()
    # the same records, whichever face made them
    snapshot = _snapshot(uri)
    assert snapshot["writes"] == WRITES
    assert snapshot["evaluations"] == [(1,)]
    assert snapshot["artifacts"] == sorted([
        ("DataSource", "nipt-sim@1", "LIVE"), ("Scenario", "mlp@1", "LIVE"), ("Experiment", "t21@1", "LIVE"),
        ("Experiment", "t21@2", "LIVE"), ("Model", "t21@1#1", "LIVE"), ("Model", "t21@2#1", "LIVE")])
