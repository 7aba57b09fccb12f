"""HTML to markdown: the one converter of every plugin that turns web pages into documents.

The crawler converts each page as it fetches it, and the ``transform`` action converts the HTML stored with
documents; both go through this module, so a page gives the same markdown whichever way it came in.

* :func:`parse_html` parses with selectolax (lexbor) after defusing pathologically deep nesting.
* :func:`main_content` strips page chrome (navigation, header, footer, scripts...) from a parsed page and
  returns the element holding the main content.
* :func:`html_to_markdown` converts a fragment: no wrapping, absolute links and images, GitHub tables,
  fenced code with its language. It is the single seam for the converter (:data:`CONVERTERS`).
  :func:`tree_to_markdown` converts an element of a page already parsed, without parsing it again.
* :func:`page_to_markdown` is the three together, for a whole stored page.

Link targets are made absolute by a resolver, ``resolve_url(url, base) -> str | None`` (``None`` drops the
target): :func:`absolute_url` by default; a plugin with its own URL normalisation (the crawler) passes that,
so the links in its markdown name pages exactly as its documents do.

All functions are pure and keep no shared state: they are safe to call from many threads (the converters hold
the GIL, so use processes to convert in parallel).
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable
from typing import Any, Literal, get_args
from urllib.parse import urljoin, urlsplit, urlunsplit

import html2text
from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = [
    "CONVERTERS", "DEFAULT_CONVERTER", "DROPPED_ROLES", "DROPPED_TAGS", "MAX_LIST_NESTING", "MAX_OPEN_ELEMENTS",
    "ConverterName", "UrlResolver", "absolute_url", "defuse_deep_nesting", "html_to_markdown", "main_content",
    "page_to_markdown", "parse_html", "tree_to_markdown",
]

#: ``resolve_url(url, base)``: the absolute form of a link target, or ``None`` to drop it.
UrlResolver = Callable[[str, str | None], str | None]

#: The name of a converter :func:`html_to_markdown` knows, as a type (a step option's, say).
ConverterName = Literal["html-to-markdown", "html2text"]
#: The converters :func:`html_to_markdown` knows. html-to-markdown (a Rust core) measured about 10x faster
#: than html2text on this project's benchmark pages (0.5 ms against 4.8 ms for 20 KB), with tables, fenced
#: code (with its language) and nested lists at least as good; html2text stays available as a setting.
CONVERTERS: tuple[ConverterName, ...] = get_args(ConverterName)
DEFAULT_CONVERTER: ConverterName = "html-to-markdown"

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
_LANGUAGE_CLASS = re.compile(r"(?:^|\s)(?:language|lang|highlight|hljs)-([A-Za-z0-9_+#.\-]+)")

# lexbor walks the stack of open elements for each of these start tags (the "p in button scope" check,
# the list-item algorithm…), and for every end tag that matches no open element, so thousands of them
# over a deep stack make parsing quadratic: see defuse_deep_nesting. (Measured with lexbor 2 in
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
_LIST_OPENERS = ("<ul", "<ol", "<dl", "<menu", "<dir", "<blockquote")
#: Open elements tolerated before the scope-checking tags nested deeper are renamed (see below).
MAX_OPEN_ELEMENTS = 512
#: Lists and quotes nested deeper than this are flattened: markdown indents every level.
MAX_LIST_NESTING = 32
_DEFUSE_MIN_TAGS = 4000


def defuse_deep_nesting(html: str) -> str:
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
    lowered = html.lower()  # counted, to skip the pass where that many lists are not even there
    if sum(lowered.count(opener) for opener in _LIST_OPENERS) >= MAX_LIST_NESTING:
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


def parse_html(html: str) -> LexborHTMLParser:
    """Parse ``html`` with lexbor, never raising, in time linear in its size (see :func:`defuse_deep_nesting`)."""
    if not isinstance(html, str):
        html = str(html or "")
    try:
        html.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. from surrogateescape) cannot reach lexbor
        html = html.encode("utf-8", "replace").decode("utf-8")
    return LexborHTMLParser(defuse_deep_nesting(html))


def _collapse(text: str | None) -> str:
    return _SPACE.sub(" ", text or "").strip()


def _attr(node: LexborNode, name: str) -> str | None:
    value = node.attributes.get(name)
    return value if isinstance(value, str) else None


def main_content(tree: LexborHTMLParser) -> LexborNode | None:
    """Remove page chrome from ``tree`` (in place) and return the element holding the main content.

    After removing :data:`DROPPED_TAGS`, chrome roles, hidden elements and the page-level ``<header>`` and
    ``<footer>``: the first ``<main>`` or ``[role=main]``, else the only top-level ``<article>``, else ``<body>``.
    """
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


def absolute_url(url: str, base: str | None = None) -> str | None:
    """``url`` resolved against ``base``: an absolute ``http``/``https`` URL without its fragment, else ``None``."""
    try:
        parts = urlsplit(urljoin(base or "", url.strip()))
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        return urlunsplit(parts._replace(fragment=""))
    except ValueError:  # a broken host ("http://[::1") or port
        return None


def page_to_markdown(html: str, url: str, converter: str = DEFAULT_CONVERTER, *,
                     resolve_url: UrlResolver | None = None) -> str:
    """The markdown of a whole page's main content, as the crawler makes it; ``""`` for a page without text.

    ``url`` is where the page came from: relative links resolve on it, or on the page's ``<base href>``.
    Never raises on odd markup.
    """
    if converter not in CONVERTERS:
        raise ValueError(f"converter {converter!r} is not one of {', '.join(CONVERTERS)}")
    resolve = resolve_url or absolute_url
    try:
        tree = parse_html(html)
        base = tree.css_first("base[href]")
        base_url = (resolve(_attr(base, "href") or "", url) if base is not None else None) or url
        root = main_content(tree)
        if root is None or not _collapse(root.text(deep=True, separator=" ")):
            return ""
        return tree_to_markdown(tree, root, base_url, converter, resolve_url=resolve)
    except Exception:  # lexbor on hostile markup: no markdown rather than a failed job
        return ""


def html_to_markdown(html: str, base_url: str, converter: str = DEFAULT_CONVERTER, *,
                     resolve_url: UrlResolver | None = None) -> str:
    """Convert an HTML fragment (or document) to markdown; relative links and images resolve on ``base_url``.

    This is the single seam for the converter (``converter``: one of :data:`CONVERTERS`). The output has
    no line wrapping, inline links, ``![alt](src)`` images with absolute sources (``data:`` images
    dropped), GitHub-style tables, and code blocks as fenced blocks carrying the language named by a
    ``language-*`` class. Nothing here removes page chrome: :func:`main_content` does that first. Never
    raises on odd markup: if the converter fails, the plain text of the fragment is returned.
    """
    if converter not in CONVERTERS:
        raise ValueError(f"converter {converter!r} is not one of {', '.join(CONVERTERS)}")
    try:
        tree = parse_html(html)
        root = tree.body if tree.body is not None else tree.root
    except Exception:  # should not happen; never lose a page to it
        return ""
    return tree_to_markdown(tree, root, base_url, converter, resolve_url=resolve_url) if root is not None else ""


def tree_to_markdown(tree: LexborHTMLParser, root: LexborNode, base_url: str, converter: str = DEFAULT_CONVERTER,
                     *, resolve_url: UrlResolver | None = None) -> str:
    """:func:`html_to_markdown` of ``root``, an element of ``tree`` (a page from :func:`parse_html`, ``root``
    what :func:`main_content` found in it, say), without serialising and parsing it again. It changes
    ``tree``: links made absolute, code blocks and layout tables taken out."""
    if converter not in CONVERTERS:
        raise ValueError(f"converter {converter!r} is not one of {', '.join(CONVERTERS)}")
    try:
        resolve = resolve_url or absolute_url
        base = resolve(base_url, None) or base_url
        _absolutize(root, base, resolve)
        _flatten_table_cells(root, escape_pipes=converter == "html2text")
        nonce = secrets.token_hex(4).upper()
        blocks = _extract_code_blocks(tree, root, nonce)
    except Exception:  # should not happen; never lose a page to it
        return ""
    try:
        if converter == "html-to-markdown":
            markdown = _rust_converter(root.html or "")
        else:
            markdown = _html2text(root.html or "")
    except Exception:  # converters have choked on odd markup before: keep the text
        return _collapse(root.text(deep=True, separator=" "))
    if blocks:
        markdown = _restore_code_blocks(markdown, blocks, nonce)
    markdown = _EMPTY_LINK.sub("", markdown)
    markdown = "\n".join(line if line.strip() else "" for line in markdown.split("\n"))
    return _BLANK_LINES.sub("\n\n", markdown).strip() + "\n" if markdown.strip() else ""


@functools.cache
def _rust_options() -> Any:
    import html_to_markdown as converter  # imported on first use: html2text users never load it

    # No YAML front matter: the <base> and <meta> tags a page puts in its body are not part of its text.
    return converter.ConversionOptions(extract_metadata=False)


def _rust_converter(html: str) -> str:
    import html_to_markdown as converter

    return converter.convert(html, _rust_options()).content or ""


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


def _absolutize(root: LexborNode, base_url: str, resolve_url: UrlResolver) -> None:
    """Make link and image targets absolute and normalised; drop ``javascript:`` links and ``data:`` images."""
    for anchor in root.css("a[href]"):
        href = (_attr(anchor, "href") or "").strip()
        if href.startswith("#"):
            if _collapse(anchor.text(deep=True)) in _PERMALINK_TEXTS:
                anchor.decompose()  # a heading's permalink ("#", "¶"): noise in markdown
            continue
        target = resolve_url(href, base_url)
        if target is not None:
            anchor.attrs["href"] = target
        elif not re.match(r"(?i)(mailto|tel):", href):
            del anchor.attrs["href"]
    for image in root.css("img"):
        source = (_attr(image, "src") or "").strip()
        if not source or source.lower().startswith("data:"):
            source = (_attr(image, "data-src") or _attr(image, "data-original") or "").strip()
        target = resolve_url(source, base_url) if source else None
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
