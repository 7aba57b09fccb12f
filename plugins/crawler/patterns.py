"""The crawl's URL patterns on RE2, a regular-expression engine whose matching time grows linearly with the
text: a pattern such as ``(a+)+$`` that takes Python's ``re`` exponential time on a long URL (holding the
GIL, so the whole worker process stalls) is matched at once.

RE2 has no backreferences (``\\1``), no lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``) and no
possessive or atomic groups; a pattern that needs them is refused when the definition is validated, with
what to change. Everything else a URL pattern needs (classes, anchors, ``(?i)``, repetition) is there.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["compile_pattern"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is raised with its reason; RE2 would print it to stderr as well


def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (it has ``search(text)``); :class:`ValueError` saying what to change."""
    if not isinstance(pattern, str):
        raise ValueError(f"{pattern!r} is not text")
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"{pattern!r} cannot be used: {reason}. URL patterns run on RE2, which matches in time linear in the "
            f"URL's length and so has no backreferences (\\1, (?P=name)), lookahead or lookbehind ((?=...), "
            f"(?!...), (?<=...), (?<!...)) and no \\Z (write \\z or $): rewrite the pattern without them, "
            f"e.g. as several patterns in include_patterns or exclude_patterns") from None
