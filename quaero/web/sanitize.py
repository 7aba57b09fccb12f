"""Crawled markdown as safe HTML: crawled content never runs script in the user's browser.

Two layers, each enough on its own for what it covers:

1. markdown-it renders CommonMark with raw HTML turned off, so any markup in the text comes out as text,
   and it refuses ``javascript:``/``vbscript:``/``data:`` link targets.
2. nh3 (the ammonia sanitiser) then keeps only an allow-list of tags and attributes and the http, https
   and mailto URL schemes, and marks links ``rel="noopener noreferrer nofollow"``.

The pages also send a Content-Security-Policy without inline scripts (:mod:`quaero.web.security`).
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"align"}, "td": {"align"},
              "code": {"class"}, "ol": {"start"}}


def markdown_html(markdown: str) -> str:
    """``markdown`` rendered to HTML that is safe to put in a page."""
    return clean_html(_MARKDOWN.render(markdown))


def clean_html(html: str) -> str:
    """Any HTML reduced to the allow-listed tags, attributes and URL schemes."""
    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow", strip_comments=True)
