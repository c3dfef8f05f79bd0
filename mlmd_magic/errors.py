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
    "NotFoundError",
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
