"""Token budgets without a tokenizer: estimate a text's tokens, cut markdown to a budget.

No tokenizer is downloaded, so :func:`estimate_tokens` is a heuristic, meant to err on the high side so
that a prompt cut to a budget fits: an ASCII character counts a quarter of a token (OpenAI's rule of
thumb for English, about what Gemini's tokenizer gives too), a character of two UTF-8 bytes (accented
Latin, Greek, Cyrillic, Hebrew, Arabic) half a token, and a wider one (CJK, most other scripts, emoji)
a whole token. The real count comes back with each answer; the limiter is settled with that.
"""

from __future__ import annotations

import math
import re

_WIDE = re.compile("[\u0800-\U0010ffff]")  # three or four UTF-8 bytes
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s|(?<=[。！？])")
_WORD = re.compile(r"\s")
# A boundary is used only if it keeps at least this share of what fits; otherwise the next, finer kind
# is tried (one 10,000-token paragraph must not shrink to its heading).
_KEEP = 0.5


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` is (see the module docstring for the rule)."""
    if text.isascii():
        return math.ceil(len(text) / 4)
    ascii_count = len(text.encode("ascii", "ignore"))
    wide = len(text) - len(_WIDE.sub("", text))
    narrow = len(text) - ascii_count - wide
    return math.ceil(ascii_count / 4 + narrow / 2 + wide)


def cut_to_tokens(markdown: str, max_tokens: int) -> tuple[str, bool]:
    """``markdown`` cut to at most ``max_tokens`` (estimated), and whether it was cut.

    The cut falls on the last paragraph boundary (a blank line) that fits, else the last line end, else
    the last sentence end, else the last space: never inside a word. A text with no boundary at all in
    what fits (one giant word) comes back empty.
    """
    if estimate_tokens(markdown) <= max_tokens:
        return markdown, False
    if max_tokens <= 0:
        return "", True
    limit = _longest_prefix(markdown, max_tokens)
    window = markdown[: limit + 16]  # a boundary may start right at the limit: look a little past it
    for pattern in (_PARAGRAPH, _LINE, _SENTENCE, _WORD):
        end = _last_boundary(pattern, window, limit)
        if end is not None and end >= _KEEP * limit:
            return markdown[:end].rstrip(), True
    end = _last_boundary(_WORD, window, limit)
    return (markdown[:end].rstrip() if end is not None else ""), True


def _longest_prefix(text: str, max_tokens: int) -> int:
    """The length of the longest prefix of ``text`` estimated at ``max_tokens`` or fewer."""
    low, high = 0, min(len(text), 4 * max_tokens + 4)  # no character weighs less than a quarter token
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low


def _last_boundary(pattern: re.Pattern[str], text: str, limit: int) -> int | None:
    """Where the last match of ``pattern`` starting at or before ``limit`` starts, if text precedes it."""
    last = None
    for match in pattern.finditer(text):
        if match.start() > limit:
            break
        if text[: match.start()].strip():
            last = match.start()
    return last
