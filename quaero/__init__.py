"""Quaero: a self-hosted knowledge base driven by a job system.

The names below are the public plugin API; a plugin needs nothing else from ``quaero``.
"""

from importlib.metadata import PackageNotFoundError, version

from quaero.engine.context import JobContext
from quaero.stores.documents import DocumentInput, SaveResult
from quaero.errors import JobCancelled, JobError, QuaeroError
from quaero.api.hookspecs import hookimpl
from quaero.api.actions import Action, JobWorker, StepManager, StepOptions
from quaero.stores.jobs import ChildSpec

try:
    __version__ = version("quaero")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "Action", "ChildSpec", "DocumentInput", "JobCancelled", "JobContext", "JobError", "JobWorker", "QuaeroError",
    "SaveResult", "StepManager", "StepOptions", "__version__", "hookimpl",
]
