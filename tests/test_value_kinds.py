"""A value keeps the kind of the value it replaces, on every face (issue #25).

One expectation per case, checked through the API (``store.experiment`` overrides and
``store.train(ref, epochs=...)``), a ``%%experiment`` cell and ``%mlmd train NAME --set`` in a real
InteractiveShell, the console script (``train --set``, ``import``), an imported spec, the
experiment editor (its fields set as a browser would) and a sweep's space. A refused value is
refused before anything is written: no new experiment version, no sweep, no Train execution.
The rules (:func:`mlmd_magic.core.values.kept_kind`): a whole number stays whole (``3.0``
included: "write 3"); a real-valued parameter takes ints and records them as floats; booleans
are never numbers; a list of whole numbers takes whole numbers item by item.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.cli import main
from mlmd_magic.core.sweeps import check_space_keys, parse_space
from mlmd_magic.core.values import apply_overrides, kept_overrides
from mlmd_magic.errors import ValidationError
from mlmd_magic.widgets import ExperimentEditor
from mlmd_magic.widgets._editor import FloatField, IntField

PARAMS = {"hidden": [8], "epochs": 10, "learning_rate": 0.001, "shuffle": True, "optimizer": {"name": "adam"}}


@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("kinds-data")), n_train=16, n_eval=8, n_test=8)


@pytest.fixture
def uri(tmp_path: Path, nipt: dict[str, Any]) -> str:
    """A SQLite store holding data source nipt, scenario tiny (:data:`PARAMS`) and experiment t21@1."""
    uri = f"sqlite:///{tmp_path / 'kinds.sqlite'}"
    with mm.connect(uri) as store:
        store.add_datasource("nipt", **nipt)
        store.add_scenario("tiny", model="mlp", params=PARAMS)
        store.add_experiment("t21", datasource="nipt", scenario="tiny")
    return uri


def _said(message: str, kind: str, old: str, got: str, hint: str) -> None:
    """The parts every face's refusal holds: the kind, the parameter's value, the value given."""
    assert f"must be {kind} like " in message, message
    assert f"'s value {old}, got {got}" in message, message
    assert hint in message, message


def _unchanged(uri: str) -> None:
    """Nothing was written: t21 is at version 1, no sweep, no Train execution."""
    with mm.connect(uri) as store:
        assert list(store.history("t21")["version"]) == [1]
        assert store.get_experiment("t21")["params"] == PARAMS
        assert store.mlmd.get_executions_by_type("mlmd_magic.Train") == []
        assert store.mlmd.get_artifacts_by_type("mlmd_magic.Sweep") == []


# ----------------------------------------------------------------------------- the faces


def _api_experiment(uri: str, param: str, value: Any, **_: Any) -> str:
    with mm.connect(uri) as store, pytest.raises(ValidationError) as info:
        store.add_experiment("t21", datasource="nipt", scenario="tiny", overrides={param: value})
    return str(info.value)


def _api_train(uri: str, param: str, value: Any, **_: Any) -> str:
    with mm.connect(uri) as store, pytest.raises(ValidationError) as info:
        store.train("t21", progress=False, **{param: value})
    return str(info.value)


def _api_import(uri: str, param: str, value: Any, **_: Any) -> str:
    with mm.connect(uri) as store:
        spec = {**store.export("t21"), "overrides": {param: value}}
        with pytest.raises(ValidationError) as info:
            store.import_records([spec])
    return str(info.value)


def _magic_cell(uri: str, param: str, value: Any, ip: InteractiveShell, **_: Any) -> str:
    ip.run_line_magic("mlmd", f"connect {uri}")
    overrides = yaml.safe_dump({"overrides": {param: value}}, default_flow_style=False)
    result = ip.run_cell(f"%%experiment t21\ndatasource: nipt\nscenario: tiny\n{overrides}")
    assert result.error_in_exec is not None, "the cell was not refused"
    return str(result.error_in_exec)


def _magic_train(uri: str, param: str, value: Any, ip: InteractiveShell, **_: Any) -> str:
    ip.run_line_magic("mlmd", f"connect {uri}")
    result = ip.run_cell(f"%mlmd train t21 --quiet --set '{param}={json.dumps(value)}'")
    assert result.error_in_exec is not None, "the line was not refused"
    return str(result.error_in_exec)


def _cli_train(uri: str, param: str, value: Any, capsys: pytest.CaptureFixture[str], **_: Any) -> str:
    capsys.readouterr()
    assert main(["--uri", uri, "train", "t21", "--quiet", "--set", f"{param}={json.dumps(value)}"]) == 2
    return capsys.readouterr().err


def _cli_import(uri: str, param: str, value: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                **_: Any) -> str:
    with mm.connect(uri) as store:
        spec = {**store.export("t21"), "overrides": {param: value}}
    path = tmp_path / "t21.yaml"
    path.write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    assert main(["--uri", uri, "import", str(path)]) == 2
    return capsys.readouterr().err


def _typed(field: Any, value: Any) -> str:
    """What a person types in a field for ``value`` (a JSON field takes JSON)."""
    return str(value) if isinstance(field, (IntField, FloatField)) else json.dumps(value)


def _widget(uri: str, param: str, value: Any, **_: Any) -> str:
    with mm.connect(uri) as store:
        editor = ExperimentEditor(store, "t21")
        field = editor.inputs[param]
        field.value = _typed(field, value)
        assert field.value == _typed(field, value)  # shown as typed: 7.5 is not turned into 75
        assert editor.save_button.disabled and "✗" in editor.status.value
        assert editor.save() is None  # Save refuses too, should the button be pressed anyway
        return html.unescape(editor.status.value)


def _sweep(uri: str, param: str, value: Any, **_: Any) -> str:
    with mm.connect(uri) as store, pytest.raises(ValidationError) as info:
        store.sweep("s", experiment="t21", space={param: {"choice": [value]}}, objective="eval.loss", trials=1)
    return str(info.value)


FACES: dict[str, Callable[..., str]] = {
    "api-experiment": _api_experiment, "api-train": _api_train, "api-import": _api_import, "magic-cell": _magic_cell,
    "magic-train": _magic_train, "cli-train": _cli_train, "cli-import": _cli_import, "widget": _widget, "sweep": _sweep}

# (parameter, value, kind, the parameter's value shown, the value shown, a hint the message gives)
REFUSED = [
    ("epochs", 3.5, "a whole number", "10", "3.5", "takes only whole numbers (to allow fractions, give it as 10.0"),
    ("epochs", 3.0, "a whole number", "10", "3.0", "; write 3"),
    ("epochs", 7.5, "a whole number", "10", "7.5", ""),
    ("epochs", True, "a whole number", "10", "True", ""),
    ("epochs", "3", "a whole number", "10", "'3'", "that is text: write 3"),
    ("learning_rate", True, "a number", "0.001", "True", ""),
    ("learning_rate", "1e-3", "a number", "0.001", "'1e-3'", "write 1.0e-3"),
    ("shuffle", 1, "a boolean", "True", "1", ""),
    ("hidden", [8.5], "a list of whole numbers", "[8]", "[8.5]", "item 0 is 8.5"),
    ("hidden", [8, 4.0], "a list of whole numbers", "[8]", "[8, 4.0]", "item 1 is 4.0; write 4"),
]


def _applies(face: str, param: str, value: Any) -> bool:
    """Whether ``face`` can be given ``value`` at all (``--set`` takes it as JSON text, which YAML reads
    in its kind)."""
    if face == "widget":  # a checkbox holds only booleans; a number field's text that is no number says so itself
        return param != "shuffle" and not isinstance(value, (bool, str))
    return True


@pytest.mark.parametrize(("face", "param", "value", "kind", "old", "got", "hint"),
                         [(face, *case) for case in REFUSED for face in FACES if _applies(face, *case[:2])],
                         ids=[f"{face}-{case[0]}={case[1]!r}" for case in REFUSED for face in FACES
                              if _applies(face, *case[:2])])
def test_a_value_of_another_kind_is_refused_before_anything_is_written(
        face: str, param: str, value: Any, kind: str, old: str, got: str, hint: str, uri: str,
        ip: InteractiveShell, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    said = FACES[face](uri, param, value, ip=ip, capsys=capsys, tmp_path=tmp_path)
    _said(said, kind, old, got, hint)
    if face in ("api-experiment", "api-train", "api-import", "magic-cell", "magic-train", "cli-train", "cli-import"):
        assert f"override {param!r} must be" in said
    if face == "sweep":
        assert f"space {param!r} (choice) must be" in said and "experiment t21@1's value" in said
    _unchanged(uri)


# ------------------------------------------------------------- accepted values, kept in kind

ACCEPTED = [  # (parameter, value, recorded)
    ("epochs", 3, 3),
    ("learning_rate", 1, 1.0),  # a whole number is a number for a real-valued parameter, recorded as one
    ("learning_rate", 0.5, 0.5),
    ("hidden", [16, 8], [16, 8]),
]


def _define_api(uri: str, param: str, value: Any, **_: Any) -> None:
    with mm.connect(uri) as store:
        store.add_experiment("t21", datasource="nipt", scenario="tiny", overrides={param: value})


def _define_import(uri: str, param: str, value: Any, **_: Any) -> None:
    with mm.connect(uri) as store:
        store.import_records([{**store.export("t21"), "overrides": {param: value}}])


def _define_cell(uri: str, param: str, value: Any, ip: InteractiveShell, **_: Any) -> None:
    ip.run_line_magic("mlmd", f"connect {uri}")
    overrides = yaml.safe_dump({"overrides": {param: value}}, default_flow_style=False)
    ip.run_cell(f"%%experiment t21\ndatasource: nipt\nscenario: tiny\n{overrides}").raise_error()


def _define_cli_import(uri: str, param: str, value: Any, tmp_path: Path, **_: Any) -> None:
    with mm.connect(uri) as store:
        spec = {**store.export("t21"), "overrides": {param: value}}
    path = tmp_path / "t21.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["--uri", uri, "import", str(path)]) == 0


def _define_widget(uri: str, param: str, value: Any, **_: Any) -> None:
    with mm.connect(uri) as store:
        editor = ExperimentEditor(store, "t21")
        field = editor.inputs[param]
        field.value = _typed(field, value)
        assert not editor.save_button.disabled and "✓ valid" in editor.status.value, editor.status.value
        editor.save_button.click()
        assert "saved as t21@2" in editor.status.value, editor.status.value


DEFINE: dict[str, Callable[..., None]] = {
    "api-experiment": _define_api, "api-import": _define_import, "magic-cell": _define_cell,
    "cli-import": _define_cli_import, "widget": _define_widget}


@pytest.mark.parametrize("face", list(DEFINE))
@pytest.mark.parametrize(("param", "value", "recorded"), ACCEPTED, ids=[f"{p}={v!r}" for p, v, _ in ACCEPTED])
def test_a_value_of_the_same_kind_is_recorded_in_it(face: str, param: str, value: Any, recorded: Any, uri: str,
                                                     ip: InteractiveShell, tmp_path: Path) -> None:
    DEFINE[face](uri, param, value, ip=ip, tmp_path=tmp_path)
    with mm.connect(uri) as store:
        params = store.get_experiment("t21")["params"]
        assert store.get_experiment("t21")["version"] == 2
        assert params[param] == recorded and type(params[param]) is type(recorded)
        assert store.mlmd.get_executions_by_type("mlmd_magic.Train") == []


def test_the_editor_types_its_number_fields_by_the_parameter(uri: str) -> None:
    with mm.connect(uri) as store:
        editor = ExperimentEditor(store, "t21")
        epochs, rate = editor.inputs["epochs"], editor.inputs["learning_rate"]
        assert isinstance(epochs, IntField) and isinstance(rate, FloatField)
        assert (epochs.value, rate.value) == ("10", "0.001")
        epochs.value = "7.5"  # what a browser's IntText turned into 75
        assert epochs.value == "7.5" and editor.save_button.disabled
        assert "must be a whole number like the scenario&#x27;s value 10, got 7.5" in editor.status.value
        epochs.value = "seven"
        assert editor.save_button.disabled and "epochs: &#x27;seven&#x27; is not a number" in editor.status.value
        epochs.value = "7"
        rate.value = "1e-2"  # decimals and exponents in a real-valued field
        assert not editor.save_button.disabled and "✓ valid" in editor.status.value
        assert editor.overrides() == {"epochs": 7, "learning_rate": 0.01}
        rate.value = "1"
        assert editor.overrides() == {"epochs": 7, "learning_rate": 1.0}  # recorded as a number, 1.0


# ------------------------------------------------------------------------------ sweep spaces

SPACES_REFUSED = [
    ({"epochs": {"uniform": [1, 10]}}, "the parameter is a whole number (10), and uniform draws fractions; "
                                       "write epochs: {int: [3, 10]}"),
    ({"epochs": {"loguniform": [1, 10]}}, "loguniform draws fractions; write epochs: {int: [3, 10]}"),
    ({"epochs": {"int": [1.0, 10]}}, "space 'epochs': int takes whole numbers, got [1.0, 10]; write [1, 10]"),
    ({"epochs": {"int": [1, 10, 2.0]}}, "int takes whole numbers, got [1, 10, 2.0]; write [1, 10, 2]"),
    ({"epochs": {"choice": [5, 2.5]}}, "space 'epochs' (choice) must be a whole number like experiment t21@1's "
                                       "value 10, got 2.5"),
    ({"hidden": {"choice": [[8], [8, 2.5]]}}, "space 'hidden' (choice) must be a list of whole numbers"),
    ({"shuffle": {"int": [0, 1]}}, "space 'shuffle' (int) must be a boolean like experiment t21@1's value True, "
                                   "got 0"),
]


@pytest.mark.parametrize(("space", "message"), SPACES_REFUSED, ids=[str(s) for s, _ in SPACES_REFUSED])
@pytest.mark.parametrize("face", ["api", "magic"])
def test_a_sweep_space_of_another_kind_is_refused_when_it_is_defined(
        face: str, space: dict[str, Any], message: str, uri: str, ip: InteractiveShell) -> None:
    if face == "api":
        with mm.connect(uri) as store, pytest.raises(ValidationError) as info:
            store.sweep("s", experiment="t21", space=space, objective="eval.loss", trials=1)
        said = str(info.value)
    else:
        ip.run_line_magic("mlmd", f"connect {uri}")
        body = yaml.safe_dump({"experiment": "t21", "space": space, "objective": "eval.loss", "trials": 1})
        result = ip.run_cell(f"%%sweep s\n{body}")
        said = str(result.error_in_exec)
    assert message in said, said
    _unchanged(uri)


@pytest.mark.parametrize("space", [{"epochs": {"int": [1, 10]}}, {"epochs": {"choice": [3, 5]}},
                                   {"epochs": {"int": [2, 8, 2]}}, {"learning_rate": {"int": [1, 3]}},
                                   {"learning_rate": {"choice": [1, 0.1]}}, {"learning_rate": {"uniform": [0, 1]}},
                                   {"hidden": {"choice": [[8], [16, 8]]}}])
def test_a_sweep_space_of_the_same_kind_passes(space: dict[str, Any]) -> None:
    check_space_keys(parse_space(space), PARAMS, "experiment t21@1")


# ---------------------------------------------------------------------- the rule, as a property

VALUES = st.one_of(st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
                   st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.text(max_size=20))


def _rule(old: Any, value: Any) -> tuple[bool, Any]:
    """The rule in plain terms: (accepted, recorded)."""
    if isinstance(old, bool):
        return type(value) is bool, value
    if isinstance(old, int):
        return type(value) is int, value
    if type(value) is float:
        return True, value
    if type(value) is int:
        try:
            return True, float(value)
        except OverflowError:
            return False, None
    return False, None


@settings(max_examples=1000, deadline=None, database=None)
@given(value=VALUES, param=st.sampled_from(["epochs", "learning_rate", "shuffle"]))
def test_accepted_exactly_when_the_rule_says(value: Any, param: str) -> None:
    accepted, recorded = _rule(PARAMS[param], value)
    try:
        params = apply_overrides(PARAMS, {param: value})
    except ValidationError as exc:
        assert not accepted, f"{value!r} for {param} refused: {exc}"
        assert f"override {param!r} must be" in str(exc)
        return
    assert accepted, f"{value!r} for {param} accepted"
    assert params[param] == recorded and type(params[param]) is type(recorded)
    assert kept_overrides(PARAMS, {param: value}) == {param: recorded}
    if isinstance(recorded, float):
        assert math.isfinite(recorded)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES, param=st.sampled_from(["epochs", "learning_rate"]))
def test_the_store_follows_the_rule(mem_store: mm.Store, nipt: dict[str, Any], value: Any, param: str) -> None:
    if not mem_store.ls("datasources").shape[0]:
        mem_store.add_datasource("nipt", **nipt)
        mem_store.add_scenario("tiny", model="mlp", params=PARAMS)
    accepted, recorded = _rule(PARAMS[param], value)
    before = len(mem_store.mlmd.get_artifacts())
    try:
        record = mem_store.add_experiment("t", datasource="nipt", scenario="tiny", overrides={param: value})
    except ValidationError:
        assert not accepted, f"{value!r} for {param} refused"
        assert len(mem_store.mlmd.get_artifacts()) == before
        return
    assert accepted, f"{value!r} for {param} accepted"
    kept = record.data["params"][param]
    assert kept == recorded and type(kept) is type(recorded)
