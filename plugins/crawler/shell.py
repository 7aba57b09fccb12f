"""Telling a script shell from a page: whether ``render: auto`` renders a fetched page in the browser.

A *script shell* is an HTML page whose content its scripts draw: single-page apps (React, Vue, Angular,
Svelte, Next.js before hydration), Confluence and Jira Cloud, documentation portals built on a client-side
framework. Fetched without a browser it holds almost no text. A page is one when it has a script, little
visible text in its main content (under :data:`SHELL_TEXT` characters), and one of:

- ``mount_point``: an element that frameworks draw into (``#root``, ``#app``, ``#__next``, ``<app-root>``...),
  with little or no text of its own;
- ``noscript``: a ``<noscript>`` that asks for JavaScript;
- ``no_text``: no visible text at all.

A server-rendered page (text in its HTML) is never one, whatever scripts it also has: rendering it would
cost a browser for nothing. The kinds are what the step's figures count (``rendered_by_reason``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

#: Fewer characters of main-content text than this, and the page may be a shell.
SHELL_TEXT = 200
#: Where frameworks mount their app (the element exists, empty, in the fetched HTML).
MOUNT_POINTS = (
    "#root", "#app", "#__next", "#__nuxt", "#___gatsby", "#svelte", "#main-app", "#application", "#react-root",
    "[data-reactroot]", "[ng-app]", "[data-ng-app]", "[ng-version]", "app-root", "[data-server-rendered]",
    "#ember-app", "#single-spa-application", "#confluence-ui", "#jira-frontend",
)
_MOUNT_SELECTOR = ", ".join(MOUNT_POINTS)
_ASKS_FOR_SCRIPTS = re.compile(r"javascript|enable\s+js\b|scripts?\s+(?:is|are)\s+(?:disabled|off|required)",
                               re.IGNORECASE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ShellSigns:
    """What the fetched HTML says about its scripts, read on the crawler's parse before the chrome goes."""

    scripts: int
    mount_point: str | None
    noscript_asks: bool


@dataclass(frozen=True)
class Shell:
    """Why a page is a script shell: ``kind`` (counted) and ``detail`` (logged, kept in the metadata)."""

    kind: str
    detail: str


def shell_signs(tree: LexborHTMLParser) -> ShellSigns:
    """Read the signs of a script shell from a parsed page (before :func:`quaero.api.markdown.main_content`
    removes scripts and ``<noscript>``)."""
    scripts = len(tree.css("script"))
    mount = None
    node = tree.css_first(_MOUNT_SELECTOR)
    if node is not None and len(_SPACE.sub("", node.text(deep=True))) < SHELL_TEXT:
        ident = node.attributes.get("id")
        mount = f"#{ident}" if ident else f"<{node.tag}>"
    asks = any(_ASKS_FOR_SCRIPTS.search(n.text(deep=True) or "") for n in tree.css("noscript"))
    return ShellSigns(scripts, mount, asks)


def script_shell(signs: ShellSigns, text_length: int) -> Shell | None:
    """The reason the page is a script shell, or ``None`` when it is a page (see the module's docstring)."""
    if signs.scripts == 0 or text_length >= SHELL_TEXT:
        return None
    text = f"{text_length} characters of text"
    if signs.mount_point is not None:
        return Shell("mount_point", f"mount point {signs.mount_point}, {text}")
    if signs.noscript_asks:
        return Shell("noscript", f"<noscript> asks for JavaScript, {text}")
    if text_length == 0:
        return Shell("no_text", f"no visible text, {signs.scripts} script(s)")
    return None
