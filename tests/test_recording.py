"""Every action is one MLMD execution; failures are recorded and leave nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic.core.secrets import redact
from mlmd_magic.core.session import action_context


def _executions(store: mm.Store) -> list[tuple[str, int, pb.Execution]]:
    names = {t.id: t.name for t in store.mlmd.get_execution_types()}
    return [(names[e.type_id], e.last_known_state, e) for e in store.mlmd.get_executions()]


def test_failed_action_is_recorded_and_writes_nothing_else(mem_store: mm.Store) -> None:
    mem_store.add_scenario("s", model="mlp", params={"epochs": 3})
    artifacts = len(mem_store.mlmd.get_artifacts())
    with pytest.raises(mm.NotFoundError):
        mem_store.experiment("e", datasource="missing", scenario="s")
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


def test_a_forked_worker_draws_other_execution_ids() -> None:
    import os

    from mlmd_magic.backend import recorder

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its generator was seeded again
        try:
            os.write(write, str(recorder._IDS.getrandbits(128)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as child:
        assert int(child.read()) != recorder._IDS.getrandbits(128)


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
    from mlmd_magic.core import secrets as _secrets

    _secrets.remember("zz-unusual-secret-zz")
    assert redact("it was zz-unusual-secret-zz all along") == "it was *** all along"


def test_closed_store_says_how_to_reconnect() -> None:
    store = mm.connect("memory://")
    store.close()
    assert "closed" in repr(store)
    with pytest.raises(mm.StoreError, match="connect again"):
        store.list("scenarios")


def test_import_does_not_load_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, mlmd_magic as mm; mm.connect('memory://').list('scenarios'); " \
           "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_panel_that_fails_to_refresh_never_fails_what_was_recorded(caplog: pytest.LogCaptureFixture) -> None:
    from mlmd_magic.core import session

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
