"""Keeping credentials out of everything mlmd-magic shows, logs or records.

Two layers: every secret the process used to connect is remembered here and replaced by
``***`` wherever text leaves the library (recorded cell sources, error messages, reprs),
and generic patterns catch credentials the library never saw (a password typed into a
URI in a cell that failed before connecting, ``password=...`` in a YAML body).
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

_lock = threading.Lock()
_known: set[str] = set()

# user:password@ inside any scheme://... URI
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*:)(?P<pw>[^@\s'\"]*)(?=@)")
# password=..., passwd: ..., MLMD_MAGIC_MYSQL_PASSWORD=..., --password ...
_KEY_VALUE = re.compile(
    r"(?P<head>\b[\w-]*(?:password|passwd|pwd|secret|token)[\w-]*\b['\"]?\s*[:=]\s*['\"]?)"
    r"(?P<pw>[^\s'\",;&]+)",
    re.IGNORECASE,
)
_FLAG = re.compile(r"(?P<head>--(?:password|passwd)[ =])(?P<pw>\S+)", re.IGNORECASE)


def remember(secret: str | None) -> None:
    """Remember a secret so that :func:`redact` masks it from now on."""
    if secret:
        with _lock:
            _known.add(secret)


def redact(text: str) -> str:
    """Return ``text`` with every known secret and credential-looking value masked.

    >>> redact("mysql://alice:s3cret@db:3306/x")
    'mysql://alice:***@db:3306/x'
    >>> redact("password: hunter2")
    'password: ***'
    """
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, MASK)
    text = _URI_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _KEY_VALUE.sub(lambda m: m.group("head") + MASK, text)
    text = _FLAG.sub(lambda m: m.group("head") + MASK, text)
    return text


class _RedactingFilter(logging.Filter):
    """Masks secrets in log records before any handler sees them.

    ``ml_metadata`` logs its whole ``ConnectionConfig`` (password included) at DEBUG
    through absl's logger; this filter sits on that logger and on ours.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own handling
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = _RedactingFilter()


def install_log_filter() -> None:
    """Attach the redacting filter to the loggers MLMD and mlmd-magic write to."""
    for name in ("absl", "mlmd_magic"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
