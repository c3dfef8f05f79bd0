"""Reading nodes of one type newest first (backend/listing.py) and filtered listings that read
only what the filter needs (store/records.py): the same rows as reading everything."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

import mlmd_magic as mm
from mlmd_magic.backend import listing
from mlmd_magic.backend.types import full

_COUNTER = itertools.count()


def _add_mix(mlmd: Any, layout: list[str]) -> None:
    """Artifacts of the types named in ``layout`` (``"Scenario"``/``"Model"``), one per entry, in order."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    ids = {t.name: t.id for t in mlmd.get_artifact_types()}
    for short, group in itertools.groupby(layout):
        mlmd.put_artifacts([pb.Artifact(type_id=ids[full(short)], name=f"mix-{next(_COUNTER)}@1")
                            for _ in group])


def _holes(mlmd: Any, n: int) -> None:
    """Consume ``n`` artifact ids without keeping any: a batch that fails on its last, duplicate
    name is rolled back, and MariaDB's AUTO_INCREMENT does not give the ids back."""
    from ml_metadata import errors as mlmd_errors
    from ml_metadata.proto import metadata_store_pb2 as pb

    type_id = mlmd.get_artifact_type(full("Model")).id
    batch = [pb.Artifact(type_id=type_id, name=f"hole-{i}") for i in range(n)] + [pb.Artifact(type_id=type_id,
                                                                                                name="hole-0")]
    with pytest.raises(mlmd_errors.AlreadyExistsError):
        mlmd.put_artifacts(batch)


def _reference(mlmd: Any, type_id: int) -> list[int]:
    return sorted((a.id for a in mlmd.get_artifacts() if a.type_id == type_id), reverse=True)


class _Counting:
    """Forwards to an MLMD store, counting the calls that ask by filter query."""

    def __init__(self, mlmd: Any) -> None:
        self.mlmd, self.by_filter = mlmd, 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.mlmd, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            options = kwargs.get("list_options")
            self.by_filter += bool(options is not None and options.filter_query)
            return method(*args, **kwargs)

        return call


def _check_walks(mlmd: Any) -> None:
    for short in ("Scenario", "Model"):
        type_id = mlmd.get_artifact_type(full(short)).id
        expected = _reference(mlmd, type_id)
        for page in (1, 20, 100, 500):
            got = [a.id for a in listing.newest_first(mlmd, "artifacts", full(short), type_id, page)]
            assert got == expected, (short, page)
            # stopping early reads and returns the newest ones
            first = list(itertools.islice(listing.newest_first(mlmd, "artifacts", full(short), type_id, page), 7))
            assert [a.id for a in first] == expected[:7]


@pytest.mark.parametrize("seed", range(4))
def test_newest_first_matches_a_full_read_on_mixed_stores(seed: int, tmp_path: Any) -> None:
    rng = random.Random(seed)
    # long runs of one type and of the other, and scattered ones: every phase of the walk
    layout = ["Scenario"] * rng.randint(0, 3000) + [rng.choice(["Scenario", "Model"]) for _ in range(800)]
    layout += ["Model"] * rng.randint(0, 3000) + ["Scenario"] * rng.randint(0, 50)
    with mm.connect(f"sqlite:///{tmp_path}/mix.sqlite") as store:
        mlmd = store.mlmd
        _add_mix(mlmd, layout)
        _check_walks(mlmd)


def test_newest_first_asks_dense_ids_by_id(tmp_path: Any) -> None:
    with mm.connect(f"sqlite:///{tmp_path}/dense.sqlite") as store:
        _add_mix(store.mlmd, ["Scenario"] * 3000)
        counting = _Counting(store.mlmd)
        type_id = store.mlmd.get_artifact_type(full("Scenario")).id
        got = [a.id for a in listing.newest_first(counting, "artifacts", full("Scenario"), type_id)]
        assert got == _reference(store.mlmd, type_id)
        assert counting.by_filter == 0  # no filter query (MLMD parses one per page of 100)


@pytest.mark.mysql
def test_newest_first_over_sparse_ids_on_mariadb(mysql_uri: str) -> None:
    """Where ids are sparse (rolled-back batches on MariaDB), the walk asks by filter and still
    returns every node, newest first."""
    with mm.connect(mysql_uri) as store:
        mlmd = store.mlmd
        _add_mix(mlmd, ["Scenario"] * 300)
        _holes(mlmd, 2000)
        _add_mix(mlmd, ["Model", "Scenario"] * 150)
        _holes(mlmd, 300)
        _add_mix(mlmd, ["Scenario"] * 120 + ["Model"] * 5)
        _check_walks(mlmd)
        counting = _Counting(mlmd)
        type_id = mlmd.get_artifact_type(full("Scenario")).id
        assert len(list(listing.newest_first(counting, "artifacts", full("Scenario"), type_id))) == 570
        assert counting.by_filter  # the sparse ids were asked by filter


FILTERS = [
    "epochs >= 3", "epochs < 3 or model == 'cnn1d'", "name ~ 'e-1*'", "version >= 2", "version == 1 and epochs != 2",
    "datasource == 'ds@1'", "scenario == 'mlp@2'", "params.epochs > 1", "filters == 4", "not (epochs >= 2)",
    "experiment ~ '*3'", "model = mlp and lr < 0.01", "lr >= 0.001 or name == 'e-0'", "epochs == '3'",
]


def _full_view(store: mm.Store, name: str) -> dict[str, Any]:
    """What filters saw of an experiment before they read only the properties they need."""
    data = store.get_experiment(name)
    return {"experiment": name, "name": name, "version": data["version"],
            "datasource": f"{data['datasource']['name']}@{data['datasource']['version']}",
            "scenario": f"{data['scenario']['name']}@{data['scenario']['version']}",
            "model": data["scenario"]["model"], "params": data["params"]}


def test_filtered_listing_sees_what_a_full_read_sees(tmp_path: Any) -> None:
    from mlmd_magic import datasets
    from mlmd_magic.core.query import Where

    with mm.connect(f"sqlite:///{tmp_path}/f.sqlite") as store:
        store.add_datasource("ds", **datasets.simulate_nipt(str(tmp_path / "data"), n_train=8, n_eval=4, n_test=4))
        store.add_scenario("mlp", model="mlp", params={"hidden": [8], "epochs": 1, "lr": 0.001})
        store.add_scenario("mlp", model="mlp", params={"hidden": [8, 4], "epochs": 2, "lr": 0.01})
        store.add_scenario("cnn", model="cnn1d", params={"filters": 4, "epochs": 1})
        rng = random.Random(0)
        for i in range(24):
            scenario = rng.choice(["mlp@1", "mlp@2", "cnn"])
            for _ in range(rng.randint(1, 3)):  # some names get newer versions: only the latest is filtered
                store.add_experiment(f"e-{i}", datasource="ds", scenario=scenario,
                                 overrides={"epochs": rng.randint(1, 4)})
        names = list(store.ls("experiments")["name"])
        views = {name: _full_view(store, name) for name in names}
        for text in FILTERS:
            where = Where(text)
            expected = [n for n in names if where(views[n])]
            assert list(store.ls("experiments", where=text)["name"]) == expected, text
            assert list(store.ls("experiments", where=text, limit=2, offset=1)["name"]) == expected[1:3], text
        # a key no record has is still named, with the keys records do have
        with pytest.raises(mm.errors.ValidationError,
                           match=r"did you mean 'epochs'.*keys: datasource, .*experiment, .*model, name"):
            store.ls("experiments", where="epoch >= 2")


def test_experiment_rows_from_their_properties_equal_the_resolved_record(tmp_path: Any) -> None:
    """A listing builds an experiment's row from its properties; the resolved record says the same."""
    import json

    from mlmd_magic import datasets
    from mlmd_magic.core.values import flatten

    with mm.connect(f"sqlite:///{tmp_path}/r.sqlite") as store:
        store.add_datasource("ds", **datasets.simulate_nipt(str(tmp_path / "data"), n_train=8, n_eval=4, n_test=4))
        store.add_scenario("mlp", model="mlp", params={"hidden": [8], "epochs": 1, "opt": {"lr": 0.1, "name": "a"}})
        store.add_experiment("e", datasource="ds", scenario="mlp", overrides={"epochs": 3, "opt": {"lr": 0.5}})
        store.add_experiment("e", datasource="ds@1", scenario="mlp@1", overrides={"hidden": [4, 2]})
        frame = store.ls("experiments", all_versions=True)
        assert len(frame) == 2
        for row in frame.to_dict("records"):
            data = store.get_experiment(f"{row['name']}@{row['version']}")
            expected = {"name": data["experiment"], "version": data["version"],
                        "datasource": f"{data['datasource']['name']}@{data['datasource']['version']}",
                        "scenario": f"{data['scenario']['name']}@{data['scenario']['version']}",
                        "model": data["scenario"]["model"], **flatten(data["params"])}
            assert {k: row[k] for k in expected} == expected
            assert json.loads(row["overrides"]) == store.export(f"{row['name']}@{row['version']}")["overrides"]


@pytest.mark.parametrize("offset", ["a", -1, 1.5, True])
def test_a_bad_offset_is_a_validation_error(mem_store: mm.Store, offset: Any) -> None:
    """An offset that is not a whole number of at least 0 (a bool neither) is refused, for records and runs."""
    for kind in ("scenarios", "runs"):
        with pytest.raises(mm.ValidationError, match="offset must be a whole number"):
            mem_store.ls(kind, offset=offset)
