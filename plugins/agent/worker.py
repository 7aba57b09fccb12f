"""AgentWorker: runs the step's operation over one job's documents and stores each result on its document.

Local jobs hold a batch of documents and run offline; remote jobs hold one document and one conversation
with the provider. A result is stored only if the document still has the content it was made from, in
one transaction with the row that lets a re-run skip it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from quaero.api import Conflict, Document, JobContext, JobError, JobView, JobWorker, NotFound, RateReservation

from .books import AgentBooks
from .keys import MissingKey, Target, find_key, fingerprint, settings_of, target
from .options import AgentOptions
from .prompts import SUMMARY_SENTENCES, ask, operation_key
from .provider import ProviderConfig, ProviderError
from .remote import complete
from .tokens import cut_to_tokens, estimate_tokens

WORKER_TYPE = "agent_documents"
#: Seconds a budget reservation outlives its call's timeout (the rate-limit wait comes after it).
RESERVATION_MARGIN = 120.0


class BudgetSpent(JobError):
    """The step's token budget cannot hold the next call."""


def result_fingerprint(options: AgentOptions, where: Target, local_models: str) -> str:
    """How a result is made, as a hash: a result with the same one (and the same content) is not made again."""
    recipe: dict[str, Any] = {"operation": options.operation, "provider": where.provider}
    if where.remote:
        recipe.update(model=where.model, base_url=where.base_url, max_input_tokens=options.max_input_tokens)
    else:
        recipe.update(models=local_models, language=options.language, rerank=options.rerank)
    if options.operation == "keyword_extraction":
        recipe["max_keywords"] = options.max_keywords
    elif options.operation == "summarization":
        recipe.update(max_sentences=options.max_sentences, max_words=options.max_words)
    else:
        recipe.update(prompt=options.prompt, result_key=options.result_key, schema=options.json_schema)
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


@dataclass
class Made:
    """One document's result, and the tokens it took."""

    keywords: list[str] | None = None
    summary: str | None = None
    answer: Any = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class StepLimiter:
    """What a remote call goes through: the step's budget, then the provider's rate limit for the key."""

    def __init__(self, ctx: JobContext, books: AgentBooks, bucket: str, options: AgentOptions) -> None:
        self.ctx = ctx
        self.books = books
        self.bucket = bucket
        self.options = options

    def acquire(self, tokens: int) -> _Admitted:
        step = self.ctx.step
        # A reservation outlives its call by a margin; one whose process died frees itself after that.
        held = self.books.reserve(step.id, tokens, lease=self.options.timeout + RESERVATION_MARGIN)
        if held is None:
            spent = self.books.tokens(step.id)
            used = spent.used if spent else 0
            raise BudgetSpent(f"the step's token budget of {self.options.max_total_tokens} is spent ({used} used, "
                              f"the next call needs up to {tokens})", retryable=False)
        try:
            admitted = self.ctx.rate_limit(self.bucket, requests_per_minute=self.options.requests_per_minute,
                                           tokens_per_minute=self.options.tokens_per_minute, tokens=tokens)
        except BaseException:
            self.books.settle(step.id, held, 0)
            raise
        return _Admitted(self, admitted, held)


class _Admitted:
    def __init__(self, limiter: StepLimiter, reservation: RateReservation, held: int) -> None:
        self.limiter = limiter
        self.reservation = reservation
        self.held = held

    def settle(self, tokens: int) -> None:
        self.reservation.settle(tokens)
        self.limiter.books.settle(self.limiter.ctx.step.id, self.held, tokens)


class AgentWorker(JobWorker):
    """Makes one job's results: ``job.config["ids"]`` are the documents."""

    worker_type = WORKER_TYPE
    # A provider's failures are retried inside the call, with the waits the provider asks for; what is left
    # when a job fails (a database hiccup, a killed process) is worth one more try.
    max_retries = 1

    def validate(self, job: JobView) -> None:
        ids = job.config.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise JobError("an agent job needs config.ids: a list of document ids")

    def execute(self, ctx: JobContext, job: JobView) -> None:
        options: AgentOptions = ctx.options
        state = ctx.state
        where = target(options, settings_of(ctx))
        local = state.local if not where.remote else None
        recipe = result_fingerprint(options, where, local.describe_text() if local else "")
        operation = operation_key(options)
        tally: Counter[str] = Counter()
        tokens = Counter[str]()
        todo: list[Document] = []
        for doc_id in job.config["ids"]:
            try:
                doc = ctx.documents.get(doc_id)
            except NotFound:
                tally["deleted"] += 1
                continue
            if options.only_missing and state.books.is_done(doc.id, operation, recipe, doc.content_hash):
                tally["unchanged"] += 1
                continue
            if not (doc.markdown or "").strip() and not doc.title.strip():
                tally["empty"] += 1
                continue
            todo.append(doc)
        if todo:
            if where.remote:
                made = self._remote(ctx, options, where, todo)
            else:
                made = self._local(ctx, options, todo)
            for doc, result in made:
                tally[self._store(ctx, options, state.books, operation, recipe, doc, result)] += 1
                tokens["prompt_tokens"] += result.prompt_tokens
                tokens["completion_tokens"] += result.completion_tokens
        figures = {name: tally[name] for name in ("stored", "unchanged", "changed_since", "deleted", "empty",
                                                  "budget") if tally[name]}
        if where.remote:
            figures.update(prompt_tokens=tokens["prompt_tokens"], completion_tokens=tokens["completion_tokens"])
        ctx.set_result(**figures)
        if tally["stored"]:
            ctx.set_outcome("saved")
        elif tally["unchanged"]:
            ctx.set_outcome("unchanged")
        described = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in figures.items())
        ctx.log("info", f"{options.operation} of {len(job.config['ids'])} document(s): {described}", **figures)

    # ------------------------------------------------------------------ local
    def _local(self, ctx: JobContext, options: AgentOptions, docs: list[Document]) -> list[tuple[Document, Made]]:
        models = ctx.state.local.models
        ctx.progress(f"local {options.operation.replace('_', ' ')}", current=0, total=len(docs))
        texts = [f"# {doc.title}\n\n{doc.markdown or ''}" if doc.title else doc.markdown or "" for doc in docs]
        if options.operation == "keyword_extraction":
            found = models.batch_keywords(texts, max_keywords=options.max_keywords, rerank=options.rerank,
                                          language=options.language)
            made = [Made(keywords=keywords) for keywords in found]
        else:
            sentences = options.max_sentences or (None if options.max_words else SUMMARY_SENTENCES)
            summaries = models.batch_summaries([doc.markdown or "" for doc in docs], max_sentences=sentences,
                                               max_words=options.max_words, language=options.language)
            made = [Made(summary=summary) for summary in summaries]
        ctx.progress(f"local {options.operation.replace('_', ' ')}", current=len(docs), total=len(docs))
        return list(zip(docs, made, strict=True))

    # ------------------------------------------------------------------ remote
    def _remote(self, ctx: JobContext, options: AgentOptions, where: Target,
                docs: list[Document]) -> list[tuple[Document, Made]]:
        try:
            key = find_key(ctx, options, where)
        except MissingKey as exc:
            raise JobError(str(exc), retryable=False) from None
        config = ProviderConfig(
            kind="gemini" if where.provider == "gemini" else "openai", base_url=where.base_url, model=where.model,
            api_key=key, timeout=options.timeout, max_output_tokens=options.max_output_tokens,
            temperature=options.temperature, max_retries=options.max_retries)
        bucket = f"agent:{where.provider}:{where.base_url}:{fingerprint(key) if key else 'no-key'}"
        limiter = StepLimiter(ctx, ctx.state.books, bucket, options)
        made: list[tuple[Document, Made]] = []
        for doc in docs:
            ctx.check_cancelled()
            text, cut = cut_to_tokens(doc.markdown or "", options.max_input_tokens)
            if cut:
                ctx.log("info", f"document {doc.id} cut to about {options.max_input_tokens} tokens at a paragraph "
                                f"boundary (it has about {estimate_tokens(doc.markdown or '')})",
                        document_id=doc.id)
            request = ask(options, doc, text)
            ctx.progress(f"asking {where.provider} ({where.model})", current_item=doc.title or doc.source_ref)
            try:
                answer = complete(ctx.http, config, system=request.system, prompt=request.prompt,
                                         schema=request.schema, limiter=limiter, sleep=ctx.sleep, log=ctx.log)
            except BudgetSpent as exc:
                ctx.stop_step(exc.message)
                made.extend((left, Made()) for left in docs[docs.index(doc):])
                return made
            except ProviderError as exc:
                if exc.quota_exhausted:
                    ctx.stop_step(f"{where.provider} says the quota is exhausted: {exc.message}")
                raise
            ctx.log("info", f"document {doc.id}: {answer.prompt_tokens} prompt + {answer.completion_tokens} "
                            f"completion tokens", document_id=doc.id, prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens)
            made.append((doc, self._read(options, answer)))
        return made

    def _read(self, options: AgentOptions, answer: Any) -> Made:
        made = Made(prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens)
        if options.operation == "keyword_extraction":
            made.keywords = _clean_keywords(answer.data["keywords"], options.max_keywords)
        elif options.operation == "summarization":
            made.summary = str(answer.data["summary"]).strip()
        else:
            made.answer = answer.data if options.json_schema is not None else answer.text.strip()
        return made

    # ------------------------------------------------------------------ storing
    def _store(self, ctx: JobContext, options: AgentOptions, books: AgentBooks, operation: str, recipe: str,
               doc: Document, made: Made) -> str:
        if made.keywords is None and made.summary is None and made.answer is None:
            return "budget"
        metadata = {options.result_key: made.answer} if options.result_key else None
        try:
            with ctx.db.transaction():
                ctx.update_document(doc.id, keywords=made.keywords, summary=made.summary, metadata=metadata,
                                    if_content_hash=doc.content_hash)
                books.record(doc.id, operation, recipe, doc.content_hash, ctx.step.id, made.prompt_tokens,
                             made.completion_tokens)
        except Conflict:
            return "changed_since"  # its content changed while we worked: the next run makes it again
        except NotFound:
            return "deleted"
        return "stored"


def _clean_keywords(values: Any, limit: int) -> list[str]:
    """A model's keywords as a list of distinct, trimmed strings, at most ``limit``."""
    seen: set[str] = set()
    keywords = []
    for value in values if isinstance(values, list) else []:
        text = " ".join(str(value).split())
        if text and text.lower() not in seen:
            seen.add(text.lower())
            keywords.append(text)
    return keywords[:limit]
