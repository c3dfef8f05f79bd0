"""The store layer: a thin :class:`Store` facade over records, runs, lineage and maintenance.

* :mod:`~mlmd_magic.store.store` — the ``Store`` facade
* :mod:`~mlmd_magic.store.records` — versioned data sources, scenarios and experiments
* :mod:`~mlmd_magic.store.runs` — trainings and evaluations on record
* :mod:`~mlmd_magic.store.results` — ``Run``, ``Evaluation``, ``RunComparison``
* :mod:`~mlmd_magic.store.release` — model cards and pushes (``ModelCard``, ``Pushed``)
* :mod:`~mlmd_magic.store.sweeps` — sweeps: Optuna searches whose trials are experiment versions and runs
* :mod:`~mlmd_magic.store.lineage` — lineage graphs through any tool's executions
* :mod:`~mlmd_magic.store.artifacts` — any tool's artifacts and executions (TFX's), listed and shown
* :mod:`~mlmd_magic.store.fromtfx` — a data source made from a TFX ``Examples`` artifact
* :mod:`~mlmd_magic.store.maintenance` — trainings left RUNNING by a dead kernel
* :mod:`~mlmd_magic.store.options` — settings a person may change
* :mod:`~mlmd_magic.store.background`, :mod:`~mlmd_magic.store.worker`, :mod:`~mlmd_magic.store.ray_jobs` —
  runs in a detached process or on a Ray cluster, and the handle that follows them
* :mod:`~mlmd_magic.store.reproduce` — a model trained again from its record

The faces reach the process's session (who, where, which cell an action comes from, and who
listens for writes) and its secrets (credentials kept out of everything shown) through this
layer: ``mlmd_magic.store.session`` and ``mlmd_magic.store.secrets`` are the backend's modules.
"""

from ..backend import secrets, session  # the process's state, for the faces (see above)
from ..trainer import ProgressReporter  # what Store.train(progress=...) takes, for the faces
from .artifacts import NodeDetails
from .background import BackgroundRun
from .lineage import Lineage
from .options import StoreOptions
from .reproduce import Reproduction
from .results import RunProgress
from .store import Store, connect, default_uri, sqlite_file
from .sweeps import Sweep

__all__ = ["BackgroundRun", "Lineage", "NodeDetails", "ProgressReporter", "Reproduction", "RunProgress", "Store",
           "StoreOptions", "Sweep", "connect", "default_uri", "secrets", "session", "sqlite_file"]
