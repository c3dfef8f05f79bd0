"""The backend: everything that speaks ML Metadata. Only this layer touches MLMD's protos.

* :mod:`~mlmd_magic.backend.uri` — store URIs (``sqlite:///``, ``memory://``, ``mysql://``)
* :mod:`~mlmd_magic.backend.connection` — opening a store, one class per backend
* :mod:`~mlmd_magic.backend.resilience` — retries on busy databases, reconnects to MySQL
* :mod:`~mlmd_magic.backend.types` — the ``mlmd_magic.*`` types and their registration
* :mod:`~mlmd_magic.backend.properties` — node properties as plain values
* :mod:`~mlmd_magic.backend.recorder` — one action, one execution, one transaction
* :mod:`~mlmd_magic.backend.session` — the process's state: who, where and which cell an action
  comes from, and who listens for writes
* :mod:`~mlmd_magic.backend.secrets` — keeping credentials out of everything shown, logged or recorded
"""
