"""Data sets and data files: the cfDNA simulator, the real breast-cancer data set; a registered
data source's files changed afterwards, symbolic links and bounds in data folders, TFRecord
checksums, CSV files without the label."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlmd_magic as mm
from mlmd_magic import datasets, testing
from mlmd_magic.core.datafiles import iter_tfrecord, parse_example, write_tfrecord

from .conftest import make_examples


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


def test_the_old_tfx_pipeline_store_warns_and_builds_the_same_store(tmp_path: Path) -> None:
    """``datasets.tfx_pipeline_store`` moved to ``testing`` without a release of warning: the old
    name stays one release, says where it went and builds the same store. ``datasets`` imports
    the backend only inside the alias (tests/test_layers.py fails on an import at module level)."""
    small = {"train": 8, "eval": 4}
    said = r"mlmd_magic\.datasets\.tfx_pipeline_store is now mlmd_magic\.testing\.tfx_pipeline_store; the old name goes"
    with pytest.warns(DeprecationWarning, match=said) as caught:
        old = datasets.tfx_pipeline_store(str(tmp_path / "old"), runs=1, examples=small)
    assert [w.filename for w in caught] == [__file__]  # the warning points at the caller
    new = testing.tfx_pipeline_store(str(tmp_path / "new"), runs=1, examples=small)
    assert type(old) is type(new) and [r.artifacts for r in old.runs] == [r.artifacts for r in new.runs]
    assert os.path.exists(tmp_path / "old" / "metadata.sqlite")
    assert "tfx_pipeline_store" not in datasets.__all__


# ---------------------------------------------------------------------------- data changed after registration


def _tfrecord_data(root: Path) -> Path:
    """A train folder of two TFRecord files and an eval file, under ``root``."""
    (root / "train").mkdir(parents=True)
    write_tfrecord(str(root / "train" / "part-0.tfrecord"), make_examples(30, 1))
    write_tfrecord(str(root / "train" / "part-1.tfrecord"), make_examples(20, 2))
    write_tfrecord(str(root / "eval.tfrecord"), make_examples(15, 3))
    return root


@pytest.fixture
def on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[mm.Store, Path, dict[str, Any]]:
    """A SQLite store with data source d (TFRecords under tmp_path/data) and experiment e."""
    monkeypatch.setenv("MLMD_MAGIC_RUNS_DIR", str(tmp_path / "runs"))
    data = _tfrecord_data(tmp_path / "data")
    spec = {"uri": str(data), "format": "tfrecord", "splits": {"train": "train", "eval": "eval.tfrecord"},
            "label": "label"}
    store = mm.connect(f"sqlite:///{tmp_path}/s.sqlite")
    store.add_datasource("d", **spec)
    store.add_scenario("sc", model="mlp", params={"hidden": [4], "epochs": 1, "batch_size": 16})
    store.add_experiment("e", datasource="d", scenario="sc")
    return store, data, spec


def _train_states(store: mm.Store) -> list[str]:
    from ml_metadata.proto import metadata_store_pb2 as pb

    return [pb.Execution.State.Name(e.last_known_state) for e in store.mlmd.get_executions_by_type("mlmd_magic.Train")]


def test_data_changed_after_registration_is_neither_trained_nor_cached(
        on_disk: tuple[mm.Store, Path, dict[str, Any]]) -> None:
    """A file of a registered data source changed, added or removed: training refuses (forced
    or not) naming the file and the way out (a new version); the same bytes again are reused."""
    store, data, spec = on_disk
    first = store.train("e", progress=False)
    assert first.state == "COMPLETE"
    write_tfrecord(str(data / "eval.tfrecord"), make_examples(15, 99))  # same size, other bytes
    for force in (False, True):
        with pytest.raises(mm.DataSourceError,
                           match=r"data source d@1 .*split 'eval': eval.tfrecord was changed.*%%datasource d"):
            store.train("e", force=force, progress=False)
    assert _train_states(store) == ["COMPLETE", "FAILED", "FAILED"]
    failed = store.mlmd.get_executions_by_type("mlmd_magic.Train")[-1]
    assert "eval.tfrecord was changed" in failed.properties["error"].string_value
    assert len(store.mlmd.get_artifacts_by_type("mlmd_magic.Model")) == 1
    # the way out the message gives: a new version, an experiment that uses it
    assert store.add_datasource("d", **spec).version == 2
    store.add_experiment("e", datasource="d", scenario="sc")
    assert store.train("e", progress=False).experiment == "e@2"
    # a file added to a folder split, or removed from it
    write_tfrecord(str(data / "train" / "part-2.tfrecord"), make_examples(5, 4))
    with pytest.raises(mm.DataSourceError, match=r"split 'train': train/part-2.tfrecord was added"):
        store.train("e", progress=False)
    os.remove(data / "train" / "part-2.tfrecord")
    kept = (data / "train" / "part-1.tfrecord").read_bytes()
    os.remove(data / "train" / "part-1.tfrecord")
    with pytest.raises(mm.DataSourceError, match=r"split 'train': train/part-1.tfrecord was removed"):
        store.train("e", progress=False)
    # the same bytes again (a new modification time): hashed, found unchanged, reused
    (data / "train" / "part-1.tfrecord").write_bytes(kept)
    assert store.train("e", progress=False).cached


def test_a_record_without_per_file_rows_is_checked_by_its_fingerprint(tmp_path: Path) -> None:
    """A data source recorded without per-file rows (as 0.1 wrote them) is checked against its fingerprint."""
    from mlmd_magic.core.datafiles import inspect_datasource, verify_files

    data = _tfrecord_data(tmp_path / "data")
    splits = {"train": "train/*.tfrecord", "eval": "eval.tfrecord"}
    summary = inspect_datasource(str(data), "tfrecord", splits, "label")
    verify_files(str(data), "tfrecord", splits, None, summary.fingerprint, "d@1")  # written by 0.1: no rows
    verify_files(str(data), "tfrecord", splits, summary.files, summary.fingerprint, "d@1")
    write_tfrecord(str(data / "train" / "part-9.tfrecord"), make_examples(3, 5))
    with pytest.raises(mm.DataSourceError, match="no longer match its fingerprint"):
        verify_files(str(data), "tfrecord", splits, None, summary.fingerprint, "d@1")


# ---------------------------------------------------------------------------- data folders: links and bounds


def test_symlink_loops_are_followed_once(tmp_path: Path, mem_store: mm.Store) -> None:
    """Links back up the tree and a file linked twice: each file is counted once and the walk
    ends (how fast: benchmarks/bench_hostile.py)."""
    root = tmp_path / "data"
    (root / "train" / "sub").mkdir(parents=True)
    write_tfrecord(str(root / "train" / "a.tfrecord"), make_examples(7, 1))
    write_tfrecord(str(root / "train" / "sub" / "b.tfrecord"), make_examples(5, 2))
    os.symlink(root / "train", root / "train" / "sub" / "loop")  # back up the tree
    splits = {"train": "train/**/*.tfrecord"}
    record = mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits=splits, label="label")
    assert record.data["examples"] == {"train": 12}
    os.symlink(root, root / "train" / "sub" / "loop2")  # a second loop: the walk used to never end
    os.symlink(root / "train" / "a.tfrecord", root / "train" / "a-again.tfrecord")  # the same file twice
    again = mem_store.add_datasource("d2", uri=str(root), format="tfrecord", splits=splits, label="label")
    assert again.data["examples"] == {"train": 12}
    folder = mem_store.add_datasource("d3", uri=str(root), format="tfrecord", splits={"train": "train"},
                                      label="label")
    assert folder.data["examples"] == {"train": 7}


def test_a_split_is_bounded_in_files_and_folders(tmp_path: Path, mem_store: mm.Store,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mlmd_magic.core import datafiles as _datafiles

    root = tmp_path / "data"
    for i in range(6):
        (root / f"f{i}").mkdir(parents=True)
        write_tfrecord(str(root / f"f{i}" / "x.tfrecord"), make_examples(2, i))
    monkeypatch.setattr(_datafiles, "MAX_FILES", 5)
    with pytest.raises(mm.DataSourceError, match="matches more than 5 files"):
        mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits={"t": "*/x.tfrecord"}, label="label")
    monkeypatch.setattr(_datafiles, "MAX_FILES", 100)
    monkeypatch.setattr(_datafiles, "MAX_FOLDERS", 3)
    with pytest.raises(mm.DataSourceError, match="walks more than 3 folders"):
        mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits={"t": "**/x.tfrecord"}, label="label")
    assert mem_store.mlmd.get_artifacts() == []


# ---------------------------------------------------------------------------- TFRecord checksums, labels in every file


def test_a_tfrecord_with_a_bad_checksum_is_refused(tmp_path: Path, mem_store: mm.Store) -> None:
    """One flipped bit in a record's data, or in its length's checksum: refused naming the record."""
    root = tmp_path / "data"
    root.mkdir()
    write_tfrecord(str(root / "t.tfrecord"), make_examples(10, 1))
    good = (root / "t.tfrecord").read_bytes()
    size = len(good) // 10
    damaged = bytearray(good)
    damaged[3 * size + 40] ^= 0x01  # one bit of a feature value in record 4: still parses
    (root / "t.tfrecord").write_bytes(bytes(damaged))
    with pytest.raises(mm.DataSourceError, match=r"data checksum .CRC32C. of record 4 does not match"):
        mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits={"t": "t.tfrecord"}, label="label")
    damaged = bytearray(good)
    damaged[size + 9] ^= 0x01  # the length checksum of record 2
    (root / "t.tfrecord").write_bytes(bytes(damaged))
    with pytest.raises(mm.DataSourceError, match=r"length checksum .CRC32C. of record 2"):
        mem_store.add_datasource("d", uri=str(root), format="tfrecord", splits={"t": "t.tfrecord"}, label="label")
    assert mem_store.names("datasources") == []


def test_tens_of_megabytes_of_tfrecords_are_verified_record_by_record(tmp_path: Path) -> None:
    """30 MB of 64 KiB records: every record verified and read back whole (how fast:
    benchmarks/bench_hostile.py, target under 1 s)."""
    from mlmd_magic.core.datafiles import _masked_crc

    path = tmp_path / "big.tfrecord"
    record = os.urandom(64 * 1024)
    header = struct.pack("<Q", len(record))
    frame = header + struct.pack("<I", _masked_crc(header)) + record + struct.pack("<I", _masked_crc(record))
    path.write_bytes(frame * 480)  # 30 MB
    whole = [read == record for read in iter_tfrecord(str(path), verify=True)]
    assert len(whole) == 480 and all(whole)


def test_every_csv_file_of_a_split_needs_the_label(tmp_path: Path, mem_store: mm.Store) -> None:
    root = tmp_path / "csv"
    (root / "train").mkdir(parents=True)
    (root / "train" / "a.csv").write_text("f0,label\n1.0,0\n2.0,1\n")
    (root / "train" / "b.csv").write_text("f0,f1\n1.0,3\n2.0,4\n")
    with pytest.raises(mm.DataSourceError, match=r"split 'train': train/b.csv has no label 'label'"):
        mem_store.add_datasource("d", uri=str(root), format="csv", splits={"train": "train"}, label="label")
    (root / "train" / "b.csv").write_text("f0,label\n1.0,0\n2.0\n")
    with pytest.raises(mm.DataSourceError, match=r"1 of the 2 examples in train/b.csv have no value"):
        mem_store.add_datasource("d", uri=str(root), format="csv", splits={"train": "train"}, label="label")
    assert mem_store.names("datasources") == []
