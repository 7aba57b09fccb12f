"""Turning fetched bytes into a :class:`Page`: charset decoding, metadata, links and markdown.

* :func:`decode_body` picks the character encoding the way browsers do (BOM, then the Content-Type
  header, then ``<meta>`` in the first 4 KB, then strict UTF-8, then detection) and never raises.
* :func:`parse_page` parses the HTML once, reads title, description, canonical URL, language, robots meta
  and the followable links of the *whole* document, then has :mod:`quaero.markdown` strip the page chrome
  (navigation, header, footer, scripts…) and convert the main content to markdown.
* :func:`html_to_markdown` is :func:`quaero.api.markdown.html_to_markdown` with the crawler's URL normalisation,
  so the links in a page's markdown name pages exactly as the crawl's documents do.

All functions are pure and keep no shared state: they are safe to call from many threads (the converters
hold the GIL, so use processes to convert in parallel).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborNode

from quaero.api import markdown as _markdown
from quaero.api.markdown import DEFAULT_CONVERTER, main_content, parse_html

from .shell import Shell, script_shell, shell_signs
from .urls import normalize_url

__all__ = ["Page", "decode_body", "html_to_markdown", "parse_page"]

# Moved to quaero.api.markdown with the converter; the crawler's tests still reach them here.
MAX_LIST_NESTING, MAX_OPEN_ELEMENTS = _markdown.MAX_LIST_NESTING, _markdown.MAX_OPEN_ELEMENTS
_defuse_deep_nesting = _markdown.defuse_deep_nesting

# --------------------------------------------------------------------------------------------------------
# Character encodings
# --------------------------------------------------------------------------------------------------------

#: How far into the body ``<meta charset>`` is looked for.
META_PRESCAN_BYTES = 4096
#: How much of an undeclared, non-UTF-8 body is given to the detector.
DETECT_SAMPLE_BYTES = 64 * 1024

_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([^\s"';,]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([-\w.:]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([-\w.:]+)""", re.IGNORECASE)

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Labels browsers read as a superset encoding (WHATWG Encoding Standard); keys are Python codec names.
_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "gb2312": "gbk",
    "big5": "big5hkscs",
    "utf-8-sig": "utf-8",
}
# Python codecs that are not web encodings, or are dangerous ones (UTF-7 smuggles markup past filters).
_REFUSED = frozenset({
    "utf_7", "unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "charmap", "mbcs",
    "oem", "unicode_internal", "palmos",
})
# Encodings a detector's guess is trusted for: scripts whose single-byte code pages a Latin guess cannot
# stand in for, and the CJK multi-byte encodings. Any other guess (Latin code pages are confused with
# one another all the time, DOS code pages are no web encodings) means windows-1252, as browsers default.
_TRUSTED_GUESSES = frozenset({
    "cp1251", "koi8_r", "koi8_u", "iso8859_5", "mac_cyrillic", "cp1253", "iso8859_7", "cp1255", "iso8859_8",
    "cp1256", "iso8859_6", "cp874", "tis_620", "iso8859_11", "cp932", "shift_jis", "euc_jp", "iso2022_jp",
    "gbk", "gb2312", "gb18030", "hz", "big5", "big5hkscs", "cp950", "euc_kr", "cp949", "johab",
})
#: A detector needs evidence: with fewer non-ASCII bytes than this, windows-1252 is assumed.
MIN_BYTES_TO_DETECT = 16


def _codec_for(label: str | bytes | None, *, from_meta: bool = False) -> str | None:
    """The Python codec to decode a declared charset ``label`` with, or None for an unusable label."""
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    label = label.strip().strip("\"'").strip().lower()
    if not label or len(label) > 40:
        return None
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True):  # bytes-to-bytes codecs: base64, zlib, rot13…
        return None
    name = info.name
    if name.replace("-", "_") in _REFUSED:
        return None
    if from_meta and name.startswith(("utf-16", "utf-32")):
        return "utf-8"  # a meta tag readable as ASCII cannot be in UTF-16: browsers read UTF-8
    return _SUPERSETS.get(name, name)


def _is_utf8(body: bytes) -> bool:
    """True when ``body`` is valid UTF-8.

    A multi-byte character cut off at the very end (a body truncated by a size cap) is tolerated when the
    rest holds at least one multi-byte character, so that a lone ``b"caf\\xe9"`` is not taken for UTF-8.
    """
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data" or error.start < len(body) - 3:
            return False
        head = body[: error.start]
        return not head.isascii()  # the head decoded fine, so it holds valid multi-byte characters


def _detect(body: bytes) -> str:
    """Guess the encoding of an undeclared, non-UTF-8 body; windows-1252 when in doubt."""
    try:
        from charset_normalizer import from_bytes  # optional: windows-1252 without it
    except ImportError:
        return "cp1252"
    sample = body[:DETECT_SAMPLE_BYTES]
    if len(sample) - len(sample.translate(None, bytes(range(128, 256)))) < MIN_BYTES_TO_DETECT:
        return "cp1252"
    try:
        best = from_bytes(sample).best()
    except Exception:  # a detector failure is no reason to lose the page
        return "cp1252"
    if best is None:
        return "cp1252"
    guess = str(best.encoding).lower().replace("-", "_")
    if guess not in _TRUSTED_GUESSES:
        return "cp1252"
    return _codec_for(guess) or "cp1252"


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Decode an HTTP body to text; return ``(text, codec name used)``.

    The encoding is, in order: a byte-order mark (it wins over everything, as in browsers); the
    ``charset`` of ``content_type``; a ``<meta charset>`` or ``<meta http-equiv="Content-Type">`` (or an XML
    declaration) in the first 4 KB; UTF-8 if the body is valid UTF-8; else a detector's guess
    (charset-normalizer when installed) for non-Latin scripts, windows-1252 otherwise. Labels are read as
    browsers read them (``iso-8859-1`` and ``us-ascii`` mean windows-1252, ``shift_jis`` means cp932…);
    unknown or unsafe labels (``utf-7``, ``base64``…) are ignored. Undecodable bytes become U+FFFD. The
    returned name is a Python codec name (``"utf-8"``, ``"cp1252"``, ``"cp932"``…). Never raises.
    """
    try:
        return _decode(bytes(body), content_type)
    except Exception:  # last resort: never lose a page to decoding
        return bytes(body or b"").decode("utf-8", "replace"), "utf-8"


def _decode(body: bytes, content_type: str | None) -> tuple[str, str]:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(name, "replace"), name
    encoding: str | None = None
    if content_type:
        match = _CHARSET_PARAM.search(content_type)
        if match:
            encoding = _codec_for(match.group(1))
    if encoding is None:
        head = body[:META_PRESCAN_BYTES]
        declared = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
        if declared:
            encoding = _codec_for(declared.group(1), from_meta=True)
    if encoding is None:
        encoding = "utf-8" if _is_utf8(body) else _detect(body)
    return body.decode(encoding, "replace"), encoding


# --------------------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------------------


@dataclass
class Page:
    """What the crawler keeps of one HTML page.

    ``links`` are the followable links of the whole document (navigation included): ``<a href>`` and
    ``<area href>`` without ``rel=nofollow``, plus a ``<meta http-equiv=refresh>`` target, absolute,
    normalised, deduplicated, in document order, fragment-only links left out. ``nofollow_links`` are those
    with ``rel=nofollow``. ``nofollow``/``noindex`` come from ``<meta name="robots">``: the page-level
    decision is the caller's (a ``nofollow`` page's ``links`` are still listed). ``text_length`` counts
    the characters of the cleaned main content's text, whitespace collapsed.
    """

    title: str
    description: str
    canonical: str | None
    language: str | None
    links: list[str]
    noindex: bool
    nofollow: bool
    markdown: str
    text_length: int
    nofollow_links: list[str] = field(default_factory=list)
    #: Why the page is a script shell (:mod:`.shell`), when :func:`parse_page` was asked to tell.
    shell: Shell | None = None


_SPACE = re.compile(r"\s+")
_REFRESH_URL = re.compile(r"""url\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)


def _collapse(text: str | None) -> str:
    return _SPACE.sub(" ", text or "").strip()


def _attr(node: LexborNode, name: str) -> str | None:
    value = node.attributes.get(name)
    return value if isinstance(value, str) else None


def _tokens(value: str | None) -> set[str]:
    return set((value or "").lower().replace(",", " ").split())


def parse_page(html: str, url: str, converter: str = DEFAULT_CONVERTER, *, detect_shell: bool = False) -> Page:
    """Parse an HTML document fetched from ``url`` into a :class:`Page`.

    The title is ``<title>`` (whitespace collapsed), else the first ``<h1>``, else ``og:title``. The
    description is ``<meta name=description>``, else ``og:description``. ``<base href>`` is honoured for
    links, the canonical URL and the markdown's link and image targets. The markdown is made from the main
    content that :func:`quaero.api.markdown.main_content` finds. ``detect_shell`` also tells, on the same
    parse, whether the page is a script shell (:attr:`Page.shell`). Never raises on malformed HTML.
    """
    page_url = normalize_url(url) or url
    tree = parse_html(html)

    base_url = page_url
    base = tree.css_first("base[href]")
    if base is not None:
        base_url = normalize_url(_attr(base, "href") or "", page_url) or page_url

    title = ""
    title_node = tree.css_first("title")
    if title_node is not None:
        title = _collapse(title_node.text(deep=True))
    if not title:
        h1 = tree.css_first("h1")
        if h1 is not None:
            title = _collapse(h1.text(deep=True))

    description = ""
    og_title = og_description = ""
    content_language: str | None = None
    robots: set[str] = set()
    refresh: str | None = None
    for meta in tree.css("meta"):
        name = (_attr(meta, "name") or _attr(meta, "property") or "").strip().lower()
        equiv = (_attr(meta, "http-equiv") or "").strip().lower()
        content = _attr(meta, "content") or ""
        if name == "robots":
            robots |= _tokens(content)
        elif name == "description" and not description:
            description = _collapse(content)
        elif name == "og:description" and not og_description:
            og_description = _collapse(content)
        elif name == "og:title" and not og_title:
            og_title = _collapse(content)
        elif equiv == "content-language" and content_language is None:
            content_language = content.split(",")[0].strip() or None
        elif equiv == "refresh" and refresh is None:
            match = _REFRESH_URL.search(content)
            if match:
                refresh = match.group(1)
    title = title or og_title
    description = description or og_description
    noindex = bool(robots & {"noindex", "none"})
    nofollow = bool(robots & {"nofollow", "none"})

    language: str | None = None
    html_node = tree.css_first("html")
    if html_node is not None:
        language = _collapse(_attr(html_node, "lang") or _attr(html_node, "xml:lang")) or None
    language = language or content_language

    canonical: str | None = None
    for link in tree.css("link[rel][href]"):
        if "canonical" in _tokens(_attr(link, "rel")):
            canonical = normalize_url(_attr(link, "href") or "", base_url)
            if canonical is not None:
                break

    # A URL is followable when any link to it is; it is "nofollow" only when every link to it says so.
    followable: dict[str, None] = {}
    unfollowable: dict[str, None] = {}
    if refresh is not None:
        target = normalize_url(refresh, base_url)
        if target is not None:
            followable[target] = None
    for anchor in tree.css("a[href], area[href]"):
        attributes = anchor.attributes  # a new dict at each call: read once
        href = attributes.get("href")
        href = href.strip() if isinstance(href, str) else ""
        if not href or href.startswith("#"):
            continue
        target = normalize_url(href, base_url)
        if target is None:
            continue
        rel = attributes.get("rel")
        if "nofollow" in _tokens(rel if isinstance(rel, str) else None):
            unfollowable.setdefault(target, None)
        else:
            followable.setdefault(target, None)
    links = list(followable)
    nofollow_links = [url for url in unfollowable if url not in followable]

    signs = shell_signs(tree) if detect_shell else None  # before main_content drops the scripts
    markdown, text_length = "", 0
    try:
        root = main_content(tree)
        if root is not None:
            text_length = len(_collapse(root.text(deep=True, separator=" ")))
            if text_length:
                # Converted where it was parsed: no second serialisation and parse of the main content.
                markdown = _markdown.tree_to_markdown(tree, root, base_url, converter, resolve_url=normalize_url)
    except Exception:  # keep the metadata and links of a page whose content defeats us
        markdown = ""
    return Page(
        title=title,
        description=description,
        canonical=canonical,
        language=language,
        links=links,
        noindex=noindex,
        nofollow=nofollow,
        markdown=markdown,
        text_length=text_length,
        nofollow_links=nofollow_links,
        shell=script_shell(signs, text_length) if signs is not None else None,
    )


def html_to_markdown(html: str, base_url: str, converter: str = DEFAULT_CONVERTER) -> str:
    """Convert an HTML fragment to markdown (see :func:`quaero.api.markdown.html_to_markdown`), link and image
    targets normalised as the crawl normalises the URLs it visits."""
    return _markdown.html_to_markdown(html, base_url, converter, resolve_url=normalize_url)
