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

from typing import Any

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
    """A training stopped on purpose: Ctrl-C, the notebook's stop button, or a ``%mlmd cancel`` /
    ``store.cancel`` from anywhere. Still a ``KeyboardInterrupt``, so it stops a script as one;
    its message is the one calm line the magics print (not an error):
    ``run t21-long@2#1 cancelled after 7 of 40 epochs, 39 s``.

    The ``Train`` execution is recorded CANCELED and no model is left. Attributes: ``run`` (the
    run's name, ``EXPERIMENT@N#K``), ``seconds``, ``epochs_done``, ``epochs``,
    ``version_created`` (the experiment version a ``--set`` / overrides created for this run,
    which stays), ``version_reused`` (the existing version ``--set`` / overrides gave, so none was
    created), ``requested`` (True when a ``%mlmd cancel`` / ``store.cancel`` asked for it, not
    Ctrl-C). It pickles whole (a background or Ray run's stop crosses processes).
    """

    def __init__(self, run: str, seconds: float, epochs_done: int, epochs: int, version_created: str = "",
                 requested: bool = False, version_reused: str = "") -> None:
        self.run, self.seconds, self.epochs_done, self.epochs = run, seconds, epochs_done, epochs
        self.version_created, self.requested = version_created, requested
        self.version_reused = version_reused
        super().__init__(self.line())

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException pickles as cls(*self.args), and args holds only the line: rebuild from the fields
        fields = (self.run, self.seconds, self.epochs_done, self.epochs, self.version_created, self.requested,
                  self.version_reused)
        return type(self), fields, dict(self.__dict__)

    def line(self) -> str:
        """What was done, in one line (``cancelled``, one duration)."""
        how = " by a cancel request" if self.requested else ""
        line = f"run {self.run} cancelled{how} after {self.epochs_done} of {self.epochs} epochs, " \
               f"{_duration(self.seconds)}"
        if self.version_created:
            name = self.version_created.rsplit("@", 1)[0]
            line += (f"; --set created {self.version_created} for it, which stays: {name} now gives it "
                     f"(%mlmd history {name} shows the versions)")
        elif self.version_reused:
            line += f"; no new version: --set gave {self.version_reused}, which existed already"
        return line

    def __str__(self) -> str:
        return self.line()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class NotBlessedError(MlmdMagicError):
    """A push refused: the model's latest evaluation under a policy is not blessed (the message
    lists the failed checks), or there is none."""
