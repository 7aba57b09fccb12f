"""TransformWorker: converts one batch of documents, saving only those whose markdown changes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from quaero import DocumentInput, JobWorker
from quaero.errors import NotFound
from quaero.api.markdown import page_to_markdown

WORKER_TYPE = "transform_documents"
#: Progress is reported every this many documents (each report is a write).
PROGRESS_EVERY = 10


def _base_url(doc: Any, metadata: dict[str, Any]) -> str:
    """Where the page came from, for resolving its relative links: the URL the crawler recorded, or the
    reference when that is a URL."""
    url = metadata.get("url") or doc.source_ref
    return url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else ""


class TransformWorker(JobWorker):
    """Converts the HTML of the documents in ``job.config["ids"]``.

    Idempotent: a document whose new markdown equals what it holds is not written, so running the step again
    leaves every document, its content hash and its ``updated_at`` as they are.
    """

    worker_type = WORKER_TYPE

    def execute(self, ctx: Any, job: Any) -> None:
        ids: list[int] = job.config["ids"]
        tally: Counter[str] = Counter()
        for done, doc_id in enumerate(ids, 1):
            ctx.check_cancelled()
            tally[self.convert(ctx, doc_id)] += 1
            if done % PROGRESS_EVERY == 0 or done == len(ids):
                ctx.progress("converting HTML to markdown", current=done, total=len(ids))
        result = {outcome: tally[outcome] for outcome in
                  ("converted", "unchanged", "has_markdown", "no_html", "deleted")}
        ctx.services.jobs.update_payload(job.id, result=result)
        summary = ", ".join(f"{count} {outcome.replace('_', ' ')}" for outcome, count in result.items())
        ctx.log("info", f"{len(ids)} document(s): {summary}")

    def convert(self, ctx: Any, doc_id: int) -> str:
        """Convert one document; returns what happened to it (a key of the job's result)."""
        options = ctx.options
        try:
            doc = ctx.services.documents.get(doc_id)
        except NotFound:
            return "deleted"  # since the step picked it
        if not doc.html:
            return "no_html"
        if options.only_missing and doc.markdown.strip():
            return "has_markdown"  # converted since the step picked it (a rerun, or another step)
        metadata = json.loads(doc.metadata or "{}")
        markdown = page_to_markdown(doc.html, _base_url(doc, metadata), options.converter)
        if markdown == doc.markdown:
            return "unchanged"
        ctx.save_document(DocumentInput(
            source_type=doc.source_type, source_ref=doc.source_ref, title=doc.title, markdown=markdown,
            html=doc.html, metadata=metadata, tags=json.loads(doc.tags or "[]"),
            keywords=json.loads(doc.keywords or "[]"), summary=doc.summary,
        ))
        ctx.log("debug", f"converted document {doc.id} ({len(markdown)} characters)")
        return "converted"
