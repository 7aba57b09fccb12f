"""Sitemap parsing: XML ``<urlset>`` / ``<sitemapindex>`` (any namespace), gzip, and plain-text sitemaps.

The XML is read with a streaming expat parser that refuses entity declarations and external entities, so
"billion laughs" and quadratic-blowup bombs and XXE stop at the first declaration. Gzip bodies are
inflated to at most :data:`MAX_DECOMPRESSED_BYTES`. Broken XML (truncated files, stray ``&``, an encoding
expat does not know) is read again tolerantly with a regular expression over the ``<loc>`` elements.
Nothing here raises on garbage: it answers empty lists.
"""

from __future__ import annotations

import html
import re
import zlib
from typing import NoReturn
from xml.parsers import expat

from .urls import normalize_url

__all__ = ["MAX_DECOMPRESSED_BYTES", "parse_sitemap"]

#: Upper bound of an inflated gzip sitemap (the sitemaps.org limit for one file is 50 MB uncompressed).
MAX_DECOMPRESSED_BYTES = 50 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
# "<loc>" or "<prefix:loc>"; the text stops at the next "<" (so the scan stays linear) unless it is CDATA.
_LOC_RE = re.compile(
    rb"<(?:([A-Za-z_][\w.\-]*):)?loc(?:\s[^>]*)?>"  # group 1: the prefix
    rb"([^<]*(?:<!\[CDATA\[[^\]]*\]\]>[^<]*)?)"  # group 2: the text
    rb"</(?:[A-Za-z_][\w.\-]*:)?loc\s*>",
    re.IGNORECASE,
)
# Extensions whose <prefix:loc> is not a page (images, videos…), skipped by the tolerant reading.
_EXTENSION_PREFIXES = frozenset({b"image", b"video", b"news", b"xhtml", b"mobile"})
_INDEX_RE = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?sitemapindex\b", re.IGNORECASE)
_CDATA_RE = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_XML_START = re.compile(rb"^(?:\xef\xbb\xbf|\xff\xfe|\xfe\xff)?\s*<")


class _Forbidden(Exception):
    """Raised from expat handlers when the document declares entities (a bomb or XXE attempt)."""


class _Full(Exception):
    """Raised from expat handlers when a list reached ``max_urls``: stop parsing early."""


def _gunzip(body: bytes, limit: int | None = None) -> bytes:
    """Inflate (possibly concatenated) gzip members, keeping at most ``limit`` bytes (default
    :data:`MAX_DECOMPRESSED_BYTES`); stops at corruption, keeping what came before."""
    limit = MAX_DECOMPRESSED_BYTES if limit is None else limit
    output = bytearray()
    data = body
    while data and len(output) < limit:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            output += decompressor.decompress(data, limit - len(output))
        except zlib.error:
            break
        if not decompressor.eof:
            break  # truncated, or stopped at the limit
        data = decompressor.unused_data
        if not data.startswith(_GZIP_MAGIC):
            break
    return bytes(output)


def parse_sitemap(body: bytes, *, max_urls: int = 50_000) -> tuple[list[str], list[str]]:
    """Return ``(page_urls, child_sitemap_urls)`` read from a sitemap body.

    ``body`` may be gzip-compressed (recognised by its magic bytes), an XML ``<urlset>`` or
    ``<sitemapindex>`` in any namespace, or plain text with one URL per line. URLs are stripped of
    surrounding whitespace, normalised with :func:`~quaero_plugins.crawler.urls.normalize_url` (anything not
    an absolute http(s) URL is skipped), deduplicated and kept in document order; each list holds at most
    ``max_urls`` entries. Documents that declare entities are refused (empty lists). Never raises.
    """
    try:
        return _parse(body, max(0, int(max_urls)))
    except Exception:  # garbage in, nothing out
        return [], []


def _parse(body: bytes, max_urls: int) -> tuple[list[str], list[str]]:
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return [], []
    body = bytes(body)
    if body.startswith(_GZIP_MAGIC):
        body = _gunzip(body)
    if not body.strip() or max_urls == 0:
        return [], []
    if _XML_START.match(body[:1024]):
        return _parse_xml(body, max_urls)
    return _parse_text(body, max_urls), []


class _Collector:
    """Gathers ``<loc>`` texts from ``<url>`` and ``<sitemap>`` entries as expat reports them."""

    def __init__(self, max_urls: int) -> None:
        self.max_urls = max_urls
        self.pages: list[str] = []
        self.children: list[str] = []
        self._seen_pages: set[str] = set()
        self._seen_children: set[str] = set()
        self._stack: list[str] = []
        self._text: list[str] | None = None

    @staticmethod
    def _local(name: str) -> str:
        # Namespaces are not processed (an undeclared prefix must not break the parse): "prefix:name".
        return name.rpartition(":")[2].lower()

    def start(self, name: str, _attributes: dict[str, str]) -> None:
        local = self._local(name)
        self._stack.append(local)
        if local == "loc":
            self._text = []

    def end(self, _name: str) -> None:
        local = self._stack.pop() if self._stack else ""
        if local != "loc" or self._text is None:
            return
        text, self._text = "".join(self._text), None
        parent = self._stack[-1] if self._stack else ""
        if parent == "url":
            self.add(text, self.pages, self._seen_pages)
            if len(self.pages) >= self.max_urls:
                raise _Full
        elif parent == "sitemap":
            self.add(text, self.children, self._seen_children)
            if len(self.children) >= self.max_urls:
                raise _Full

    def data(self, text: str) -> None:
        if self._text is not None:
            self._text.append(text)

    def add(self, raw: str, target: list[str], seen: set[str]) -> None:
        if len(target) >= self.max_urls:
            return
        url = normalize_url(raw.strip())
        if url is not None and url not in seen:
            seen.add(url)
            target.append(url)


def _forbid(*_args: object) -> NoReturn:
    raise _Forbidden


def _parse_xml(body: bytes, max_urls: int) -> tuple[list[str], list[str]]:
    collector = _Collector(max_urls)
    parser = expat.ParserCreate()
    parser.StartElementHandler = collector.start
    parser.EndElementHandler = collector.end
    parser.CharacterDataHandler = collector.data
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(body, True)
    except _Forbidden:
        return [], []
    except _Full:
        pass
    except (expat.ExpatError, ValueError, LookupError, UnicodeError):
        return _parse_xml_tolerantly(body, max_urls, collector)
    return collector.pages, collector.children


def _parse_xml_tolerantly(body: bytes, max_urls: int, partial: _Collector) -> tuple[list[str], list[str]]:
    """Regex reading of broken XML: every ``<loc>`` is a page, or a child sitemap in a ``<sitemapindex>``."""
    if re.search(rb"<!ENTITY", body[:65536], re.IGNORECASE):
        return [], []
    is_index = _INDEX_RE.search(body[:65536]) is not None
    collector = _Collector(max_urls)
    target, seen = (
        (collector.children, collector._seen_children) if is_index else (collector.pages, collector._seen_pages)
    )
    for match in _LOC_RE.finditer(body):
        if match.group(1) and match.group(1).lower() in _EXTENSION_PREFIXES:
            continue
        raw = match.group(2).decode("utf-8", "replace")
        raw = _CDATA_RE.sub(r"\1", raw)
        collector.add(html.unescape(raw), target, seen)
        if len(target) >= max_urls:
            break
    if not collector.pages and not collector.children:
        return partial.pages, partial.children
    return collector.pages, collector.children


def _parse_text(body: bytes, max_urls: int) -> list[str]:
    """A plain-text sitemap: one absolute URL per line; other lines are ignored."""
    text = body.decode("utf-8", "replace").lstrip("\ufeff")
    pages: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line.lower().startswith(("http://", "https://")):
            continue
        url = normalize_url(line)
        if url is not None and url not in seen:
            seen.add(url)
            pages.append(url)
            if len(pages) >= max_urls:
                break
    return pages
