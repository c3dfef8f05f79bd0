"""Record names and references (``NAME`` or ``NAME@N``).

Names are restricted to letters, digits, ``.``, ``_`` and ``-`` and start with a letter or
digit. The restriction is deliberate: a name is used unquoted in MLMD filter queries, in
YAML cell bodies, in shell commands of the CLI and as part of MLMD artifact names, and
``@`` is reserved to separate a name from its version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidNameError

# Used with fullmatch only: "$" would also match before a final newline ("abc\n").
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIGITS_RE = re.compile(r"[0-9]+")
NAME_RULE = (
    "names are 1-128 characters of letters, digits, '.', '_' and '-', starting with a "
    "letter or digit ('@' separates a name from its version, and the other characters "
    "would need quoting in queries, YAML and shells)"
)


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid record name, else raise :class:`InvalidNameError`.

    >>> check_name("t21-baseline")
    't21-baseline'
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} must be a string, got {type(name).__name__}")
    if not NAME_RE.fullmatch(name):
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise InvalidNameError(f"invalid {what} {shown!r}: {NAME_RULE}")
    return name


def is_number(text: object) -> bool:
    """Whether ``text`` is a whole number written with the ASCII digits 0-9 only.

    ``str.isdigit`` also accepts superscripts and other scripts' digits, which ``int``
    then refuses (``"²".isdigit()`` is true).

    >>> is_number("12"), is_number("²"), is_number("1\\n"), is_number("")
    (True, False, False, False)
    """
    return isinstance(text, str) and _DIGITS_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``name`` and ``version`` (``None`` means the latest)."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def parse_ref(ref: object, what: str = "reference") -> Ref:
    """Parse ``NAME`` or ``NAME@N`` (N a positive integer).

    >>> parse_ref("mlp-small@2")
    Ref(name='mlp-small', version=2)
    >>> parse_ref("mlp-small").version is None
    True
    """
    if not isinstance(ref, str):
        raise InvalidNameError(f"{what} must be a string like NAME or NAME@2")
    if "~" in ref:
        raise InvalidNameError(f"{ref!r} is a sweep's trial, one experiment version of its own: use it where a "
                               "version is meant (get, train, evaluate, diff), and the experiment's NAME for its "
                               "versions")
    name, sep, version = ref.partition("@")
    check_name(name, what)
    if not sep:
        return Ref(name)
    if not is_number(version) or int(version) < 1:
        raise InvalidNameError(
            f"invalid {what} {ref!r}: the part after '@' must be a version number >= 1, "
            "e.g. NAME@2; leave it out for the latest version"
        )
    return Ref(name, int(version))


# A sweep's trial: BASE@N~SWEEP@V#K — trial K of version V of sweep SWEEP, varying experiment
# version BASE@N. "~" is never part of a name, so a reference holding it is a trial's.
_TRIAL_RE = re.compile(r"([^~@#]+)@([0-9]+)~([^~@#]+)@([0-9]+)#([0-9]+)")


@dataclass(frozen=True)
class TrialRef:
    """A parsed trial reference ``BASE@N~SWEEP@V#K``.

    >>> TrialRef.parse("t21-baseline@2~lr-search@1#3")
    TrialRef(base=Ref(name='t21-baseline', version=2), sweep=Ref(name='lr-search', version=1), number=3)
    >>> str(TrialRef(Ref("a", 1), Ref("s", 2), 0))
    'a@1~s@2#0'
    """

    base: Ref
    sweep: Ref
    number: int

    def __str__(self) -> str:
        return f"{self.base}~{self.sweep}#{self.number}"

    @classmethod
    def parse(cls, ref: object, what: str = "trial reference") -> TrialRef:
        """Parse ``BASE@N~SWEEP@V#K``; raise :class:`InvalidNameError` naming the form otherwise."""
        found = _TRIAL_RE.fullmatch(ref) if isinstance(ref, str) else None
        if found is None or not all(is_number(found.group(i)) for i in (2, 4, 5)):
            raise InvalidNameError(f"invalid {what} {ref!r}: a sweep's trial is named EXPERIMENT@N~SWEEP@V#K, "
                                   "e.g. t21-baseline@2~lr-search@1#3 (see the sweep's trials)")
        base, sweep = check_name(found.group(1), what), check_name(found.group(3), what)
        return cls(Ref(base, int(found.group(2))), Ref(sweep, int(found.group(4))), int(found.group(5)))


def is_trial(ref: object) -> bool:
    """Whether ``ref`` names a sweep's trial (or a run of one): it holds ``~``.

    >>> is_trial("t21-baseline@2~lr-search@1#3"), is_trial("t21-baseline@2")
    (True, False)
    """
    return isinstance(ref, str) and "~" in ref


def is_run_name(word: str) -> bool:
    """Whether ``word`` names one run, ``EXPERIMENT@N#K`` (a trial's: ``BASE@N~SWEEP@V#K#R``),
    rather than an experiment version, whose latest run it would then mean.

    >>> [is_run_name(w) for w in ("a@1#2", "a@1", "a@1~s@1#3", "a@1~s@1#3#1")]
    [True, False, False, True]
    """
    head, sep, tail = word.partition("~")
    return tail.count("#") >= 2 if sep else "#" in head


def experiment_ref(data: dict[str, object]) -> str:
    """The reference of the experiment version whose dict (``get_experiment``) is ``data``:
    ``NAME@N``, or a trial's ``BASE@N~SWEEP@V#K``.

    >>> experiment_ref({"experiment": "a", "version": 2})
    'a@2'
    >>> experiment_ref({"experiment": "a", "version": 2, "trial": "a@2~s@1#3"})
    'a@2~s@1#3'
    """
    trial = data.get("trial")
    return str(trial) if trial else f"{data['experiment']}@{data['version']}"
