"""Render benchmark: Quaero crawling a site whose pages a script draws, beside its server-rendered twin.

    python bench/render.py [--json] [--pages 300] [--concurrency 8] [--workers N] [--skip-plain]
                           [--skip-auto-shell] [--skip-baseline] [--plain-rounds 2] [--wait-for SELECTOR]

- The sites: ``--pages`` deterministic pages (a seeded RNG and the crawl benchmark's English-like prose, the
  same on every machine). Each page has a title, paragraphs whose total text size follows a log-normal
  distribution (median 10 KB; the sizes are its quantiles, clipped to 2-200 KB: most pages small, a long
  tail up to about 190 KB), a small table and 5-20 links to other pages; every page is within 3 links of
  ``/`` (a tree of fan-out 7 plus random links). Both sites serve ``/robots.txt`` (allow all).
  - The script site: every page's HTML is the same shell (``<div id="root"></div>``, ``<script
    src="/app.js" defer>``, a ``<noscript>`` asking for JavaScript, the title "Acme Docs"); ``/app.js``
    fetches ``/data/<page>.json`` and draws the title, the paragraphs, the table and the links into
    ``#root``, so the links exist only after the script ran.
  - The server-rendered twin, on another port: the same paths, each page's HTML the same article (same
    text, same links) inside ``<div id="root">``, plus a small inline analytics ``<script>``: a mount point
    and a script, but plenty of text, so ``render: auto`` must not take it for a shell.
  Each site is served from memory by uvicorn + Starlette in its own process, which counts the requests it
  answers (``/_bench/requests``), so a page's main document fetched twice would show.
- Each Quaero figure is a ``quaero run`` subprocess of a one-step ``crawl`` definition (start ``/``,
  max_depth 10, no delay, ``--concurrency`` requests at once, robots.txt obeyed, the site's 127.0.0.1
  allowed with ``QUAERO_ALLOW_PRIVATE_NETWORKS``, the browser given with
  ``QUAERO_PLUGIN_CRAWLER_BROWSER_PATH``), pages/s being documents saved (rows of ``documents`` in
  ``<data_dir>/quaero.stores.db``) / wall time from start to exit:
  1. rendered_pages_per_s: ``render: always`` on the script site. rendered_pages is the documents saved;
     the run is checked: every page saved exactly once (its URL, no other), each with a ``rendered`` key in
     its metadata, its title and every paragraph of its text in the saved markdown (whitespace
     normalised), its links in the document's links, each main document fetched once. peak_rss_mb is the
     largest summed resident memory of the run's process tree (the run process, its worker processes,
     their browsers and the browsers' helpers), sampled from /proc every 50 ms; peak_rss_single_mb the
     largest single process; peak_pss_mb the largest summed PSS, sampled every 0.5 s (a browser's
     processes share most of their pages, which the summed RSS counts once in each process).
     cpu_ms_per_page is the CPU time (user + system) of the whole tree over the run / documents, and
     rendered_pages_per_s_2_idle_cores = 2 s / that: what two cores would do with nothing else running
     (the machine's cores are shared: the wall-clock figures move with its load). page_job_p50_s / p95
     are the crawler_url jobs' own durations, render_p50_s / p95 the render times their logs give (from a
     free browser context to the rendered DOM); main_document_fetches_max, app_js_fetches and
     data_fetches are the site server's counts.
  2. plain_pages_per_s: ``render: never`` on the twin (the same checks but ``rendered``);
     ratio_rendered_vs_plain = rendered_pages_per_s / plain_pages_per_s.
  3. auto_pages_per_s: ``render: auto`` on the twin; auto_vs_never = auto_pages_per_s / plain_pages_per_s
     and auto_rendered, the documents with a ``rendered`` key (must be 0). The twin's runs are short, so
     never and auto alternate ``--plain-rounds`` times and each figure is its best round.
  4. auto_shell_rendered: ``render: auto`` on the script site, the documents with a ``rendered`` key (must
     be every page), and auto_shell_pages_per_s.
- browser_baseline_pages_per_s: Playwright alone driving the same Chromium in a subprocess (one browser,
  ``--concurrency`` contexts of one page each, navigated from URL to URL, Chromium fetching for itself,
  each page waited for until its ``#root article`` exists, no quiet time): every page of the script site
  in a known order, no crawl, no conversion, no storage; it also
  checks that the script draws each page's title, text and links (site_check). Its CPU per page and
  memory are measured as Quaero's.
- load_average_at_start / _at_end: the machine's 1-minute load average (its 2 cores are shared).
- Targets (from the spec): at least 15 rendered pages/s on 2 cores, peak RSS under 800 MB, auto within
  10 % of never (auto_vs_never at least 0.9).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

from measure import SiteProcess, crawl_definition, mb, open_documents, run_measured, run_quaero, serve_app
from report import print_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The crawl site's prose generator (private to it), so that the two benchmarks' pages read alike; the
# browsers a crawl looks for, in its order, so that the benchmark renders with the one a crawl would find.
from quaero.testing.site import SEED, _sentence, _title
from quaero_plugins.crawler.render import BROWSER_NAMES

FANOUT = 7  # 1 + 7 + 49 + 343 pages within 3 links of /
MEDIAN_TEXT = 10_000
TEXT_SIGMA = 1.0
MIN_TEXT, MAX_TEXT = 2_000, 200_000
# The baseline's Chromium flags: Quaero's, less its network containment (the baseline fetches for itself).
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup"]
TARGET_RENDERED_PER_S, TARGET_RSS_MB, TARGET_AUTO_VS_NEVER = 15.0, 800.0, 0.9
PSS_EVERY = 10  # samples: PSS every 0.5 s

# ------------------------------------------------------------------------------------------------------
# The pages
# ------------------------------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of both sites: where it is, what it says and where it links."""

    path: str
    name: str  # the data file's stem: /data/<name>.json
    title: str
    paragraphs: list[str]
    table: dict[str, list[Any]]
    links: list[int]

    @property
    def text_size(self) -> int:
        return sum(len(p) for p in self.paragraphs)


def build_pages(count: int, seed: int = SEED) -> list[Page]:
    """The ``count`` pages, index 0 being ``/``; the same for a seed on every machine."""
    if count < 2:
        raise ValueError("--pages must be at least 2")
    rng = random.Random(seed + 16)
    names = ["index"] + [f"{_title(rng).lower().replace(' ', '-')}-{i}" for i in range(1, count)]
    paths = ["/"] + [f"/guide/{name}" for name in names[1:]]
    titles = ["Acme Documentation"] + [_title(rng) for _ in range(1, count)]
    # The log-normal's quantiles, shuffled: the same spread of sizes whatever the seed draws.
    normal = NormalDist(math.log(MEDIAN_TEXT), TEXT_SIGMA)
    sizes = [min(MAX_TEXT, max(MIN_TEXT, round(math.exp(normal.inv_cdf((k + 0.5) / count))))) for k in range(count)]
    rng.shuffle(sizes)
    pages = []
    for i in range(count):
        parent = (i - 1) // FANOUT if i else None
        links = [c for c in range(i * FANOUT + 1, i * FANOUT + FANOUT + 1) if c < count]
        links += [parent] if parent is not None else []
        wanted = max(len(links), min(count - 1, rng.randint(5, 20)))
        while len(links) < wanted:
            j = rng.randrange(count)
            if j != i and j not in links:
                links.append(j)
        paragraphs: list[str] = []
        while sum(len(p) for p in paragraphs) < sizes[i]:
            paragraphs.append(" ".join(_sentence(rng) for _ in range(rng.randint(3, 10))))
        columns = [w.capitalize() for w in _title(rng).split()[:2]] + ["Default", "Notes"]
        rows = [[_title(rng).split()[0].lower(), rng.choice(["string", "integer", "boolean", "list"]),
                 rng.randint(0, 10_000), _sentence(rng)] for _ in range(rng.randint(3, 6))]
        pages.append(Page(paths[i], names[i], titles[i], paragraphs, {"head": columns, "rows": rows}, links))
    return pages


def page_data(page: Page, pages: list[Page]) -> dict[str, Any]:
    """What ``/data/<name>.json`` answers: the page's content and its links (href and title)."""
    return {"title": page.title, "paragraphs": page.paragraphs, "table": page.table,
            "links": [{"href": pages[j].path, "title": pages[j].title} for j in page.links]}


def _article(page: Page, pages: list[Page]) -> str:
    """The article as the server renders it: the same elements, in the same order, as ``/app.js`` draws."""
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in page.table["head"])
    rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in page.table["rows"])
    links = "".join(f'<li><a href="{e(pages[j].path)}">{e(pages[j].title)}</a></li>' for j in page.links)
    return (f"<article><h1>{e(page.title)}</h1>" + "".join(f"<p>{e(p)}</p>" for p in page.paragraphs)
            + f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            + f"<h2>Related pages</h2><ul>{links}</ul></article>")


SHELL = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Acme Docs</title>\n'
         '<script src="/app.js" defer></script>\n</head>\n<body>\n<div id="root"></div>\n'
         "<noscript>You need to enable JavaScript to run this app.</noscript>\n</body>\n</html>\n")

APP_JS = """\
"use strict";
(function () {
  var path = location.pathname;
  var name = path === "/" ? "index" : path.slice(path.lastIndexOf("/") + 1);
  function el(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  fetch("/data/" + name + ".json").then(function (response) {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }).then(function (page) {
    document.title = page.title + " | Acme Docs";
    var article = el("article");
    article.appendChild(el("h1", page.title));
    page.paragraphs.forEach(function (text) { article.appendChild(el("p", text)); });
    var table = el("table"), thead = el("thead"), tbody = el("tbody"), head = el("tr");
    page.table.head.forEach(function (cell) { head.appendChild(el("th", cell)); });
    thead.appendChild(head);
    page.table.rows.forEach(function (cells) {
      var row = el("tr");
      cells.forEach(function (cell) { row.appendChild(el("td", String(cell))); });
      tbody.appendChild(row);
    });
    table.appendChild(thead);
    table.appendChild(tbody);
    article.appendChild(table);
    article.appendChild(el("h2", "Related pages"));
    var list = el("ul");
    page.links.forEach(function (link) {
      var item = el("li"), anchor = el("a", link.title);
      anchor.href = link.href;
      item.appendChild(anchor);
      list.appendChild(item);
    });
    article.appendChild(list);
    document.getElementById("root").appendChild(article);
  }).catch(function (error) {
    document.getElementById("root").textContent = "This page could not be loaded: " + error.message;
  });
})();
"""


def twin_html(page: Page, pages: list[Page]) -> str:
    """The server-rendered page: the article in the mount point, and an inline script as real pages have."""
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(page.title)} | Acme Docs</title>\n</head>\n<body>\n"
            f'<div id="root">{_article(page, pages)}</div>\n'
            "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
            "gtag('js',new Date());</script>\n</body>\n</html>\n")


# ------------------------------------------------------------------------------------------------------
# The site servers
# ------------------------------------------------------------------------------------------------------


def serve_site(sock: socket.socket, kind: str, count: int, seed: int) -> None:
    """Serve the script site or its twin (``kind``) on ``sock``, counting requests (the server subprocess)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    pages = build_pages(count, seed)
    content: dict[str, tuple[bytes, str]] = {"/robots.txt": (b"User-agent: *\nDisallow:\n", "text/plain")}
    for page in pages:
        if kind == "script":
            content[page.path] = (SHELL.encode(), "text/html; charset=utf-8")
            content[f"/data/{page.name}.json"] = (json.dumps(page_data(page, pages)).encode(), "application/json")
        else:
            content[page.path] = (twin_html(page, pages).encode(), "text/html; charset=utf-8")
    if kind == "script":
        content["/app.js"] = (APP_JS.encode(), "text/javascript; charset=utf-8")
    not_found = b"<!DOCTYPE html><html><head><title>Not found</title></head><body><h1>Not found</h1></body></html>"
    requests: dict[str, int] = {}

    async def endpoint(request: Request) -> Response:
        path = request.url.path
        requests[path] = requests.get(path, 0) + 1
        found = content.get(path)
        if found is None:
            return Response(not_found, status_code=404, media_type="text/html; charset=utf-8")
        return Response(found[0], media_type=found[1])

    async def counted(request: Request) -> Response:
        answer = JSONResponse(requests.copy())
        if request.query_params.get("reset"):
            requests.clear()
        return answer

    serve_app(sock, Starlette(routes=[Route("/_bench/requests", counted),
                                      Route("/{path:path}", endpoint, methods=["GET", "HEAD"])]))


class Site(SiteProcess):
    """One of the two sites in its server subprocess, and its pages."""

    def __init__(self, kind: str, count: int, seed: int) -> None:
        super().__init__(__file__, ["--serve-kind", kind, "--pages", str(count), "--seed", str(seed)])
        self.kind = kind
        self.pages = build_pages(count, seed)

    def page_url(self, page: Page) -> str:
        return self.url[:-1] + page.path

    def requests(self, reset: bool = True) -> dict[str, int]:
        """The requests answered per path since the last reset (and reset them)."""
        with urllib.request.urlopen(self.url + "_bench/requests" + ("?reset=1" if reset else ""), timeout=30) as r:
            return json.loads(r.read())


# ------------------------------------------------------------------------------------------------------
# Playwright alone (the baseline, and the check that the script draws the pages)
# ------------------------------------------------------------------------------------------------------


async def _baseline(base: str, pages: list[Page], concurrency: int, browser_path: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    todo = list(reversed(range(len(pages))))
    problems: list[str] = []
    drawn_links = 0
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=browser_path, args=BROWSER_ARGS)

        async def worker() -> None:
            nonlocal drawn_links
            context = await browser.new_context()
            tab = await context.new_page()
            while todo:
                page = pages[todo.pop()]
                await tab.goto(base + page.path)
                await tab.wait_for_selector("#root article", timeout=30_000)
                drawn = await tab.evaluate("""() => ({title: document.title,
                    paragraphs: [...document.querySelectorAll('#root p')].map(p => p.textContent),
                    links: [...document.querySelectorAll('#root a[href]')].map(a => a.getAttribute('href'))})""")
                drawn_links += len(drawn["links"])
                if (drawn["title"] != f"{page.title} | Acme Docs" or drawn["paragraphs"] != page.paragraphs
                        or drawn["links"] != [pages[j].path for j in page.links]):
                    problems.append(page.path)
            await context.close()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        await browser.close()
    return {"browser_baseline_pages_per_s": round(len(pages) / elapsed, 1),
            "site_check": "ok" if not problems else f"{len(problems)} pages not drawn as expected: {problems[:5]}",
            "site_links_drawn": drawn_links}


def run_baseline(site: Site, concurrency: int, browser_path: str, seed: int, timeout: float) -> dict[str, Any]:
    """The baseline in a subprocess (this script with ``--baseline-of``), its process tree's memory measured."""
    command = [sys.executable, __file__, "--baseline-of", site.url[:-1], "--pages", str(len(site.pages)),
               "--seed", str(seed), "--concurrency", str(concurrency), "--browser-path", browser_path]
    run = run_measured(command, str(ROOT), timeout, pss_every=PSS_EVERY)
    site.requests(reset=True)
    if run.returncode != 0:
        return {"site_check": f"the baseline exited with {run.returncode}: "
                              + " | ".join(run.stderr.strip().splitlines()[-3:])}
    return {**json.loads(run.stdout.strip().splitlines()[-1]),
            "browser_baseline_cpu_ms_per_page": round(run.cpu / len(site.pages) * 1000),
            "browser_baseline_peak_rss_mb": mb(run.sampler.peak_total),
            "browser_baseline_peak_pss_mb": mb(run.sampler.peak_pss)}


# ------------------------------------------------------------------------------------------------------
# Quaero
# ------------------------------------------------------------------------------------------------------

#: The crawler's log line of a rendered page: "rendered <url> (<why>) in 0.42 s: ...".
_RENDER_LOG = re.compile(r"^rendered \S+ \(.*\) in ([0-9.]+) s")


def _quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``values`` (the nearest rank below), rounded; None when empty."""
    return round(values[int(q * (len(values) - 1))], 3) if values else None


def _read_run(data_dir: Path) -> dict[str, Any]:
    """What a run left: its documents (URL, title, markdown, metadata), page jobs' durations, failures."""
    conn = open_documents(data_dir)
    if conn is None:
        return {}
    try:
        documents = [(ref, title, markdown, json.loads(metadata)) for ref, title, markdown, metadata in
                     conn.execute("SELECT source_ref, title, markdown, metadata FROM documents")]
        durations = sorted(finished - started for started, finished in conn.execute(
            "SELECT started_at, finished_at FROM jobs WHERE type = 'crawler_url' AND status = 'completed' "
            "AND started_at IS NOT NULL AND finished_at IS NOT NULL"))
        failures = dict(conn.execute("SELECT error_message, COUNT(*) FROM jobs WHERE status = 'failed' "
                                     "AND type != 'parent' GROUP BY error_message ORDER BY 2 DESC LIMIT 5"))
        renders = sorted(float(found.group(1)) for (message,) in conn.execute(
            "SELECT message FROM job_logs WHERE message LIKE 'rendered %'")
            if (found := _RENDER_LOG.search(message)))
    except sqlite3.Error as exc:
        return {"read_error": str(exc)}
    finally:
        conn.close()
    return {"documents": documents, "durations": durations, "failures": failures, "renders": renders}


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def check_documents(site: Site, documents: list[tuple[str, str, str, dict[str, Any]]], *,
                    rendered: bool | None) -> list[str]:
    """What is wrong with a crawl's documents: pages missing or twice, text or links lost, ``rendered`` keys.

    ``rendered`` True: every document must have the key; False: none; None: not checked.
    """
    problems: list[str] = []
    by_url: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for ref, title, markdown, metadata in documents:
        by_url.setdefault(ref, []).append((title, markdown, metadata))
    expected = {site.page_url(page): page for page in site.pages}
    missing = [url for url in expected if url not in by_url]
    twice = [url for url, docs in by_url.items() if len(docs) > 1]
    others = [url for url in by_url if url not in expected]
    for label, urls in (("pages not saved", missing), ("pages saved more than once", twice),
                        ("documents of no page", others)):
        if urls:
            problems.append(f"{len(urls)} {label}, e.g. {urls[:3]}")
    lost_text, lost_links, flags = [], [], []
    for url, page in expected.items():
        if url not in by_url:
            continue
        title, markdown, metadata = by_url[url][0]
        text = _words(markdown)
        if page.title not in title or not all(_words(p) in text for p in page.paragraphs):
            lost_text.append(url)
        if {site.page_url(site.pages[j]) for j in page.links} - set(metadata.get("links") or []):
            lost_links.append(url)
        if rendered is not None and ("rendered" in metadata) != rendered:
            flags.append(url)
    if lost_text:
        problems.append(f"{len(lost_text)} pages without their title or all their text, e.g. {lost_text[:3]}")
    if lost_links:
        problems.append(f"{len(lost_links)} pages without all their links, e.g. {lost_links[:3]}")
    if flags:
        problems.append(f"{len(flags)} pages {'without' if rendered else 'with'} a 'rendered' key, e.g. {flags[:3]}")
    return problems


def _fetch_counts(site: Site, requests: dict[str, int]) -> dict[str, Any]:
    """How often the server answered each kind of path during a run."""
    paths = {page.path for page in site.pages}
    main = [requests.get(path, 0) for path in paths]
    return {"main_document_fetches_max": max(main), "app_js_fetches": requests.get("/app.js", 0),
            "data_fetches": sum(n for path, n in requests.items() if path.startswith("/data/")),
            "requests": sum(requests.values())}


def crawl(site: Site, render: str, args: argparse.Namespace, *, rendered: bool | None) -> dict[str, Any]:
    """One ``quaero run`` of the site with ``render``: pages/s, memory, checks, the server's request counts."""
    extra = {"wait_for": args.wait_for} if args.wait_for and render != "never" else {}
    definition = crawl_definition("bench render", site.url, args.concurrency, render=render, **extra)
    site.requests(reset=True)
    run = run_quaero(definition, workers=args.workers, timeout=args.timeout, inspect=_read_run,
                     env={"QUAERO_PLUGIN_CRAWLER_BROWSER_PATH": args.browser_path}, pss_every=PSS_EVERY)
    served = _fetch_counts(site, site.requests(reset=True))
    found = run.inspected or {}
    documents = found.get("documents", [])
    durations, renders = found.get("durations", []), found.get("renders", [])
    result: dict[str, Any] = {
        "pages_per_s": round(len(documents) / run.wall, 1) if documents else None,
        "documents": len(documents),
        "rendered": sum(1 for *_, metadata in documents if "rendered" in metadata),
        "rendered_why": sorted({metadata["rendered"] for *_, metadata in documents if "rendered" in metadata}),
        "wall_s": round(run.wall, 2),
        "peak_rss_mb": mb(run.sampler.peak_total),
        "peak_pss_mb": mb(run.sampler.peak_pss),
        "peak_rss_single_mb": mb(run.sampler.peak_single),
        "processes": run.sampler.max_processes,
        "cpu_ms_per_page": round(run.cpu / len(documents) * 1000) if documents else None,
        "page_job_p50_s": _quantile(durations, 0.5),
        "page_job_p95_s": _quantile(durations, 0.95),
        "render_p50_s": _quantile(renders, 0.5),
        "render_p95_s": _quantile(renders, 0.95),
        "counts": run.summary.get("counts"),
        **served,
    }
    if found.get("failures"):
        result["failures"] = found["failures"]
    problems = [run.error()] if run.error() else []
    problems += [found["read_error"]] if "read_error" in found else []
    problems += check_documents(site, documents, rendered=rendered)
    if served["main_document_fetches_max"] > 1:
        problems.append(f"a main document was fetched {served['main_document_fetches_max']} times")
    if problems:
        result["problems"] = problems
    return result


# ------------------------------------------------------------------------------------------------------


def _prefixed(prefix: str, result: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    return {f"{prefix}_{key}": result[key] for key in keys if key in result}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark, in one run."""
    figures: dict[str, Any] = {"pages": args.pages, "concurrency": args.concurrency,
                               "load_average_at_start": round(os.getloadavg()[0], 2)}
    problems: dict[str, list[str]] = {}
    detail = ["wall_s", "cpu_ms_per_page", "peak_rss_mb", "peak_pss_mb", "peak_rss_single_mb", "processes",
              "page_job_p50_s", "page_job_p95_s", "render_p50_s", "render_p95_s", "main_document_fetches_max",
              "app_js_fetches", "data_fetches", "requests", "counts", "failures"]
    with Site("script", args.pages, args.seed) as script_site:
        sizes = sorted(page.text_size for page in script_site.pages)
        figures.update({"site_text_kb_median": round(statistics.median(sizes) / 1000, 1),
                        "site_text_kb_mean": round(statistics.mean(sizes) / 1000, 1),
                        "site_text_kb_max": round(sizes[-1] / 1000, 1),
                        "site_links_per_page": round(statistics.mean(len(p.links) for p in script_site.pages), 1)})
        if not args.skip_baseline:
            figures.update(run_baseline(script_site, args.concurrency, args.browser_path, args.seed, args.timeout))
            if figures.get("site_check") != "ok":
                problems["site_check"] = [figures["site_check"]]
        always = crawl(script_site, "always", args, rendered=True)
        figures.update({"rendered_pages_per_s": always["pages_per_s"], "rendered_pages": always["documents"],
                        "rendered_why": always["rendered_why"]})
        figures.update(_prefixed("rendered", always, detail))
        problems["rendered"] = always.get("problems", [])
        if not args.skip_auto_shell:
            shell = crawl(script_site, "auto", args, rendered=True)
            figures.update({"auto_shell_rendered": shell["rendered"], "auto_shell_pages_per_s": shell["pages_per_s"],
                            "auto_shell_why": shell["rendered_why"]})
            figures.update(_prefixed("auto_shell", shell, ["wall_s", "cpu_ms_per_page", "peak_rss_mb", "failures"]))
            problems["auto_shell"] = shell.get("problems", [])
    if not args.skip_plain:
        with Site("twin", args.pages, args.seed) as twin:
            rounds: dict[str, list[dict[str, Any]]] = {"never": [], "auto": []}
            for _ in range(args.plain_rounds):
                for render in ("never", "auto"):
                    rounds[render].append(crawl(twin, render, args, rendered=False))
        best = {render: max(results, key=lambda r: r["pages_per_s"] or 0) for render, results in rounds.items()}
        plain, auto = best["never"], best["auto"]
        figures.update({"plain_pages_per_s": plain["pages_per_s"],
                        "plain_rounds_pages_per_s": [r["pages_per_s"] for r in rounds["never"]],
                        "auto_pages_per_s": auto["pages_per_s"],
                        "auto_rounds_pages_per_s": [r["pages_per_s"] for r in rounds["auto"]],
                        "auto_rendered": max(r["rendered"] for r in rounds["auto"])})
        twin_detail = ["wall_s", "cpu_ms_per_page", "peak_rss_mb", "page_job_p50_s", "failures"]
        figures.update(_prefixed("plain", plain, twin_detail))
        figures.update(_prefixed("auto", auto, twin_detail))
        for render, results in rounds.items():
            problems[f"twin_{render}"] = sorted({p for r in results for p in r.get("problems", [])})
    rendered, plain_rate, auto_rate = (figures.get(k) for k in
                                       ("rendered_pages_per_s", "plain_pages_per_s", "auto_pages_per_s"))
    cpu = figures.get("rendered_cpu_ms_per_page")
    figures["rendered_pages_per_s_2_idle_cores"] = round(2000 / cpu, 1) if cpu else None
    figures["ratio_rendered_vs_plain"] = round(rendered / plain_rate, 3) if rendered and plain_rate else None
    figures["auto_vs_never"] = round(auto_rate / plain_rate, 3) if auto_rate and plain_rate else None
    targets = {f"rendered_pages_per_s >= {TARGET_RENDERED_PER_S:g}": (rendered or 0) >= TARGET_RENDERED_PER_S,
               f"peak_rss_mb < {TARGET_RSS_MB:g}": figures["rendered_peak_rss_mb"] < TARGET_RSS_MB,
               f"rendered_pages == {args.pages}": figures["rendered_pages"] == args.pages}
    if not args.skip_plain:
        targets[f"auto_vs_never >= {TARGET_AUTO_VS_NEVER:g}"] = (figures["auto_vs_never"] or 0) >= TARGET_AUTO_VS_NEVER
        targets["auto_rendered == 0"] = figures["auto_rendered"] == 0
    if not args.skip_auto_shell:
        targets[f"auto_shell_rendered == {args.pages}"] = figures["auto_shell_rendered"] == args.pages
    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    figures["targets_met"] = targets
    figures["problems"] = {name: found for name, found in problems.items() if found}
    return figures


_ORDER = ["rendered_pages_per_s", "rendered_pages_per_s_2_idle_cores", "rendered_pages", "rendered_peak_rss_mb",
          "rendered_peak_pss_mb", "plain_pages_per_s",
          "ratio_rendered_vs_plain", "auto_pages_per_s", "auto_vs_never", "auto_rendered", "auto_shell_rendered",
          "browser_baseline_pages_per_s", "targets_met", "problems"]


def _default_browser() -> str:
    """The browser a crawl would find by itself (the headless shell first: plugins/crawler/render.py)."""
    found = (os.environ.get("QUAERO_PLUGIN_CRAWLER_BROWSER_PATH")
             or next(filter(None, map(shutil.which, BROWSER_NAMES)), None))
    return found or "/usr/bin/chromium"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--pages", type=int, default=300, help="pages of each site")
    parser.add_argument("--concurrency", type=int, default=8, help="requests (and pages in the baseline) at once")
    parser.add_argument("--workers", type=int, default=None, help="quaero run --workers (default: its own)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds each run may take")
    parser.add_argument("--plain-rounds", type=int, default=2, help="never/auto rounds on the twin (best of each)")
    parser.add_argument("--wait-for", default=None, help="the crawl's wait_for selector (default: wait for quiet)")
    parser.add_argument("--browser-path", default=_default_browser(), help="the Chromium both use")
    parser.add_argument("--skip-plain", action="store_true", help="not the twin (never and auto)")
    parser.add_argument("--skip-auto-shell", action="store_true", help="not render: auto on the script site")
    parser.add_argument("--skip-baseline", action="store_true", help="not Playwright alone")
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    parser.add_argument("--serve-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve-kind", default="script", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-of", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_fd is not None:  # a site server subprocess
        serve_site(socket.socket(fileno=args.serve_fd), args.serve_kind, args.pages, args.seed)
        return 0
    if args.baseline_of is not None:  # the Playwright baseline subprocess
        result = asyncio.run(_baseline(args.baseline_of, build_pages(args.pages, args.seed), args.concurrency,
                                       args.browser_path))
        print(json.dumps(result))
        return 0

    figures = measure(args)
    figures = {**{k: figures[k] for k in _ORDER if k in figures},
               **{k: v for k, v in figures.items() if k not in _ORDER}}
    print_figures(figures, as_json=args.json)
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
