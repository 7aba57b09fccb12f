"""Crawled markdown as safe HTML: crawled content never runs script in the user's browser.

Two layers, each enough on its own for what it covers:

1. markdown-it renders CommonMark with raw HTML turned off, so any markup in the text comes out as text,
   and it refuses ``javascript:``/``vbscript:``/``data:`` link targets.
2. nh3 (the ammonia sanitiser) then keeps only an allow-list of tags and attributes and the http, https
   and mailto URL schemes, and marks links ``rel="noopener noreferrer nofollow"``.

Images are not loaded: each one becomes a link to it with its alt text, and the Content-Security-Policy the
pages send (:mod:`quaero.web.security`) allows neither inline scripts nor images from other hosts.
"""

from __future__ import annotations

from collections.abc import Sequence

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}
ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "code": {"class"}, "ol": {"start"}}


def _image(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """An image as a link to it, labelled with its alt text: a crawled page's images live on other hosts,
    and loading one would tell that host (or an internal one it names) who reads the page and when."""
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    label = escapeHtml(f"[image: {alt}]" if alt else "[image]")
    inside_link = sum(1 if t.type == "link_open" else -1 if t.type == "link_close" else 0 for t in tokens[:idx]) > 0
    if inside_link:  # the link around it already leads somewhere
        return label
    return f'<a href="{escapeHtml(str(token.attrGet("src") or ""))}" title="image, not loaded">{label}</a>'


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
_MARKDOWN.add_render_rule("image", _image)


def markdown_html(markdown: str) -> str:
    """``markdown`` rendered to HTML that is safe to put in a page."""
    return clean_html(_MARKDOWN.render(markdown))


def clean_html(html: str) -> str:
    """Any HTML reduced to the allow-listed tags, attributes and URL schemes."""
    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow", strip_comments=True)
