"""TransformWorker: converts one batch of documents, saving only those whose markdown changes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from quaero.api import Document, DocumentInput, JobContext, JobView, JobWorker, NotFound
from quaero.api.markdown import page_to_markdown

WORKER_TYPE = "transform_documents"
#: Progress is reported every this many documents (each report is a write).
PROGRESS_EVERY = 10


def _base_url(doc: Document) -> str:
    """Where the page came from, for resolving its relative links: the URL the crawler recorded, or the
    reference when that is a URL."""
    url = doc.metadata.get("url") or doc.source_ref
    return url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else ""


class TransformWorker(JobWorker):
    """Converts the HTML of the documents in ``job.config["ids"]``.

    Idempotent: a document whose new markdown equals what it holds is not written, so running the step again
    leaves every document, its content hash and its ``updated_at`` as they are.
    """

    worker_type = WORKER_TYPE

    def execute(self, ctx: JobContext, job: JobView) -> None:
        ids: list[int] = job.config["ids"]
        tally: Counter[str] = Counter()
        for done, doc_id in enumerate(ids, 1):
            ctx.check_cancelled()
            tally[self.convert(ctx, doc_id)] += 1
            if done % PROGRESS_EVERY == 0 or done == len(ids):
                ctx.progress("converting HTML to markdown", current=done, total=len(ids))
        result = {outcome: tally[outcome] for outcome in
                  ("converted", "unchanged", "has_markdown", "no_html", "deleted")}
        ctx.set_result(**result)
        if result["converted"]:
            ctx.set_outcome("saved")
        elif result["unchanged"] or result["has_markdown"]:
            ctx.set_outcome("unchanged")
        summary = ", ".join(f"{count} {outcome.replace('_', ' ')}" for outcome, count in result.items())
        ctx.log("info", f"{len(ids)} document(s): {summary}")

    def convert(self, ctx: JobContext, doc_id: int) -> str:
        """Convert one document; returns what happened to it (a key of the job's result)."""
        options: Any = ctx.options
        try:
            doc = ctx.documents.get(doc_id)
        except NotFound:
            return "deleted"  # since the step picked it
        if not doc.html:
            return "no_html"
        if options.only_missing and (doc.markdown or "").strip():
            return "has_markdown"  # converted since the step picked it (a rerun, or another step)
        markdown = page_to_markdown(doc.html, _base_url(doc), options.converter)
        if markdown == doc.markdown:
            return "unchanged"
        ctx.save_document(DocumentInput(
            source_type=doc.source_type, source_ref=doc.source_ref, title=doc.title, markdown=markdown,
            html=doc.html, metadata=doc.metadata, tags=doc.tags, keywords=doc.keywords, summary=doc.summary,
        ))
        ctx.log("debug", f"converted document {doc.id} ({len(markdown)} characters)")
        return "converted"
