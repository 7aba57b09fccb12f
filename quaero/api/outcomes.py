"""What a finished job came to, beyond its status: its *outcome*.

A job's status says whether it ran to the end (``completed``) or not (``failed``, ``cancelled``); its outcome
says what that end was, so that a crawl's children are not all just "completed":

- ``saved``: it saved (created or changed) what it worked on;
- ``unchanged``: what it worked on was already stored as it is;
- ``skipped:<reason>``: it decided not to do the work (``robots``, ``noindex``, ``duplicate``,
  ``not_html``, ``http_404``, ``blocked_address``, ``redirect_loop``, ...);
- ``failed`` or ``failed:<reason>``: set by the core on every failed job (a worker may name the reason).

Any kind may carry a reason that tells apart how it came about (``saved:rendered``: a page saved after
rendering it in a browser); a filter on the kind (``saved``) matches it with any reason.

A worker sets it with :meth:`quaero.api.JobContext.set_outcome`; it is stored with the job's last status
change. A completed job that set none has none (shown as plain "completed").
"""

from __future__ import annotations

import re

#: The kinds of outcome, in the order the pages list them.
OUTCOMES = ("saved", "unchanged", "skipped", "failed")
_REASON = re.compile(r"[a-z0-9][a-z0-9_.-]{0,59}")


def outcome_text(outcome: str, reason: str | None = None) -> str:
    """The stored form of an outcome: ``saved``, ``skipped:robots``, ...; :class:`ValueError` when it is
    not one of :data:`OUTCOMES`, or its reason is not a short lower-case word (``http_404``)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if reason is None or reason == "":
        return outcome
    reason = reason.lower()
    if not _REASON.fullmatch(reason):
        raise ValueError(f"outcome reason {reason!r} must be a short word of a-z, 0-9, '_', '.' or '-' "
                         f"(at most 60 characters), like 'robots' or 'http_404'")
    return f"{outcome}:{reason}"


def split_outcome(text: str) -> tuple[str, str | None]:
    """``"skipped:robots"`` → ``("skipped", "robots")``; ``"saved"`` → ``("saved", None)``."""
    kind, _, reason = text.partition(":")
    return kind, reason or None


def outcome_filter(value: str) -> str:
    """A filter on outcomes as given (``skipped``: any reason; ``skipped:robots``: that one), checked;
    :class:`ValueError` saying what is allowed."""
    kind, reason = split_outcome(value.strip().lower())
    try:
        return outcome_text(kind, reason)
    except ValueError:
        raise ValueError(f"outcome {value[:60]!r} is not one of {', '.join(OUTCOMES)}, or one of them with a "
                         f"reason (like skipped:robots, skipped:http_404 or saved:rendered)") from None
