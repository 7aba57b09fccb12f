"""Quaero's public plugin API: the one package a plugin imports.

Everything a plugin needs is here: the roles it subclasses (:class:`StepManager`, :class:`JobWorker`,
:class:`StepOptions`, :class:`Action`), the contexts the core hands it (:class:`StepContext`,
:class:`JobContext`, :class:`PluginHost`, :class:`WebContext`), plain data (:class:`JobView`,
:class:`DocumentInput`, :class:`Document`, :class:`Credentials`, ...), its settings and migrations, the
hooks (:data:`hookimpl`, documented in :mod:`quaero.api.hookspecs`), the errors to raise,
:mod:`quaero.api.outbound` (the HTTP client, shared rate limits, retry delays) and :mod:`quaero.api.markdown`
(HTML to markdown). Plugin tests use :mod:`quaero.testing`.

:data:`VERSION` is ``MAJOR.MINOR``: a minor release only adds, a major one may break. A plugin declares
what it needs with a module-level ``QUAERO_API = "1.1"`` (this major, at least this minor); the core
reports and skips a plugin that needs a version it does not provide.

1.1 added ``ctx.http``, ``ctx.rate_limit`` and :class:`RateReservation`, ``JobContext.update_document`` and
``stop_step``, :meth:`StepManager.readiness` (with :class:`ReadinessContext`), and :data:`SecretReference`
for secrets in step options. 1.2 added :class:`OutboundRefused` (the outbound policy refused an address; an
:class:`httpx.ConnectError`), ``ctx.outbound_refusal(url)``, :meth:`JobWorker.after_failure`, and, in
:mod:`quaero.api.processes`, names for lease holders that tell when their process is gone
(:func:`lease_holder`, :func:`holder_gone`). 1.3 added job outcomes: ``JobContext.set_outcome`` (``saved``,
``unchanged``, ``skipped`` with a reason, ``failed``: :mod:`quaero.api.outcomes`, with :data:`OUTCOMES`),
``JobContext.waiting`` (a job that waits for a politeness slot is shown as waiting, not running), and
``outcome`` and ``waiting`` on :class:`JobView`, and :meth:`JobWorker.before_rerun` (take back what
``after_failure`` gave up, before a failed job runs again). 1.4: every outcome may carry a reason
(``saved:rendered``: the crawler saved a page it rendered in a browser), not only ``skipped`` and ``failed``.
1.5 added search by meaning (:mod:`quaero.api.embeddings`): the ``register_providers`` hook with
:class:`EmbeddingProvider` / :class:`Embedder` and :class:`AnswerProvider` / :class:`Answerer`, and
``ctx.embeddings`` (:class:`EmbeddingIndex`). 1.6 added :func:`quaero.api.markdown.tree_to_markdown`
(convert an element of a page already parsed, without parsing it again).
"""

from quaero.api.actions import Action, JobWorker, StepManager, StepOptions
from quaero.api.context import JobContext, PluginContext, PluginHost, ReadinessContext, StepContext
from quaero.api.credentials import Credentials
from quaero.api.database import Migration, PluginDatabase
from quaero.api.documents import (
    Document,
    DocumentFilter,
    DocumentInput,
    Documents,
    FullTextIndex,
    IndexReport,
    SaveResult,
    SearchHit,
    SearchPage,
)
from quaero.api.embeddings import (
    Answer,
    Answerer,
    AnswerProvider,
    Embedder,
    EmbeddingIndex,
    EmbeddingProvider,
    EmbeddingReport,
    Passage,
)
from quaero.api.hookspecs import hookimpl
from quaero.api.jobs import ChildSpec, DefinitionInfo, JobView
from quaero.api.maintenance import DatabaseMaintenance, Outcome
from quaero.api.outbound import OutboundRefused, RateReservation
from quaero.api.outcomes import OUTCOMES
from quaero.api.processes import ProcessIdentity, holder_gone, lease_holder, this_process
from quaero.api.settings import PluginSettings, Secret, SecretReference
from quaero.api.web import WebContext, WebRegistry
from quaero.errors import (
    ConfigError,
    Conflict,
    DefinitionError,
    JobCancelled,
    JobError,
    NotFound,
    QuaeroError,
    QueryError,
)

VERSION = "1.6"

__all__ = [
    "VERSION", "Action", "Answer", "AnswerProvider", "Answerer", "ChildSpec", "ConfigError", "Conflict",
    "Credentials", "DatabaseMaintenance",
    "DefinitionError", "DefinitionInfo", "Document", "DocumentFilter", "DocumentInput", "Documents",
    "Embedder", "EmbeddingIndex", "EmbeddingProvider", "EmbeddingReport",
    "FullTextIndex", "IndexReport", "JobCancelled", "JobContext", "JobError", "JobView", "JobWorker", "Migration",
    "NotFound", "OUTCOMES", "Outcome", "OutboundRefused", "Passage", "PluginContext", "PluginDatabase", "PluginHost",
    "PluginSettings",
    "ProcessIdentity", "QuaeroError", "QueryError", "RateReservation", "ReadinessContext", "SaveResult",
    "SearchHit", "SearchPage", "Secret", "SecretReference", "StepContext", "StepManager", "StepOptions",
    "WebContext", "WebRegistry", "holder_gone", "hookimpl", "lease_holder", "this_process",
]
