"""The cfDNA simulator and the real breast-cancer data set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import mlmd_magic as mm
from mlmd_magic import datasets, testing
from mlmd_magic.core.datafiles import iter_tfrecord, parse_example


def _read(path: Path) -> list[dict[str, tuple[str, list[object]]]]:
    return [parse_example(r) for r in iter_tfrecord(str(path))]


def test_simulator_is_deterministic(tmp_path: Path) -> None:
    a = datasets.simulate_nipt(str(tmp_path / "a"), n_train=50, n_eval=10, n_test=10, seed=3, shards=2)
    datasets.simulate_nipt(str(tmp_path / "b"), n_train=50, n_eval=10, n_test=10, seed=3, shards=2)
    datasets.simulate_nipt(str(tmp_path / "c"), n_train=50, n_eval=10, n_test=10, seed=4, shards=2)
    for rel in ("train/part-00000.tfrecord", "train/part-00001.tfrecord", "eval.tfrecord", "test.tfrecord"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / "eval.tfrecord").read_bytes() != (tmp_path / "c" / "eval.tfrecord").read_bytes()
    store = mm.connect("memory://")
    store.add_datasource("sim", **a)
    ds = store.get_datasource("sim")
    assert ds["examples"] == {"eval": 10, "test": 10, "train": 50}
    assert ds["features"]["fractions"] == {"dtype": "float", "shape": [24]}
    assert set(ds["features"]) == {"fractions", "fetal_fraction", "depth", "gc_bias", "fetal_sex"}


def test_trisomy_signal_grows_with_fetal_fraction(tmp_path: Path) -> None:
    datasets.simulate_nipt(str(tmp_path), n_train=3000, n_eval=1, n_test=1, seed=0, prevalence=(0.5, 0.0, 0.0))
    rows = _read(tmp_path / "train" / "part-00000.tfrecord")
    chr21 = np.array([r["fractions"][1][20] for r in rows])
    ff = np.array([r["fetal_fraction"][1][0] for r in rows])
    t21 = np.array([r["label"][1][0] == 1 for r in rows])
    baseline = np.median(chr21[~t21])
    spread = np.std(chr21[~t21])
    z = (chr21 - baseline) / spread
    assert np.median(z[t21 & (ff > 0.12)]) > 4 * max(np.median(z[t21 & (ff < 0.04)]), 0.25)
    assert np.median(z[t21 & (ff > 0.12)]) > 3
    assert abs(np.median(z[~t21])) < 0.2
    fractions = np.array([r["fractions"][1] for r in rows])
    assert np.allclose(fractions.sum(axis=1), 1.0, atol=0.01)


def test_breast_cancer_is_the_real_data(tmp_path: Path) -> None:
    kwargs = datasets.breast_cancer(str(tmp_path))
    store = mm.connect("memory://")
    store.add_datasource("wdbc", **kwargs)
    ds = store.get_datasource("wdbc")
    assert sum(ds["examples"].values()) == 569
    total = {k: sum(d.get(k, 0) for d in ds["label_distribution"].values()) for k in ("0", "1")}
    assert total == {"0": 357, "1": 212}  # benign, malignant: the published class counts
    assert len(ds["features"]) == 30 and "mean_radius" in ds["features"]
    assert "Wolberg" in (tmp_path / "ATTRIBUTION.txt").read_text()


def test_tfx_pipeline_store_is_a_tfx_store_and_reproducible(tmp_path: Path) -> None:
    """The TFX tutorial's store: opened by mlmd-magic, same bytes and ids every time, never built twice."""
    import pytest

    small = {"train": 20, "eval": 10}
    a = testing.tfx_pipeline_store(str(tmp_path / "a"), runs=3, examples=small)
    b = testing.tfx_pipeline_store(str(tmp_path / "b"), runs=3, examples=small)
    assert a.uri == f"sqlite:///{tmp_path / 'a' / 'metadata.sqlite'}" and os.path.isabs(a.root)
    assert [r.artifacts for r in a.runs] == [r.artifacts for r in b.runs]  # same ids on a fresh store
    assert "pushed_model" not in a.last.artifacts and "pushed_model" in a.runs[1].artifacts  # run 3 not blessed
    rel = os.path.join("CsvExampleGen", "examples", "3", "Split-train", "data_tfrecord-00000-of-00001.gz")
    assert (Path(a.root) / rel).read_bytes() == (Path(b.root) / rel).read_bytes()
    store = mm.connect(a.uri)
    record = store.add_datasource("taxi", from_artifact=a.last.artifacts["examples"], label="tips")
    again = mm.connect(b.uri).add_datasource("taxi", from_artifact=b.last.artifacts["examples"], label="tips")
    assert store.get_datasource("taxi")["fingerprint"] == mm.connect(b.uri).get_datasource("taxi")["fingerprint"]
    assert record.ref == again.ref == "taxi@1"
    counts = {(t["kind"], t["name"]): t["count"] for t in store.types(counts=True)}
    assert counts[("artifact", "Examples")] == 6 and counts[("context", "run")] == 3
    with pytest.raises(ValueError, match="already exists: remove"):
        testing.tfx_pipeline_store(str(tmp_path / "a"))


def test_datasets_touch_no_store_and_point_to_where_the_tfx_store_moved() -> None:
    import pytest

    with pytest.raises(AttributeError, match=r"moved: use mlmd_magic\.testing\.tfx_pipeline_store"):
        datasets.tfx_pipeline_store  # noqa: B018
