"""The user guide at ``/guide/``: the README this release was built with, one page per ``##`` section.

Anyone may read it (the README is public), and it is what the shipped example definition
``crawl-quaero-guide`` crawls: the first crawl works on a machine with no internet. The text is the
installed distribution's long description; in a source checkout, the checkout's own README (the one being
edited). Links between sections (``#anchor``) become links to the section's page.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from quaero.errors import NotFound
from quaero.settings import GUIDE_PATH
from quaero.web.render import layout, page
from quaero.web.sanitize import markdown_html

#: Where the guide is served; the outbound policy lets the server's own crawl reach this path only.
PREFIX = GUIDE_PATH
_FENCE = re.compile(r"^(```|~~~)")


@dataclass(frozen=True)
class Section:
    slug: str
    title: str
    markdown: str


def slug_of(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")


def readme_text() -> str:
    """The README of this release (the checkout's, when running from one)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "README.md").is_file():
        return (checkout / "README.md").read_text(encoding="utf-8")
    try:
        return metadata.metadata("quaero").get_payload() or ""  # type: ignore[attr-defined]
    except metadata.PackageNotFoundError:
        return ""


def split_sections(text: str) -> tuple[str, str, list[Section]]:
    """The title, the text before the first ``##`` heading, and the sections (``##`` headings inside code
    blocks are not headings)."""
    title = "Quaero"
    intro: list[str] = []
    sections: list[Section] = []
    current: list[str] | None = None
    heading = ""
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        if not fenced and line.startswith("# ") and not sections and current is None and title == "Quaero":
            title = line[2:].strip()
            continue
        if not fenced and line.startswith("## "):
            if current is not None:
                sections.append(Section(slug_of(heading), heading, "\n".join(current).strip()))
            heading, current = line[3:].strip(), []
            continue
        (intro if current is None else current).append(line)
    if current is not None:
        sections.append(Section(slug_of(heading), heading, "\n".join(current).strip()))
    return title, "\n".join(intro).strip(), sections


@functools.lru_cache(maxsize=1)
def _guide() -> tuple[str, str, tuple[Section, ...], dict[str, str]]:
    title, intro, sections = split_sections(readme_text())
    # Every anchor of every heading (## and below) maps to the page of the section that holds it.
    anchors: dict[str, str] = {}
    for section in sections:
        anchors[section.slug] = section.slug
        for line in section.markdown.splitlines():
            if line.startswith("#"):
                anchors.setdefault(slug_of(line.lstrip("#")), section.slug)
    return title, intro, tuple(sections), anchors


def _html(markdown: str, anchors: dict[str, str]) -> str:
    def link(match: re.Match[str]) -> str:
        anchor = match.group(2)
        target = anchors.get(anchor)
        return f"]({target}#{anchor})" if target else match.group(0)

    def local(match: re.Match[str]) -> str:  # a file of the checkout (docs/...): not served, so text only
        return match.group(0) if re.match(r"(https?:|mailto:|#|/)", match.group(2)) else match.group(1)

    markdown = re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", local, markdown)
    return markdown_html(re.sub(r"\]\((#)([\w\-]+)\)", link, markdown))


async def guide_index(request: Request) -> Response:
    title, intro, sections, anchors = _guide()
    return page("guide.html", layout(request, PREFIX, title=f"{title}: the guide", heading=title,
                                     body=_html(intro, anchors), sections=sections, current=None))


async def guide_section(request: Request) -> Response:
    slug = request.path_params["slug"]
    title, _, sections, anchors = _guide()
    for index, section in enumerate(sections):
        if section.slug == slug:
            return page("guide.html", layout(
                request, PREFIX, title=f"{section.title} · guide", heading=section.title,
                body=_html(section.markdown, anchors), sections=sections, current=section,
                previous=sections[index - 1] if index else None,
                next=sections[index + 1] if index + 1 < len(sections) else None))
    raise NotFound(f"the guide has no section {slug!r}: see {PREFIX} for its contents")


async def _to_index(request: Request) -> Response:
    return RedirectResponse(PREFIX, status_code=308)


#: Crawlers may read the guide and nothing else of the server (its pages need an account anyway).
ROBOTS = f"User-agent: *\nAllow: {PREFIX}\nDisallow: /\n"


async def robots(request: Request) -> Response:
    return PlainTextResponse(ROBOTS)


routes = [
    Route("/robots.txt", robots, methods=["GET"]),
    Route("/guide", _to_index, methods=["GET"]),
    Route(PREFIX, guide_index, methods=["GET"]),
    Route(PREFIX + "{slug}", guide_section, methods=["GET"]),
]
