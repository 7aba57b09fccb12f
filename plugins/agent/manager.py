"""AgentManager: picks the documents, skips those whose result is current, and hands out the work.

Remote providers get one job per document (one conversation each, retried on its own); the local
provider gets batches, so its models load once per batch rather than per document.
"""

from __future__ import annotations

from typing import Any

from quaero.api import (
    ChildSpec,
    DocumentFilter,
    JobError,
    JobView,
    PluginContext,
    ReadinessContext,
    StepContext,
    StepManager,
)

from .keys import MissingKey, find_key, settings_of, target
from .options import AgentOptions
from .prompts import operation_key
from .worker import WORKER_TYPE, result_fingerprint

#: Documents read per page while selecting (only their ids and content hashes).
PAGE = 1000
#: The search language's pages are at most this long.
SEARCH_PAGE = 100


def selection(options: AgentOptions) -> DocumentFilter:
    """The filter part of a step's selection (``query`` narrows it further)."""
    return DocumentFilter(source_types=(options.source_type,) if options.source_type else (), tags=tuple(options.tags))


class AgentManager(StepManager):
    """Selects the documents when the step starts; the workers make the results."""

    manager_type = "agent"

    def readiness(self, ctx: ReadinessContext, options: AgentOptions) -> str | None:
        where = target(options, settings_of(ctx))
        if options.operation == "prompt" and not where.remote:
            return ("the prompt operation needs a remote provider, and the settings' default is local: set "
                    "provider: openai or gemini on the step")
        if where.remote:  # a server on this machine (Ollama on localhost, say) must be allowed first
            refusal = ctx.outbound_refusal(where.base_url)
            if refusal is not None:
                return f"{where.provider} at {where.base_url}: {refusal}"
        return self._key_problem(ctx, options)

    def _key_problem(self, ctx: ReadinessContext | StepContext, options: AgentOptions) -> str | None:
        """Why no key can be found for a remote step (``None``: one can, or the step is local)."""
        where = target(options, settings_of(ctx))
        if not where.remote:
            return None
        try:
            find_key(ctx, options, where)
        except MissingKey as exc:
            return str(exc)
        return None

    def start_step(self, ctx: StepContext) -> None:
        options: AgentOptions = ctx.options
        state = ctx.state
        where = target(options, settings_of(ctx))
        reason = self._key_problem(ctx, options)
        if reason:  # the key went away between the core's check and now
            raise JobError(reason, retryable=False)
        state.books.open_step(ctx.step.id, options.max_total_tokens)
        recipe = result_fingerprint(options, where, state.local.describe_text() if not where.remote else "")
        hashes = self._candidates(ctx, options)
        done = state.books.done(operation_key(options), recipe) if options.only_missing else {}
        ids = [doc_id for doc_id, content in hashes if done.get(doc_id) != content]
        skipped = len(hashes) - len(ids)
        size = 1 if where.remote else options.batch_size
        batches = [ids[start:start + size] for start in range(0, len(ids), size)]
        provider = f"{where.provider} ({where.model})" if where.remote else "local"
        ctx.log("info", f"{options.operation} with {provider}: {len(hashes)} document(s) selected, {skipped} "
                        f"already done, {len(ids)} to do in {len(batches)} job(s)",
                selected=len(hashes), skipped=skipped, jobs=len(batches))
        ctx.set_result(selected=len(hashes), already_done=skipped, to_do=len(ids))
        ctx.spawn_many([ChildSpec(WORKER_TYPE, f"document {batch[0]}" if len(batch) == 1
                                  else f"documents {batch[0]}-{batch[-1]}", {"ids": batch})
                        for batch in batches])

    def _candidates(self, ctx: StepContext, options: AgentOptions) -> list[tuple[int, str]]:
        """(id, content hash) of every selected document, the newest first, at most ``limit``."""
        limit = options.limit
        matching = self._matching(ctx, options.query) if options.query else None
        known: list[tuple[int, str]] = []
        offset = 0
        while limit is None or len(known) < limit:
            page = ctx.documents.list(selection(options), sort="-updated_at", limit=PAGE, offset=offset, bodies=False)
            known += [(doc.id, doc.content_hash) for doc in page if matching is None or doc.id in matching]
            if len(page) < PAGE:
                break
            offset += PAGE
        return known[:limit] if limit is not None else known

    def _matching(self, ctx: StepContext, query: str) -> set[int]:
        found: set[int] = set()
        offset = 0
        while True:
            page = ctx.documents.search(query, limit=SEARCH_PAGE, offset=offset)
            found.update(hit.id for hit in page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return found

    def stats(self, ctx: PluginContext, step: JobView) -> dict[str, Any] | None:
        tokens = ctx.state.books.tokens(step.id) if ctx.state is not None else None
        if tokens is None:
            return None
        figures: dict[str, Any] = {"results": tokens.results, "prompt_tokens": tokens.prompt_tokens,
                                   "completion_tokens": tokens.completion_tokens, "tokens_used": tokens.used,
                                   "calls": tokens.calls}
        if tokens.budget is not None:
            figures.update(token_budget=tokens.budget, budget_left=max(0, tokens.budget - tokens.used))
        if tokens.refused:
            figures["calls_refused_by_budget"] = tokens.refused
        return figures
