"""The release gate's faults (issue #26, items 4 and 8): a blessing under an older version of a
policy does not push, and a push target's odd entries neither break pushes nor leave an
unrecorded SavedModel behind — through the API, ``%mlmd push`` and ``mlmd-magic push``."""

# ruff: noqa: F811  (the fixtures imported from test_release are test arguments here)

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from ml_metadata import errors as mlmd_errors
from ml_metadata.proto import metadata_store_pb2 as pb

import mlmd_magic as mm
from mlmd_magic.cli import main
from mlmd_magic.errors import MlmdMagicError, NotBlessedError, StoreError, ValidationError

from .test_magics import run
from .test_release import FAILS, PASSES, SLICES, store, trained  # noqa: F401  (fixtures: one model, 1 epoch)

FACES = ["api", "magic", "cli"]
INT64_MAX = 2**63 - 1


def push(face: str, request: pytest.FixtureRequest, uri: str, model: str, to: Path,
         policy: str | None = None) -> dict[str, Any] | str:
    """Push through one face: the push as a dict, or the refusal's message (the face's error)."""
    flags = ["--to", str(to)] + (["--policy", policy] if policy else [])
    if face == "api":
        s = mm.connect(uri)
        try:
            return s.push(model, to=str(to), policy=policy).to_dict()
        except MlmdMagicError as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            s.close()
    if face == "magic":
        ip = request.getfixturevalue("ip")
        run(ip, f"%mlmd connect {uri}")
        try:
            pushed = run(ip, "%mlmd push " + " ".join([model, *flags]))
        except UsageError as exc:
            return f"UsageError: {exc}"
        return dict(pushed.to_dict())
    capsys = request.getfixturevalue("capsys")
    capsys.readouterr()
    rc = main(["--uri", uri, "--json", "push", model, *flags])
    shown = capsys.readouterr()
    if rc != 0:
        assert "Traceback" not in shown.err
        return f"rc {rc}: {shown.err}"
    return dict(json.loads(shown.out))


def _pushed_models(uri: str) -> list[Any]:
    s = mm.connect(uri)
    try:
        return list(s.mlmd.get_artifacts_by_type("mlmd_magic.PushedModel"))
    finally:
        s.close()


# ---------------------------------------------------------------------- item 4: outdated blessings

@pytest.mark.parametrize("face", FACES)
def test_a_blessing_under_an_older_policy_version_does_not_push(face: str, trained: dict[str, Any],
                                                                request: pytest.FixtureRequest,
                                                                tmp_path: Path) -> None:
    gate, model_id = f"gate-{face}", trained["run"].model_id
    model, to = f"model:{model_id}", tmp_path / "serving"
    s = mm.connect(trained["uri"])
    s.add_policy(gate, slices=SLICES, thresholds=PASSES, owner="lead")
    assert s.evaluate(model, policy=gate).blessed  # blessed under gate@1
    assert s.add_policy(gate, slices=SLICES, thresholds=FAILS, owner="lead").ref == f"{gate}@2"  # tightened
    s.close()
    stale = [f"evaluated under {gate}@1", f"{gate} is now at version 2",
             f"%mlmd evaluate {model} --policy {gate}"]
    # NAME is the policy's current version; no policy: the newest evaluation, whose policy has moved on
    for policy in (gate, f"policy:{gate}", None):
        refused = push(face, request, trained["uri"], model, to, policy)
        assert isinstance(refused, str) and all(part in refused for part in stale), (policy, refused)
        assert face != "api" or refused.startswith("NotBlessedError: ")
        assert len(refused.strip().splitlines()) == 1
        assert not to.exists()  # nothing written
    # a pinned version still takes its own blessing
    pushed = push(face, request, trained["uri"], model, to, f"{gate}@1")
    assert isinstance(pushed, dict), pushed
    assert (pushed["version"], pushed["policy"], pushed["blessed"]) == (1, f"{gate}@1", True)
    assert sorted(os.listdir(to)) == ["1"]


def test_the_current_versions_own_verdict_decides(trained: dict[str, Any], tmp_path: Path) -> None:
    s = mm.connect(trained["uri"])
    model = f"model:{trained['run'].model_id}"
    s.add_policy("gate-now", slices=SLICES, thresholds=PASSES)
    s.add_policy("gate-now", slices=SLICES, thresholds=[{"metric": "accuracy", "lower": 0.01}])
    assert s.evaluate(model, policy="gate-now").blessed  # under gate-now@2
    assert s.evaluate(model, policy="gate-now@1").blessed  # newer, but under the older version
    pushed = s.push(model, to=str(tmp_path / "srv"), policy="gate-now")
    assert pushed.policy == "gate-now@2"  # the current version's newest evaluation, not the newest of all
    with pytest.raises(NotBlessedError, match="evaluated under gate-now@1, but gate-now is now at version 2"):
        s.push(model, to=str(tmp_path / "srv"))  # the newest evaluation of all is outdated
    with pytest.raises(NotBlessedError, match="gate-now is now at version 2"):  # force overrides checks only
        s.push(model, to=str(tmp_path / "srv"), force=True)
    s.close()


# ---------------------------------------------------------------------- item 8: push targets

@pytest.fixture(scope="module")
def blessed(trained: dict[str, Any]) -> str:
    """A model blessed under the current version of a policy: what a push needs."""
    s = mm.connect(trained["uri"])
    s.add_policy("faults-gate", slices=SLICES, thresholds=PASSES)
    model = f"model:{trained['run'].model_id}"
    assert s.evaluate(model, policy="faults-gate").blessed
    s.close()
    return model


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("entry", [str(INT64_MAX), "99999999999999999999"])
def test_a_version_beyond_int64_is_refused_before_anything_is_written(
        face: str, entry: str, blessed: str, trained: dict[str, Any], request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    to = tmp_path / "serving"
    (to / entry).mkdir(parents=True)
    before = len(_pushed_models(trained["uri"]))
    refused = push(face, request, trained["uri"], blessed, to, "faults-gate")
    assert isinstance(refused, str), refused
    assert face != "api" or refused.startswith("ValidationError: ")
    assert entry in refused and "rename or remove" in refused and "Value out of range" not in refused
    assert len(refused.strip().splitlines()) == 1
    assert os.listdir(to) == [entry]  # nothing written, not even a staging folder
    assert len(_pushed_models(trained["uri"])) == before


def test_the_largest_version_that_fits_is_pushed_and_recorded(blessed: str, store: mm.Store,
                                                              tmp_path: Path) -> None:
    to = tmp_path / "serving"
    (to / str(INT64_MAX - 1)).mkdir(parents=True)
    pushed = store.push(blessed, to=str(to), policy="faults-gate")
    assert pushed.version == INT64_MAX and (to / str(INT64_MAX) / "saved_model.pb").exists()
    (artifact,) = store.mlmd.get_artifacts_by_id([pushed.id])
    assert artifact.properties["version"].int_value == INT64_MAX


def test_dangling_links_and_other_names_do_not_block_pushes(blessed: str, store: mm.Store,
                                                            tmp_path: Path) -> None:
    to = tmp_path / "serving"
    to.mkdir()
    (to / "1").symlink_to(tmp_path / "gone")  # a dangling link where version 1 would go
    (to / "٣").mkdir()  # not plain ASCII digits (int() reads it as 3): not a version
    (to / "2x").mkdir()
    first = store.push(blessed, to=str(to), policy="faults-gate")
    second = store.push(blessed, to=str(to), policy="faults-gate")
    assert (first.version, second.version) == (2, 3)
    assert (to / "2" / "saved_model.pb").exists() and (to / "3" / "saved_model.pb").exists()
    assert os.path.islink(to / "1") and not os.path.exists(to / "1")  # left as it was
    assert sorted(os.listdir(to)) == sorted(["1", "2", "3", "٣", "2x"])


def test_a_failure_after_the_savedmodel_is_written_leaves_no_folder(blessed: str, store: mm.Store,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    to = tmp_path / "serving" / "nipt"
    written: list[list[str]] = []
    real = store.mlmd.put_execution
    push_type = store.mlmd.get_execution_type("mlmd_magic.Push").id

    def failing_write(execution: Any, events: Any, contexts: Any, **kwargs: Any) -> Any:
        if execution.type_id == push_type and execution.last_known_state == pb.Execution.COMPLETE:
            written.append(sorted(os.listdir(to)))  # what was on disk when the push was to be recorded
            raise mlmd_errors.InternalError("injected: the disk holding the database is full")
        return real(execution, events, contexts, **kwargs)

    monkeypatch.setattr(store.mlmd, "put_execution", failing_write)
    before = len(store.mlmd.get_artifacts_by_type("mlmd_magic.PushedModel"))
    with pytest.raises(StoreError, match="injected"):
        store.push(blessed, to=str(to), policy="faults-gate")
    assert written == [["1"]]  # the SavedModel was in place when the write failed
    assert not (tmp_path / "serving").exists()  # what this push wrote is gone, the folders it made too
    assert len(store.mlmd.get_artifacts_by_type("mlmd_magic.PushedModel")) == before
    refused = store.mlmd.get_executions_by_type("mlmd_magic.Push")[-1]
    assert refused.last_known_state == pb.Execution.FAILED and "injected" in refused.properties["error"].string_value
    monkeypatch.undo()
    assert store.push(blessed, to=str(to), policy="faults-gate").version == 1  # the number was not used up


def test_a_target_that_is_not_a_folder_is_refused_before_anything_is_written(blessed: str, store: mm.Store,
                                                                             tmp_path: Path) -> None:
    (tmp_path / "serving").write_text("not a folder")
    with pytest.raises(ValidationError, match="is not a folder"):
        store.push(blessed, to=str(tmp_path / "serving"), policy="faults-gate")
    assert sorted(os.listdir(tmp_path)) == ["serving"]
