"""Hostile input: every case succeeds or raises the project's clear error, and none leaves a
partial record. 2,000 generated cases per entry point."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import mlmd_magic as mm
from mlmd_magic.faces.registry import REGISTRY

CASES = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None)

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["'; DROP TABLE Artifact; --", "\" OR 1=1 --", "a\\b", "line\nbreak", "x@1", "ü-naïve",
                     "name') OR ('1'='1", "%s%s%n", "\x00", "../../etc/passwd", "{{7*7}}", "$(rm -rf /)"]),
    st.text(min_size=1000, max_size=5000),
)
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def store() -> Iterator[mm.Store]:
    s = mm.connect("memory://")
    yield s
    s.close()


def _count(store: mm.Store) -> int:
    return len(store.mlmd.get_artifacts())


@CASES
@given(name=nasty_text, model=nasty_text, params=json_like, description=st.one_of(st.none(), nasty_text))
def test_add_scenario(store: mm.Store, name: str, model: str, params: Any, description: Any) -> None:
    before = _count(store)
    try:
        record = store.add_scenario(name, model=model, params=params, description=description)
    except mm.MlmdMagicError as exc:
        assert str(exc) and _count(store) == before
        return
    assert store.get_scenario(record.ref)["params"] == record.data["params"]


BASE_PARAMS = {"epochs": 1, "opt": {"lr": 0.1}, "tags": ["a"]}
# overrides that fit the base scenario (flat, dotted or nested), beside hostile ones
valid_overrides = st.one_of(
    st.fixed_dictionaries({}, optional={"epochs": st.integers(-10**6, 10**6), "tags": st.lists(nasty_text,
                                                                                                max_size=3),
                                        "opt.lr": st.floats(-1e6, 1e6)}),
    st.fixed_dictionaries({"opt": st.fixed_dictionaries({"lr": st.floats(0, 1)})}),
)


def _expected_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """The base params with ``overrides`` applied, written out independently of the library."""
    import copy

    out = copy.deepcopy(BASE_PARAMS)
    for key, value in overrides.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                out[key][sub] = inner
        elif "." in key:
            head, tail = key.split(".", 1)
            out[head][tail] = value
        else:
            out[key] = value
    return out


@CASES
@given(overrides=st.one_of(json_like, st.dictionaries(nasty_text, json_like, max_size=3), valid_overrides),
       name=nasty_text)
def test_experiment_overrides(store: mm.Store, overrides: Any, name: str) -> None:
    if not store.names("scenarios") or "base" not in store.names("scenarios"):
        store.add_scenario("base", model="mlp", params=BASE_PARAMS)
    if "data" not in store.names("datasources"):
        import tempfile

        from mlmd_magic import datasets

        store.add_datasource("data", **datasets.simulate_nipt(tempfile.mkdtemp(), n_train=4, n_eval=2, n_test=2))
    before = _count(store)
    try:
        record = store.experiment(name, datasource="data", scenario="base", overrides=overrides)
    except mm.MlmdMagicError as exc:
        assert str(exc) and _count(store) == before
        return
    # success: exactly the overridden values changed, and the store gives back what was recorded
    expected = _expected_params(overrides)
    assert record.data["params"] == expected
    assert store.get_experiment(record.ref)["params"] == expected
    assert record.extra["overrides"] == overrides


_QUERY_CALLS = ("get_artifacts", "get_contexts", "get_executions", "get_artifacts_by_context",
                "get_executions_by_context", "get_artifacts_by_type", "get_executions_by_type")


@contextlib.contextmanager
def _filter_queries() -> Iterator[list[str]]:
    """Every ``filter_query`` MLMD is asked while the block runs (digits blanked)."""
    import re

    from ml_metadata.metadata_store import metadata_store as ms

    seen: list[str] = []
    originals = {name: getattr(ms.MetadataStore, name) for name in _QUERY_CALLS}

    def spy(original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            options = kwargs.get("list_options") or next((a for a in args if isinstance(a, ms.ListOptions)), None)
            if options is not None and options.filter_query:
                seen.append(re.sub(r"[0-9]+", "N", options.filter_query))
            return original(self, *args, **kwargs)
        return call

    for name, original in originals.items():
        setattr(ms.MetadataStore, name, spy(original))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(ms.MetadataStore, name, original)


@CASES
@given(where=nasty_text, limit=st.one_of(st.none(), st.integers(-5, 50)))
def test_list_where_cannot_inject(store: mm.Store, where: str, limit: Any) -> None:
    if "probe" not in store.names("scenarios"):
        store.add_scenario("probe", model="mlp", params={"epochs": 1})
    with _filter_queries() as plain:
        store.list("scenarios")
    with _filter_queries() as queries:
        try:
            table = store.list("scenarios", where=where, limit=limit)
        except mm.ValidationError as exc:
            assert str(exc)
            table = None
    # the filter text never reaches MLMD: a filtered listing asks MLMD what an unfiltered one asks
    assert set(queries) <= set(plain), (where, queries)
    if table is not None:
        assert set(table["name"]) <= set(store.names("scenarios"))


@pytest.fixture(scope="module")
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlmd_magic")
    shell.run_line_magic("mlmd", "connect memory:// --alias fuzz")
    yield shell
    shell.run_line_magic("unload_ext", "mlmd_magic")
    REGISTRY.reset()


yaml_bodies = st.one_of(
    nasty_text,
    st.sampled_from([
        "model: !!python/object/apply:os.system ['echo pwned']",
        "a: &a [*a]",
        "x: " + "[" * 5000,
        "model: mlp\nparams: " + "{a: " * 300 + "1" + "}" * 300,
        "model: mlp\nparams:\n  a: &anchor {b: 1}\n  c: *anchor",
        "- just\n- a\n- list",
        "model: [unclosed",
        "model: mlp\nparams: 5",
        "model: mlp\nepochs: .inf",
        "model: mlp\nkey: !!binary aGVsbG8=",
        "? [complex, key]\n: value",
    ]),
)


@CASES
@given(name=nasty_text, body=yaml_bodies)
def test_scenario_cell(ip: InteractiveShell, name: str, body: str) -> None:
    store = REGISTRY.current().store
    before = _count(store)
    try:
        ip.run_cell_magic("scenario", name, body)
    except UsageError as exc:
        assert str(exc) and _count(store) == before


@CASES
@given(line=nasty_text)
def test_mlmd_line(ip: InteractiveShell, line: str) -> None:
    store = REGISTRY.current().store
    before = _count(store)
    if line.strip().split(" ")[0] in ("connect", "close", "use", "import", "export"):
        return  # these touch connections and files on purpose; their errors are tested elsewhere
    try:
        ip.run_line_magic("mlmd", line)
    except UsageError as exc:
        assert str(exc)
    assert _count(store) == before
