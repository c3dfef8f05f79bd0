"""Filtered listings give the same rows however they read (docs/listings.md): walking the
newest rows and evaluating the filter in Python, or asking MLMD's filter query for the rows
the filter may pass (flat ``param.*`` / ``metric.*`` custom properties, names, ids, states,
properties, events), from the start or after some rows were walked — on random records and
random filters (quotes, globs, nested keys, missing keys, mixed kinds), on SQLite and MariaDB.
Also: the one quoting function, the flat values written and given by the maintenance action."""

from __future__ import annotations

import collections
import itertools
import json
import random
import unicodedata
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.backend import listing
from mlmd_magic.backend.listing import Unquotable, quote, strategy
from mlmd_magic.backend.properties import FLAT, FLAT_MARK, FLAT_TYPES, flat_metrics, has_flat
from mlmd_magic.backend.types import full
from mlmd_magic.core.query import Atom, Node, parse_where
from mlmd_magic.errors import ValidationError

# ------------------------------------------------------------------------------- random records

TEXTS = ["sgd", "adam", "SGD", "it's", 'say "hi"', "a*b", "50%", "x_y", "É", "", "back\\slash", "t21-*", "[8,4]",
         "e1", "mlp", "both ' and \"", "NAME", "id", "Type", "string_value", "L" * 1001]
NUMBERS = [0, 1, 7, -3, 40, 2 ** 31, 2 ** 40, 2 ** 53, 2 ** 53 + 1, 0.5, 0.001, 7.0, -2.5, 1e300, 10 ** 305,
           True, False]
SCALARS: list[Any] = [*TEXTS, *NUMBERS, None]
LISTS: list[Any] = [[8, 4], [8], [], ["a"]]
PARAM_KEYS = ["lr", "Lr", "opt", "tag", "name", "version", "hidden", "a-b", "näme", "model", "trial", "x:y/z+w@v",
              "u:v/w@x"]
FILTER_KEYS = [*PARAM_KEYS, "opt.x", "opt.y", "params.lr", "params.opt.x", "params.name", "params", "missing",
               "experiment", "datasource", "scenario", "description", "lr.x", "tag.x.y"]
OPS = ["==", "==", "==", "!=", "<", "<=", ">", ">=", "~"]  # most comparisons can be asked by plan

values = st.sampled_from(SCALARS + LISTS)
params = st.dictionaries(st.sampled_from(PARAM_KEYS),
                         values | st.dictionaries(st.sampled_from(["x", "y"]), values, max_size=2), max_size=5)


def render(value: Any) -> str:
    """A value as the filter language writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def text_of(tree: Atom | Node) -> str:
    if isinstance(tree, Atom):
        return f"{tree.key} {tree.op} {render(tree.value)}"
    if tree.op == "not":
        return f"not ({text_of(tree.parts[0])})"
    return "(" + f" {tree.op} ".join(text_of(p) for p in tree.parts) + ")"


def atoms_of(keys: list[str], glob_values: list[str]) -> st.SearchStrategy[Atom]:
    value = st.sampled_from(SCALARS) | st.sampled_from(glob_values)
    return st.builds(Atom, st.sampled_from(keys), st.sampled_from(OPS), value)


def trees(keys: list[str], glob_values: list[str]) -> st.SearchStrategy[Atom | Node]:
    return st.recursive(atoms_of(keys, glob_values), lambda inner: st.one_of(
        st.builds(lambda parts: Node("and", tuple(parts)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda parts: Node("or", tuple(parts)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda part: Node("not", (part,)), inner),
        st.builds(lambda part: Node("not", (Node("not", (part,)),)), inner)), max_leaves=4)


GLOBS = ["e*", "*1", "?1", "s*", "*'*", "[ae]*", "mlp", "*%*", "*"]
queries = st.tuples(trees(FILTER_KEYS, GLOBS), st.sampled_from([None, 1, 2, 4]), st.sampled_from([0, 0, 1, 2]),
                    st.booleans())


def test_the_rendered_filters_parse_back() -> None:
    @settings(max_examples=200, deadline=None)
    @given(tree=trees(FILTER_KEYS, GLOBS))
    def check(tree: Atom | Node) -> None:
        assert parse_where(text_of(tree)) == tree

    check()


# ------------------------------------------------------------------------------ building stores

@pytest.fixture(scope="module")
def nipt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return datasets.simulate_nipt(str(tmp_path_factory.mktemp("nipt")), n_train=8, n_eval=4, n_test=4)


def fill(store: mm.Store, nipt: dict[str, Any], scenarios: list[dict[str, Any]], experiments: list[tuple[str, int]]
         ) -> None:
    """Scenarios with these parameters, and experiment versions (name, scenario number): a name
    defined again over another scenario gets a new version."""
    store.add_datasource("ds", **nipt)
    for i, values_ in enumerate(scenarios):
        store.add_scenario(f"sc{i}", model="mlp", params=values_, description="it's" if i % 2 else None)
    for name, number in experiments:
        store.add_experiment(name, datasource="ds", scenario=f"sc{number % len(scenarios)}")


WAYS = [("walk", 0), ("plan", 0), ("plan", 1), ("plan", 3)]


READ = collections.Counter()  # how the listings of the tests below read: by plan, or walking only


def listed(store: mm.Store, kind: str, text: str, limit: int | None, offset: int, all_versions: bool, way: str,
           after: int) -> tuple[str, Any]:
    kwargs: dict[str, Any] = {"limit": limit, "offset": offset}
    if kind in ("experiments", "scenarios"):
        kwargs["all_versions"] = all_versions
    made: list[listing.Scan] = []
    original = listing.Scan.__init__

    def spy(self: listing.Scan, *args: Any, **kwargs_: Any) -> None:
        original(self, *args, **kwargs_)
        made.append(self)

    try:
        with strategy(way, after), mock.patch.object(listing.Scan, "__init__", spy):
            frame = store.ls(kind, where=text, **kwargs)
    except ValidationError as exc:  # the key named; the keys listed beside it are those of the rows read
        return "error", str(exc).split(" (the filter names it)")[0]
    finally:
        READ["plan" if any(scan.driving for scan in made) else "walk"] += 1
    return "rows", frame


def same_rows(store: mm.Store, kind: str, text: str, limit: int | None, offset: int, all_versions: bool) -> None:
    results = {(way, after): listed(store, kind, text, limit, offset, all_versions, way, after)
               for way, after in WAYS}
    base = results[("walk", 0)]
    for (way, after), got in results.items():
        if base[0] == "error" or got[0] == "error":
            if after or way == "walk":  # by plan from the start no row is walked: no key is noticed
                assert got == base, (way, after, text)
            continue
        assert got[1].equals(base[1]), (way, after, text, limit, offset, all_versions, got[1], base[1])


def test_every_way_of_reading_gives_the_same_records(nipt: dict[str, Any]) -> None:
    READ.clear()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scenarios=st.lists(params, min_size=1, max_size=4),
           experiments=st.lists(st.tuples(st.sampled_from(["e1", "e2", "e_3", "x1"]), st.integers(0, 3)),
                                max_size=10),
           asked=st.lists(queries, min_size=1, max_size=4))
    def check(scenarios: list[dict[str, Any]], experiments: list[tuple[str, int]],
              asked: list[tuple[Any, Any, Any, Any]]) -> None:
        with mm.connect("memory://") as store:
            fill(store, nipt, scenarios, experiments)
            for tree, limit, offset, all_versions in asked:
                for kind in ("experiments", "scenarios"):
                    same_rows(store, kind, text_of(tree), limit, offset, all_versions)

    check()
    assert READ["plan"] * 20 >= sum(READ.values()), READ  # the filters had covers often enough to test them


@pytest.mark.mysql
def test_every_way_of_reading_gives_the_same_records_on_mariadb(nipt: dict[str, Any], mysql_uri: str) -> None:
    """MariaDB compares strings without case: its filter query finds more, never fewer."""
    rng = random.Random(34)
    scenarios = [{k: rng.choice(SCALARS + LISTS) for k in rng.sample(PARAM_KEYS, 4)} for _ in range(6)]
    scenarios.append({"opt": {"x": "SGD", "y": 7}, "lr": "sgd", "tag": "Sgd"})
    experiments = [(rng.choice(["e1", "e2", "e_3", "x1", "y2"]), rng.randrange(7)) for _ in range(20)]
    with mm.connect(mysql_uri) as store:
        fill(store, nipt, scenarios, experiments)

        @settings(max_examples=80, deadline=None)
        @given(query=queries)
        def check(query: tuple[Any, Any, Any, Any]) -> None:
            tree, limit, offset, all_versions = query
            for kind in ("experiments", "scenarios"):
                same_rows(store, kind, text_of(tree), limit, offset, all_versions)

        READ.clear()
        check()
        assert READ["plan"] * 20 >= sum(READ.values()), READ


# ------------------------------------------------------------------------ runs, models, evaluations

def write_runs(store: mm.Store, rng: random.Random, count: int) -> None:
    """Runs as Runs.train writes them (a Train execution named EXPERIMENT@N#K, its INPUT events,
    its model with flat metrics, details with metrics per split), and evaluations of models."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from mlmd_magic.backend.properties import set_properties
    from mlmd_magic.core.values import canonical_json

    mlmd = store.mlmd
    types = {t.name: t.id for t in mlmd.get_execution_types()}
    arts = {t.name: t.id for t in mlmd.get_artifact_types()}
    experiments = [a for a in mlmd.get_artifacts_by_type(full("Experiment"))]
    models: dict[int, dict[str, Any]] = {}  # model id -> the metrics of the run that wrote it
    numbers: dict[str, int] = {}
    for i in range(count):
        exp = rng.choice(experiments)
        numbers[exp.name] = numbers.get(exp.name, 0) + 1
        state = rng.choice(["COMPLETE", "COMPLETE", "FAILED", "CANCELED", "CACHED", "RUNNING"])
        if state == "CACHED" and not models:
            state = "COMPLETE"
        cached_from = rng.choice(sorted(models)) if state == "CACHED" else None
        metrics = models[cached_from] if cached_from is not None else {
            split: {m: rng.choice([0.5, 0.9, 0.95, 1, 0.0]) for m in rng.sample(["accuracy", "loss"], 2)}
            for split in rng.sample(["eval", "test", "train"], rng.randint(1, 2))}
        execution = pb.Execution(type_id=types[full("Train")], last_known_state=pb.Execution.State.Value(state))
        if i % 7:  # now and then a run without a name, as written before runs were named
            execution.name = f"{exp.name}#{numbers[exp.name]}"
        details: dict[str, Any] = {"task": "binary", "device": "cpu", "epochs": 1}
        if state in ("COMPLETE", "CACHED"):  # a CACHED run's details are those of the run it reuses
            details["metrics"] = metrics
        set_properties(execution, user=rng.choice(["ann", "bob", "o'neil"]), details=canonical_json(details),
                       owner="elsewhere:1", duration_s=1.5)
        events = [(exp, pb.Event(type=pb.Event.INPUT))]
        if state == "COMPLETE":
            model = pb.Artifact(type_id=arts[full("Model")], name=execution.name or f"m{i}", uri=f"/m/{i}",
                                state=pb.Artifact.LIVE)
            set_properties(model, experiment=exp.name, task=rng.choice(["binary", "multiclass"]),
                           metrics=canonical_json(metrics))
            flat_metrics(model, metrics)
            events.append((model, pb.Event(type=pb.Event.OUTPUT)))
        elif cached_from is not None:
            (model,) = mlmd.get_artifacts_by_id([cached_from])
            events.append((model, pb.Event(type=pb.Event.OUTPUT)))
        _, ids, _ = mlmd.put_execution(execution, [(a, e) for a, e in events], [])
        if state == "COMPLETE":
            models[ids[-1]] = metrics
    for model_id in rng.sample(sorted(models), min(len(models), 6)):
        evaluation = pb.Artifact(type_id=arts[full("Evaluation")], state=pb.Artifact.LIVE, uri=f"/e/{model_id}")
        set_properties(evaluation, metrics=canonical_json({"task": "binary", "metrics": {}}), thresholds="[]",
                       slices="[]", checks="[]", split=rng.choice(["ds@1:test", "ds@1:eval"]),
                       policy=rng.choice(["release@1", "release@2", "it's@1", None]))
        evaluation.custom_properties["blessed"].int_value = rng.choice([0, 1])
        evaluation.custom_properties["current_model_id"].int_value = model_id
        (model,) = mlmd.get_artifacts_by_id([model_id])
        mlmd.put_execution(pb.Execution(type_id=types[full("Evaluate")], last_known_state=pb.Execution.COMPLETE),
                           [(model, pb.Event(type=pb.Event.INPUT)), (evaluation, pb.Event(type=pb.Event.OUTPUT))],
                           [])


RUN_KEYS = ["lr", "opt", "opt.x", "tag", "hidden", "eval", "params", "metrics", "eval.accuracy", "test.loss",
            "metrics.eval.accuracy",
            "params.lr", "params.opt.x", "state", "user", "experiment", "name", "run", "model", "epochs",
            "task", "created", "missing", "train.accuracy", "trial"]
MODEL_KEYS = ["model", "name", "experiment", "task", "state", "uri", "created", "verdicts", "missing"]
EVALUATION_KEYS = ["evaluation", "policy", "data", "verdict", "model", "created", "missing", "checks"]
RUN_GLOBS = ["e1@*", "*#1", "release@*", "ann", "COMPLETE", "FAIL*", "ds@1:*", "BLESSED", "NOT BLESSED", "/m/*"]
EXTRA = ["COMPLETE", "FAILED", "RUNNING", "CACHED", "CANCELED", "LIVE", "ann", "o'neil", "e1@1", "e1@1#1",
         "release@1", "ds@1:test", "BLESSED", "NOT BLESSED", "binary", "/m/3", "run #9", 0.9, 0.95, 3, 5]


def run_queries(keys: list[str]) -> st.SearchStrategy[Any]:
    atom = st.builds(Atom, st.sampled_from(keys), st.sampled_from(OPS),
                     st.sampled_from(SCALARS + EXTRA) | st.sampled_from(RUN_GLOBS))
    tree = st.recursive(atom, lambda inner: st.one_of(
        st.builds(lambda parts: Node("and", tuple(parts)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda parts: Node("or", tuple(parts)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda part: Node("not", (part,)), inner)), max_leaves=3)
    return st.tuples(tree, st.sampled_from([None, 1, 3]), st.sampled_from([0, 0, 1]))


@pytest.mark.parametrize("backend,blocks", [("sqlite", False), ("sqlite", True),
                                            pytest.param("mysql", False, marks=pytest.mark.mysql)])
def test_every_way_of_reading_gives_the_same_runs_models_and_evaluations(nipt: dict[str, Any], tmp_path: Path,
                                                                           backend: str, blocks: bool,
                                                                           request: pytest.FixtureRequest,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``blocks``: runs found through their experiments and models are walked 16 execution ids at
    a time, and MLMD's answers counted in pages of 4, so that every path of a LinkStream is taken
    (walking runs by their links, then reading few artifacts at once, or walking on). Listings
    are not recorded here (each would add an execution: the walks would grow with the test)."""
    if blocks:
        monkeypatch.setattr(listing, "_LINK_BLOCK", 16)
        monkeypatch.setattr(listing, "_PAGE", 4)
    rng = random.Random(7)
    uri = f"sqlite:///{tmp_path}/runs.sqlite" if backend == "sqlite" else request.getfixturevalue("mysql_uri")
    scenarios = [{"lr": rng.choice([0.5, 0.001, 7, "sgd"]), "opt": {"x": rng.choice(SCALARS)},
                  "tag": rng.choice(SCALARS), "hidden": rng.choice(LISTS)} for _ in range(5)]
    with mm.connect(uri) as store:
        fill(store, nipt, scenarios, [(f"e{i % 4}", i) for i in range(9)])
        write_runs(store, rng, 60)

        @settings(max_examples=40 if backend == "sqlite" else 20, deadline=None)
        @given(run=run_queries(RUN_KEYS), model=run_queries(MODEL_KEYS), evaluation=run_queries(EVALUATION_KEYS))
        def check(run: Any, model: Any, evaluation: Any) -> None:
            with store.unrecorded():
                for kind, (tree, limit, offset) in (("runs", run), ("models", model), ("evaluations", evaluation)):
                    same_rows(store, kind, text_of(tree), limit, offset, False)

        READ.clear()
        check()
        assert READ["plan"] * 20 >= sum(READ.values()), READ


# ------------------------------------------------------------------- choosing how to read, quoting

def test_quote_refuses_what_mlmd_would_not_compare_exactly() -> None:
    assert quote("it's") == "'it\\'s'" and quote('say "hi"') == "'say \"hi\"'"
    assert quote(7) == "7" and quote(-2.5) == "-2.5" and quote(True) == "1" and quote(1e300) == "1e+300"
    for bad in ("back\\slash", "both ' and \"", "tab\there", "line\nbreak", "\x7f", float("nan"), float("inf"),
                2 ** 63, [1], None):
        with pytest.raises(Unquotable):
            quote(bad)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_quoted_string_finds_exactly_itself(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    """Any string quote() takes is compared as itself by MLMD's filter query: exactly on
    SQLite; on MariaDB among the strings equal to it but for case and trailing spaces."""
    from ml_metadata.metadata_store import metadata_store as ms
    from ml_metadata.proto import metadata_store_pb2 as pb

    uri = f"sqlite:///{tmp_path}/q.sqlite" if backend == "sqlite" else request.getfixturevalue("mysql_uri")
    with mm.connect(uri) as store:
        mlmd = store.mlmd
        type_id = mlmd.put_artifact_type(pb.ArtifactType(name="quote_test"))
        stored: dict[int, str] = {}

        @settings(max_examples=150 if backend == "sqlite" else 60, deadline=None)
        @given(text=st.text(max_size=12) | st.sampled_from(TEXTS))
        def check(text: str) -> None:
            try:
                literal = quote(text)
            except Unquotable:  # refused only for the reasons quote() gives
                assert "\\" in text or ("'" in text and '"' in text) or text.lower() in listing.SQL_COLUMNS or any(
                    unicodedata.category(ch) == "Cc" for ch in text), text
                return
            art = pb.Artifact(type_id=type_id)
            art.custom_properties["s"].string_value = text
            [art_id] = mlmd.put_artifacts([art])
            stored[art_id] = text
            found = {a.id for a in mlmd.get_artifacts(list_options=ms.ListOptions(
                filter_query=f"type = 'quote_test' AND custom_properties.s.string_value = {literal}"))}
            expected = {i for i, t in stored.items() if t == text}
            if backend == "sqlite":
                assert found == expected, (text, literal)
            else:  # MariaDB's collation: also the strings that differ in case, accents, trailing spaces
                assert expected <= found, (text, literal)

        check()


def test_compare_terms_round_whole_number_bounds() -> None:
    column = [("x", "int")]
    assert listing.compare_terms(column, Atom("k", ">=", 2.5)) == ["x >= 3"]
    assert listing.compare_terms(column, Atom("k", ">", 2.5)) == ["x > 2"]
    assert listing.compare_terms(column, Atom("k", "<=", -2.5)) == ["x <= -3"]
    assert listing.compare_terms(column, Atom("k", "==", 2.5)) == []
    assert listing.compare_terms(column, Atom("k", "==", True)) == ["x = 1"]
    assert listing.compare_terms(column, Atom("k", "<", 2 ** 40)) == [f"x < {2 ** 31}"]
    assert listing.compare_terms(column, Atom("k", "==", "7")) == []  # a number never equals a string
    assert listing.compare_terms(column, Atom("k", "!=", 7)) is None
    assert listing.compare_terms(column, Atom("k", "==", 2 ** 60)) is None  # beyond exact doubles
    assert listing.compare_terms([("s", "string")], Atom("k", "<", "b")) is None  # string orders differ
    assert listing.compare_terms([("s", "string")], Atom("k", "~", "a*"), glob=True) == ["s LIKE 'a%'"]
    assert listing.compare_terms([("s", "string")], Atom("k", "==", "back\\slash")) is None


def _scan_log(monkeypatch: pytest.MonkeyPatch) -> list[listing.Scan]:
    made: list[listing.Scan] = []
    original = listing.Scan.__init__

    def spy(self: listing.Scan, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(listing.Scan, "__init__", spy)
    return made


def _many_experiments(store: mm.Store, nipt: dict[str, Any], n: int) -> None:
    """``n`` experiment versions written with MLMD batch calls, flat values as ours."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from mlmd_magic.backend.properties import flat_params
    from mlmd_magic.core.values import canonical_json

    store.add_datasource("ds", **nipt)
    store.add_scenario("sc", model="mlp", params={"epochs": 1, "tag": 0})
    type_id = store.mlmd.get_artifact_type(full("Experiment")).id
    arts = []
    for i in range(n):
        art = pb.Artifact(type_id=type_id, name=f"exp-{i}@1", external_id=f"x:{i}", state=pb.Artifact.LIVE)
        params_ = {"epochs": i % 50 + 1, "tag": i % 100, "rare": i % 1000}
        for key, value in (("datasource", "ds@1"), ("scenario", "sc@1"), ("model", "mlp"),
                           ("params", canonical_json(params_)), ("overrides", "{}"), ("resolved", "{}")):
            art.properties[key].string_value = value
        art.properties["version"].int_value = 1
        flat_params(art)
        arts.append(art)
    store.mlmd.put_artifacts(arts)


def test_a_common_filter_is_walked_and_a_rare_one_asked(nipt: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    made = _scan_log(monkeypatch)
    with mm.connect(f"sqlite:///{tmp_path}/s.sqlite") as store:
        _many_experiments(store, nipt, 3000)
        common = store.ls("experiments", where="epochs >= 3", limit=20)
        assert len(common) == 20 and not made[-1].driving
        rare = store.ls("experiments", where="tag == 7", limit=20)
        assert list(rare["name"]) == [f"exp-{i}" for i in range(2907, 0, -100)][:20] and made[-1].driving
        very_rare = store.ls("experiments", where="rare == 7 and epochs >= 3", limit=20)
        assert list(very_rare["name"]) == ["exp-2007", "exp-1007", "exp-7"] and made[-1].driving
        assert [a.key for a, _ in made[-1].chosen] == ["rare"]  # the rarer comparison is asked
        everything = store.ls("experiments", where="tag == 7 or rare == 8")
        assert len(everything) == 33 and made[-1].driving
        # a typo is still named, after asking the store
        with pytest.raises(ValidationError, match="did you mean 'tag'"):
            store.ls("experiments", where="tags == 7", limit=20)


def test_versions_without_flat_values_are_walked_until_indexed(nipt: dict[str, Any], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A store written before flat values existed: listings walk (and find the same rows) until
    ``index_filters`` gives the versions their flat values, which changes no content or hash,
    leaves other tools' nodes alone, is recorded, and goes on where it stopped."""
    from ml_metadata.metadata_store import metadata_store as ms
    from ml_metadata.proto import metadata_store_pb2 as pb

    from mlmd_magic.store import filters, maintenance

    made = _scan_log(monkeypatch)
    path = str(tmp_path / "old.sqlite")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri, config.sqlite.connection_mode = path, 3
    raw = ms.MetadataStore(config)  # the types, as a version before flat values created them
    for short in FLAT_TYPES:
        raw.put_artifact_type(pb.ArtifactType(name=full(short)))
    del raw
    with mm.connect(f"sqlite:///{path}") as store:
        _many_experiments(store, nipt, 1200)
        mlmd = store.mlmd
        tfx_type = mlmd.put_artifact_type(pb.ArtifactType(name="Examples"))
        tfx = pb.Artifact(type_id=tfx_type, uri="/tfx")
        tfx.custom_properties["param.x"].int_value = 1
        mlmd.put_artifacts([tfx])
        assert not filters.flat_ready(mlmd, full("Experiment"))
        # strip the flat values, as a version written before them has none
        olds = [a for a in mlmd.get_artifacts_by_type(full("Experiment"))]
        for art in olds:
            for key in [k for k in art.custom_properties]:
                del art.custom_properties[key]
        mlmd.put_artifacts(olds, field_mask_paths=["custom_properties"])
        filters.forget_flat(mlmd)
        before = {a.id: (a.name, a.external_id, dict(a.properties)) for a in mlmd.get_artifacts_by_type(
            full("Experiment"))}
        expected = ["exp-1107", "exp-1007", "exp-907"]
        assert list(store.ls("experiments", where="tag == 7", limit=3)["name"]) == expected
        assert not made[-1].driving

        def stop(kind: str, done: int) -> None:
            if kind == "experiments" and done >= 500:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            maintenance.index_filters(mlmd, store._recorder.types, batch=500, progress=stop)
        filters.forget_flat(mlmd)
        assert not filters.flat_ready(mlmd, full("Experiment"))  # the type is marked once all its nodes are done
        assert list(store.ls("experiments", where="tag == 7", limit=3)["name"]) == expected
        assert not made[-1].driving
        counts = store.index_filters()
        assert counts["experiments"] == 700 and counts["already"] >= 500
        assert filters.flat_ready(mlmd, full("Experiment")) and filters.flat_ready(mlmd, full("Model"))
        after = {a.id: (a.name, a.external_id, dict(a.properties)) for a in mlmd.get_artifacts_by_type(
            full("Experiment"))}
        assert after == before  # contents and hashes as they were
        assert all(has_flat(a) for a in mlmd.get_artifacts_by_type(full("Experiment")))
        (untouched,) = mlmd.get_artifacts_by_type("Examples")
        assert dict(untouched.custom_properties) == dict(tfx.custom_properties)
        assert FLAT not in untouched.custom_properties
        assert list(store.ls("experiments", where="tag == 7", limit=3)["name"]) == expected
        assert made[-1].driving
        recorded = mlmd.get_executions_by_type(full("IndexFilters"))
        assert recorded and recorded[-1].properties["outcome"].string_value.startswith("700 experiments")
        assert store.index_filters()["experiments"] == 0  # once is enough


def test_new_versions_trials_and_models_carry_flat_values(nipt: dict[str, Any]) -> None:
    with mm.connect("memory://") as store:
        for short in FLAT_TYPES:  # a new store's types say that all their nodes carry them
            assert FLAT_MARK in store.mlmd.get_artifact_type(full(short)).properties
        store.add_datasource("ds", **nipt)
        store.add_scenario("sc", model="mlp", params={"opt": {"lr": 0.5, "name": "sgd"}, "epochs": 3,
                                                      "hidden": [8, 4], "flag": True, "note": None})
        store.add_experiment("e", datasource="ds", scenario="sc", overrides={"epochs": 5})
        trial = store._records.define_trial("e@1", "search@1", 1, {"epochs": 9})
        for ref, kind in (("sc", "scenarios"), ("e", "experiments"), (trial, "experiments")):
            art = store._records.resolve(kind, ref)
            custom = {k: v.WhichOneof("value") and getattr(v, v.WhichOneof("value"))
                      for k, v in art.custom_properties.items()}
            epochs = 3 if kind == "scenarios" else 5 if ref == "e" else 9
            assert custom == {"flat": 1, "param.opt": "", "param.opt.lr": 0.5, "param.opt.name": "sgd",
                              "param.epochs": epochs, "param.hidden": "[8,4]", "param.flag": 1, "param.note": ""}


def test_filters_on_every_kind_find_their_rows(nipt: dict[str, Any], tmp_path: Path) -> None:
    """A row each kind's filter names, read by plan from the start (the rare way)."""
    rng = random.Random(3)
    with mm.connect(f"sqlite:///{tmp_path}/k.sqlite") as store:
        fill(store, nipt, [{"optimizer": "sgd", "lr": 0.1}, {"optimizer": "adam", "lr": 0.01}],
             [("a", 0), ("b", 1), ("a", 1)])
        store.add_policy("release", thresholds=[{"metric": "accuracy", "lower": 0.5}], owner="qa")
        write_runs(store, rng, 30)
        with strategy("plan", 0):
            assert list(store.ls("experiments", where="optimizer == sgd")["name"]) == []  # a's latest is adam
            assert list(store.ls("experiments", where="optimizer == sgd", all_versions=True)["name"]) == ["a"]
            assert list(store.ls("scenarios", where="lr < 0.05")["name"]) == ["sc1"]
            assert list(store.ls("policies", where="owner == qa")["name"]) == ["release"]
            assert list(store.ls("datasources", where="name ~ 'd*'")["name"]) == ["ds"]
            for kind, text in (("runs", "optimizer == sgd"), ("runs", "eval.accuracy >= 0.9"),
                               ("runs", "state == FAILED"), ("runs", "user == \"o'neil\""),
                               ("runs", "experiment ~ 'a@*'"), ("models", "task == binary"),
                               ("evaluations", "verdict == 'NOT BLESSED' and policy ~ 'release@*'")):
                with strategy("walk"):
                    walked = store.ls(kind, where=text)
                assert walked.equals(store.ls(kind, where=text)), (kind, text)
                assert len(walked), (kind, text)


def test_a_listing_read_by_plan_costs_few_mlmd_calls(nipt: dict[str, Any], tmp_path: Path) -> None:
    """A rare filter's first page over many versions: a handful of MLMD calls, none per row."""
    with mm.connect(f"sqlite:///{tmp_path}/c.sqlite") as store:
        _many_experiments(store, nipt, 2000)
        calls = itertools.count()
        real = store.mlmd

        class Counting:
            def __getattr__(self, name: str) -> Any:
                method = getattr(real, name)

                def call(*args: Any, **kwargs: Any) -> Any:
                    next(calls)
                    return method(*args, **kwargs)

                return call

        store._recorder.mlmd = Counting()  # type: ignore[assignment]
        try:
            frame = store.ls("experiments", where="rare == 7", limit=20)
        finally:
            store._recorder.mlmd = real
        assert list(frame["name"]) == ["exp-1007", "exp-7"]
        assert next(calls) < 15


def test_flat_values_json_stays_the_truth(nipt: dict[str, Any]) -> None:
    """Filters read values from the records; a flat value that disagrees changes nothing."""
    with mm.connect("memory://") as store:
        fill(store, nipt, [{"tag": 1}], [("e", 0)])
        art = store._records.resolve("experiments", "e")
        art.custom_properties["param.tag"].int_value = 2  # a wrong index entry
        store.mlmd.put_artifacts([art], field_mask_paths=["custom_properties"])
        with strategy("plan", 0):
            assert store.ls("experiments", where="tag == 2").empty  # found by its flat value, refused by its own
        assert json.loads(art.properties["params"].string_value) == {"tag": 1}


@pytest.mark.parametrize("where", ["not " * 2000 + "epochs == 1", "(" * 2000 + "epochs == 1" + ")" * 2000,
                                   "not (" * 60 + "epochs == 1" + ")" * 60])
def test_a_deeply_nested_filter_is_a_validation_error(mem_store: mm.Store, where: str) -> None:
    """A filter nested more than 50 deep (``not``s or parentheses) is refused with a
    ValidationError, not Python's RecursionError."""
    with pytest.raises(mm.ValidationError, match="more than 50 deep"):
        mem_store.ls("scenarios", where=where)


def test_every_face_lists_a_rare_filter_as_the_library_does(nipt: dict[str, Any], tmp_path: Path, ip: Any,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``%mlmd ls``, ``mlmd-magic ls`` and the browser's page read a rare filter by plan and list
    the rows the walk lists; ``index-filters`` is a subcommand of both faces."""
    from mlmd_magic.cli import main

    made = _scan_log(monkeypatch)
    uri = f"sqlite:///{tmp_path}/faces.sqlite"
    with mm.connect(uri) as store:
        _many_experiments(store, nipt, 3000)
        with strategy("walk"):
            walked = list(store.ls("experiments", where="tag == 7", limit=20)["name"])
        paged = store.page("experiments", "tag == 7", limit=20)
        assert list(paged.frame["name"]) == walked and made[-1].driving
    ip.run_line_magic("mlmd", f"connect {uri}")
    frame = ip.run_line_magic("mlmd", "ls experiments --where 'tag == 7' --limit 20")
    assert list(frame["name"]) == walked and made[-1].driving
    capsys.readouterr()
    assert ip.run_line_magic("mlmd", "ls experiments --where 'rare == 5000'").empty
    assert capsys.readouterr().out == "no experiments to list that pass the filter\n"
    said = ip.run_line_magic("mlmd", "index-filters")
    assert str(said) == ("nothing to do: all 3001 experiment and scenario versions and models already carry the "
                         "values that make rare filters fast")
    ip.run_line_magic("mlmd", "close")
    capsys.readouterr()
    assert main(["--uri", uri, "--json", "ls", "experiments", "--where", "tag == 7", "--limit", "20"]) == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == walked and made[-1].driving
    assert main(["--uri", uri, "index-filters"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_values_kept_rounded_clamped_or_not_at_all_are_still_found(nipt: dict[str, Any]) -> None:
    """A whole number beyond 2**53 is kept as a rounded double, one beyond 1e300 clamped, a long
    string as "", a version with more values than are kept flat keeps none (and is marked so):
    each is found by plan as by walking."""
    from mlmd_magic.backend.properties import FLAT_LEAVES

    many = {f"k{i}": i for i in range(FLAT_LEAVES + 1)}
    with mm.connect("memory://") as store:
        fill(store, nipt, [{"x": 2 ** 53 + 1, "s": "L" * 1001}, {"x": 10 ** 305, "s": "short"}, many],
             [("e0", 0), ("e1", 1), ("e2", 2)])
        art = store._records.resolve("experiments", "e2")
        assert art.custom_properties[FLAT].int_value < 0 and "param.k1" not in art.custom_properties
        for text, names in (("x > 9007199254740992", ["e1", "e0"]), ("x > 1e300", ["e1"]), ("x >= 1e300", ["e1"]),
                            ("s == '" + "L" * 1001 + "'", ["e0"]), ("k7 == 7", ["e2"]), ("k7 > 3", ["e2"])):
            with strategy("walk"):
                walked = list(store.ls("experiments", where=text)["name"])
            with strategy("plan", 0):
                planned = list(store.ls("experiments", where=text)["name"])
            assert walked == planned == names, (text, walked, planned)


def test_a_model_id_no_artifact_can_have_finds_no_run(nipt: dict[str, Any]) -> None:
    with mm.connect("memory://") as store:
        fill(store, nipt, [{"tag": 1}], [("e", 0)])
        for text in ("model == 1e300", "model == -1", "model == 0", "model == 9223372036854775808"):
            with strategy("plan", 0):
                assert store.ls("runs", where=text).empty, text


def test_a_glob_on_nan_reads_its_text() -> None:
    assert listing.compare_terms([("s", "string")], Atom("k", "~", float("nan")), glob=True) == ["s LIKE 'nan'"]
    assert listing.compare_terms([("s", "string")], Atom("k", "==", float("nan"))) == []


def test_types_named_as_mlmd_columns_are_counted_and_flat_copies_are_not_shown(nipt: dict[str, Any]) -> None:
    """A type another tool named ``Version`` (a column of MLMD's SQL, so no filter query holds
    it) is counted; ``show`` and ``ls artifacts`` leave out the flat copies of a record's values."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    with mm.connect("memory://") as store:
        fill(store, nipt, [{"tag": 1}], [("e", 0)])
        type_id = store.mlmd.put_artifact_type(pb.ArtifactType(name="Version"))
        other = pb.Artifact(type_id=type_id, uri="/v")
        other.custom_properties["param.x"].int_value = 1  # another tool's: stays shown
        store.mlmd.put_artifacts([other])
        counted = {row["name"]: row["count"] for row in store.types(counts=True)}
        assert counted["Version"] == 1
        art = store._records.resolve("experiments", "e")
        shown = store.show(art.id)
        assert not any(k == FLAT or k.startswith("param.") for k in shown.custom_properties)
        listed = store.ls("artifacts", type=full("Experiment"))
        assert "param." not in listed["properties"][0]
        assert "param.x" in store.ls("artifacts", type="Version")["properties"][0]
