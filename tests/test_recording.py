"""Every action is one MLMD execution; failures are recorded and leave nothing half-written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic.backend.secrets import redact
from mlmd_magic.backend.session import action_context
from mlmd_magic.core.values import canonical_json, content_hash

FIXTURES = Path(__file__).parent / "fixtures"


def _executions(store: mm.Store) -> list[tuple[str, int, pb.Execution]]:
    names = {t.id: t.name for t in store.mlmd.get_execution_types()}
    return [(names[e.type_id], e.last_known_state, e) for e in store.mlmd.get_executions()]


def test_failed_action_is_recorded_and_writes_nothing_else(mem_store: mm.Store) -> None:
    mem_store.add_scenario("s", model="mlp", params={"epochs": 3})
    artifacts = len(mem_store.mlmd.get_artifacts())
    with pytest.raises(mm.NotFoundError):
        mem_store.add_experiment("e", datasource="missing", scenario="s")
    assert len(mem_store.mlmd.get_artifacts()) == artifacts
    name, state, execution = _executions(mem_store)[-1]
    assert (name, state) == ("mlmd_magic.DefineExperiment", pb.Execution.FAILED)
    assert "no data source named 'missing'" in execution.properties["error"].string_value
    assert mem_store.mlmd.get_events_by_execution_ids([execution.id]) == []


def test_unchanged_is_recorded_as_cached_with_output_to_the_existing_version(mem_store: mm.Store) -> None:
    first = mem_store.add_scenario("s", model="mlp", params={"epochs": 3})
    mem_store.add_scenario("s", model="mlp", params={"epochs": 3})
    (_, s1, _e1), (_, s2, e2) = _executions(mem_store)
    assert (s1, s2) == (pb.Execution.COMPLETE, pb.Execution.CACHED)  # CACHED: found unchanged
    events = mem_store.mlmd.get_events_by_execution_ids([e2.id])
    assert [(e.type, e.artifact_id) for e in events] == [(pb.Event.OUTPUT, first.id)]


def test_cell_source_is_recorded_redacted(mem_store: mm.Store) -> None:
    source = "%%scenario s\n# mysql://bob:hunter2@db/x\nmodel: mlp\npassword: hunter2\n"
    with action_context(source=source, execution_count=7, notebook="nb.ipynb"):
        mem_store.add_scenario("s", model="mlp", params={"epochs": 3})
    (_, _, e), = _executions(mem_store)
    recorded = e.properties["source"].string_value
    assert "hunter2" not in recorded and "%%scenario s" in recorded and "***" in recorded
    assert e.properties["execution_count"].int_value == 7
    assert e.properties["notebook"].string_value == "nb.ipynb"
    assert "arguments" not in e.properties  # the cell's source says it already


def test_api_calls_record_their_arguments_redacted(mem_store: mm.Store) -> None:
    mem_store.add_scenario("s", model="mlp", params={"epochs": 3, "db": "mysql://u:hunter2@h/x"})
    (_, _, e), = _executions(mem_store)
    args = json.loads(e.properties["arguments"].string_value)
    assert args["params"] == {"epochs": 3, "db": "mysql://u:***@h/x"}
    assert "source" not in e.properties


def test_a_long_parameter_is_recorded_whole(mem_store: mm.Store) -> None:
    """A 200,000-character parameter is recorded and read back whole (its recorded arguments are
    redacted in linear time: how fast, benchmarks/bench_hostile.py)."""
    value = "a" * 200_000
    mem_store.add_scenario("big", model="mlp", params={"x": value})
    assert mem_store.get_scenario("big")["params"]["x"] == value


def test_unrecorded_reads_still_record_writes(store_with_experiment: mm.Store) -> None:
    """Inside ``store.unrecorded()`` reads leave no execution; a write there is still recorded."""
    trained = store_with_experiment
    before = len(trained.mlmd.get_executions())
    with trained.unrecorded():
        trained.get_experiment("e")
        trained.history("e")
        record = trained.add_experiment("e", datasource="nipt", scenario="s", overrides={"epochs": 3})
    assert record.version == 2 and len(trained.mlmd.get_executions()) == before + 1


def test_a_seeded_random_module_does_not_repeat_execution_ids(mem_store: mm.Store) -> None:
    # notebooks seed random for reproducible training; two kernels seeded alike must still give
    # their executions different external ids (a repeated one would read as already recorded)
    import random

    ids = []
    for params in ({"epochs": 1}, {"epochs": 2}):
        random.seed(42)
        mem_store.add_scenario("s", model="mlp", params=params)
        ids.append(mem_store.mlmd.get_executions()[-1].external_id)
    assert ids[0] != ids[1] and all(i.startswith("mlmd_magic:") and len(i) == len("mlmd_magic:") + 32 for i in ids)


def test_a_forked_worker_draws_other_execution_ids(mem_store: mm.Store) -> None:
    # ids come from uuid4 (os.urandom): a forked child (a sweep's worker), seeded alike, draws others
    import os
    import random

    from mlmd_magic.backend.recorder import Action

    def drawn() -> str:
        random.seed(42)
        return str(mem_store._recorder.execution_of(Action("AddScenario", {})).external_id)

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, drawn().encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as child:
        theirs = child.read()
    ours = drawn()
    assert theirs != ours and re.fullmatch(r"mlmd_magic:[0-9a-f]{32}", theirs) and re.fullmatch(
        r"mlmd_magic:[0-9a-f]{32}", ours)


def test_arguments_that_json_cannot_hold_are_recorded_as_their_text() -> None:
    from mlmd_magic.backend.recorder import _arguments_json

    assert _arguments_json({"uri": Path("/data/x"), "n": 1, "é": None}) == '{"n":1,"uri":"/data/x","é":null}'


def test_session_context_groups_actions(mem_store: mm.Store) -> None:
    mem_store.add_scenario("a", model="mlp", params={})
    mem_store.add_scenario("b", model="mlp", params={})
    sessions = mem_store.mlmd.get_contexts_by_type("mlmd_magic.NotebookSession")
    assert len(sessions) == 1
    assert len(mem_store.mlmd.get_executions_by_context(sessions[0].id)) == 2
    assert sessions[0].properties["user"].string_value


def test_record_contexts_group_versions(mem_store: mm.Store, tfrecord_dir: Path) -> None:
    mem_store.add_scenario("s", model="mlp", params={"e": 1})
    mem_store.add_scenario("s", model="mlp", params={"e": 2})
    ctx = mem_store.mlmd.get_context_by_type_and_name("mlmd_magic.Scenario", "s")
    assert sorted(a.name for a in mem_store.mlmd.get_artifacts_by_context(ctx.id)) == ["s@1", "s@2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mysql://u:p4ss@h/db", "mysql://u:***@h/db"),
        ("MLMD_MAGIC_MYSQL_PASSWORD=abc123 python x.py", "MLMD_MAGIC_MYSQL_PASSWORD=*** python x.py"),
        ("--password s3cr3t --user x", "--password *** --user x"),
        ("{'password': 'abc'}", "{'password': '***'}"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_known_secrets_are_masked_everywhere() -> None:
    from mlmd_magic.backend import secrets as _secrets

    _secrets.remember("zz-unusual-secret-zz")
    assert redact("it was zz-unusual-secret-zz all along") == "it was *** all along"


def test_closed_store_says_how_to_reconnect() -> None:
    store = mm.connect("memory://")
    store.close()
    assert "closed" in repr(store)
    with pytest.raises(mm.StoreError, match="connect again"):
        store.ls("scenarios")


def test_import_does_not_load_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, mlmd_magic as mm; mm.connect('memory://').list('scenarios'); " \
           "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_panel_that_fails_to_refresh_never_fails_what_was_recorded(caplog: pytest.LogCaptureFixture) -> None:
    from mlmd_magic.backend import session

    class BrokenPanel:
        def store_written(self, label: str, action: str) -> None:
            raise RuntimeError("panel broke")

    panel = BrokenPanel()  # held weakly by the session: keep it alive for the test
    session.on_write(panel)
    store = mm.connect("memory://")
    with caplog.at_level("WARNING", logger="mlmd_magic"):
        record = store.add_scenario("a", model="mlp", params={"epochs": 1})
    assert record.status == "created" and store.names("scenarios") == ["a"]
    (execution,) = store.mlmd.get_executions()
    assert execution.last_known_state == 3  # COMPLETE, not re-recorded as FAILED
    assert "a panel failed to refresh after AddScenario was recorded" in caplog.text
    del panel


# ---------------------------------------------------------------------------- content hashes
# A record version's external id is TYPE:NAME:HASH, so a hash once stored must never change.
# The oracle is the hand-built hash content_hash used to make (JSON assembled from parts, some
# given already encoded), kept here only: content_hash is canonical_json of the whole value.

_OLD_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                default=lambda v: v.item())
_old_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _old_json_key(key: Any, encode: Any) -> str:
    if type(key) is str and key.isascii() and key.isidentifier():
        return f'"{key}"'
    return str(encode(key))


def _old_content_hash(value: dict[str, Any], encoded: dict[str, str] | None = None) -> str:
    if encoded:
        encode = _OLD_ENCODER.encode
        parts = {key: _old_quote(item) if type(item) is str else encode(item) for key, item in value.items()}
        parts.update(encoded)
        text = "{" + ",".join([f"{_old_json_key(key, encode)}:{parts[key]}" for key in sorted(parts)]) + "}"
    else:
        text = _OLD_ENCODER.encode(value)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _old_record_hash(kind: str, content: dict[str, Any]) -> str:
    """The hash the old add_* calls stored: a scenario's params were given already encoded."""
    if kind == "scenarios":
        rest = {k: v for k, v in content.items() if k != "params"}
        return _old_content_hash({"kind": kind, **rest}, {"params": canonical_json(content["params"])})
    return _old_content_hash({"kind": kind, **content})


def _content(kind: str, art: Any) -> dict[str, Any]:
    """The content a record version was hashed from, read back from its properties."""
    from mlmd_magic.backend.properties import text

    p = art.properties
    description = text(p, "description") or ""
    if kind == "scenarios":
        return {"model": text(p, "model"), "params": json.loads(text(p, "params")), "description": description}
    if kind == "experiments":
        return {"datasource": text(p, "datasource"), "scenario": text(p, "scenario"),
                "overrides": json.loads(text(p, "overrides") or "{}"), "description": description}
    if kind == "policies":
        return {"slices": json.loads(text(p, "slices") or "[]"), "thresholds": json.loads(text(p, "thresholds")),
                "description": description, "owner": text(p, "owner") or ""}
    content = {"uri": art.uri, "format": text(p, "format"), "splits": json.loads(text(p, "splits")),
               "label": text(p, "label"), "features": json.loads(text(p, "features")),
               "fingerprint": text(p, "fingerprint"), "description": description}
    if "label_names" in p:
        content["label_names"] = json.loads(text(p, "label_names"))
    return content


def _stored_hashes(store: mm.Store) -> list[tuple[str, str, dict[str, Any], str]]:
    """(kind, version, content, stored hash) of every record version in ``store``."""
    kinds = {f"mlmd_magic.{t}": k for k, t in
             (("datasources", "DataSource"), ("scenarios", "Scenario"), ("experiments", "Experiment"),
              ("policies", "Policy"))}
    out = []
    for art in store.mlmd.get_artifacts():
        if art.type in kinds:
            kind = kinds[art.type]
            out.append((kind, art.name, _content(kind, art), art.external_id.partition("@")[0].rpartition(":")[2]))
    return out


def test_the_hashes_stored_by_0_1_0_are_the_hashes_made_now(tmp_path: Path) -> None:
    copy = tmp_path / "old.sqlite"
    shutil.copy(FIXTURES / "store-0.1.0.sqlite", copy)
    store = mm.connect(f"sqlite:///{copy}")
    stored = _stored_hashes(store)
    assert {kind for kind, *_ in stored} == {"datasources", "scenarios", "experiments"} and len(stored) == 4
    for kind, name, content, digest in stored:
        assert content_hash({"kind": kind, **content}) == _old_record_hash(kind, content) == digest, name


def test_records_written_now_store_the_hashes_of_the_old_algorithm(
        mem_store: mm.Store, tfrecord_dir: Path, csv_dir: Path, npz_dir: Path) -> None:
    store = mem_store
    store.add_datasource("tfr", uri=str(tfrecord_dir), format="tfrecord", label="label",
                         splits={"train": "train/*.tfrecord", "eval": "eval.tfrecord", "test": "test.tfrecord"})
    store.add_datasource("csv", uri=str(csv_dir), format="csv", label="label", description="données",
                         splits={"train": "train.csv", "eval": "eval.csv"})
    store.add_datasource("npz", uri=str(npz_dir), format="npz", label="label", label_names=["a", "b", "ç"],
                         splits={"train": "train.npz", "eval": "eval.npz"})
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8, 4], "epochs": 2, "optimizer": {"lr": 0.01},
                                                         "note": "é\"\\\n", "dropout": 0.5, "flag": True})
    store.add_scenario("mlp-small", model="mlp", params={"hidden": (16,), "epochs": 3, "empty": {}, "none": None},
                       description="second")
    store.add_experiment("t21", datasource="tfr", scenario="mlp-small@1", overrides={"epochs": 1})
    store.add_experiment("t21", datasource="csv", scenario="mlp-small", overrides={"hidden": [4]}, description="autre")
    store.add_policy("release", thresholds=[{"metric": "recall_1", "lower": 0.9}], owner="qa")
    stored = _stored_hashes(store)
    assert {kind for kind, *_ in stored} == {"datasources", "scenarios", "experiments", "policies"}
    for kind, name, content, digest in stored:
        assert digest == _old_record_hash(kind, content) == content_hash({"kind": kind, **content}), name


_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text())
_KEYS = st.sampled_from(["", "a", "kind", "params", "_x", "with space", 'quo"te', "back\\slash", "new\nline",
                         "\x00", "\x7f", "é", "ключ", "鍵", "\u2028", "😀", "a.b", "1", "Model"]) | st.text()


def _values(scalars: Any) -> Any:
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
                        | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.dictionaries(_KEYS, _values(_SCALARS), max_size=6), data=st.data())
def test_content_hash_is_the_old_hand_built_hash(value: dict[str, Any], data: st.DataObject) -> None:
    # any part of the value may have been given already encoded, as a scenario's params were
    pre = data.draw(st.sets(st.sampled_from(sorted(value)), max_size=len(value)) if value else st.just(set()))
    direct = {k: v for k, v in value.items() if k not in pre}
    encoded = {k: canonical_json(value[k]) for k in pre}
    assert content_hash(value) == _old_content_hash(direct, encoded) == _old_content_hash(value)


# ---------------------------------------------------------------------------- writes without needless reads

def test_a_version_equal_to_an_older_one_leaves_the_next_write_optimistic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back to v1's content: the optimistic write fails (v1's external id is taken) and a look at
    the store, under the backend's record lock, writes v3 same_as v1. No other writer was met:
    the next version is written without the record's lock and without reading the store, as any
    other (MLMD reads counted on the store's MLMD connection)."""
    from mlmd_magic.backend.connection import MemoryBackend

    locks: list[str] = []
    real_lock = MemoryBackend.record_lock

    @contextlib.contextmanager
    def lock(self: Any, key: str) -> Any:
        locks.append(key)
        with real_lock(self, key) as held:
            yield held

    monkeypatch.setattr(MemoryBackend, "record_lock", lock)
    mem_store = mm.connect("memory://")
    mem_store.add_scenario("s", model="mlp", params={"v": 1})
    mem_store.add_scenario("s", model="mlp", params={"v": 2})
    again = mem_store.add_scenario("s", model="mlp", params={"v": 1})
    assert (again.version, again.extra["same_as"], locks) == (3, "s@1", ["Scenario:s"])
    locks.clear()
    reads: list[str] = []
    for method in ("get_context_by_type_and_name", "get_artifacts_by_context", "get_artifact_by_type_and_name",
                   "get_artifacts_by_external_ids"):
        monkeypatch.setattr(mem_store.mlmd, method, lambda *a, _m=method, **k: reads.append(_m))
    assert mem_store.add_scenario("s", model="mlp", params={"v": 3}).version == 4
    assert (locks, reads) == ([], [])
    mem_store.close()
