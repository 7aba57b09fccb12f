"""Crawl benchmark: Quaero's ``crawl`` action beside Scrapy, on the same generated site in the same run.

    python bench/crawl.py [--json] [--pages 2000] [--concurrency 8] [--workers N] [--skip-scrapy]

- The site: ``--pages`` deterministic pages of about 20 KB of HTML each (header, nav, sidebar, footer
  boilerplate; an article with headings, English-like prose from a fixed vocabulary and a seeded RNG, a
  table, a code block) with 20-50 links to other pages each, every page within 4 links of ``/``, plus
  ``/robots.txt`` (allow all) and ``/sitemap.xml``. It is served from memory by uvicorn + Starlette in a
  separate process; ``server_requests_per_s`` is its measured keep-alive throughput at the same
  concurrency, so it can be seen not to be the bottleneck.
- pages_per_s: ``quaero run`` of a one-step ``crawl`` definition (start ``/``, max_depth 10, no delay,
  ``--concurrency`` requests at once, robots.txt obeyed) as a subprocess: documents saved (rows of
  ``documents`` in ``<data_dir>/quaero.db``) / wall time from start to exit.
- peak_rss_mb: the largest summed resident memory of the ``quaero run`` process tree (the run process and
  its worker processes), sampled from /proc every 50 ms; peak_rss_single_mb: the largest single process.
- scrapy_pages_per_s: Scrapy 2.19 (installed on first use into ``bench/.venv-scrapy``, never a dependency
  of Quaero) crawling the same site with the same concurrency, robots.txt obeyed, no delay, no
  autothrottle, DEPTH_LIMIT 10, its own duplicate filter, and an item (URL, title, body text) per page:
  items / wall time from start to exit. ratio_vs_scrapy = pages_per_s / scrapy_pages_per_s.
- The crawl runs with the default settings, so its pages are embedded for search by meaning in the
  background as they are saved: documents_embedded_by_the_end and embedded_docs_per_s_during_crawl say
  how far that got while the crawl ran (the rest is embedded after). ``--embedding-cost`` crawls again
  with ``embedder = none``: pages_per_s_embedder_none, and crawl_ratio_embedding_vs_none = pages_per_s /
  pages_per_s_embedder_none (the target: at least 0.85).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from measure import (
    SiteProcess,
    count_documents,
    crawl_definition,
    mb,
    open_documents,
    run_measured,
    run_quaero,
    serve_app,
)
from report import print_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from quaero.testing.site import SEED, generate_site, site_paths  # the site, shared with the chaos test

SCRAPY_VERSION = "2.19.0"
SCRAPY_VENV = ROOT / "bench" / ".venv-scrapy"

# ------------------------------------------------------------------------------------------------------
# The site (quaero/testing/site.py makes its pages)
# ------------------------------------------------------------------------------------------------------


def serve_site(sock: socket.socket, pages: int, seed: int) -> None:
    """Serve the generated site on ``sock`` with uvicorn + Starlette (run in the server subprocess)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    content: dict[str, tuple[bytes, str]] = {
        path: (body, "text/html; charset=utf-8") for path, body in generate_site(pages, seed).items()}
    content["/robots.txt"] = (f"User-agent: *\nDisallow:\n\nSitemap: {base}/sitemap.xml\n".encode(),
                              "text/plain; charset=utf-8")
    urls = "".join(f"  <url><loc>{base}{path}</loc></url>\n" for path in site_paths(pages, seed))
    content["/sitemap.xml"] = (('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/'
                                f'schemas/sitemap/0.9">\n{urls}</urlset>\n').encode(), "application/xml")
    not_found = b"<!DOCTYPE html><html><head><title>Not found</title></head><body><h1>Not found</h1></body></html>"

    async def endpoint(request: Request) -> Response:
        found = content.get(request.url.path)
        if found is None:
            return Response(not_found, status_code=404, media_type="text/html; charset=utf-8")
        return Response(found[0], media_type=found[1])

    serve_app(sock, Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "HEAD"])]))


class SiteServer(SiteProcess):
    """The site server subprocess (this script with ``--serve-fd``) and the site's paths."""

    def __init__(self, pages: int, seed: int = SEED) -> None:
        super().__init__(__file__, ["--pages", str(pages), "--seed", str(seed)])
        self.pages = pages
        self.paths = site_paths(pages, seed)


async def _fetch_all(port: int, paths: list[str], concurrency: int) -> int:
    """GET every path over ``concurrency`` keep-alive connections with a minimal client; bytes received."""
    queue = list(reversed(paths))
    total = 0

    async def connection() -> None:
        nonlocal total
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                path = queue.pop()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"{path}: {head[:40]!r}")
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                total += len(await reader.readexactly(length))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return total


def measure_server(server: SiteServer, concurrency: int) -> dict[str, Any]:
    """The site server's throughput (every page once, keep-alive) and the pages' average size."""
    paths = server.paths
    asyncio.run(_fetch_all(server.port, paths[: min(200, len(paths))], concurrency))  # warm up
    started = time.perf_counter()
    received = asyncio.run(_fetch_all(server.port, paths, concurrency))
    elapsed = time.perf_counter() - started
    return {"server_requests_per_s": round(len(paths) / elapsed), "site_pages": len(paths),
            "site_avg_page_kb": round(received / len(paths) / 1024, 1)}


# ------------------------------------------------------------------------------------------------------
# Quaero
# ------------------------------------------------------------------------------------------------------

def _saved_and_embedded(data_dir: Path) -> tuple[int | None, int | None]:
    conn = open_documents(data_dir)
    embedded = None
    if conn is not None:
        try:
            embedded = int(conn.execute("SELECT COUNT(*) FROM document_vectors").fetchone()[0])
        except sqlite3.Error:
            pass
        finally:
            conn.close()
    return count_documents(data_dir), embedded


def quaero_figures(url: str, concurrency: int, workers: int | None, timeout: float,
                   embedder: str | None = None) -> dict[str, Any]:
    """``quaero run`` of the crawl definition; wall time, saved documents (and how many the background had
    embedded by the end) and the tree's peak memory. ``embedder``: the setting, if not the default's."""
    run = run_quaero(crawl_definition("bench crawl", url, concurrency), workers=workers, timeout=timeout,
                     inspect=_saved_and_embedded, env={"QUAERO_EMBEDDER": embedder} if embedder else None)
    (documents, embedded), sampler, summary = run.inspected, run.sampler, run.summary
    figures: dict[str, Any] = {
        "documents_embedded_by_the_end": embedded,
        "embedded_docs_per_s_during_crawl": round(embedded / run.wall, 1) if embedded else None,
        "pages_per_s": round(documents / run.wall, 1) if documents else None,
        "documents_saved": documents,
        "quaero_wall_s": round(run.wall, 2),
        "peak_rss_mb": mb(sampler.peak_total),
        "peak_rss_single_mb": mb(sampler.peak_single),
        "quaero_processes": sampler.max_processes,
        "quaero_status": summary.get("status"),
        "quaero_counts": summary.get("counts"),
    }
    error = run.error()
    if error and "unknown action 'crawl'" in run.stderr:
        figures["error"] = ("Quaero has no 'crawl' action yet (the crawler plugin has not landed): "
                            + run.stderr.strip().splitlines()[-1])
    elif error:
        figures["error"] = error
    elif not documents:
        figures["error"] = "quaero run completed but the documents table is empty or missing"
    return figures


# ------------------------------------------------------------------------------------------------------
# Scrapy
# ------------------------------------------------------------------------------------------------------

_SPIDER = textwrap.dedent('''\
    """Benchmark spider: every same-site page, one item each (URL, title, body text)."""
    import json
    import sys
    from urllib.parse import urlsplit

    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.linkextractors import LinkExtractor

    START, CONCURRENCY, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    SITE = urlsplit(START).netloc  # scheme://host:port: LinkExtractor(allow_domains=) ignores ports


    class BenchSpider(scrapy.Spider):
        name = "bench"
        links = LinkExtractor()

        async def start(self):
            # Not start_urls: their requests bypass the duplicate filter, so / would be fetched twice.
            yield scrapy.Request(START, callback=self.parse)

        def parse(self, response):
            text = " ".join(t.strip() for t in response.xpath(
                "//body//text()[not(ancestor::script) and not(ancestor::style)]").getall() if t.strip())
            yield {"url": response.url, "title": response.css("title::text").get(), "text": text}
            for link in self.links.extract_links(response):
                if urlsplit(link.url).netloc == SITE:
                    yield response.follow(link.url, callback=self.parse)


    process = CrawlerProcess(settings={
        "ROBOTSTXT_OBEY": True,
        "CONCURRENT_REQUESTS": CONCURRENCY,
        "CONCURRENT_REQUESTS_PER_DOMAIN": CONCURRENCY,
        "DOWNLOAD_DELAY": 0,
        "RANDOMIZE_DOWNLOAD_DELAY": False,
        "AUTOTHROTTLE_ENABLED": False,
        "DEPTH_LIMIT": 10,
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
    })
    crawler = process.create_crawler(BenchSpider)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    with open(OUT, "w") as f:
        json.dump({key: value for key, value in stats.items() if isinstance(value, (int, float, str))}, f)
''')


def ensure_scrapy(quiet: bool) -> Path:
    """The Python of ``bench/.venv-scrapy``, with Scrapy installed there on first use."""
    python = SCRAPY_VENV / "bin" / "python"
    if python.exists():
        probe = subprocess.run([str(python), "-c", "import scrapy; print(scrapy.__version__)"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == SCRAPY_VERSION:
            return python
    if not quiet:
        print(f"installing Scrapy {SCRAPY_VERSION} into {SCRAPY_VENV.relative_to(ROOT)} (first use) ...",
              file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SCRAPY_VENV)], check=True, capture_output=True)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              f"scrapy=={SCRAPY_VERSION}"], capture_output=True, text=True, check=False)
    if install.returncode != 0:
        raise RuntimeError(f"pip install scrapy=={SCRAPY_VERSION} failed:\n{install.stdout}{install.stderr}")
    return python


def run_scrapy(python: Path, url: str, concurrency: int, timeout: float) -> dict[str, Any]:
    """Scrapy crawling the site: items, wall time from start to exit, crawl time, peak memory."""
    with tempfile.TemporaryDirectory(prefix="quaero-bench-scrapy-") as tmp:
        spider = Path(tmp) / "bench_spider.py"
        spider.write_text(_SPIDER, encoding="utf-8")
        stats_file = Path(tmp) / "stats.json"
        run = run_measured([str(python), str(spider), url, str(concurrency), str(stats_file)], tmp, timeout)
        if run.returncode != 0 or not stats_file.is_file():
            tail = " | ".join(run.stderr.strip().splitlines()[-5:])
            return {"scrapy_pages": None, "scrapy_pages_per_s": None,
                    "scrapy_error": f"the Scrapy spider exited with {run.returncode}: {tail}"}
        stats = json.loads(stats_file.read_text())
    items = int(stats.get("item_scraped_count", 0))
    return {
        "scrapy_pages": items,
        "scrapy_pages_per_s": round(items / run.wall, 1),
        "scrapy_wall_s": round(run.wall, 2),
        "scrapy_crawl_s": round(float(stats.get("elapsed_time_seconds", 0)), 2),
        "scrapy_requests": stats.get("downloader/request_count"),
        "scrapy_peak_rss_mb": mb(run.sampler.peak_total),
        "scrapy_finish_reason": stats.get("finish_reason"),
    }


# ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--pages", type=int, default=2000, help="pages of the generated site")
    parser.add_argument("--concurrency", type=int, default=8, help="requests at once, for both crawlers")
    parser.add_argument("--workers", type=int, default=None, help="quaero run --workers (default: its own)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each crawler may take")
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    parser.add_argument("--skip-scrapy", action="store_true", help="only Quaero")
    parser.add_argument("--embedding-cost", action="store_true",
                        help="crawl again with embedder = none: pages_per_s with and without background embedding")
    parser.add_argument("--skip-quaero", action="store_true", help="only Scrapy (and the site server)")
    parser.add_argument("--serve-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_fd is not None:  # the site server subprocess
        serve_site(socket.socket(fileno=args.serve_fd), args.pages, args.seed)
        return 0

    scrapy_python = None if args.skip_scrapy else ensure_scrapy(quiet=args.json)
    figures: dict[str, Any] = {"concurrency": args.concurrency}
    with SiteServer(args.pages, args.seed) as server:
        figures.update(measure_server(server, args.concurrency))
        if not args.skip_quaero:
            figures.update(quaero_figures(server.url, args.concurrency, args.workers, args.timeout))
            if args.embedding_cost:  # the same crawl with search by meaning off: what embedding costs it
                alone = quaero_figures(server.url, args.concurrency, args.workers, args.timeout, embedder="none")
                figures["pages_per_s_embedder_none"] = alone.get("pages_per_s")
                if figures.get("pages_per_s") and alone.get("pages_per_s"):
                    figures["crawl_ratio_embedding_vs_none"] = round(figures["pages_per_s"] / alone["pages_per_s"], 2)
        if scrapy_python is not None:
            figures.update(run_scrapy(scrapy_python, server.url, args.concurrency, args.timeout))
    ours, theirs = figures.get("pages_per_s"), figures.get("scrapy_pages_per_s")
    figures["ratio_vs_scrapy"] = round(ours / theirs, 2) if ours and theirs else None
    order = ["pages_per_s", "scrapy_pages_per_s", "ratio_vs_scrapy", "peak_rss_mb", "peak_rss_single_mb",
             "documents_saved", "scrapy_pages"]
    figures = {**{k: figures.get(k) for k in order if k in figures or k == "ratio_vs_scrapy"},
               **{k: v for k, v in figures.items() if k not in order}}
    print_figures(figures, as_json=args.json)
    failed = "error" in figures or "scrapy_error" in figures
    if "error" in figures and not args.json:
        print(f"\nerror: {figures['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
