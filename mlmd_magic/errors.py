"""The error types raised by mlmd-magic.

Every error the library raises on purpose is a :class:`MlmdMagicError`. Its message says
what was wrong and what to do about it; the magic layer shows that message as a
``UsageError`` without a traceback. Errors coming out of ``ml_metadata`` are translated
into these types at the store layer, so no caller has to know MLMD's own exceptions.

Example
-------
>>> from mlmd_magic.errors import InvalidNameError, MlmdMagicError
>>> issubclass(InvalidNameError, MlmdMagicError)
True
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRefError",
    "CommandError",
    "DataSourceError",
    "InvalidNameError",
    "MlmdMagicError",
    "NoConnectionError",
    "NotBlessedError",
    "NotFoundError",
    "RunCancelled",
    "StoreConnectionError",
    "StoreError",
    "TrainingError",
    "ValidationError",
]


class MlmdMagicError(Exception):
    """Base class of every error mlmd-magic raises on purpose."""


class ValidationError(MlmdMagicError, ValueError):
    """An argument has the wrong type, shape or value."""


class InvalidNameError(ValidationError):
    """A record name or reference (``NAME`` / ``NAME@N``) is not well formed."""


class CommandError(ValidationError):
    """A ``%mlmd`` / ``mlmd-magic`` command line could not be parsed; the message shows its usage."""


class DataSourceError(ValidationError):
    """The files of a data source are missing, unreadable or of the wrong format."""


class NotFoundError(MlmdMagicError, LookupError):
    """No record with the given name or version exists in the store."""


class AmbiguousRefError(MlmdMagicError, LookupError):
    """A name matches records of several kinds; the caller must say which kind."""


class NoConnectionError(MlmdMagicError):
    """No store is connected yet (``%mlmd connect`` or :func:`mlmd_magic.connect` comes first)."""


class StoreConnectionError(MlmdMagicError, ConnectionError):
    """The store could not be opened (bad URI, server down, wrong credentials, ...)."""


class StoreError(MlmdMagicError, RuntimeError):
    """The metadata store rejected an operation in a way the caller cannot fix by input."""


class TrainingError(MlmdMagicError):
    """Training stopped with an error: parameters the trainer cannot use, unreadable data, a
    failing model builder. The ``Train`` execution is recorded FAILED with the reason."""


class RunCancelled(KeyboardInterrupt):
    """A training stopped by the user (Ctrl-C, the notebook's stop button): still a
    ``KeyboardInterrupt``, so it stops a script as one, with what was done in a single line.

    The ``Train`` execution is recorded CANCELED and no model is left. Attributes: ``run`` (the
    run's name, ``EXPERIMENT@N#K``), ``seconds``, ``epochs_done``, ``epochs``, and
    ``version_created`` (the experiment version a ``--set`` created for this run, which stays),
    ``requested`` (True when a ``%mlmd cancel`` / ``store.cancel`` asked for it, not Ctrl-C).
    """

    def __init__(self, run: str, seconds: float, epochs_done: int, epochs: int, version_created: str = "",
                 requested: bool = False) -> None:
        self.run, self.seconds, self.epochs_done, self.epochs = run, seconds, epochs_done, epochs
        self.version_created, self.requested = version_created, requested
        kept = (f"; {version_created} was defined for this run and stays (train it again with "
                f"%mlmd train {version_created})") if version_created else ""
        super().__init__(f"run {run} cancelled after {_duration(seconds)}, epoch {epochs_done}/{epochs}{kept}")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class NotBlessedError(MlmdMagicError):
    """A push refused: the model's latest evaluation under a policy is not blessed (the message
    lists the failed checks), or there is none."""
