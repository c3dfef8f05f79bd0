"""Drawing, beside the faces: the HTML tables and matplotlib figures that records, runs,
evaluations, sweeps and panels show.

* :mod:`~mlmd_magic.display.html` — one HTML table helper, ``<pre>`` and escaping
* :mod:`~mlmd_magic.display.records` — records and diffs
* :mod:`~mlmd_magic.display.evaluation` — evaluation results, confusion matrices, explanations
* :mod:`~mlmd_magic.display.results` — runs, run comparisons, a run's progress, reproductions
* :mod:`~mlmd_magic.display.release` — model cards
* :mod:`~mlmd_magic.display.lineage` — lineage graphs (SVG) and an artifact's or execution's details
* :mod:`~mlmd_magic.display.sweeps` — a sweep's trials and its plot (matplotlib)
* :mod:`~mlmd_magic.display.curves` — training curves (matplotlib, an inline PNG)
* :mod:`~mlmd_magic.display.details` — a browser row's details: records, versions, lineage

Objects keep their ``_repr_html_`` and delegate here; the core draws nothing itself.
"""
