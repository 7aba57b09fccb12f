"""A seeded documentation website for crawl tests and benchmarks: the same pages on every machine.

:func:`generate_site` makes ``pages`` pages of about 13-27 KB of HTML each (header, nav, sidebar, footer
boilerplate; an article with headings, English-like prose from a fixed vocabulary and a seeded RNG, a table,
a code block) with 20-50 links to other pages each, every page within :data:`MAX_LINK_DEPTH` links of
``/``. :class:`LocalSite` serves them from memory on 127.0.0.1 from a thread, with ``/robots.txt`` (allow
all), and can make some pages answer slowly.
"""

from __future__ import annotations

import html
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MAX_LINK_DEPTH", "SEED", "LocalSite", "generate_site", "site_paths"]

SEED = 20240601
MAX_LINK_DEPTH = 4

_FUNCTION_WORDS = (
    "the of and to a in is that for it as with on be by this are or from at an which can not but have "
    "all when more one if will each their there so its use into only also these than then should other "
    "may any how most such between after before because while where both through over under same"
).split()
_CONTENT_WORDS = (
    "system data server request response cache queue worker process thread memory disk network file "
    "index search query document page link crawler parser token schema record table column value key "
    "field option setting default error warning retry timeout limit policy rule pattern model version "
    "release update migration backup storage cluster node replica shard partition stream event message "
    "handler callback plugin module package library interface method function class object instance "
    "variable parameter argument result output input format encoding header body status client session "
    "cookie user account permission role access token secret password certificate domain host port "
    "address route path endpoint service deployment container image build test coverage benchmark "
    "latency throughput performance metric monitor alert dashboard report log trace debug profile "
    "configure install enable disable start stop restart create delete read write send receive parse "
    "render convert validate check measure compare return handle store load save fetch follow extract "
    "simple fast reliable secure small large local remote public private internal external optional "
    "required previous next first last new old main common specific different important useful careful "
    "automatic manual explicit implicit complete partial current available multiple single several "
    "guide tutorial overview reference example section chapter note tip step detail summary question "
    "answer problem solution approach method practice feature behaviour change difference support team "
    "project developer operator administrator customer product platform environment machine resource"
).split()
_VOCABULARY = _FUNCTION_WORDS + _CONTENT_WORDS
# Zipf-like weights: function words are frequent, content words less so and unevenly.
_WEIGHTS = [12.0] * len(_FUNCTION_WORDS) + [1.0 + 6.0 / (1 + i % 37) for i in range(len(_CONTENT_WORDS))]
_CUM_WEIGHTS: list[float] = []
for _w in _WEIGHTS:
    _CUM_WEIGHTS.append((_CUM_WEIGHTS[-1] if _CUM_WEIGHTS else 0.0) + _w)

_STYLE = ("body{font-family:system-ui,sans-serif;margin:0;color:#222}header{display:flex;gap:1rem;padding:.5rem 1rem;"
          "background:#123;color:#fff}header a{color:#fff}.layout{display:grid;grid-template-columns:16rem 1fr;"
          "gap:2rem}aside{padding:1rem;border-right:1px solid #ddd}main{max-width:48rem;padding:1rem}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem}pre{background:#f6f8fa;"
          "padding:1rem;overflow:auto}footer{padding:1rem;border-top:1px solid #ddd;font-size:.9rem}")


def _words(rng: random.Random, n: int) -> list[str]:
    return rng.choices(_VOCABULARY, cum_weights=_CUM_WEIGHTS, k=n)


def _sentence(rng: random.Random) -> str:
    words = _words(rng, rng.randint(8, 22))
    if len(words) > 12 and rng.random() < 0.4:
        words[rng.randint(4, len(words) - 4)] += ","
    return words[0].capitalize() + " " + " ".join(words[1:]) + ("?" if rng.random() < 0.08 else ".")


def _title(rng: random.Random) -> str:
    return " ".join(w.capitalize() for w in rng.choices(_CONTENT_WORDS, k=rng.randint(2, 4)))


def _branching(pages: int) -> int:
    """The smallest tree fan-out that puts ``pages`` pages within MAX_LINK_DEPTH links of the root."""
    fanout = 2
    while sum(fanout ** d for d in range(MAX_LINK_DEPTH + 1)) < pages:
        fanout += 1
    return fanout


def site_paths(pages: int, seed: int = SEED) -> list[str]:
    """The path of each page, index 0 being ``/``."""
    rng = random.Random(seed)
    fanout = _branching(pages)
    paths = ["/"]
    sections: dict[int, str] = {}
    for i in range(1, pages):
        parent = (i - 1) // fanout
        section = sections[parent] if parent else rng.choice(_CONTENT_WORDS) + f"-{i}"
        sections[i] = section
        slug = "-".join(rng.choices(_CONTENT_WORDS, k=2))
        paths.append(f"/docs/{section}/{slug}-{i}.html")
    return paths


def generate_site(pages: int, seed: int = SEED) -> dict[str, bytes]:
    """Every page of the site by path (HTML bytes); robots.txt and the sitemap are added by the server."""
    if pages < 2:
        raise ValueError("--pages must be at least 2")
    rng = random.Random(seed + 1)
    paths = site_paths(pages, seed)
    fanout = _branching(pages)
    titles = ["Acme Documentation"] + [_title(rng) for _ in range(1, pages)]
    nav = list(range(1, min(pages, 9)))
    out: dict[str, bytes] = {}
    for i in range(pages):
        parent = (i - 1) // fanout if i else None
        children = [c for c in range(i * fanout + 1, i * fanout + fanout + 1) if c < pages]
        fixed = set(nav) | {0, 1 if pages > 1 else 0} | set(children) | ({parent} if parent is not None else set())
        fixed.discard(i)
        wanted = min(pages - 1, rng.randint(20, 50))
        extra: list[int] = []
        candidates = max(0, wanted - len(fixed))
        attempts = 0
        while len(extra) < candidates and attempts < candidates * 20:
            attempts += 1
            j = rng.randrange(pages)
            if j != i and j not in fixed and j not in extra:
                extra.append(j)
        out[paths[i]] = _render_page(rng, i, paths, titles, nav, parent, children, extra).encode("utf-8")
    return out


def _a(paths: list[str], titles: list[str], j: int) -> str:
    return f'<a href="{paths[j]}">{html.escape(titles[j])}</a>'


def _render_page(rng: random.Random, i: int, paths: list[str], titles: list[str], nav: list[int],
                 parent: int | None, children: list[int], extra: list[int]) -> str:
    title = titles[i]
    sections = [_title(rng) for _ in range(rng.randint(7, 9))]
    inline, related = extra[: len(extra) // 2], extra[len(extra) // 2:]
    parts: list[str] = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)} | Acme Docs</title>\n"
        f'<meta name="description" content="{html.escape(_sentence(rng))}">\n<style>{_STYLE}</style>\n</head>\n<body>\n'
        '<header class="site-header"><a class="logo" href="/">Acme Docs</a>'
        '<form role="search" action="/search"><input type="search" name="q" placeholder="Search the docs">'
        "</form></header>\n<nav class=\"site-nav\"><ul>"
        + "".join(f"<li>{_a(paths, titles, j)}</li>" for j in nav if j != i)
        + "</ul></nav>\n<div class=\"layout\">\n<aside class=\"sidebar\"><h3>In this section</h3><ul>"
        + (f"<li>Up: {_a(paths, titles, parent)}</li>" if parent is not None else "")
        + "".join(f"<li>{_a(paths, titles, j)}</li>" for j in children)
        + "</ul></aside>\n<main>\n<article>\n"
        f'<p class="breadcrumbs"><a href="/">Home</a> / {html.escape(title)}</p>\n<h1>{html.escape(title)}</h1>\n'
        '<div class="toc"><h4>On this page</h4><ul>'
        + "".join(f'<li><a href="#s{k}">{html.escape(s)}</a></li>' for k, s in enumerate(sections))
        + "</ul></div>\n"
        f'<p class="lead">{" ".join(_sentence(rng) for _ in range(3))}</p>\n'
    ]
    table_at = rng.randrange(len(sections))
    code_at = rng.randrange(len(sections))
    for k, heading in enumerate(sections):
        parts.append(f'<h2 id="s{k}">{html.escape(heading)}</h2>\n')
        for _ in range(rng.randint(2, 4)):
            sentences = [_sentence(rng) for _ in range(rng.randint(4, 8))]
            if inline and rng.random() < 0.6:
                j = inline.pop()
                sentences.insert(rng.randrange(len(sentences)), f"See {_a(paths, titles, j)} for details.")
            parts.append(f"<p>{' '.join(sentences)}</p>\n")
        if k == table_at:
            parts.append(_table(rng))
        if k == code_at:
            parts.append(_code(rng))
    related += inline
    parts.append("<h2>Related pages</h2>\n<ul class=\"related\">"
                 + "".join(f"<li>{_a(paths, titles, j)}</li>" for j in related) + "</ul>\n")
    parts.append("</article>\n</main>\n</div>\n<footer><p>&copy; 2024 Acme Corp. All rights reserved. "
                 f'<a href="/">Home</a> &middot; {_a(paths, titles, 1)} &middot; '
                 '<a href="mailto:docs@example.invalid">Contact</a></p></footer>\n'
                 '<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}'
                 "gtag('js',new Date());</script>\n</body>\n</html>\n")
    return "".join(parts)


def _table(rng: random.Random) -> str:
    columns = [w.capitalize() for w in rng.sample(_CONTENT_WORDS, 4)]
    rows = "".join(
        "<tr>" + f"<td><code>{rng.choice(_CONTENT_WORDS)}_{rng.choice(_CONTENT_WORDS)}</code></td>"
        + f"<td>{rng.choice(['string', 'integer', 'boolean', 'list', 'duration'])}</td>"
        + f"<td>{rng.randint(0, 10_000)}</td><td>{' '.join(_words(rng, rng.randint(6, 14)))}</td></tr>\n"
        for _ in range(rng.randint(5, 9)))
    head = "".join(f"<th>{c}</th>" for c in columns)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n"


def _code(rng: random.Random) -> str:
    name = "_".join(rng.choices(_CONTENT_WORDS, k=2))
    lines = [f"def {name}({rng.choice(_CONTENT_WORDS)}, {rng.choice(_CONTENT_WORDS)}=None):",
             f'    """{_sentence(rng)}"""']
    for _ in range(rng.randint(8, 16)):
        a, b, c = rng.choices(_CONTENT_WORDS, k=3)
        lines.append(rng.choice([f"    {a} = {b}.{c}({rng.randint(0, 99)})", f"    if {a} < {b}:",
                                 f"        return {a}_{c}", f"    for {a} in {b}.{c}():",
                                 f'        log.info("{a} %s", {b})']))
    lines.append(f"    return {rng.choice(_CONTENT_WORDS)}")
    return f'<pre><code class="language-python">{html.escape(chr(10).join(lines))}</code></pre>\n'


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a crawler killed mid-request resets its connections: not an error of the site


class LocalSite:
    """The generated site served on 127.0.0.1 (HTTP/1.1, keep-alive) from a thread, until :meth:`close`.

    Every ``slow_every``-th page (none when 0) answers after ``slow_s`` seconds: work that is in flight
    for a while, as a slow server's pages are.
    """

    def __init__(self, pages: int, seed: int = SEED, *, slow_every: int = 0, slow_s: float = 0.0) -> None:
        self.pages = generate_site(pages, seed)
        self.paths = site_paths(pages, seed)
        slow = {self.paths[i] for i in range(1, pages) if slow_every and i % slow_every == 0}
        content = {path: (body, "text/html; charset=utf-8") for path, body in self.pages.items()}
        content["/robots.txt"] = (b"User-agent: *\nDisallow:\n", "text/plain; charset=utf-8")
        self.requests = 0
        stopping = self._stopping = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                site.requests += 1  # a count for figures, not exact under threads
                path = self.path.split("?", 1)[0]
                found = content.get(path)
                if path in slow:
                    stopping.wait(slow_s)
                body, kind = found if found is not None else (b"<html><body>Not found</body></html>", "text/html")
                self.send_response(200 if found is not None else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-site", daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        """The full URL of a path on this site."""
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
