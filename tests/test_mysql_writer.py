"""The one-round-trip MySQL writer writes what MLMD's ``put_execution`` writes.

Each test does the same work on two fresh MariaDB databases, one through the direct writer
and one through MLMD alone (``MLMD_MAGIC_MYSQL_DIRECT_WRITES=0``), and compares what plain
``ml_metadata`` reads back from both, ids and clocks aside.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic import _mysql_writer

from .conftest import DB_PREFIX, MYSQL_BASE, MYSQL_PASSWORD, _created_dbs, _server_params

pytestmark = pytest.mark.mysql

# Text that a naive writer would mangle: quotes, backslashes, ^Z, newlines, latin1's
# 0x80-0x9f range once UTF-8 encoded (e.g. U+0080, U+0161), a 4-byte emoji, an SQL comment.
NASTY = "it's \"q\" \\ back\\slash \x1a ^Z\r\n é ≥ 😀 \u0080 š -- ; DROP TABLE `Artifact`; /* */ %s"
# MLMD's readers end a string at NUL (the library refuses it in descriptions); both writers store it alike
WITH_NUL = NASTY + " \x00 nul"


@pytest.fixture
def stores(mysql_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, mm.Store]:
    """A store written through the direct writer and one written by MLMD alone."""
    opened = {}
    for side, flag in (("direct", "1"), ("mlmd", "0")):
        monkeypatch.setenv(_mysql_writer.DISABLE_ENV, flag)
        opened[side] = mm.connect(_fresh_database(monkeypatch))
    assert opened["direct"]._writer is not None and opened["mlmd"]._writer is None
    return opened


def _fresh_database(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    _created_dbs.append(name)
    monkeypatch.setenv("MLMD_MAGIC_MYSQL_PASSWORD", MYSQL_PASSWORD)
    return f"{MYSQL_BASE.rstrip('/')}/{name}"


def _story(store: mm.Store, data: Path) -> None:
    """Every kind of action, hostile text included, new and existing names, failures."""
    store.add_datasource("nipt-sim", uri=str(data), format="tfrecord",
                         splits={"train": "train", "eval": "eval.tfrecord", "test": "test*.tfrecord"},
                         label="label", description=NASTY)
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [64, 32], "note": NASTY, "lr": 1e-3})
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [64, 32], "note": NASTY, "lr": 1e-3})  # cached
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "lr": 0.5, "big": 2**40})
    store.experiment("t21", datasource="nipt-sim", scenario="mlp-small@1", overrides={"lr": 0.01},
                     description="ünïcödé")
    store.experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    store.get_experiment("t21@1")
    store.get_scenario("mlp-small")
    store.history("mlp-small")
    store.diff("t21@1", "t21@2")
    store.list("scenarios", where="version >= 1")
    with pytest.raises(mm.MlmdMagicError):
        store.add_scenario("bad name!", model="mlp", params={})
    with pytest.raises(mm.MlmdMagicError):
        store.get_experiment("t21@9")


def _props(node: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        (custom, key): (value.WhichOneof("value"), _comparable(getattr(value, value.WhichOneof("value") or "")))
        for custom, props in ((False, node.properties), (True, node.custom_properties))
        for key, value in props.items() if key not in skip
    }


def _comparable(value: Any) -> Any:
    # MLMD's own writer keeps about six digits of a double; the direct writer keeps them all
    # (test_doubles_keep_every_digit), so doubles are compared at MLMD's precision
    return f"{value:.6g}" if isinstance(value, float) else value


def _snapshot(store: mm.Store) -> dict[str, Any]:
    """Everything plain MLMD reads back, with ids replaced by stable keys and clocks left out."""
    mlmd = store.mlmd
    names = {t.id: t.name for kind in ("artifact", "execution", "context")
             for t in getattr(mlmd, f"get_{kind}_types")()}
    arts = sorted(mlmd.get_artifacts(), key=lambda a: a.id)
    art_key = {a.id: (names[a.type_id], a.name) for a in arts}
    execs = sorted(mlmd.get_executions(), key=lambda e: e.id)
    exec_key = {e.id: i for i, e in enumerate(execs)}
    contexts = sorted(mlmd.get_contexts(), key=lambda c: c.id)
    return {
        "artifacts": [(art_key[a.id], a.uri, a.state, a.external_id, _props(a)) for a in arts],
        # duration_s is a clock reading; external ids of executions are random by design
        "executions": [(names[e.type_id], e.last_known_state, bool(e.external_id), e.HasField("name"),
                        _props(e, skip=("duration_s",)), "duration_s" in e.properties) for e in execs],
        "events": sorted((exec_key[ev.execution_id], art_key[ev.artifact_id], ev.type, len(ev.path.steps))
                         for ev in mlmd.get_events_by_execution_ids([e.id for e in execs])),
        "contexts": [(names[c.type_id], c.name, c.external_id, _props(c),
                      sorted(art_key[a.id] for a in mlmd.get_artifacts_by_context(c.id)),
                      sorted(exec_key[e.id] for e in mlmd.get_executions_by_context(c.id))) for c in contexts],
    }


def test_actions_read_back_as_if_mlmd_wrote_them(stores: dict[str, mm.Store], tfrecord_dir: Path) -> None:
    direct = stores["direct"]
    calls = []
    real_put = direct._mlmd.put_execution
    direct._mlmd.put_execution = lambda *a, **k: calls.append(1) or real_put(*a, **k)  # type: ignore[method-assign]
    for store in stores.values():
        _story(store, tfrecord_dir)
    snapshots = {side: _snapshot(store) for side, store in stores.items()}
    assert snapshots["direct"] == snapshots["mlmd"]
    assert len(snapshots["direct"]["executions"]) == 13
    # MLMD wrote only the first action, which creates the session context with its properties
    assert len(calls) == 1
    assert direct.get_datasource("nipt-sim")["description"] == NASTY
    assert direct.get_scenario("mlp-small@1")["params"]["note"] == NASTY


def _nodes(store: mm.Store) -> tuple[int, int, int, int]:
    ids = store._types
    return ids.artifacts["Evaluation"], ids.executions["Evaluate"], ids.contexts["Experiment"], ids.contexts["Scenario"]


def test_every_value_kind_and_edge_matches_put_execution(stores: dict[str, mm.Store]) -> None:
    read_back = {}
    for side, store in stores.items():
        art_type, exec_type, ctx_type, other_ctx_type = _nodes(store)
        existing = pb.Artifact(type_id=art_type, name="old", uri="/x/ü", state=pb.Artifact.LIVE)
        [existing.id] = store.mlmd.put_artifacts([existing])
        [known] = store.mlmd.put_contexts([pb.Context(type_id=other_ctx_type, name="known")])
        new = pb.Artifact(type_id=art_type, name="new " + NASTY[:40], uri=WITH_NUL, external_id="ext-" + NASTY[:20])
        new.properties["metrics"].string_value = WITH_NUL
        new.custom_properties["blessed"].int_value = 1
        new.custom_properties["low"].int_value = -(2**31)
        new.custom_properties["high"].int_value = 2**31 - 1
        new.custom_properties["small"].double_value = -2.5e-3
        new.custom_properties["third"].double_value = 1 / 3
        new.custom_properties["empty"].string_value = ""
        execution = pb.Execution(type_id=exec_type, last_known_state=pb.Execution.COMPLETE, external_id="e1")
        execution.properties["source"].string_value = WITH_NUL
        execution.properties["execution_count"].int_value = 7
        execution.properties["duration_s"].double_value = 0.000123
        events = [(existing, pb.Event(type=pb.Event.INPUT, milliseconds_since_epoch=1234)),
                  (new, pb.Event(type=pb.Event.OUTPUT))]
        contexts = [pb.Context(type_id=ctx_type, name="brand new ctx " + NASTY[:30]),
                    pb.Context(id=known, type_id=other_ctx_type, name="known")]
        _, art_ids, ctx_ids = store._put_execution(execution, events, contexts)
        assert art_ids[0] == existing.id and len(ctx_ids) == 2 and ctx_ids[1] == known
        # the same context again, by name: found, not created twice
        again = pb.Execution(type_id=exec_type, last_known_state=pb.Execution.RUNNING)
        _, _, ctx_again = store._put_execution(again, [], [pb.Context(type_id=ctx_type, name=contexts[0].name)])
        assert ctx_again == ctx_ids[:1]
        read_back[side] = _snapshot(store)
    assert read_back["direct"] == read_back["mlmd"]
    (evaluation,) = stores["direct"].mlmd.get_artifacts_by_type("mlmd_magic.Evaluation")[1:]
    assert evaluation.custom_properties["third"].double_value == 1 / 3


def test_doubles_keep_every_digit(stores: dict[str, mm.Store]) -> None:
    """MLMD's own MySQL writer prints doubles with about six digits (-2.5e-7 and 5e-324 read
    back as 0, -1.8e308 as -1e+65); the direct writer sends ``repr``, which reads back exactly."""
    store = stores["direct"]
    art_type, exec_type, _, _ = _nodes(store)
    values = [1 / 3, 5e-324, -1.7976931348623157e308, 0.1 + 0.2, -0.0, 123456789.123456789]
    art = pb.Artifact(type_id=art_type, name="doubles")
    for i, value in enumerate(values):
        art.custom_properties[f"v{i}"].double_value = value
    _, [art_id], _ = store._put_execution(pb.Execution(type_id=exec_type), [(art, pb.Event(type=pb.Event.OUTPUT))], [])
    (back,) = store.mlmd.get_artifacts_by_id([art_id])
    assert [back.custom_properties[f"v{i}"].double_value for i in range(len(values))] == values


def test_any_text_reads_back_as_written(stores: dict[str, mm.Store]) -> None:
    """1,000 random strings: any code point but NUL (where MLMD's reader ends a string) and
    lone surrogates (which protobuf refuses)."""
    store = stores["direct"]
    art_type, exec_type, _, _ = _nodes(store)
    seen: set[str] = set()

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=300))
    def round_trip(text: str) -> None:
        name = f"t{len(seen)}"
        seen.add(name)
        art = pb.Artifact(type_id=art_type, name=name, uri=text)
        art.properties["metrics"].string_value = text
        art.custom_properties[text[:40] or "empty"].string_value = text
        _, [art_id], _ = store._put_execution(pb.Execution(type_id=exec_type),
                                              [(art, pb.Event(type=pb.Event.OUTPUT))], [])
        (back,) = store.mlmd.get_artifacts_by_id([art_id])
        assert back.uri == text and back.properties["metrics"].string_value == text
        assert back.custom_properties[text[:40] or "empty"].string_value == text

    round_trip()
    assert store._writer is not None and len(seen) >= 1000


def test_a_taken_name_writes_nothing_and_the_connection_goes_on(stores: dict[str, mm.Store]) -> None:
    store = stores["direct"]
    art_type, exec_type, ctx_type, _ = _nodes(store)

    def action(name: str) -> tuple[Any, list[Any], list[Any]]:
        execution = pb.Execution(type_id=exec_type, last_known_state=pb.Execution.COMPLETE)
        execution.properties["source"].string_value = "x"
        art = pb.Artifact(type_id=art_type, name=name)
        art.properties["metrics"].string_value = "{}"
        return execution, [(art, pb.Event(type=pb.Event.OUTPUT))], [pb.Context(type_id=ctx_type, name="c")]

    store._put_execution(*action("a"))
    before = _snapshot(store)
    from mlmd_magic.store import _Duplicate

    with pytest.raises(_Duplicate):
        store._put_execution(*action("a"))
    assert _snapshot(store) == before  # no execution, property, event or association left behind
    store._put_execution(*action("b"))
    assert len(store.mlmd.get_executions()) == 2


def test_what_it_cannot_write_goes_through_mlmd(stores: dict[str, mm.Store]) -> None:
    results = {}
    for side, store in stores.items():
        _, exec_type, _, _ = _nodes(store)
        execution = pb.Execution(type_id=exec_type, last_known_state=pb.Execution.RUNNING)
        execution.properties["source"].string_value = "first"
        exec_id, _, _ = store._put_execution(execution, [], [])
        execution.id = exec_id  # an update: MLMD's own business
        execution.last_known_state = pb.Execution.COMPLETE
        execution.properties["progress"].string_value = "done"
        store._put_execution(execution, [], [])
        results[side] = _snapshot(store)
    assert results["direct"] == results["mlmd"]
    with pytest.raises(_mysql_writer.Unsupported):  # an int MLMD's MySQL column cannot hold
        big = pb.Execution(type_id=_nodes(stores["direct"])[1])
        big.custom_properties["n"].int_value = 2**31
        stores["direct"]._writer.put_execution(big, [], [])


def test_only_the_checked_schema_and_version_get_direct_writes(mysql_server: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    _created_dbs.append(name)
    conn = pymysql.connect(**_server_params(), autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"CREATE TABLE `{name}`.MLMDEnv (schema_version INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO `{name}`.MLMDEnv VALUES (11)")
    conn.close()

    def connect() -> Any:
        return pymysql.connect(database=name, **_server_params())

    assert _mysql_writer.MySQLActionWriter.open(connect, {}) is None  # a newer MLMD schema: hands off
    with connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE MLMDEnv SET schema_version = 10")
        conn.commit()
    writer = _mysql_writer.MySQLActionWriter.open(connect, {})  # the checked one: same server, same account
    assert writer is not None
    writer.close()
    monkeypatch.setenv(_mysql_writer.DISABLE_ENV, "0")
    assert not _mysql_writer.enabled()
    monkeypatch.setenv(_mysql_writer.DISABLE_ENV, "1")
    assert _mysql_writer.enabled()
