"""Local test websites whose pages a script draws: for the crawler's rendering tests (``render:``).

Each builder adds routes to a :class:`sitekit.Site` (see ``sitekit.py``), like sitekit's builders:

    site = make_site(spa)               # / and /docs/* are empty shells that /static/app.js fills in
    ... crawl site.url("/") with render: always ...
    assert SPA_WORDS["/docs/one"] in saved["/docs/one"].markdown

The text and the links of a shell exist only once its script has run: a crawl that does not render sees
an empty ``<div id="root">``, so a test of rendering fails when nothing renders.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterable

from sitekit import HTML, PNG_BYTES, Request, Response, Site, page, path_is

JS = "text/javascript; charset=utf-8"
JSON = "application/json"

#: spa: each page's title, a word found only in the text its script draws, and the pages it links to.
SPA_PAGES: dict[str, tuple[str, str, list[str]]] = {
    "/": ("SPA home", "spahomeword", ["/docs/one", "/docs/two"]),
    "/docs/one": ("SPA one", "spaoneword", ["/docs/three"]),
    "/docs/two": ("SPA two", "spatwoword", []),
    "/docs/three": ("SPA three", "spathreeword", []),
}
SPA_WORDS = {path: word for path, (_, word, _) in SPA_PAGES.items()}
#: spa: each page's depth from / (links exist only in the drawn DOM).
SPA_DEPTHS = {"/": 0, "/docs/one": 1, "/docs/two": 1, "/docs/three": 2}

#: The script of every spa page: fetch the page's JSON, draw its heading, text and links, then mark the
#: DOM ready with ``<div id="ready">`` (what a ``wait_for: "#ready"`` waits for).
APP_JS = """
(async () => {
  const response = await fetch('/api/page?path=' + encodeURIComponent(location.pathname));
  const data = await response.json();
  document.title = data.title;
  const root = document.getElementById('root');
  const heading = document.createElement('h1');
  heading.textContent = data.title;
  const text = document.createElement('p');
  text.textContent = data.text;
  const list = document.createElement('ul');
  for (const link of data.links) {
    const item = document.createElement('li');
    const anchor = document.createElement('a');
    anchor.href = link.href;
    anchor.textContent = link.text;
    item.appendChild(anchor);
    list.appendChild(item);
  }
  const ready = document.createElement('div');
  ready.id = 'ready';
  root.replaceChildren(heading, text, list, ready);
})();
"""


def shell(*, scripts: Iterable[str] = ("/static/app.js",), inline: str = "", title: str = "App",
          body: str = '<div id="root"></div>', head: str = "") -> str:
    """An HTML document with no text of its own: ``body`` (an empty mount point) and its scripts."""
    tags = "".join(f'<script src="{html.escape(src)}"></script>' for src in scripts)
    if inline:
        tags += f"<script>{inline}</script>"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"{head}</head>\n<body>\n{body}\n{tags}\n</body></html>\n")


def js(source: str) -> Response:
    """A JavaScript response."""
    return 200, {"Content-Type": JS}, source


def spa(site: Site, *, extra_pages: int = 0, data_delay: float = 0.0) -> None:
    """``/`` and :data:`SPA_PAGES`: shells (``<div id="root">``) that ``/static/app.js`` fills from
    ``/api/page?path=<path>`` with a heading, a paragraph holding the page's word and its links.

    ``extra_pages`` adds ``/more/0`` ... linked (by the drawn DOM) from / (word ``moreword<i>``);
    ``data_delay`` holds each JSON answer that many seconds (a render then takes at least as long).
    """
    pages = dict(SPA_PAGES)
    home_title, home_word, home_links = pages["/"]
    pages["/"] = (home_title, home_word, home_links + [f"/more/{i}" for i in range(extra_pages)])
    pages.update({f"/more/{i}": (f"More {i}", f"moreword{i}", []) for i in range(extra_pages)})

    def data(request: Request) -> Response:
        path = request.params.get("path", ["/"])[0]
        if path not in pages:
            return 404, {"Content-Type": JSON}, '{"error": "no such page"}'
        site.stopping.wait(data_delay)
        title, word, links = pages[path]
        text = (f"The {word} page of the single-page test app. This paragraph exists only once the script "
                f"has fetched the page's data and drawn it; the server sends an empty shell.")
        return 200, {"Content-Type": JSON}, json.dumps(
            {"title": title, "text": text, "links": [{"href": href, "text": pages[href][0]} for href in links]})

    for path, (title, _, _) in pages.items():
        site.route(path, shell(title=title))
    site.route("/static/app.js", js(APP_JS))
    site.route(path_is("/api/page"), data)


#: shells: for each kind of script shell, the page that is one and the reason a render of auto names.
SHELL_KINDS = {
    "mount_point": shell(body='<div id="root"></div>'),
    "noscript": shell(body="<header>Loading</header><noscript>You need to enable JavaScript to run this "
                           "app.</noscript>"),
    "no_text": shell(body='<div class="wrapper"></div>'),
}
#: The script every shell of :data:`SHELL_KINDS` runs: it draws ``shellword`` into the body.
SHELL_JS = "document.body.insertAdjacentHTML('beforeend', '<main><p>The shellword text, drawn.</p></main>');"


def shells(site: Site) -> None:
    """``/shell/<kind>`` for each kind of :data:`SHELL_KINDS` (all draw ``shellword``); not linked."""
    for kind, body in SHELL_KINDS.items():
        site.route(f"/shell/{kind}", body)
    site.route("/static/app.js", js(SHELL_JS))


#: server_rendered: the word of /article's server-rendered text.
ARTICLE_WORD = "articleword"


def server_rendered(site: Site) -> None:
    """``/article``: a page whose server sent all its text (inside a ``#__next`` mount point, as a
    server-rendered React page has it) and a script that would only hydrate it: ``/_next/app.js``,
    which a page that is not rendered never requests."""
    paragraphs = "".join(
        f"<p>Paragraph {i} of the {ARTICLE_WORD} page: the server rendered this text in full, so a crawler needs "
        f"no browser to read it. It goes on for a while, as articles do, with ordinary prose.</p>\n"
        for i in range(8))
    main = f'<div id="__next"><article><h1>Article</h1>\n{paragraphs}</article></div>'
    site.route("/article", page("Article", main, head='<script defer src="/_next/app.js"></script>'))
    site.route("/_next/app.js", js("window.hydrated = true;"))


def outbound(site: Site, *, refused: Iterable[str], widget: str) -> None:
    """``/outbound``: its inline script fetches each of ``refused`` (URLs the outbound policy must refuse),
    ignores the failures and draws ``outboundword``; it also loads ``widget`` (a script URL on another
    site, see :func:`widget`), which draws ``widgetword``."""
    calls = ", ".join(f"fetch({json.dumps(url)})" for url in refused)
    inline = f"""
(async () => {{
  await Promise.allSettled([{calls}]);
  document.getElementById('root').insertAdjacentHTML('beforeend',
    '<p>The outboundword text, drawn after the refused requests.</p>');
}})();
"""
    site.route("/outbound", shell(scripts=[widget], inline=inline))


def widget(site: Site) -> None:
    """``/widget.js``: a script for another site's page; it draws ``widgetword`` (into ``#root``, else the
    body) and asks this site's ``/widget-data`` (its own origin) for nothing in particular."""
    source = ("(document.getElementById('root') || document.body).insertAdjacentHTML('beforeend', "
              "'<p>The widgetword box.</p>');"
              "fetch(document.currentScript.src.replace('/widget.js', '/widget-data')).catch(() => {});")
    site.route("/widget.js", js(source))
    site.route("/widget-data", (200, {"Content-Type": JSON}, "{}"))


#: members_app: the cookie that opens /members/data.json, and the word only that JSON holds.
MEMBERS_COOKIE = ("session", "secret")
MEMBER_WORD = "secretmemberword"


def members_app(site: Site, *, third_party: str) -> None:
    """``/members/app``: a public shell whose script asks ``/members/data.json`` (its own origin: 403
    without cookie ``session=secret``) and draws its text (``secretmemberword``), or ``notamemberword``
    when refused. It also loads ``third_party`` (a script URL on another origin, see :func:`widget`)."""
    inline = """
(async () => {
  const response = await fetch('/members/data.json');
  const text = response.ok ? (await response.json()).text : 'notamemberword: the data was refused';
  document.getElementById('root').insertAdjacentHTML('beforeend', '<p>' + text + '</p>');
})();
"""

    def data(request: Request) -> Response:
        if request.cookies.get(MEMBERS_COOKIE[0]) != MEMBERS_COOKIE[1]:
            return 403, {"Content-Type": JSON}, '{"error": "members only"}'
        return 200, {"Content-Type": JSON}, json.dumps({"text": f"The {MEMBER_WORD} news for members."})

    site.route("/members/app", shell(scripts=[third_party], inline=inline))
    site.route("/members/data.json", data)


def media(site: Site) -> None:
    """``/gallery``: text, an ``<img src="/pic.png">``, a stylesheet ``/style.css`` whose ``@font-face``
    (``/font.woff2``) the text uses, and a script that draws ``galleryword``."""
    css = ("@font-face { font-family: 'Test Font'; src: url('/font.woff2') format('woff2'); }\n"
           "body { font-family: 'Test Font', sans-serif; }\n")
    body = ('<div id="root"><h1>Gallery</h1><img src="/pic.png" alt="a picture" width="1" height="1"></div>')
    site.route("/gallery", shell(scripts=[], body=body, head='<link rel="stylesheet" href="/style.css">', inline=(
        "document.getElementById('root').insertAdjacentHTML('beforeend', '<p>The galleryword caption.</p>');")))
    site.route("/style.css", (200, {"Content-Type": "text/css"}, css))
    site.route("/pic.png", (200, {"Content-Type": "image/png"}, PNG_BYTES))
    site.route("/font.woff2", (200, {"Content-Type": "font/woff2"}, b"wOF2 not really a font"))


#: restless: the selector that appears once /restless has drawn its text.
RESTLESS_SELECTOR = "#loaded"


def restless(site: Site, *, interval_ms: int = 50) -> None:
    """``/restless``: a page that never goes quiet: its script fetches ``/tick`` every ``interval_ms``
    forever. After the first answer it draws ``restlessword`` in ``<div id="loaded">``."""
    inline = f"""
let n = 0;
setInterval(async () => {{
  await fetch('/tick?n=' + n++);
  if (!document.getElementById('loaded')) {{
    document.getElementById('root').insertAdjacentHTML('beforeend',
      '<div id="loaded"><p>The restlessword text, drawn after the first tick.</p></div>');
  }}
}}, {interval_ms});
"""
    site.route("/restless", shell(scripts=[], inline=inline))
    site.route(path_is("/tick"), (200, {"Content-Type": JSON}, "{}"))


def held(site: Site, *, seconds: float = 30.0) -> threading.Event:
    """``/held``: a shell whose script asks ``/held-data``, which the server holds ``seconds`` (or until the
    site closes). Returns an event set when the server has received ``/held-data``."""
    asked = threading.Event()

    def data(request: Request) -> Response:
        asked.set()
        site.stopping.wait(seconds)
        return 200, {"Content-Type": JSON}, "{}"

    inline = ("fetch('/held-data').then(() => document.getElementById('root').insertAdjacentHTML('beforeend', "
              "'<p>heldword</p>'));")
    site.route("/held", shell(scripts=[], inline=inline))
    site.route("/held-data", data)
    return asked


__all__ = [
    "APP_JS", "ARTICLE_WORD", "HTML", "MEMBERS_COOKIE", "MEMBER_WORD", "RESTLESS_SELECTOR", "SHELL_JS",
    "SHELL_KINDS", "SPA_DEPTHS", "SPA_PAGES", "SPA_WORDS", "held", "js", "media", "members_app", "outbound",
    "restless", "server_rendered", "shell", "shells", "spa", "widget",
]
