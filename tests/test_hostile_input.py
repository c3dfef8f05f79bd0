"""Hostile input: every case succeeds or raises the project's clear error, and none leaves a
partial record. 2,000 generated cases per entry point; passwords in URIs and symlinked data
folders, which touch the network stack and the file system, get 1,000 each."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import mlmd_magic as mm
from mlmd_magic.backend import secrets as _secrets
from mlmd_magic.faces.registry import REGISTRY

CASES = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None)

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["'; DROP TABLE Artifact; --", "\" OR 1=1 --", "a\\b", "line\nbreak", "x@1", "ü-naïve",
                     "name') OR ('1'='1", "%s%s%n", "\x00", "../../etc/passwd", "{{7*7}}", "$(rm -rf /)",
                     # round two: trailing newlines, dotted keys, escaped quotes, URIs with passwords
                     "abc\n", "t21-baseline\n", "a.b", "optimizer.lr", "Ab'cd\"Q\\z", "mysql://u:p#w@h/db"]),
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
        record = store.add_experiment(name, datasource="data", scenario="base", overrides=overrides)
    except mm.MlmdMagicError as exc:
        assert str(exc) and _count(store) == before
        return
    # success: exactly the overridden values changed, and the store gives back what was recorded
    given_overrides = {} if overrides is None else overrides  # None: no overrides
    expected = _expected_params(given_overrides)
    assert record.data["params"] == expected
    assert store.get_experiment(record.ref)["params"] == expected
    assert record.extra["overrides"] == given_overrides


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
    with _filter_queries() as queries:
        try:
            table = store.ls("scenarios", where=where, limit=limit)
        except mm.ValidationError as exc:
            assert str(exc)
            table = None
    # the filter text never reaches MLMD: the only queries a listing asks are its own paging ones
    ours = {"id < N", "type = 'mlmd_magic.Scenario' AND id < N"}
    assert set(queries) <= ours, (where, queries)
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
        "model: mlp\na: &a {b: *a}",
        "model: mlp\nparams:\n  base: &b {lr: 0.1, m: 0.9}\n  opt: {<<: *b, lr: 0.2}",
        "model: mlp\na.b: 1\na: {b: 5}",
        "model: mlp\nparams: {opt: {lr.max: 1}}",
    ]),
    st.builds(lambda levels, width, under: ("model: mlp\nparams:\n" if under else "model: mlp\n")
              + "".join(f"{'  ' if under else ''}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else '"x"'] * width)
                        + "]\n" for i in range(levels)),
              st.integers(1, 10), st.integers(1, 12), st.booleans()),  # alias-heavy: up to 12**10 strings
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


passwords = st.text(alphabet=st.sampled_from(list("aZ9 '\"\\\t\x01üß€😀%#?/@:;&=")), min_size=1, max_size=20)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(password=passwords)
def test_a_password_in_a_uri_never_shows(ip: InteractiveShell, password: str) -> None:
    """Quotes, backslashes, non-ASCII, '#', '?', '/', '@', spaces: the refusal never shows any of it."""
    known, forms = set(_secrets._known), list(_secrets._forms)
    try:
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("mlmd", f"connect mysql://u:Zq{password}Zq@127.0.0.1:1/db")
    finally:  # forget what this case made the process remember: 1,000 passwords would slow every redaction
        with _secrets._lock:
            _secrets._known.clear()
            _secrets._known.update(known)
            _secrets._forms[:] = forms
    assert "Zq" not in str(info.value), str(info.value)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(folders=st.lists(st.integers(0, 4), min_size=1, max_size=6),
       files=st.lists(st.integers(0, 6), min_size=1, max_size=6),
       links=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.booleans()), max_size=6))
def test_symlinked_data_folders_count_each_file_once(store: mm.Store, folders: list[int], files: list[int],
                                                     links: list[tuple[int, int, bool]]) -> None:
    """Random trees with links to folders (up the tree too: loops) and to files: each real file counts once."""
    from mlmd_magic.core.datafiles import write_tfrecord

    root = tempfile.mkdtemp()
    try:
        dirs = [root]
        for parent in folders:  # each new folder inside one made before
            dirs.append(os.path.join(dirs[parent % len(dirs)], f"d{len(dirs)}"))
            os.mkdir(dirs[-1])
        real = []
        for i, where in enumerate(files):
            real.append(os.path.join(dirs[where % len(dirs)], f"f{i}.tfrecord"))
            write_tfrecord(real[-1], [{"x": 1.0, "label": i % 2}])
        for i, (where, target, to_folder) in enumerate(links):
            link = os.path.join(dirs[where % len(dirs)], f"link{i}" + ("" if to_folder else ".tfrecord"))
            os.symlink(dirs[target % len(dirs)] if to_folder else real[target % len(real)], link)
        try:
            record = store.add_datasource(f"links-{len(store.names('datasources'))}", uri=root, format="tfrecord",
                                          splits={"all": "**/*.tfrecord"}, label="label")
        except mm.DataSourceError as exc:
            raise AssertionError(f"a tree of {len(real)} files was refused: {exc}") from None
        assert record.data["examples"] == {"all": len(real)}
    finally:
        shutil.rmtree(root)
