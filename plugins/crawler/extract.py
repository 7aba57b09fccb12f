"""Turning fetched bytes into a :class:`Page`: charset decoding, metadata, links and markdown.

* :func:`decode_body` picks the character encoding the way browsers do (BOM, then the Content-Type
  header, then ``<meta>`` in the first 4 KB, then strict UTF-8, then detection) and never raises.
* :func:`parse_page` parses the HTML once with selectolax (lexbor), reads title, description, canonical
  URL, language, robots meta and the followable links of the *whole* document, then strips the page chrome
  (navigation, header, footer, scripts…) and converts the main content to markdown.
* :func:`html_to_markdown` is the one place that knows which converter is used (html2text today), so
  another one can be swapped in.

All functions are pure and keep no shared state: they are safe to call from many threads (html2text holds
the GIL, so use processes to convert in parallel).
"""

from __future__ import annotations

import codecs
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import html2text
from selectolax.lexbor import LexborHTMLParser, LexborNode

from .urls import normalize_url

__all__ = ["Page", "decode_body", "html_to_markdown", "parse_page"]

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
    except Exception:  # noqa: BLE001 - a detector failure is no reason to lose the page
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
    except Exception:  # noqa: BLE001 - last resort: never lose a page to decoding
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
        match = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
        if match:
            encoding = _codec_for(match.group(1), from_meta=True)
    if encoding is None:
        encoding = "utf-8" if _is_utf8(body) else _detect(body)
    return body.decode(encoding, "replace"), encoding


# --------------------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------------------


#: The converters :func:`html_to_markdown` knows. html-to-markdown (a Rust core) measured about 10x faster
#: than html2text on this project's benchmark pages (0.5 ms against 4.8 ms for 20 KB), with tables, fenced
#: code (with its language) and nested lists at least as good; html2text stays available as a setting.
CONVERTERS = ("html-to-markdown", "html2text")
DEFAULT_CONVERTER = "html-to-markdown"


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


#: Elements removed (with their content) before converting to markdown.
DROPPED_TAGS = (
    "script", "style", "noscript", "template", "svg", "iframe", "canvas", "form", "nav", "aside",
    "button", "input", "select", "textarea", "object", "embed", "video", "audio", "head",
)
#: ARIA roles whose elements are page chrome.
DROPPED_ROLES = ("navigation", "banner", "contentinfo", "search")
_DROPPED_SELECTOR = ", ".join(
    [f"[role~={role}]" for role in DROPPED_ROLES] + ['[aria-hidden="true" i]', "[hidden]"]
)
# A <header>/<footer> inside these is part of the content (an article's title, a section's notes), not the
# page's banner or footer (HTML-AAM: only a top-level header/footer is a banner/contentinfo landmark).
_SECTIONING = frozenset({"article", "aside", "main", "nav", "section"})
# Highlighters' line-number gutters, which would otherwise be glued to code.
_GUTTER_SELECTOR = ".linenos, .lineno, .line-numbers-rows, .gutter, .hljs-ln-numbers, td.blob-num"

_SPACE = re.compile(r"\s+")
_EMPTY_LINK = re.compile(r"(?<!!)\[\]\([^)\s]*\)")
_BLANK_LINES = re.compile(r"\n{3,}")
_REFRESH_URL = re.compile(r"""url\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_LANGUAGE_CLASS = re.compile(r"(?:^|\s)(?:language|lang|highlight|hljs)-([A-Za-z0-9_+#.\-]+)")

# lexbor walks the stack of open elements for each of these start tags (the "p in button scope" check,
# the list-item algorithm…), and for every end tag that matches no open element, so thousands of them
# over a deep stack make parsing quadratic: see _defuse_deep_nesting. (Measured with lexbor 2 in
# selectolax 1.0.2: 5,000 of any of these over 5,000 open <span> take 50-150 ms, others under 20 ms.)
_SCOPE_CHECKING = frozenset({
    "address", "article", "aside", "blockquote", "center", "dd", "details", "dialog", "dir", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr",
    "input", "li", "listing", "main", "menu", "nav", "ol", "optgroup", "option", "pre", "rb", "rp", "rt",
    "search", "section", "select", "summary", "table", "ul",
})
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
})
_RAW_TEXT = r"<!--.*?(?:-->|\Z)|<(script|style|textarea|title|xmp)\b.*?(?:</\1\s*>|\Z)"
# Comments and raw-text elements are skipped whole; group 2 is "/" for end tags, group 3 the tag name.
_TAG = re.compile(_RAW_TEXT + r"|<(/?)([A-Za-z][A-Za-z0-9\-]*)", re.DOTALL | re.IGNORECASE)
_LIST_TAG = re.compile(_RAW_TEXT + r"|<(/?)(ul|ol|dl|menu|dir|blockquote)\b", re.DOTALL | re.IGNORECASE)
#: Open elements tolerated before the scope-checking tags nested deeper are renamed (see below).
MAX_OPEN_ELEMENTS = 512
#: Lists and quotes nested deeper than this are flattened: markdown indents every level.
MAX_LIST_NESTING = 32
_DEFUSE_MIN_TAGS = 4000


def _defuse_deep_nesting(html: str) -> str:
    """Rename pathologically deep elements to a custom element (``<div>`` → ``<x-div>``).

    lexbor spends time proportional to the depth of the open-element stack on every ``<div>``, ``<ul>``,
    ``<section>``… start tag, so 100,000 unclosed ``<div>`` take minutes to parse; and markdown indents
    every level of nested lists and quotes, so deep nesting makes output quadratic in size. Real pages are
    never that deep; when a page is, the scope-checking tags nested deeper than :data:`MAX_OPEN_ELEMENTS`
    open elements and the lists/quotes nested deeper than :data:`MAX_LIST_NESTING` become unknown
    elements, which lexbor handles in constant time and which keep their text and links.
    """
    if "<" not in html:
        return html
    html = _rename_deep(html, _LIST_TAG, lambda tag, depth: depth >= MAX_LIST_NESTING)
    if html.count("<") < _DEFUSE_MIN_TAGS:
        return html
    return _rename_deep(
        html,
        _TAG,
        lambda tag, depth: tag in _SCOPE_CHECKING and depth >= MAX_OPEN_ELEMENTS,
        drop_unmatched_end_tags_at=MAX_OPEN_ELEMENTS,
    )


def _rename_deep(
    html: str,
    pattern: re.Pattern[str],
    too_deep: Callable[[str, int], bool],
    drop_unmatched_end_tags_at: int | None = None,
) -> str:
    """Simulate the open-element stack over the tags ``pattern`` finds; rename those ``too_deep`` says.

    Void elements that are too deep, and end tags that match no open element while the stack holds
    ``drop_unmatched_end_tags_at`` elements or more, become bogus comments (``<?hr>``), which the parser
    skips. The simulation is an estimate: end tags pop to their start tag, and a block start tag closes an
    open ``<p>``, a list item its open sibling, as the HTML parser does.
    """
    stack: list[tuple[str, bool]] = []  # (tag, renamed)
    open_count: dict[str, int] = {}  # tag -> entries in stack, so unmatched end tags cost nothing
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) of tag names
    for match in pattern.finditer(html):
        name = match.group(3)
        if name is None:
            continue  # a comment or a raw-text element
        tag = name.lower()
        if match.group(2):  # an end tag: pop to the matching start tag, if it is open
            if not open_count.get(tag):
                if drop_unmatched_end_tags_at is not None and len(stack) >= drop_unmatched_end_tags_at:
                    edits.append((match.start(), match.end(3), "<?" + name))
                continue
            while stack:  # amortised: every entry is popped once
                popped, renamed = stack.pop()
                open_count[popped] -= 1
                if popped == tag:
                    if renamed:
                        edits.append((match.start(3), match.end(3), "x-" + tag))
                    break
            continue
        if tag in _VOID:
            if too_deep(tag, len(stack)):
                edits.append((match.start(), match.end(3), "<?" + name))
            continue
        if stack and (
            (stack[-1][0] == "p" and (tag in _SCOPE_CHECKING or tag == "p"))  # a block closes an open <p>
            or (stack[-1][0] == tag and tag in ("li", "dt", "dd", "option"))  # an item closes its sibling
        ):
            open_count[stack.pop()[0]] -= 1
        renamed = too_deep(tag, len(stack))
        if renamed:
            edits.append((match.start(3), match.end(3), "x-" + tag))
        stack.append((tag, renamed))
        open_count[tag] = open_count.get(tag, 0) + 1
    if not edits:
        return html
    pieces: list[str] = []
    position = 0
    for start, end, replacement in edits:
        pieces.append(html[position:start])
        pieces.append(replacement)
        position = end
    pieces.append(html[position:])
    return "".join(pieces)


def _parse_html(html: str) -> LexborHTMLParser:
    if not isinstance(html, str):
        html = str(html or "")
    try:
        html.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. from surrogateescape) cannot reach lexbor
        html = html.encode("utf-8", "replace").decode("utf-8")
    return LexborHTMLParser(_defuse_deep_nesting(html))


def _collapse(text: str | None) -> str:
    return _SPACE.sub(" ", text or "").strip()


def _attr(node: LexborNode, name: str) -> str | None:
    value = node.attributes.get(name)
    return value if isinstance(value, str) else None


def _tokens(value: str | None) -> set[str]:
    return set((value or "").lower().replace(",", " ").split())


def parse_page(html: str, url: str, converter: str = DEFAULT_CONVERTER) -> Page:
    """Parse an HTML document fetched from ``url`` into a :class:`Page`.

    The title is ``<title>`` (whitespace collapsed), else the first ``<h1>``, else ``og:title``. The
    description is ``<meta name=description>``, else ``og:description``. ``<base href>`` is honoured for
    links, the canonical URL and the markdown's link and image targets. The markdown is made from the main
    content: after removing :data:`DROPPED_TAGS`, chrome roles, hidden elements and the page-level
    ``<header>``/``<footer>``, the first ``<main>`` or ``[role=main]``, else the only top-level
    ``<article>``, else ``<body>``. Never raises on malformed HTML.
    """
    page_url = normalize_url(url) or url
    tree = _parse_html(html)

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
        href = (_attr(anchor, "href") or "").strip()
        if not href or href.startswith("#"):
            continue
        target = normalize_url(href, base_url)
        if target is None:
            continue
        if "nofollow" in _tokens(_attr(anchor, "rel")):
            unfollowable.setdefault(target, None)
        else:
            followable.setdefault(target, None)
    links = list(followable)
    nofollow_links = [url for url in unfollowable if url not in followable]

    markdown, text_length = "", 0
    try:
        root = _content_root(tree)
        if root is not None:
            text_length = len(_collapse(root.text(deep=True, separator=" ")))
            if text_length:
                markdown = html_to_markdown(root.html or "", base_url, converter)
    except Exception:  # noqa: BLE001 - keep the metadata and links of a page whose content defeats us
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
    )


def _content_root(tree: LexborHTMLParser) -> LexborNode | None:
    """Remove page chrome from ``tree`` and return the element holding the main content."""
    tree.strip_tags(list(DROPPED_TAGS), recursive=True)
    for node in tree.css(_DROPPED_SELECTOR):
        node.decompose()
    for node in tree.css("header, footer"):
        if not _inside(node, _SECTIONING):
            node.decompose()
    body = tree.body
    main = tree.css_first("main, [role=main]")
    if main is not None and _collapse(main.text(deep=True)):
        return main
    articles = [node for node in tree.css("article") if not _inside(node, frozenset({"article"}))]
    if len(articles) == 1 and _collapse(articles[0].text(deep=True)):
        return articles[0]
    return body if body is not None else tree.root


def _inside(node: LexborNode, tags: frozenset[str]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return False


# --------------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------------




def html_to_markdown(html: str, base_url: str, converter: str = DEFAULT_CONVERTER) -> str:
    """Convert an HTML fragment (or document) to markdown; relative links and images resolve on ``base_url``.

    This is the single seam for the converter (``converter``: one of :data:`CONVERTERS`). The output has
    no line wrapping, inline links, ``![alt](src)`` images with absolute sources (``data:`` images
    dropped), GitHub-style tables, and code blocks as fenced blocks carrying the language named by a
    ``language-*`` class. Nothing here removes page chrome: :func:`parse_page` does that first. Never
    raises on odd markup: if the converter fails, the plain text of the fragment is returned.
    """
    if converter not in CONVERTERS:
        raise ValueError(f"converter {converter!r} is not one of {', '.join(CONVERTERS)}")
    try:
        tree = _parse_html(html)
        root = tree.body if tree.body is not None else tree.root
        if root is None:
            return ""
        base = normalize_url(base_url) or base_url
        _absolutize(root, base)
        _flatten_table_cells(root, escape_pipes=converter == "html2text")
        nonce = secrets.token_hex(4).upper()
        blocks = _extract_code_blocks(tree, root, nonce)
    except Exception:  # noqa: BLE001 - should not happen; never lose a page to it
        return ""
    try:
        if converter == "html-to-markdown":
            markdown = _rust_converter(root.html or "")
        else:
            markdown = _html2text(root.html or "")
    except Exception:  # noqa: BLE001 - converters have choked on odd markup before: keep the text
        return _collapse(root.text(deep=True, separator=" "))
    if blocks:
        markdown = _restore_code_blocks(markdown, blocks, nonce)
    markdown = _EMPTY_LINK.sub("", markdown)
    markdown = "\n".join(line if line.strip() else "" for line in markdown.split("\n"))
    return _BLANK_LINES.sub("\n\n", markdown).strip() + "\n" if markdown.strip() else ""


def _rust_converter(html: str) -> str:
    import html_to_markdown as converter  # imported on first use: html2text users never load it

    return converter.convert(html).content or ""


def _html2text(html: str) -> str:
    # No baseurl: _absolutize already made every target absolute (and html2text's urljoin is costly).
    converter = html2text.HTML2Text(bodywidth=0)
    converter.unicode_snob = True
    converter.mark_code = False
    converter.ignore_links = False
    converter.ignore_images = False
    converter.ignore_tables = False
    converter.bypass_tables = False
    converter.pad_tables = False
    converter.inline_links = True
    converter.protect_links = False
    converter.wrap_links = False
    converter.wrap_list_items = False
    converter.wrap_tables = False
    converter.images_to_alt = False
    converter.images_as_html = False
    converter.default_image_alt = ""
    converter.skip_internal_links = True
    converter.single_line_break = False
    return converter.handle(html)


_PERMALINK_TEXTS = frozenset({"", "#", "¶", "§", "🔗", "link", "permalink"})


def _absolutize(root: LexborNode, base_url: str) -> None:
    """Make link and image targets absolute and normalised; drop ``javascript:`` links and ``data:`` images."""
    for anchor in root.css("a[href]"):
        href = (_attr(anchor, "href") or "").strip()
        if href.startswith("#"):
            if _collapse(anchor.text(deep=True)) in _PERMALINK_TEXTS:
                anchor.decompose()  # a heading's permalink ("#", "¶"): noise in markdown
            continue
        target = normalize_url(href, base_url)
        if target is not None:
            anchor.attrs["href"] = target
        elif not re.match(r"(?i)(mailto|tel):", href):
            del anchor.attrs["href"]
    for image in root.css("img"):
        source = (_attr(image, "src") or "").strip()
        if not source or source.lower().startswith("data:"):
            source = (_attr(image, "data-src") or _attr(image, "data-original") or "").strip()
        target = normalize_url(source, base_url) if source else None
        if target is None:
            image.decompose()
        else:
            image.attrs["src"] = target


_CELL_BLOCK_TAGS = ["p", "div", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"]
_CELL_BLOCKS = ", ".join(_CELL_BLOCK_TAGS)


def _flatten_table_cells(root: LexborNode, *, escape_pipes: bool = True) -> None:
    """Keep every table row on one markdown line: unwrap block content in cells, and escape ``|`` for a
    converter that does not (html-to-markdown does)."""
    for node in root.css(_GUTTER_SELECTOR):
        node.decompose()
    nested = {node.mem_id for node in root.css("table table")}
    for table in root.css("table"):
        if table.mem_id not in nested and not _collapse(table.text(deep=True)) and table.css_first("img") is None:
            table.decompose()  # an empty (layout) table would become rows of bare pipes
    for table in root.css("table"):
        if table.parent is None or len(table.css("tr")) != 1:
            continue
        pres = table.css("pre")
        if pres:
            # A highlighter's layout table (line numbers | code): keep only the code.
            for pre in pres:
                table.insert_before(pre)
            table.decompose()
    for cell in root.css("td, th"):
        if cell.css_first("table, pre") is not None:
            continue  # nested tables and code are left to the converter (and keep this pass linear)
        for br in cell.css("br"):
            br.replace_with(" ")
        blocks = cell.css(_CELL_BLOCKS)
        for block in blocks:
            block.insert_after(" ")  # keep words of consecutive blocks apart once unwrapped
        if blocks:
            cell.unwrap_tags(_CELL_BLOCK_TAGS)
        texts = [node for node in cell.traverse(include_text=True) if node.is_text_node]
        for node in texts:
            text = node.text_content or ""
            if "|" in text or "\n" in text:
                text = text.replace("\n", " ")
                node.replace_with(text.replace("|", "\\|") if escape_pipes else text)


def _code_language(pre: LexborNode) -> str:
    for node in (pre, pre.css_first("code")):
        if node is None:
            continue
        match = _LANGUAGE_CLASS.search(_attr(node, "class") or "")
        if match:
            return match.group(1).lower()
    return ""


def _extract_code_blocks(tree: LexborHTMLParser, root: LexborNode, nonce: str) -> dict[str, tuple[str, str]]:
    """Replace each ``<pre>`` by a placeholder paragraph; return placeholder → (language, code)."""
    blocks: dict[str, tuple[str, str]] = {}
    for pre in root.css("pre"):
        if pre.parent is None or _inside(pre, frozenset({"pre"})):
            continue
        for br in pre.css("br"):
            br.replace_with("\n")
        codes = [child for child in pre.iter() if child.tag == "code"]
        if len(codes) > 1:  # alternatives side by side (e.g. ESM and CommonJS): one after the other
            code = "\n\n".join((child.text(deep=True) or "").strip("\n") for child in codes)
        else:
            code = pre.text(deep=True) or ""
        code = code.replace("\r\n", "\n").replace("\r", "\n")
        code = code.strip("\n")
        if not code.strip():
            pre.decompose()
            continue
        token = f"QUAEROCODE{nonce}N{len(blocks)}X"
        blocks[token] = (_code_language(pre), code.rstrip())
        paragraph = tree.create_node("p")
        paragraph.insert_child(token)
        pre.replace_with(paragraph)
    return blocks


def _restore_code_blocks(markdown: str, blocks: dict[str, tuple[str, str]], nonce: str) -> str:
    token_re = re.compile(rf"QUAEROCODE{nonce}N\d+X")
    lines: list[str] = []
    for line in markdown.split("\n"):
        match = token_re.search(line)
        if match is None:
            lines.append(line)
            continue
        language, code = blocks.get(match.group(0), ("", ""))
        prefix = line[: match.start()]
        if prefix.strip(" >*+-.0123456789\t"):
            # Inline (inside a table cell or a heading): keep the code on the line.
            lines.append(line.replace(match.group(0), "`" + _collapse(code).replace("`", "'") + "`"))
            continue
        continuation = re.sub(r"[^\s>]", " ", prefix)
        longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
        fence = "`" * max(3, longest + 1)
        lines.append(prefix + fence + language)
        lines.extend((continuation + code_line).rstrip() if code_line.strip() else continuation.rstrip()
                     for code_line in code.split("\n"))
        lines.append(continuation + fence)
        rest = line[match.end():].strip()
        if rest:
            lines.append(continuation + rest)
    return "\n".join(lines)
