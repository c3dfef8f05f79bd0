"""What the experiment and the policy editors share: checking a form as the library would save
it, the diff against the stored version, and a one-line summary of the change."""

from __future__ import annotations

import html
import json
from typing import Any, Callable

from ..core.values import Diff, diff_values, flatten
from ..errors import MlmdMagicError

_WARN = "color:#b36b00"


def show_error(panel: Any, exc: Exception) -> None:
    """``panel.status`` says what is wrong, in red."""
    panel.status.value = f"<span style='color:crimson'>✗ {html.escape(str(exc))}</span>"


def check_form(panel: Any, ref: str, stored: dict[str, Any], pending: Callable[[], dict[str, Any]], *,
               warnings: Callable[[dict[str, Any]], list[str]] | None = None,
               ignore: tuple[str, ...] = ()) -> list[Any] | None:
    """Check ``panel``'s form: ``pending()`` gives what saving would record (by the library's own
    rules, raising its errors); set ``panel.status`` (✓ valid, ⚠ with ``warnings``, or ✗ the
    error), ``panel.diff`` (the changes against ``stored``, the version ``ref``) and
    ``panel.save_button`` (enabled when valid and changed). Returns the changes (keys in
    ``ignore`` left out), or None when the form is invalid."""
    try:
        value = pending()
    except MlmdMagicError as exc:
        show_error(panel, exc)
        panel.diff.value = ""
        panel.save_button.disabled = True
        return None
    changes = diff_values(ref, stored, "pending", value)
    changed = [c for c in changes.changes if c.key not in ignore]
    panel.save_button.disabled = not changed
    notes = warnings(value) if warnings is not None else []
    head = (f"<span style='{_WARN}'>⚠ can be saved, but check:</span>" if notes
            else "<span style='color:green'>✓ valid</span>")
    panel.status.value = (head + ("" if changed else " — no changes")
                          + "".join(f"<br><span style='{_WARN}'>⚠ {html.escape(n)}</span>" for n in notes))
    panel.diff.value = Diff(changes.a, changes.b, tuple(changed))._repr_html_() if changed else ""
    return changed


def change_summary(stored: dict[str, Any], pending: dict[str, Any], ignore: tuple[str, ...] = ()) -> str:
    """``key old -> new; …`` for each flattened key whose value changes (recorded as the source of
    a panel's save), or ``no changes``.

    >>> change_summary({"params": {"epochs": 3, "hidden": [8]}}, {"params": {"epochs": 7, "hidden": [8]}})
    'params.epochs 3 -> 7'
    """
    before, after = flatten(stored), flatten(pending)

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    parts = [f"{key} {dump(before.get(key))} -> {dump(value)}" for key, value in after.items()
             if key not in ignore and dump(before.get(key)) != dump(value)]
    return "; ".join(parts) or "no changes"
