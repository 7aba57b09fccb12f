"""Quaero's exception tree.

Every error a user can act on derives from :class:`QuaeroError`; the HTTP layer maps each class to a
status code and the CLI prints its message.

    QuaeroError
    ├── ConfigError              bad setting (names the key and where it came from)
    ├── PluginError              a plugin failed to load or two plugins claim one action
    ├── DefinitionError          a job definition is invalid (names file, step, key, line)
    ├── NotFound                 no such job / definition / document
    ├── QueryError               a malformed search query, document filter or sort (says what is wrong)
    ├── Conflict                 the request clashes with the current state (e.g. deleting a running job)
    └── JobError                 raised inside a worker to fail its job with a clear message
        └── JobCancelled         the job was cancelled while it ran
"""

from __future__ import annotations


class QuaeroError(Exception):
    """Base class of every error Quaero raises on purpose."""

    status_code = 500

    def __init__(self, message: str, *, detail: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ConfigError(QuaeroError):
    """A setting is unknown or has the wrong type."""

    status_code = 400


class PluginError(QuaeroError):
    """A plugin could not be loaded, or two plugins claim the same action."""

    status_code = 500


class DefinitionError(QuaeroError):
    """A job definition is invalid; ``detail`` lists each problem with its location."""

    status_code = 400


class NotFound(QuaeroError):
    """The requested object does not exist."""

    status_code = 404


class QueryError(QuaeroError):
    """A search query, document filter or sort order is malformed; the message says what and where."""

    status_code = 400


class Conflict(QuaeroError):
    """The request conflicts with the object's current state."""

    status_code = 409


class JobError(QuaeroError):
    """Raised by a worker to fail its job with a message (no traceback needed).

    ``retryable=False`` fails the job at once even when its worker allows retries.
    """

    def __init__(self, message: str, *, retryable: bool = True, detail: object = None) -> None:
        super().__init__(message, detail=detail)
        self.retryable = retryable


class JobCancelled(JobError):
    """The job was cancelled while it was running."""
