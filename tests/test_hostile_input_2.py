"""Hostile input and faults, round two: escaped passwords, passwords that break URIs, data
changed after registration, slices named ``overall``, quadratic redaction, YAML alias bombs,
``--set`` against ``train``'s own keywords, symlink loops, trailing newlines in names,
dotted parameter keys, read-only / damaged / deleted SQLite files, and smaller ones."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

import mlmd_magic as mm
from mlmd_magic import _secrets
from mlmd_magic._names import parse_ref

SOME = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def best_of(runs: int, call: Callable[[], object]) -> float:
    """The shortest of ``runs`` timings of ``call()``, in seconds (the least disturbed by other load)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.fixture
def secrets_restored() -> Iterator[None]:
    """Forget, after the test, the secrets it made the process remember."""
    known, forms = set(_secrets._known), list(getattr(_secrets, "_forms", []))
    yield
    with _secrets._lock:
        _secrets._known.clear()
        _secrets._known.update(known)
        if hasattr(_secrets, "_forms"):
            _secrets._forms[:] = forms


# ---------------------------------------------------------------- 9: names end where they end


@pytest.mark.parametrize("bad", ["abc\n", "t21-baseline\n"])
def test_a_name_ending_in_a_newline_is_refused(mem_store: mm.Store, bad: str) -> None:
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


def test_an_alias_ending_in_a_newline_is_refused() -> None:
    from mlmd_magic._registry import ConnectionRegistry

    registry = ConnectionRegistry()
    with pytest.raises(mm.InvalidNameError, match="invalid alias"):
        registry.connect("memory://", alias="team\n")
    registry.reset()


@pytest.mark.mysql
def test_a_database_name_ending_in_a_newline_is_refused(mysql_uri: str) -> None:
    with pytest.raises(mm.StoreConnectionError, match="invalid MySQL database name"):
        mm.connect(mysql_uri + "%0A")


@pytest.mark.parametrize("ref", ["abc@²", "abc@१", "abc@1²", "abc@٣"])
def test_a_version_in_other_digits_is_a_validation_error(mem_store: mm.Store, ref: str) -> None:
    mem_store.add_scenario("abc", model="mlp", params={"a": 1})
    with pytest.raises(mm.InvalidNameError, match="must be a version number"):
        mem_store.get_scenario(ref)
    with pytest.raises(mm.InvalidNameError):
        mem_store.evaluate(f"model:{ref[4:]}")
