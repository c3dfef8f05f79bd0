"""Notebook panels over the library (plain ipywidgets 8: JupyterLab 4, Notebook 7, VS Code).

* :class:`ExperimentEditor` — ``%mlmd edit REF``
* :class:`PolicyEditor` — ``%mlmd edit policy:NAME``
* :class:`StoreBrowser` — ``%mlmd browse``
* :func:`compare` / :class:`RunComparison` — ``%mlmd compare RUN ...``
* lineage graphs — ``%mlmd lineage REF`` (:meth:`mlmd_magic.Store.lineage`)

Each panel has a text form for frontends without widgets (``repr``), and every action taken
through a panel is recorded like a magic's, with a source naming the panel and the change.
"""

from __future__ import annotations

from ._browser import StoreBrowser
from ._compare import RunComparison, compare
from ._editor import ExperimentEditor
from ._policy import PolicyEditor

__all__ = ["ExperimentEditor", "PolicyEditor", "RunComparison", "StoreBrowser", "compare"]
