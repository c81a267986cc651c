"""Suggestions for a name that matches nothing: the known names and the closest one.

Pure and dependency-free, so that the domain's errors, the API's error mapping and the CLI's
argument parser all answer a typo the same way ("did you mean mnist_cnn?").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

MAX_LISTED = 20  # a registry of hundreds of models lists the first ones and a count


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice nearest to ``word`` (difflib's similarity at least 0.6), or None."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def listing(choices: Iterable[str], limit: int = MAX_LISTED) -> str:
    """The choices, comma-separated; past ``limit``, the first ones and how many more."""
    items = list(choices)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"did you mean X?"`` for the closest choice, or "" when none is close."""
    near = closest(word, choices)
    return f"did you mean {near}?" if near is not None else ""


def unknown(kind: str, word: str, choices: Iterable[str]) -> str:
    """``unknown <kind> 'word' (known: a, b); did you mean a?``: the one message shape."""
    known = sorted(choices)
    if not known:
        return f"unknown {kind} {word!r} (no {kind} is registered yet)"
    hint = did_you_mean(word, known)
    return f"unknown {kind} {word!r} (known: {listing(known)})" + (f"; {hint}" if hint else "")
