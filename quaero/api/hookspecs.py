"""Every hook a Quaero plugin can implement. Keep them few.

A plugin is a module (or object) found through the ``quaero`` entry-point group, whose hooks are
decorated with :data:`hookimpl`::

    from quaero.api import Action, hookimpl

    @hookimpl
    def register_actions(register):
        register(Action(name="echo", manager=EchoManager(), workers=[EchoWorker()], options=EchoOptions))

Every hook is optional. ``tests/test_hooks.py`` fails for a hook that is not documented here, in the
README, and exercised by a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pluggy

from quaero.api.actions import Action
from quaero.api.context import PluginHost
from quaero.api.database import PluginDatabase
from quaero.api.embeddings import Provider
from quaero.api.web import WebRegistry

PROJECT = "quaero"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_actions(register: Callable[[Action], None]) -> None:
    """Contribute job-definition actions.

    Fires once per process when the plugins load, before anything else. Call ``register(action)`` with a
    :class:`quaero.api.Action` for each action the plugin provides; the core, not the plugin, rejects an
    action name or job type another plugin already registered, naming both plugins. Returns nothing.
    """


@hookspec
def register_providers(register: Callable[[Provider], None]) -> None:
    """Contribute models for search by meaning (API 1.5).

    Fires once per process when the plugins load, beside ``register_actions``. Call ``register(provider)``
    with a :class:`quaero.api.EmbeddingProvider` (an embedding model, named by the ``embedder`` setting) or a
    :class:`quaero.api.AnswerProvider` (a model that answers from passages, named by the ``answerer``
    setting) for each model the plugin offers; a name another plugin already registered for the same kind
    is refused, naming both plugins. The provider's ``create(ctx)`` runs lazily after ``startup``, with the
    plugin's context. Returns nothing.
    """


@hookspec
def startup(plugin: PluginHost) -> Any:
    """Prepare the plugin in this process: read its settings, migrate its tables, build its state.

    Fires once per process (server, ``quaero run``, each ``quaero worker``) after the database is open and
    before any of the plugin's steps or jobs run. Call ``plugin.configure(SettingsModel)`` to validate the
    plugin's settings and ``plugin.migrate([Migration(...), ...])`` for its own tables. Return the plugin's
    state (clients, caches: anything its managers, workers and routes share), which contexts give back as
    ``ctx.state``; if it has a ``close()`` method, the core calls it when the process stops. A startup that
    raises is reported (``quaero plugins``, the Plugins page) and the plugin's actions are left out.
    """


@hookspec
def register_web(web: WebRegistry) -> None:
    """Add routes and templates to the web server.

    Fires once when the web application is built (``quaero serve``), after ``startup``. Call
    ``web.route(path, endpoint, methods=[...])`` for each page or endpoint (``async def endpoint(request,
    ctx)``) and ``web.templates(directory)`` for the plugin's Jinja templates. Returns nothing.
    """


@hookspec
def jobs_deleted(job_ids: Sequence[str], db: PluginDatabase) -> None:
    """Remove the plugin's rows that belong to deleted jobs.

    Fires inside the transaction that deletes the jobs (a job deleted over the API, executions pruned by
    ``database_maintenance``), with the ids of every deleted job (the executions, their steps and their
    children); statements run through ``db`` commit or roll back with the deletion. Returns nothing.
    """


@hookspec
def documents_deleted(document_ids: Sequence[int], db: PluginDatabase) -> None:
    """Remove the plugin's rows that belong to deleted documents.

    Fires inside the transaction that deletes the documents (one over the API or a page, or a bulk
    delete by filter), with their ids; statements run through ``db`` commit or roll back with it.
    Returns nothing.
    """
