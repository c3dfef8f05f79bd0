"""Versioned records on every backend (memory, SQLite file, MariaDB): names and version
references, parameters (dotted keys refused), history, diff and the facade's grammar."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import mlmd_magic as mm

PARAMS = {"hidden": [64, 32], "learning_rate": 1e-3, "batch_size": 64, "epochs": 10,
          "optimizer": {"name": "adam", "beta_1": 0.9}}


def _setup(store: mm.Store, data: Path) -> None:
    store.add_datasource("nipt-sim", uri=str(data), format="tfrecord",
                         splits={"train": "train", "eval": "eval.tfrecord", "test": "test*.tfrecord"},
                         label="label")
    store.add_scenario("mlp-small", model="mlp", params=PARAMS)


def test_experiment_round_trip(store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(store, tfrecord_dir)
    rec = store.add_experiment("t21-baseline", datasource="nipt-sim", scenario="mlp-small",
                           overrides={"epochs": 5, "optimizer.name": "sgd"})
    assert (rec.ref, rec.status) == ("t21-baseline@1", "created")
    params = store.get_experiment("t21-baseline")
    assert set(params) == {"experiment", "version", "datasource", "scenario", "params"}
    assert params["experiment"] == "t21-baseline" and params["version"] == 1
    assert set(params["datasource"]) == {"name", "version", "uri", "format", "splits", "label", "features"}
    assert params["datasource"]["uri"] == str(tfrecord_dir)
    assert params["datasource"]["features"]["f0"] == {"dtype": "float", "shape": [1]}
    assert params["scenario"] == {"name": "mlp-small", "version": 1, "model": "mlp"}
    assert params["params"]["epochs"] == 5 and isinstance(params["params"]["epochs"], int)
    assert params["params"]["optimizer"] == {"name": "sgd", "beta_1": 0.9}
    assert params["params"]["hidden"] == [64, 32]
    assert json.loads(json.dumps(params)) == params


def test_versions_and_unchanged(store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(store, tfrecord_dir)
    first = store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 5})
    again = store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 5})
    assert again.status == "unchanged" and again.version == 1 and again.id == first.id
    second = store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 7})
    assert (second.version, second.status) == (2, "created")
    assert store.get_experiment("t21")["params"]["epochs"] == 7
    assert store.get_experiment("t21@1")["params"]["epochs"] == 5
    # a changed scenario pins the new version in experiments defined afterwards only
    store.add_scenario("mlp-small", model="mlp", params={**PARAMS, "batch_size": 128})
    assert store.get_experiment("t21")["scenario"]["version"] == 1
    third = store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 7})
    assert third.version == 3 and store.get_experiment("t21")["params"]["batch_size"] == 128
    # defining the content of an older version again is what NAME gives now: a version that says so
    pinned = store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small@1", overrides={"epochs": 7})
    assert (pinned.status, pinned.version, pinned.extra["same_as"]) == ("created", 4, "t21@2")
    assert store.get_experiment("t21")["scenario"]["version"] == 1
    assert store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small@1", overrides={"epochs": 7}).status \
        == "unchanged"


def test_reruns_leave_record_counts_unchanged(store: mm.Store, tfrecord_dir: Path) -> None:
    def run() -> None:
        _setup(store, tfrecord_dir)
        store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 5})
        store.get_experiment("t21")

    run()
    artifacts, executions = len(store.mlmd.get_artifacts()), len(store.mlmd.get_executions())
    contexts = len(store.mlmd.get_contexts())
    run()
    assert len(store.mlmd.get_artifacts()) == artifacts
    assert len(store.mlmd.get_contexts()) == contexts
    assert len(store.mlmd.get_executions()) == executions + 4


def test_override_errors_name_the_closest_key(mem_store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(mem_store, tfrecord_dir)
    with pytest.raises(mm.ValidationError, match="did you mean 'learning_rate'"):
        mem_store.add_experiment("e", datasource="nipt-sim", scenario="mlp-small", overrides={"learning_rat": 0.1})
    with pytest.raises(mm.ValidationError, match=r"did you mean 'optimizer\.beta_1'"):
        mem_store.add_experiment("e", datasource="nipt-sim", scenario="mlp-small",
                                 overrides={"optimizer": {"beta1": 1}})
    with pytest.raises(mm.ValidationError, match="must be a whole number"):
        mem_store.add_experiment("e", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": "five"})
    assert mem_store.ls("experiments").empty


def test_missing_records_and_versions(mem_store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(mem_store, tfrecord_dir)
    with pytest.raises(mm.NotFoundError, match="did you mean 'mlp-small'"):
        mem_store.get_scenario("mlp-smal")
    with pytest.raises(mm.NotFoundError, match="versions are 1 to 1"):
        mem_store.get_scenario("mlp-small@4")
    with pytest.raises(mm.NotFoundError, match="no scenario named 'nope'"):
        mem_store.add_experiment("e", datasource="nipt-sim", scenario="nope")
    with pytest.raises(mm.InvalidNameError, match="letters, digits"):
        mem_store.get_experiment("bad name")
    with pytest.raises(mm.InvalidNameError, match="version number"):
        mem_store.get_experiment("x@0")


@pytest.mark.parametrize("bad", ["", "with space", "quote'd", "semi;colon", "a@b", "-lead", "x" * 129, "naïve"])
def test_invalid_names_are_rejected_with_the_rule(mem_store: mm.Store, bad: str) -> None:
    with pytest.raises(mm.InvalidNameError, match="letters, digits"):
        mem_store.add_scenario(bad, model="mlp", params={})
    assert mem_store.mlmd.get_artifacts() == []


@pytest.mark.parametrize("bad", ["abc\n", "t21-baseline\n"])
def test_a_name_ending_in_a_newline_is_refused(mem_store: mm.Store, bad: str) -> None:
    """A name ends where it ends: a trailing newline is not a valid last character (as ``$``
    in a pattern would let it be), for a record, a model, a lookup or a reference."""
    from mlmd_magic.core.names import parse_ref

    mem_store.add_scenario("abc", model="mlp", params={"a": 1})
    with pytest.raises(mm.InvalidNameError, match="invalid scenario name"):
        mem_store.add_scenario(bad, model="mlp", params={"a": 1})
    with pytest.raises(mm.InvalidNameError):
        mem_store.add_scenario("s", model=bad, params={"a": 1})
    with pytest.raises(mm.InvalidNameError):
        mem_store.get_scenario(bad)
    with pytest.raises(mm.InvalidNameError):
        parse_ref(f"{bad.strip()}@1\n")
    assert mem_store.names("scenarios") == ["abc"]


@pytest.mark.parametrize("ref", ["abc@²", "abc@१", "abc@1²", "abc@٣"])
def test_a_version_in_other_digits_is_a_validation_error(mem_store: mm.Store, ref: str) -> None:
    """Superscripts and other scripts' digits are not a version number: refused, not looked up."""
    mem_store.add_scenario("abc", model="mlp", params={"a": 1})
    with pytest.raises(mm.InvalidNameError, match="must be a version number"):
        mem_store.get_scenario(ref)
    with pytest.raises(mm.InvalidNameError):
        mem_store.evaluate(f"model:{ref[4:]}")


def test_text_with_nul_is_refused_on_every_backend(store: mm.Store) -> None:
    """MLMD's readers (SQLite and MySQL) end a string at NUL: refused, not silently cut."""
    with pytest.raises(mm.ValidationError, match="NUL character"):
        store.add_scenario("s", model="mlp", params={"a": 1}, description="before\x00after")
    assert store.mlmd.get_artifacts() == []
    (failed,) = store.mlmd.get_executions()
    assert json.loads(failed.properties["arguments"].string_value)["description"] == "before\x00after"
    store.add_scenario("s", model="mlp", params={"nul": "x\x00y"})  # inside params: JSON escapes it
    assert store.get_scenario("s")["params"] == {"nul": "x\x00y"}


def test_bad_arguments(mem_store: mm.Store, tfrecord_dir: Path) -> None:
    with pytest.raises(mm.ValidationError, match="params must be a mapping"):
        mem_store.add_scenario("s", model="mlp", params=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(mm.ValidationError, match="finite"):
        mem_store.add_scenario("s", model="mlp", params={"lr": float("nan")})
    with pytest.raises(mm.ValidationError, match="numbers, strings"):
        mem_store.add_scenario("s", model="mlp", params={"f": object()})
    with pytest.raises(mm.ValidationError, match="unknown format"):
        mem_store.add_datasource("d", uri=str(tfrecord_dir), format="parquet", splits={"t": "x"}, label="label")
    with pytest.raises(mm.DataSourceError, match="no tfrecord files match"):
        mem_store.add_datasource("d", uri=str(tfrecord_dir), format="tfrecord", splits={"t": "nope*"}, label="label")
    with pytest.raises(mm.DataSourceError, match="does not exist"):
        mem_store.add_datasource("d", uri=str(tfrecord_dir / "missing"), format="tfrecord",
                                 splits={"t": "x"}, label="label")
    with pytest.raises(mm.DataSourceError, match="no label 'target'"):
        mem_store.add_datasource("d", uri=str(tfrecord_dir), format="tfrecord", splits={"t": "eval.tfrecord"},
                                 label="target")
    assert mem_store.mlmd.get_artifacts() == []


def test_datasource_fingerprint_and_counts(mem_store: mm.Store, tfrecord_dir: Path) -> None:
    rec = mem_store.add_datasource("d", uri=str(tfrecord_dir), format="tfrecord",
                                   splits={"train": "train", "eval": "eval.tfrecord", "test": "test.tfrecord"},
                                   label="label")
    ds = mem_store.get_datasource("d")
    assert ds["examples"] == {"eval": 15, "test": 10, "train": 50}
    assert sum(ds["label_distribution"]["train"].values()) == 50
    assert len(ds["fingerprint"]) == 64
    # changing a data file gives a new version with a new fingerprint
    (tfrecord_dir / "test.tfrecord").write_bytes((tfrecord_dir / "eval.tfrecord").read_bytes())
    rec2 = mem_store.add_datasource("d", uri=str(tfrecord_dir), format="tfrecord",
                                    splits={"train": "train", "eval": "eval.tfrecord", "test": "test.tfrecord"},
                                    label="label")
    assert rec2.version == rec.version + 1
    assert mem_store.get_datasource("d")["fingerprint"] != ds["fingerprint"]
    assert mem_store.get_datasource("d")["examples"]["test"] == 15


def test_csv_and_npz_sources(mem_store: mm.Store, csv_dir: Path, npz_dir: Path) -> None:
    mem_store.add_datasource("c", uri=str(csv_dir), format="csv", splits={"train": "train.csv", "eval": "eval.csv"},
                             label="label")
    c = mem_store.get_datasource("c")
    assert c["examples"] == {"eval": 5, "train": 12}
    assert c["features"] == {"f0": {"dtype": "float", "shape": [1]}, "f1": {"dtype": "float", "shape": [1]}}
    mem_store.add_datasource("n", uri=str(npz_dir), format="npz", splits={"train": "train.npz", "eval": "eval.npz"},
                             label="label", features={"x": {"dtype": "float", "shape": [4]}},
                             description="random")
    n = mem_store.get_datasource("n")
    assert n["examples"] == {"eval": 8, "train": 40}
    assert n["features"] == {"x": {"dtype": "float", "shape": [4]}}
    assert set(n["label_distribution"]["train"]) <= {"0", "1", "2"}


def test_list_where_limit_and_versions(store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(store, tfrecord_dir)
    for i, epochs in enumerate([3, 5, 8]):
        store.add_experiment(f"t21-{i}", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": epochs})
    store.add_experiment("t21-0", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 4})
    table = store.ls("experiments")  # the most recently changed first, each at its latest version
    assert list(table["name"]) == ["t21-0", "t21-2", "t21-1"]
    assert list(table["version"]) == [2, 1, 1]
    assert len(store.ls("experiments", all_versions=True)) == 4
    assert list(store.ls("experiments", all_versions=True)["version"]) == [2, 1, 1, 1]
    assert list(store.ls("experiments", where="epochs >= 5")["name"]) == ["t21-2", "t21-1"]
    assert list(store.ls("experiments", where="name ~ 't21-*' and params.epochs < 5")["name"]) == ["t21-0"]
    assert list(store.ls("experiments", where="model == mlp", limit=2)["name"]) == ["t21-0", "t21-2"]
    assert list(store.ls("experiments", where="model == mlp", limit=2, offset=2)["name"]) == ["t21-1"]
    assert list(store.ls("exp", where="optimizer.name == 'adam' or epochs == 8")["name"]) == [
        "t21-0", "t21-2", "t21-1"]
    assert store.ls("datasources").loc[0, "splits"] == "eval=15, test=10, train=50"
    with pytest.raises(mm.ValidationError, match="unknown record kind"):
        store.ls("widgets")
    with pytest.raises(mm.ValidationError, match="expected an operator"):
        store.ls("experiments", where="epochs 5")
    with pytest.raises(mm.ValidationError, match="positive whole number"):
        store.ls("experiments", limit=0)


def test_history_and_diff(store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(store, tfrecord_dir)
    store.add_experiment("a", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 5})
    store.add_experiment("a", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 6, "batch_size": 32})
    store.add_experiment("b", datasource="nipt-sim", scenario="mlp-small")
    hist = store.history("a")
    assert list(hist["version"]) == [1, 2]
    d = store.diff("a@1", "a@2")
    assert d.to_dict() == {"params.batch_size": {"a": 64, "b": 32}, "params.epochs": {"a": 5, "b": 6},
                           "version": {"a": 1, "b": 2}}
    assert "params.epochs      5 -> 6" in repr(d)
    assert "<table" in d._repr_html_()
    cross = store.diff("a", "b")
    assert set(cross.to_dict()) == {"experiment", "params.batch_size", "params.epochs", "version"}
    assert not store.diff("a@2", "a@2")
    with pytest.raises(mm.ValidationError, match="one kind"):
        store.diff("a", "mlp-small")


def test_ambiguous_names_need_a_kind(mem_store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(mem_store, tfrecord_dir)
    mem_store.add_experiment("mlp-small", datasource="nipt-sim", scenario="mlp-small")
    with pytest.raises(mm.AmbiguousRefError, match="kind="):
        mem_store.history("mlp-small")
    assert list(mem_store.history("mlp-small", kind="scenario")["version"]) == [1]
    assert mem_store.record("mlp-small", kind="experiments").kind == "experiments"


def test_record_reprs(mem_store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(mem_store, tfrecord_dir)
    rec = mem_store.add_experiment("e", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 2},
                               description="first try")
    text = repr(rec)
    assert text.startswith("Experiment e@1 (created version 1)")
    assert 'overrides: {"epochs": 2}' in text and "first try" in text
    assert "<table>" in rec._repr_html_() and "<code>epochs</code>" in rec._repr_html_()
    assert rec["params"]["epochs"] == 2 and rec.to_dict() is not rec.data


def test_store_readable_by_plain_mlmd(tmp_path: Path, tfrecord_dir: Path) -> None:
    path = tmp_path / "plain.sqlite"
    store = mm.connect(f"sqlite:///{path}")
    _setup(store, tfrecord_dir)
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    store.get_experiment("t21")
    store.close()

    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    plain = metadata_store.MetadataStore(config)
    types = {t.name: t for t in plain.get_artifact_types()}
    assert types["mlmd_magic.DataSource"].base_type == metadata_store_pb2.ArtifactType.DATASET
    executions = plain.get_executions()
    by_type = {t.id: t.name for t in plain.get_execution_types()}
    assert [by_type[e.type_id] for e in executions] == [
        "mlmd_magic.RegisterDataSource", "mlmd_magic.AddScenario", "mlmd_magic.DefineExperiment",
        "mlmd_magic.FetchExperiment"]
    define = executions[2]
    events = plain.get_events_by_execution_ids([define.id])
    kinds = sorted((e.type, e.artifact_id) for e in events)
    assert [k for k, _ in kinds] == [metadata_store_pb2.Event.INPUT] * 2 + [metadata_store_pb2.Event.OUTPUT]
    contexts = plain.get_contexts_by_execution(define.id)
    assert {c.name for c in contexts} >= {"t21"}
    assert any(c.type == "mlmd_magic.NotebookSession" for c in contexts)
    for e in executions:
        assert e.last_known_state == metadata_store_pb2.Execution.COMPLETE
        assert e.properties["duration_s"].double_value >= 0
        # who, where and with what: on the kernel's session context, shared by its actions
        (session,) = [c for c in plain.get_contexts_by_execution(e.id) if c.type == "mlmd_magic.NotebookSession"]
        assert session.properties["user"].string_value and session.properties["host"].string_value
        assert "ml-metadata" in json.loads(session.properties["versions"].string_value)


def test_where_on_a_key_no_record_has_is_an_error(store: mm.Store, tfrecord_dir: Path) -> None:
    _setup(store, tfrecord_dir)
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 3})
    with pytest.raises(mm.ValidationError, match=r"no record has a key 'epoch'.*did you mean 'epochs'"):
        store.ls("experiments", where="epoch >= 2")
    with pytest.raises(mm.ValidationError, match=r"no record has a key 'nmae'.*did you mean 'name'"):
        store.ls("scenarios", where="nmae ~ 'mlp*'")
    assert list(store.ls("experiments", where="epochs >= 2")["name"]) == ["t21"]
    assert store.ls("experiments", where="epochs >= 99").empty  # a known key matching nothing: no error
    table = store.ls("experiments")  # parameters as columns, not JSON text
    assert table.loc[0, "epochs"] == 3 and table.loc[0, "optimizer.name"] == "adam"
    assert "params" not in table.columns


def test_a_record_shows_hyperparameters_first_overrides_marked_features_folded(mem_store: mm.Store,
                                                                                tfrecord_dir: Path) -> None:
    _setup(mem_store, tfrecord_dir)
    record = mem_store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 3})
    page = record._repr_html_()
    assert page.index("hyperparameters") < page.index("datasource.name")
    assert "<b>3</b> ✎" in page and "<b>64</b>" not in page  # only the overridden value is marked
    assert "<details><summary>data source features (3)</summary>" in page
    assert page.index("<details>") > page.index("datasource.name")  # folded away, after the rest


def test_a_scenario_naming_an_unknown_builder_is_refused(mem_store: mm.Store) -> None:
    with pytest.raises(mm.ValidationError, match=r"no model builder is named 'mpl'; did you mean 'mlp'\?"):
        mem_store.add_scenario("s", model="mpl", params={"epochs": 1})
    assert mem_store.names("scenarios") == []


_JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5)
    | st.builds(np.int64, st.integers(-2**62, 2**62)) | st.builds(np.float32, st.floats(width=32)),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3).map(lambda d: OrderedDict(sorted(d.items()))),
    max_leaves=20)


def _typed(value: Any) -> Any:
    """``value`` with each scalar's type beside it (True == 1 == 1.0, and nan != nan, in Python)."""
    if isinstance(value, dict):
        return (type(value).__name__, [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, repr(value))


@given(_JSON_LIKE)
@settings(max_examples=300, deadline=None, database=None)
def test_plain_is_what_json_gives_back(value: Any) -> None:
    # a created record's data is built with plain() instead of parsing what was just written
    from mlmd_magic.core.values import canonical_json, plain

    assert _typed(plain(value)) == _typed(json.loads(canonical_json(value)))


_PARAMS_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=4)
    | st.builds(np.int64, st.integers(-2**62, 2**62)),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.sampled_from(["", "a", "b.c", "lr", "x y", "é"]) | st.integers(0, 3), inner, max_size=4),
    max_leaves=20)


@given(_PARAMS_LIKE)
@settings(max_examples=500, deadline=None, database=None)
def test_checked_params_is_the_three_checks_in_one_walk(value: Any) -> None:
    # a scenario's params are checked and copied in one walk; it must refuse and give exactly
    # what check_value, check_param_keys and plain do in turn
    from mlmd_magic.core.values import check_param_keys, check_value, checked_params, plain

    try:
        check_value(value, "params")
        check_param_keys(value, "params")
        expected: Any = plain(value)
    except mm.ValidationError as exc:
        with pytest.raises(mm.ValidationError) as raised:
            checked_params(value, "params")
        assert str(raised.value) == str(exc)
        return
    assert _typed(checked_params(value, "params")) == _typed(expected)


def test_checked_params_walks_deep_values_as_the_checks_do() -> None:
    from mlmd_magic.core.values import checked_params

    def nested(levels: int) -> Any:  # a number inside ``levels`` mappings
        value: Any = 1
        for _ in range(levels):
            value = {"k": value}
        return value

    assert checked_params(nested(32)) == nested(32)  # as deep as check_value accepts
    with pytest.raises(mm.ValidationError, match="nested more than 32 levels"):
        checked_params(nested(33))


def test_a_created_record_is_the_record_read_back(store: mm.Store) -> None:
    params = {"z": 1, "a": {"y": [1, 2.5, None], "b": True}, "m": (3, "x"), "f": np.float64(0.25), "i": np.int32(7)}
    for description in (None, "", "small"):
        created = store.add_scenario("s", model="mlp", params=params, description=description)
        fetched = store.record("s", kind="scenario")
        assert created.status == "created" and created.ref == fetched.ref
        assert _typed(created.data) == _typed(fetched.data)
        assert (created.name, created.version, created.id, created.extra) == (
            fetched.name, fetched.version, fetched.id, fetched.extra)
        params = {**params, "z": params["z"] + 1}
    again = store.add_scenario("s", model="mlp", params=dict(params, z=params["z"] - 1), description="small")
    assert again.status == "unchanged" and _typed(again.data) == _typed(store.record("s@3", kind="scenario").data)


def test_unchanged_only_against_the_store_s_latest(tmp_path: Path, tfrecord_dir: Path) -> None:
    """A kernel that defined version 2 is not told 'unchanged' for that content after another
    kernel defined version 3: NAME must give what was defined last, across writers."""
    uri = f"sqlite:///{tmp_path / 'two.sqlite'}"
    with mm.connect(uri) as a, mm.connect(uri) as b:
        a.add_scenario("sc", model="mlp", params={"epochs": 1})
        a.add_scenario("sc", model="mlp", params={"epochs": 2})
        assert b.add_scenario("sc", model="mlp", params={"epochs": 3}).version == 3
        again = a.add_scenario("sc", model="mlp", params={"epochs": 2})
        assert (again.status, again.version, again.extra["same_as"]) == ("created", 4, "sc@2")
        assert b.get_scenario("sc")["params"] == {"epochs": 2}


def test_the_facade_speaks_one_grammar_and_old_names_warn(mem_store: mm.Store, tmp_path: Path) -> None:
    """add_KIND defines, get_KIND gives a plain dict, record gives a Record, ls a table; the first
    releases' names still work for one release, each with a DeprecationWarning naming the new one."""
    import pandas as pd

    from mlmd_magic import datasets

    mem_store.add_datasource("d", **datasets.simulate_nipt(str(tmp_path / "d"), n_train=8, n_eval=4, n_test=4))
    mem_store.add_scenario("s", model="mlp", params={"epochs": 1})
    made = mem_store.add_experiment("e", datasource="d", scenario="s")
    assert isinstance(mem_store.get_experiment("e"), dict) and mem_store.record("e").ref == made.ref == "e@1"
    assert isinstance(mem_store.ls("experiments"), pd.DataFrame)
    calls = {"experiment": ("add_experiment", ("e2",), {"datasource": "d", "scenario": "s"}),
             "get": ("record", ("e",), {}), "list": ("ls", ("experiments",), {})}
    for old, (new, args, kwargs) in calls.items():
        with pytest.warns(DeprecationWarning, match=rf"Store\.{old} is now Store\.{new}; the old name goes"):
            result = getattr(mem_store, old)(*args, **kwargs)
        assert type(result) is type(getattr(mem_store, new)(*args, **kwargs))
    with pytest.warns(DeprecationWarning, match=r"Store\.get_sweep is now Store\.sweep_results"):
        with pytest.raises(mm.NotFoundError):
            mem_store.get_sweep("none")
    public = {name for name in dir(mm.Store) if not name.startswith("_")}
    assert not {"experiment", "get", "list", "get_sweep"} - public  # kept, for one release


# ---------------------------------------------------------------------------- dotted parameter keys
# "a.b" addresses key b of mapping a (in overrides, filters, diffs): a key holding "." itself
# would be read as two.


@pytest.mark.parametrize("params", [{"a.b": 1, "a": {"b": 2}}, {"a.b": 1}, {"opt": {"lr.max": 0.1}}])
def test_a_dotted_parameter_key_is_refused(mem_store: mm.Store, params: dict[str, Any]) -> None:
    with pytest.raises(mm.ValidationError, match=r"holds '\.', which addresses a nested key.*nest it.*use '_'"):
        mem_store.add_scenario("s", model="mlp", params=params)
    assert mem_store.mlmd.get_artifacts() == []


def test_a_dotted_parameter_key_in_a_cell_is_refused_and_dotted_overrides_still_work(ip: InteractiveShell,
                                                                                     tmp_path: Path) -> None:
    from mlmd_magic import datasets

    ip.run_line_magic("mlmd", "connect memory://")
    with pytest.raises(UsageError, match=r"parameter key 'a\.b'"):
        ip.run_cell_magic("scenario", "s", "model: mlp\na.b: 1\na: {b: 5}\n")
    mem_store = mm.current_store()
    assert mem_store.mlmd.get_artifacts() == []
    mem_store.add_datasource("d", **datasets.simulate_nipt(str(tmp_path), n_train=4, n_eval=2, n_test=2))
    mem_store.add_scenario("s", model="mlp", params={"a": {"b": 2}, "c": 1})
    mem_store.add_experiment("e", datasource="d", scenario="s", overrides={"a.b": 5})
    assert mem_store.get_experiment("e")["params"] == {"a": {"b": 5}, "c": 1}
    mem_store.add_experiment("e", datasource="d", scenario="s", overrides={"a.b": 6})
    assert mem_store.diff("e@1", "e@2").to_dict()["params.a.b"] == {"a": 5, "b": 6}


def test_feature_names_are_refused_only_where_ambiguous(mem_store: mm.Store, tmp_path: Path) -> None:
    """A data source's feature may be named "fetal.fraction"; only two keys that read the same are refused."""
    from mlmd_magic import datasets

    spec = datasets.simulate_nipt(str(tmp_path), n_train=4, n_eval=2, n_test=2)
    spec.pop("features", None)
    with pytest.raises(mm.ValidationError, match=r"two keys that both read 'a.b'"):
        mem_store.add_datasource("d", **spec, features={"a.b": 1, "a": {"b": 2}})
    record = mem_store.add_datasource("d", **spec, features={"fetal.fraction": {"dtype": "float", "shape": [1]}})
    assert record.version == 1
