"""Chunks: the pieces of a document that search by meaning embeds, each with where it is in the body.

A document's markdown splits at its headings into sections, and each section into chunks of whole
paragraphs of about :data:`TARGET_CHARS` (a paragraph longer than :data:`MAX_CHARS` is cut at a sentence
or a word). A chunk knows its ``position`` in the document (from 0), its ``start`` and ``end`` offsets in
the markdown (the snippet is that slice), and the heading it sits under. What is embedded is the chunk's
text after the document's title and its heading, so that a chunk of a page says what page it is from.

Pages vary in size by 1,000×: past :data:`MAX_CHUNKS` chunks the rest of a page is left to keyword search
(the first hundred or so paragraphs of a page say what it is about).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TARGET_CHARS = 900
MAX_CHARS = 1500
MIN_CHARS = 200
MAX_CHUNKS = 96
EMBEDDED_CHARS = 2000  # what the model reads of one chunk, title and heading included

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"[.!?:;][\s)\]]")
_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*\)")
_SYNTAX = re.compile(r"```[\w+-]*|~~~|\*\*|__|`|^\s*(?:#{1,6}|[>*+-])\s|\|", re.MULTILINE)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: ``markdown[start:end]``, under ``heading``, the ``position``-th."""

    position: int
    start: int
    end: int
    heading: str
    text: str

    def embedded_text(self, title: str) -> str:
        """What the model reads: the page's title, the heading, and the chunk as plain words."""
        head = " — ".join(part for part in (title.strip(), self.heading) if part)
        return "\n".join(part for part in (head, plain(self.text)) if part)[:EMBEDDED_CHARS]


def plain(markdown: str) -> str:
    """Markdown as the words a reader sees: links as their text, syntax marks gone, spaces collapsed."""
    return " ".join(_SYNTAX.sub(" ", _LINK.sub(r"\1", markdown)).split())


def chunk_markdown(markdown: str, *, title: str = "") -> list[Chunk]:
    """The document's chunks, in order; a document without text has none (its title, if any, is one)."""
    chunks: list[Chunk] = []
    for heading, start, end in _sections(markdown):
        for piece_start, piece_end in _pieces(markdown, start, end):
            text = markdown[piece_start:piece_end]
            if plain(text) or heading:
                chunks.append(Chunk(len(chunks), piece_start, piece_end, heading, text))
            if len(chunks) >= MAX_CHUNKS:
                return chunks
    if not chunks and title.strip():
        chunks.append(Chunk(0, 0, 0, "", ""))
    return chunks


def _sections(markdown: str) -> list[tuple[str, int, int]]:
    """(heading, start, end) for the text under each heading; the text before the first has none.

    A heading's line starts its section, so the heading's words are in its first chunk as well."""
    # Headings inside code blocks are not headings: blank out fenced code before looking.
    searched = re.sub(r"(?ms)^(```|~~~).*?^\1", lambda m: " " * len(m.group(0)), markdown)
    sections: list[tuple[str, int, int]] = []
    heading, start = "", 0
    for match in _HEADING.finditer(searched):
        if match.start() > start:
            sections.append((heading, start, match.start()))
        heading, start = plain(match.group(2))[:200], match.start()
    if start < len(markdown):
        sections.append((heading, start, len(markdown)))
    return sections


def _pieces(markdown: str, start: int, end: int) -> list[tuple[int, int]]:
    """Whole paragraphs of ``markdown[start:end]`` joined up to about TARGET_CHARS; long ones cut."""
    paragraphs: list[tuple[int, int]] = []
    cursor = start
    for match in _PARAGRAPH_BREAK.finditer(markdown, start, end):
        paragraphs.append((cursor, match.start()))
        cursor = match.end()
    paragraphs.append((cursor, end))
    pieces: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for p_start, p_end in paragraphs:
        while p_start < p_end and markdown[p_start].isspace():
            p_start += 1
        if p_start >= p_end:
            continue
        for cut_start, cut_end in _cut(markdown, p_start, p_end):
            if current is None:
                current = (cut_start, cut_end)
            elif cut_end - current[0] <= TARGET_CHARS or current[1] - current[0] < MIN_CHARS:
                current = (current[0], cut_end)
            else:
                pieces.append(current)
                current = (cut_start, cut_end)
    if current is not None:
        if pieces and current[1] - current[0] < MIN_CHARS and current[1] - pieces[-1][0] <= MAX_CHARS:
            pieces[-1] = (pieces[-1][0], current[1])  # a short tail joins the chunk before it
        else:
            pieces.append(current)
    return pieces


def _cut(markdown: str, start: int, end: int) -> list[tuple[int, int]]:
    """One paragraph in pieces of at most MAX_CHARS, cut after a sentence, else at a space."""
    cuts: list[tuple[int, int]] = []
    while end - start > MAX_CHARS:
        window = markdown[start:start + MAX_CHARS]
        sentence = [m.end() for m in _SENTENCE_END.finditer(window, TARGET_CHARS // 2)]
        cut = sentence[-1] if sentence else (window.rfind(" ", TARGET_CHARS // 2) + 1 or MAX_CHARS)
        cuts.append((start, start + cut))
        start += cut
    cuts.append((start, end))
    return cuts
