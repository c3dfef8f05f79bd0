"""Data sets made or found offline: a cfDNA prenatal-screening simulator and a real public set.

Both write files to a folder and return exactly the keyword arguments
:meth:`mlmd_magic.Store.add_datasource` takes, so registering one is a single line::

    import mlmd_magic as mm
    from mlmd_magic import datasets
    store = mm.connect()
    store.add_datasource("nipt-sim", **datasets.simulate_nipt("data/nipt-sim"))

Nothing here downloads anything, imports TensorFlow or touches a store. A store shaped like the
one a TFX pipeline writes is :func:`mlmd_magic.testing.tfx_pipeline_store`.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import warnings
from typing import Any

import numpy as np

from .core.datafiles import write_tfrecord

__all__ = [
    "BREAST_CANCER_ATTRIBUTION", "BREAST_CANCER_FEATURES", "CHROMOSOMES", "LABELS", "breast_cancer", "simulate_nipt",
]

CHROMOSOMES = [str(i) for i in range(1, 23)] + ["X", "Y"]
LABELS = {0: "euploid", 1: "T21", 2: "T18", 3: "T13"}
_TRISOMY_CHROMOSOME = {1: "21", 2: "18", 3: "13"}
# Approximate chromosome lengths (Mb, GRCh38) and GC content: the read fraction a
# chromosome gets is about proportional to its length, and GC-poor chromosomes (13, 18)
# lose reads when a sequencing run is GC-biased.
_LENGTH_MB = [248, 242, 198, 190, 181, 171, 159, 145, 138, 134, 135, 133, 114, 107, 102, 90, 83, 80, 59, 64, 47,
              51, 156, 57]
_GC = [0.417, 0.402, 0.397, 0.382, 0.395, 0.396, 0.407, 0.402, 0.413, 0.416, 0.416, 0.408, 0.385, 0.409, 0.422,
       0.448, 0.455, 0.398, 0.483, 0.441, 0.408, 0.480, 0.395, 0.397]
_EXTRA_CV = 0.006  # extra-Poisson variation of a chromosome's fraction between samples


def simulate_nipt(
    folder: str,
    *,
    n_train: int = 4000,
    n_eval: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    prevalence: tuple[float, float, float] = (0.1, 0.1, 0.1),
    shards: int = 1,
) -> dict[str, Any]:
    """Write a deterministic synthetic cfDNA NIPT data set as TFRecords; return add_datasource kwargs.

    Each example has ``fractions`` (normalised read fraction of chromosomes 1–22, X, Y),
    ``fetal_fraction``, ``depth`` (millions of reads), ``gc_bias``, ``fetal_sex``
    (0 female, 1 male) and ``label`` (0 euploid, 1 T21, 2 T18, 3 T13). A trisomy raises
    its chromosome's fraction by a factor of ``1 + fetal_fraction / 2``, so the signal
    shrinks with fetal fraction and calls below 4 % are hard, as in real screening.

    Parameters
    ----------
    folder : where ``train/``, ``eval.tfrecord`` and ``test.tfrecord`` are written.
    n_train, n_eval, n_test : examples per split.
    seed : the same seed always writes byte-identical files.
    prevalence : fraction of T21, T18 and T13 samples (enriched over real prevalence).
    shards : number of TFRecord files of the train split.

    >>> import tempfile
    >>> kwargs = simulate_nipt(tempfile.mkdtemp(), n_train=20, n_eval=5, n_test=5)
    >>> sorted(kwargs["splits"]), kwargs["label"], kwargs["format"]
    (['eval', 'test', 'train'], 'label', 'tfrecord')
    """
    if min(n_train, n_eval, n_test) < 1 or shards < 1:
        raise ValueError("every split needs at least one example, and shards must be >= 1")
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "train"), exist_ok=True)
    sizes = {"train": n_train, "eval": n_eval, "test": n_test}
    for split, n in sizes.items():
        rows = _simulate(rng, n, prevalence)
        if split == "train":
            for shard, part in enumerate(np.array_split(np.arange(n), shards)):
                write_tfrecord(os.path.join(folder, "train", f"part-{shard:05d}.tfrecord"),
                               [rows[i] for i in part])
        else:
            write_tfrecord(os.path.join(folder, f"{split}.tfrecord"), rows)
    return {
        "uri": os.path.abspath(folder),
        "format": "tfrecord",
        "splits": {"train": "train", "eval": "eval.tfrecord", "test": "test.tfrecord"},
        "label": "label",
        "description": f"simulated cfDNA prenatal screening (seed {seed}; labels {LABELS})",
        "label_names": [LABELS[k] for k in sorted(LABELS)],
    }


def _simulate(rng: np.random.Generator, n: int, prevalence: tuple[float, float, float]) -> list[dict[str, Any]]:
    base = np.array(_LENGTH_MB, dtype=float)
    gc = np.array(_GC)
    p_euploid = 1.0 - sum(prevalence)
    labels = rng.choice(4, size=n, p=[p_euploid, *prevalence])
    fetal_fraction = np.clip(rng.gamma(4.0, 0.025, size=n), 0.01, 0.35)
    depth = rng.uniform(4.0, 20.0, size=n)  # millions of reads
    gc_bias = rng.normal(0.0, 0.3, size=n)
    male = rng.random(n) < 0.5
    rows = []
    for i in range(n):
        copies = np.ones(24)
        copies[22] = 1.0 if not male[i] else 1.0 - fetal_fraction[i] / 2  # maternal XX, fetal X
        copies[23] = fetal_fraction[i] / 2 if male[i] else 0.0005  # Y reads only from a male fetus
        if labels[i]:
            copies[CHROMOSOMES.index(_TRISOMY_CHROMOSOME[int(labels[i])])] += fetal_fraction[i] / 2
        expected = base * copies * (1.0 + gc_bias[i] * (gc - 0.41) * 5.0)
        expected *= 1.0 + rng.normal(0.0, _EXTRA_CV, size=24)
        expected = np.clip(expected, 1e-9, None)
        expected /= expected.sum()
        reads = depth[i] * 1e6
        counts = rng.normal(reads * expected, np.sqrt(reads * expected * (1 - expected)))
        fractions = np.clip(counts, 0.0, None) / reads
        rows.append({
            "fractions": [float(x) for x in fractions],
            "fetal_fraction": float(fetal_fraction[i]),
            "depth": float(depth[i]),
            "gc_bias": float(gc_bias[i]),
            "fetal_sex": int(male[i]),
            "label": int(labels[i]),
        })
    return rows


BREAST_CANCER_ATTRIBUTION = (
    "Breast Cancer Wisconsin (Diagnostic) data set: W. H. Wolberg, W. N. Street and O. L. Mangasarian, "
    "UCI Machine Learning Repository (CC BY 4.0), https://doi.org/10.24432/C5DW2B; read from the copy "
    "that scikit-learn ships (sklearn/datasets/data/breast_cancer.csv)."
)
_BC_BASE = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
            "concave_points", "symmetry", "fractal_dimension"]
BREAST_CANCER_FEATURES = (
    [f"mean_{b}" for b in _BC_BASE] + [f"{b}_error" for b in _BC_BASE] + [f"worst_{b}" for b in _BC_BASE]
)


def breast_cancer(folder: str, *, seed: int = 0, fractions: tuple[float, float] = (0.7, 0.15)) -> dict[str, Any]:
    """Write the real Breast Cancer Wisconsin (Diagnostic) set as CSV splits; return add_datasource kwargs.

    569 tumour samples, 30 numeric features of cell nuclei, and ``label`` 1 for malignant,
    0 for benign. The data comes from the copy scikit-learn ships (no download); see
    :data:`BREAST_CANCER_ATTRIBUTION`. Splits are a deterministic shuffle by ``seed``:
    ``fractions`` of train and eval, the rest test.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed; pip install scikit-learn to get this data set")
    source = os.path.join(next(iter(spec.submodule_search_locations)), "datasets", "data", "breast_cancer.csv")
    with open(source, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)  # "569,30,malignant,benign"
        rows = [[float(v) for v in row[:30]] + [1 - int(row[30])] for row in reader if row]
    order = np.random.default_rng(seed).permutation(len(rows))
    n_train, n_eval = int(len(rows) * fractions[0]), int(len(rows) * fractions[1])
    parts = {"train": order[:n_train], "eval": order[n_train:n_train + n_eval], "test": order[n_train + n_eval:]}
    os.makedirs(folder, exist_ok=True)
    for split, idx in parts.items():
        with open(os.path.join(folder, f"{split}.csv"), "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([*BREAST_CANCER_FEATURES, "label"])
            for i in idx:
                writer.writerow(rows[i])
    with open(os.path.join(folder, "ATTRIBUTION.txt"), "w") as fh:
        fh.write(BREAST_CANCER_ATTRIBUTION + "\n")
    return {
        "uri": os.path.abspath(folder),
        "format": "csv",
        "splits": {split: f"{split}.csv" for split in parts},
        "label": "label",
        "description": "Breast Cancer Wisconsin (Diagnostic); label 1 = malignant. " + BREAST_CANCER_ATTRIBUTION,
        "label_names": ["benign", "malignant"],
    }


def tfx_pipeline_store(*args: Any, **kwargs: Any) -> Any:
    """Deprecated: the old name of :func:`mlmd_magic.testing.tfx_pipeline_store` (it moved where
    the tests' and tutorials' helpers live)."""
    warnings.warn("mlmd_magic.datasets.tfx_pipeline_store is now mlmd_magic.testing.tfx_pipeline_store; "
                  "the old name goes in the next release", DeprecationWarning, stacklevel=2)
    from .testing import tfx_pipeline_store as moved  # the backend, only when the old name is called

    return moved(*args, **kwargs)
