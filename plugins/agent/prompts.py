"""What is asked of a remote model for each operation, and the schema its answer must match."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quaero.api import Document

from .options import AgentOptions
from .template import fill

SUMMARY_SENTENCES = 3


@dataclass(frozen=True)
class Ask:
    """One request: the system and user messages and the schema of a structured answer (or ``None``)."""

    system: str
    prompt: str
    schema: dict[str, Any] | None


def url_of(doc: Document) -> str:
    """The page's URL: what the crawler recorded, else the reference when that is one."""
    url = doc.metadata.get("url") or doc.source_ref
    return url if isinstance(url, str) and url.lower().startswith(("http://", "https://")) else ""


def ask(options: AgentOptions, doc: Document, text: str) -> Ask:
    """The request for one document (``text`` is its markdown, already cut to the input budget)."""
    if options.operation == "keyword_extraction":
        limit = options.max_keywords
        return Ask(
            "You extract keywords from documents for a search index. Answer in JSON.",
            f"List at most {limit} keywords or short key phrases (one to four words each) that best describe "
            f"what this document is about, the most important first, in the document's own language. Prefer "
            f"specific terms over generic ones.\n\nTitle: {doc.title}\n\n{text}",
            {"type": "object", "properties": {"keywords": {"type": "array", "items": {"type": "string"},
                                                           "maxItems": limit}},
             "required": ["keywords"], "additionalProperties": False})
    if options.operation == "summarization":
        if options.max_words and not options.max_sentences:
            length = f"at most {options.max_words} words"
        else:
            length = f"at most {options.max_sentences or SUMMARY_SENTENCES} sentences"
            if options.max_words:
                length += f" and {options.max_words} words"
        return Ask(
            "You write short, factual summaries of documents. Answer in JSON.",
            f"Summarise this document in {length}, in the document's own language, saying what it is about "
            f"and its main points. Do not add anything the document does not say.\n\nTitle: {doc.title}\n\n{text}",
            {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"],
             "additionalProperties": False})
    assert options.prompt is not None
    values = {"title": doc.title, "url": url_of(doc), "markdown": text, "source_type": doc.source_type,
              "source_ref": doc.source_ref}
    return Ask("You answer questions about documents." + (" Answer in JSON." if options.json_schema else ""),
               fill(options.prompt, values, doc.metadata), options.json_schema)


def operation_key(options: AgentOptions) -> str:
    """What a result is stored as: one per operation, and one per ``result_key`` for prompts."""
    return f"prompt:{options.result_key}" if options.operation == "prompt" else options.operation
