"""The core: plain Python every other layer builds on — no MLMD, IPython or TensorFlow, no
state kept between calls and no drawing (``tests/test_layers.py`` checks both).

* :mod:`~mlmd_magic.core.names` — record names and references (``NAME``, ``NAME@N``)
* :mod:`~mlmd_magic.core.values` — canonical JSON, content hashes, overrides, diffs
* :mod:`~mlmd_magic.core.record` — the ``Record`` view the library returns
* :mod:`~mlmd_magic.core.specs` — record specs (cell bodies, export/import files)
* :mod:`~mlmd_magic.core.query` — the ``where`` filter language
* :mod:`~mlmd_magic.core.datafiles` — data files: splits, fingerprints, TFRecords without TensorFlow
* :mod:`~mlmd_magic.core.evaluation` — slices, metrics, thresholds, verdicts
"""
