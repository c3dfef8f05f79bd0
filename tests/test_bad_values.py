"""Bad values are refused by kind and range before any arithmetic or write (issue #26, 6 and 7).

Each bad value goes through every face that takes it — the API, the magics of a real
``InteractiveShell`` and the ``mlmd-magic`` console script — and must be a one-line
``ValidationError`` (``UsageError`` in a notebook, exit status 2 in a shell) saying what to
write, with no record written: a reproduce tolerance, a threshold's numbers and ``relative``,
a sweep's bounds, a ``from_artifact`` id. Files given to ``import`` are read to at most one
character past the limit (a device, a pipe or a huge file is refused before it fills the
memory, which these tests cap), and a file whose second record is bad imports nothing.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from IPython.core.error import UsageError

import mlmd_magic as mm
from mlmd_magic import datasets

CLI = shutil.which("mlmd-magic", path=os.path.dirname(sys.executable)) or "mlmd-magic"
FACES = ["api", "magic", "cli"]
GiB = 2**30


@dataclass(frozen=True)
class World:
    """A SQLite store with data source ``nipt``, scenario ``tiny``, experiment ``base`` and a
    model trained from it."""

    uri: str
    model: str
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("bad-values")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp / "runs"))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
        data = datasets.simulate_nipt(str(tmp / "data"), n_train=120, n_eval=40, n_test=40)
        uri = f"sqlite:///{tmp}/store.sqlite"
        with mm.connect(uri) as store:
            store.add_datasource("nipt", **data)
            store.add_scenario("tiny", model="mlp", params={"hidden": [4], "learning_rate": 0.01, "epochs": 1,
                                                            "batch_size": 64, "seed": 1})
            store.add_experiment("base", datasource="nipt", scenario="tiny")
            run = store.train("base", progress=False)
        yield World(uri, f"model:{run.model_id}", tmp)


@pytest.fixture
def shell(ip: Any, world: World) -> Any:
    ip.run_line_magic("mlmd", f"connect {world.uri}")
    return ip


def _cli(*args: str, memory: int = GiB) -> subprocess.CompletedProcess[str]:
    """The console script in a process whose address space is capped at ``memory`` bytes."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300, preexec_fn=cap,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        line = next(line for line in fh if line.startswith("VmSize:"))
    return int(line.split()[1]) * 1024


@contextlib.contextmanager
def _memory_capped(extra: int = GiB) -> Iterator[None]:
    """This process may map ``extra`` more bytes, no more, while the block runs: reading a
    device without bound ends in a MemoryError instead of filling the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_size() + extra
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _artifacts(uri: str) -> int:
    with mm.connect(uri) as store:
        return len(store.mlmd.get_artifacts())


def _refused(face: str, world: World, api: Callable[[mm.Store], Any], magic: Callable[[Any], Any],
             cli: list[str]) -> str:
    """What ``face`` said when refusing the value; and that no record was written."""
    before = _artifacts(world.uri)
    if face == "api":
        with mm.connect(world.uri) as store, pytest.raises(mm.ValidationError) as info:
            api(store)
        said = str(info.value)
    elif face == "magic":
        with pytest.raises(UsageError) as usage:
            magic(world)
        said = str(usage.value)
    else:
        done = _cli("--uri", world.uri, *cli)
        assert done.returncode == 2, done.stderr[-3000:]
        said = done.stderr.strip().removeprefix("mlmd-magic: error: ")
    assert "\n" not in said.strip() and "Traceback" not in said, said
    assert _artifacts(world.uri) == before  # nothing half-written
    return said


def _yaml_file(world: World, name: str, body: Any) -> str:
    path = world.tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- reproduce tolerance

TOLERANCES = [  # (value, as typed on a command line or None where no command line can say it, shown)
    (math.nan, "nan", "got nan"),
    (math.inf, "inf", "got inf"),
    (-1, "-1", "got -1"),
    (-1e-9, "-1e-9", "got -1e-09"),
    (True, None, "got true/false"),
    ("0.01", None, "got text '0.01'"),
    (10**400, None, "got a number past a float's range"),
]


@pytest.mark.parametrize(("face", "tolerance", "typed", "shown"), [
    pytest.param(face, *t, id=f"{face}-{t[1] or repr(t[0])[:8]}") for t in TOLERANCES for face in FACES
    if t[1] is not None or face == "api"])
def test_a_reproduce_tolerance_must_be_a_finite_number_not_below_zero(
        face: str, tolerance: Any, typed: str, shown: str, world: World, shell: Any) -> None:
    line = f"reproduce {world.model} --quiet --tolerance={typed}"
    with mm.connect(world.uri) as store:
        reproductions = len(store.mlmd.get_executions_by_type("mlmd_magic.Reproduce"))
    said = _refused(face, world, lambda store: store.reproduce(world.model, tolerance=tolerance, progress=False),
                    lambda _: shell.run_line_magic("mlmd", line), line.split())
    assert said.startswith("tolerance must be a finite number >= 0 (e.g. 0.01; 0 for equal metrics), "
                           f"{shown}; leave it out for the default (1e-06 on CPU, 0.02 on GPU)"), said
    with mm.connect(world.uri) as store:  # refused as an argument: no Reproduce action, nothing trained
        assert len(store.mlmd.get_executions_by_type("mlmd_magic.Reproduce")) == reproductions


def test_a_tolerance_of_zero_or_an_int_is_a_float() -> None:
    from mlmd_magic.store.reproduce import checked_tolerance

    assert checked_tolerance(0) == 0.0 and isinstance(checked_tolerance(1), float)
    assert checked_tolerance(None) is None


# ---------------------------------------------------------------- thresholds

THRESHOLDS = [  # (threshold, what the error says)
    ({"metric": "accuracy", "change": -0.01, "relative": "false"},
     "thresholds[0].relative must be true or false, unquoted (True or False in Python), got 'false'"),
    ({"metric": "accuracy", "change": -0.01, "relative": "true"}, "thresholds[0].relative must be true or false"),
    ({"metric": "accuracy", "change": -0.01, "relative": 0}, "thresholds[0].relative must be true or false"),
    ({"metric": "accuracy", "lower": 10**400},
     "thresholds[0].lower must be a number (finite: not NaN or infinity), got a whole number of about 400 digits"),
    ({"metric": "accuracy", "change": -(10**400)}, "thresholds[0].change must be a number (finite"),
]


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(("threshold", "message"), THRESHOLDS, ids=["false", "true", "0", "lower", "change"])
def test_a_policy_threshold_keeps_its_kinds(face: str, threshold: dict[str, Any], message: str, world: World,
                                            shell: Any) -> None:
    spec = {"kind": "policy", "name": "release", "thresholds": [threshold]}
    path = _yaml_file(world, "policy", spec)
    body = yaml.safe_dump({"thresholds": [threshold]})
    said = _refused(face, world, lambda store: store.add_policy("release", thresholds=[threshold]),
                    lambda _: shell.run_cell_magic("policy", "release", body), ["import", path])
    assert message in said, said


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(("threshold", "message"), THRESHOLDS, ids=["false", "true", "0", "lower", "change"])
def test_an_evaluation_threshold_keeps_its_kinds(face: str, threshold: dict[str, Any], message: str,
                                                 world: World, shell: Any) -> None:
    path = _yaml_file(world, "evaluation", {"data": "test", "thresholds": [threshold]})
    body = yaml.safe_dump({"data": "test", "thresholds": [threshold]})
    said = _refused(face, world, lambda store: store.evaluate(world.model, data="test", thresholds=[threshold]),
                    lambda _: shell.run_cell_magic("evaluate", world.model, body),
                    ["evaluate", world.model, "--spec", path])
    assert message in said, said


def test_relative_true_and_false_still_read_as_booleans() -> None:
    from mlmd_magic.core.evaluation import parse_thresholds

    (absolute, relative, unset) = parse_thresholds([{"metric": "auc", "change": -0.01, "relative": False},
                                                    {"metric": "auc", "change": -0.01, "relative": True},
                                                    {"metric": "auc", "change": -0.01, "relative": None}])
    assert (absolute.relative, relative.relative, unset.relative) == (False, True, False)
    assert parse_thresholds([{"metric": "auc", "lower": 10**300}])[0].lower == 1e300


# ---------------------------------------------------------------- sweep bounds

SPACES = [  # (space, what the error says)
    ({"learning_rate": {"uniform": [-1e308, 1e308]}},
     "space 'learning_rate': the range [-1e+308, 1e+308] is too wide: high - low overflows a float; narrow it"),
    ({"learning_rate": {"uniform": [0, 10**400]}},
     "space 'learning_rate': uniform needs [low, high] as finite numbers"),
    ({"learning_rate": {"loguniform": [1e-3, 10**400]}},
     "space 'learning_rate': loguniform needs [low, high] as finite numbers"),
    ({"epochs": {"int": [1, 10**400]}}, "space 'epochs': int needs [low, high] as finite numbers"),
    # seed, not epochs: a sweep that took the bound would train (and fail) once, not for ever
    ({"seed": {"int": [0, 2**60]}}, "space 'seed': int bounds and step must lie within ±2**53"),
]


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(("space", "message"), SPACES, ids=["wide", "uniform", "loguniform", "int", "int64"])
def test_sweep_bounds_are_finite_with_a_finite_width(face: str, space: dict[str, Any], message: str,
                                                     world: World, shell: Any) -> None:
    body = {"experiment": "base", "objective": {"metric": "eval.accuracy"}, "space": space, "trials": 1}
    path = _yaml_file(world, "sweep", body)
    with mm.connect(world.uri) as store:
        trains = len(store.mlmd.get_executions_by_type("mlmd_magic.Train"))
    said = _refused(face, world, lambda store: store.sweep("bad", **body),
                    lambda _: shell.run_cell_magic("sweep", "bad", yaml.safe_dump(body)),
                    ["sweep", "bad", "-f", path, "--quiet"])
    assert message in said, said
    with mm.connect(world.uri) as store:
        assert len(store.mlmd.get_executions_by_type("mlmd_magic.Train")) == trains


# ---------------------------------------------------------------- from_artifact ids

ARTIFACT_IDS = [  # (id, as the message shows it)
    (2**70, "got 1180591620717411303424"),
    (str(2**70), "got '1180591620717411303424'"),
    (f"artifact:{2**63}", "got 'artifact:9223372036854775808'"),
    ("0" * 30 + str(2**63), f"got {repr('0' * 30 + str(2**63))[:37]}..."),
    (-3, "got -3"),
    (0, "got 0"),
    ("artifact:0", "got 'artifact:0'"),
]


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(("aid", "shown"), ARTIFACT_IDS,
                         ids=["2**70", "text-2**70", "artifact-2**63", "zero-padded", "-3", "0", "artifact-0"])
def test_from_artifact_is_an_id_within_int64_and_positive(face: str, aid: Any, shown: str, world: World,
                                                          shell: Any) -> None:
    path = _yaml_file(world, "from-artifact", {"kind": "datasource", "name": "tfx", "from_artifact": aid,
                                               "label": "tips"})
    body = yaml.safe_dump({"from_artifact": aid, "label": "tips"})
    said = _refused(face, world, lambda store: store.add_datasource("tfx", from_artifact=aid, label="tips"),
                    lambda _: shell.run_cell_magic("datasource", "tfx", body), ["import", path])
    assert said.startswith("from_artifact takes an artifact id, a whole number from 1 to 2**63 - 1 (e.g. 12; "
                           f"%mlmd ls Examples lists them), {shown}"), said


def test_an_artifact_id_of_thousands_of_digits_is_refused_without_printing_it(mem_store: mm.Store) -> None:
    with pytest.raises(mm.ValidationError, match=r"got a whole number of more than 38 digits$"):
        mem_store.add_datasource("tfx", from_artifact=10**5000, label="tips")
    with pytest.raises(mm.ValidationError, match=r"got '9{36}\.\.\.$"):
        mem_store.add_datasource("tfx", from_artifact="9" * 5000, label="tips")


# ---------------------------------------------------------------- import: what is read

def _import(face: str, world: World, shell: Any, path: str) -> str:
    """What ``face`` said refusing to import ``path``, reading it with at most a GiB to spare."""
    before = _artifacts(world.uri)
    if face == "magic":
        with _memory_capped(), pytest.raises(UsageError) as usage:
            shell.run_line_magic("mlmd", f"import {path}")
        said = str(usage.value)
    else:
        done = _cli("--uri", world.uri, "import", path)
        assert done.returncode == 2, done.stderr[-3000:]
        said = done.stderr.strip().removeprefix("mlmd-magic: error: ")
    assert "\n" not in said.strip() and "Traceback" not in said, said
    assert _artifacts(world.uri) == before
    return said


@contextlib.contextmanager
def _writer(fifo: str) -> Iterator[None]:
    """A writer that opens ``fifo`` and closes it at once, so that a reader's blocking open
    returns (reading nothing) instead of waiting for ever; released at the end if no reader came."""
    thread = threading.Thread(target=lambda: os.close(os.open(fifo, os.O_WRONLY)), daemon=True)
    thread.start()
    try:
        yield
    finally:
        if thread.is_alive():  # no reader opened it: be the reader that lets the writer go
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        thread.join(timeout=10)


@pytest.mark.parametrize("face", ["magic", "cli"])
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "fifo", "folder"])
def test_import_refuses_what_is_not_a_regular_file_before_reading_it(face: str, device: str, world: World,
                                                                     shell: Any, tmp_path: Path) -> None:
    path = device
    with contextlib.ExitStack() as stack:
        if device == "fifo":
            path = str(tmp_path / "records.fifo")
            os.mkfifo(path)
            stack.enter_context(_writer(path))
        elif device == "folder":
            path = str(tmp_path)
        said = _import(face, world, shell, path)
    assert said == (f"cannot read {path!r}: not a regular file (a device, a pipe or a folder); import reads a "
                    "YAML file written by export"), said


@pytest.mark.parametrize("face", ["magic", "cli"])
def test_import_reads_a_huge_file_only_to_its_limit(face: str, world: World, shell: Any, tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as fh:  # 8 GiB of NUL characters, sparse: no disk is written
        fh.truncate(8 * GiB)
    said = _import(face, world, shell, str(path))
    assert said == (f"{str(path)!r} is larger than 1,000,000 characters; import reads a YAML file written by "
                    "export: split the records into smaller files"), said


@pytest.mark.parametrize("face", ["magic", "cli"])
def test_import_reads_up_to_the_limit_load_yaml_takes(face: str, world: World, shell: Any, tmp_path: Path) -> None:
    record = "kind: scenario\nname: edge\nmodel: mlp\nparams: {epochs: 1}\n"
    comment = "#" * (1_000_000 - len(record) - 1) + "\n"
    path = tmp_path / "edge.yaml"
    path.write_text(comment + record, encoding="utf-8")
    assert len(path.read_text(encoding="utf-8")) == 1_000_000
    larger = tmp_path / "larger.yaml"
    larger.write_text("#" + comment + record, encoding="utf-8")
    assert "is larger than 1,000,000 characters" in _import(face, world, shell, str(larger))
    if face == "magic":
        shell.run_line_magic("mlmd", f"import {path}")
    else:
        done = _cli("--uri", world.uri, "import", str(path))
        assert done.returncode == 0, done.stderr[-3000:]
    with mm.connect(world.uri) as store:
        assert store.get_scenario("edge")["params"] == {"epochs": 1}


@pytest.mark.parametrize("face", ["magic", "cli"])
def test_import_of_a_file_that_is_not_utf8_says_so(face: str, world: World, shell: Any, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("kind: scenario\nname: s\nmodel: mlp\ndescription: caf\xe9\n".encode("latin-1"))
    said = _import(face, world, shell, str(path))
    assert said == f"cannot read {str(path)!r}: not UTF-8 text; import reads a YAML file written by export"


# ---------------------------------------------------------------- import: several records

GOOD = {"kind": "scenario", "name": "first", "model": "mlp", "params": {"epochs": 1}}
CHECKED = {"kind": "policy", "name": "second", "thresholds": [{"metric": "accuracy", "change": -0.1,
                                                               "relative": "false"}]}
UNKNOWN_BUILDER = {"kind": "scenario", "name": "second", "model": "no-such-builder", "params": {"epochs": 1}}
LAST = {"kind": "policy", "name": "third", "thresholds": [{"metric": "accuracy", "lower": 0.5}]}


def _import_records(face: str, world: World, shell: Any, specs: list[dict[str, Any]]) -> tuple[str, str]:
    """What ``face`` said refusing ``specs`` (as one file, or one list through the API), and the
    name of what it read them from."""
    path = _yaml_file(world, "records", specs)
    if face == "api":
        with mm.connect(world.uri) as store, pytest.raises(mm.ValidationError) as info:
            store.import_records(specs, where="records.yaml")
        return str(info.value), "records.yaml"
    if face == "magic":
        with pytest.raises(UsageError) as usage:
            shell.run_line_magic("mlmd", f"import {path}")
        return str(usage.value), path
    done = _cli("--uri", world.uri, "import", path)
    assert done.returncode == 2, done.stderr[-3000:]
    return done.stderr.removeprefix("mlmd-magic: error: ").strip(), path


@pytest.mark.parametrize("face", FACES)
def test_a_bad_second_record_is_found_before_the_first_is_written(face: str, world: World, shell: Any) -> None:
    before = _artifacts(world.uri)
    said, where = _import_records(face, world, shell, [GOOD, CHECKED, LAST])
    assert said == (f"{where} (record 2): thresholds[0].relative must be true or false, unquoted (True or False "
                    "in Python), got 'false'; nothing was imported"), said
    assert _artifacts(world.uri) == before
    with mm.connect(world.uri) as store:
        assert "first" not in store.names("scenarios")


@pytest.mark.parametrize("face", FACES)
def test_a_record_that_fails_while_written_names_what_was_imported(face: str, world: World, shell: Any,
                                                                   ) -> None:
    name = f"first-{face}"
    said, where = _import_records(face, world, shell, [{**GOOD, "name": name}, UNKNOWN_BUILDER, LAST])
    assert said.startswith(f"{where} (record 2): no model builder is named 'no-such-builder'; "), said
    assert said.endswith(f"; imported before it: scenario {name}@1; not imported: records 2 to 3"), said
    with mm.connect(world.uri) as store:
        assert store.get_scenario(name)["version"] == 1
        assert "second" not in store.names("scenarios") and "third" not in store.names("policies")


@pytest.mark.parametrize("face", ["magic", "cli"])
@pytest.mark.parametrize("command", ["evaluate base --spec", "sweep s -f"])
def test_every_file_a_command_reads_is_read_to_its_limit_only(face: str, command: str, world: World,
                                                              shell: Any, tmp_path: Path) -> None:
    """``evaluate --spec`` and ``sweep -f`` read YAML as ``import`` does: a device is refused
    before it is read, a huge file read only to the limit, each in one line."""
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as fh:  # 8 GiB of NUL characters, sparse: no disk is written
        fh.truncate(8 * GiB)
    for path, expected in (("/dev/zero", "not a regular file (a device, a pipe or a folder); "),
                           (str(huge), "is larger than 1,000,000 characters; ")):
        before = _artifacts(world.uri)
        if face == "magic":
            with _memory_capped(), pytest.raises(UsageError) as usage:
                shell.run_line_magic("mlmd", f"{command} {path}")
            said = str(usage.value)
        else:
            done = _cli("--uri", world.uri, *command.split(), path)
            assert done.returncode == 2, done.stderr[-3000:]
            said = done.stderr.strip().removeprefix("mlmd-magic: error: ")
        assert expected in said and "\n" not in said.strip() and "Traceback" not in said, said
        assert _artifacts(world.uri) == before


@pytest.mark.parametrize("face", FACES)
def test_a_policy_slice_bin_past_a_floats_range_is_refused(face: str, world: World, shell: Any) -> None:
    slices = [{"feature": "fetal_fraction", "bins": [10**400]}]
    thresholds = [{"metric": "accuracy", "lower": 0.5}]
    spec = {"kind": "policy", "name": "release", "slices": slices, "thresholds": thresholds}
    path = _yaml_file(world, "policy", spec)
    body = yaml.safe_dump({"slices": slices, "thresholds": thresholds})
    said = _refused(face, world, lambda store: store.add_policy("release", slices=slices, thresholds=thresholds),
                    lambda _: shell.run_cell_magic("policy", "release", body), ["import", path])
    assert "slices[0].bins must be numbers within ±1.8e308 (a float's range)" in said, said
