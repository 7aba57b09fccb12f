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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

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
    import uvicorn
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

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "HEAD"])])
    config = uvicorn.Config(app, log_level="warning", access_log=False, workers=1, loop="uvloop",
                            http="httptools", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


class SiteServer:
    """The site server subprocess: the socket is bound here and handed over, so the port is known at once."""

    def __init__(self, pages: int, seed: int = SEED) -> None:
        self.pages = pages
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-fd", str(self.sock.fileno()), "--pages", str(pages),
             "--seed", str(seed)], pass_fds=[self.sock.fileno()], stdin=subprocess.DEVNULL)
        self.sock.close()
        self._wait_ready()
        self.paths = site_paths(pages, seed)

    def _wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the site server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "robots.txt", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the site server did not answer within {timeout} s")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SiteServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
# Memory of a process tree
# ------------------------------------------------------------------------------------------------------

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class TreeRssSampler:
    """Samples the summed RSS of a process and its descendants every ``interval`` s; keeps the maxima."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = [_rss_bytes(pid) for pid in _process_tree(self.pid)]
            sizes = [s for s in sizes if s]
            if sizes:
                self.peak_total = max(self.peak_total, sum(sizes))
                self.peak_single = max(self.peak_single, max(sizes))
                self.max_processes = max(self.max_processes, len(sizes))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(command: list[str], cwd: str, timeout: float,
                 env: dict[str, str] | None = None) -> tuple[int, str, str, float, TreeRssSampler]:
    """Run a crawler to its exit: (exit code, stdout, stderr, wall seconds, its process tree's memory)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, env=env)
    sampler = TreeRssSampler(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        stderr += f"\n(killed after {timeout} s)"
    wall = time.perf_counter() - started
    sampler.stop()
    return process.returncode, stdout, stderr, wall, sampler


def _mb(n: int) -> float:
    return round(n / 1024 / 1024, 1)


# ------------------------------------------------------------------------------------------------------
# Quaero
# ------------------------------------------------------------------------------------------------------

_DEFINITION = """\
name: bench crawl
steps:
  - name: crawl
    action: crawl
    config:
      start_urls: ["{url}"]
      max_depth: 10
      max_pages: 100000
      per_host_delay_ms: 0
      per_host_concurrency: {concurrency}
      concurrency: {concurrency}
      respect_robots_txt: true
"""


def _count_documents(db_path: Path) -> int | None:
    if not db_path.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    except sqlite3.Error:
        return None


def run_quaero(url: str, concurrency: int, workers: int | None, timeout: float) -> dict[str, Any]:
    """``quaero run`` of the crawl definition; wall time, saved documents and the tree's peak memory."""
    with tempfile.TemporaryDirectory(prefix="quaero-bench-crawl-") as tmp:
        definition = Path(tmp) / "bench-crawl.yaml"
        definition.write_text(_DEFINITION.format(url=url, concurrency=concurrency), encoding="utf-8")
        data_dir = Path(tmp) / "data"
        command = [sys.executable, "-m", "quaero", "run", str(definition), "--json", "--data-dir", str(data_dir)]
        if workers is not None:
            command += ["--workers", str(workers)]
        # The generated site is served on 127.0.0.1, which the outbound policy refuses unless allowed.
        env = {**os.environ, "QUAERO_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128"}
        returncode, stdout, stderr, wall, sampler = run_measured(command, tmp, timeout, env=env)
        documents = _count_documents(data_dir / "quaero.stores.db")
    summary: dict[str, Any] = {}
    for line in reversed(stdout.strip().splitlines()):
        try:
            summary = json.loads(line)
            break
        except json.JSONDecodeError:
            continue
    figures: dict[str, Any] = {
        "pages_per_s": round(documents / wall, 1) if documents else None,
        "documents_saved": documents,
        "quaero_wall_s": round(wall, 2),
        "peak_rss_mb": _mb(sampler.peak_total),
        "peak_rss_single_mb": _mb(sampler.peak_single),
        "quaero_processes": sampler.max_processes,
        "quaero_status": summary.get("status"),
        "quaero_counts": summary.get("counts"),
    }
    if returncode != 0:
        message = (stderr.strip() or stdout.strip() or "no output").splitlines()
        if "unknown action 'crawl'" in stderr:
            figures["error"] = ("Quaero has no 'crawl' action yet (the crawler plugin has not landed): "
                                + message[-1])
        else:
            figures["error"] = (f"quaero run exited with {returncode} (status {summary.get('status')}, "
                                f"{summary.get('error') or ''}): " + " | ".join(message[-5:]))
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
        returncode, _, stderr, wall, sampler = run_measured(
            [str(python), str(spider), url, str(concurrency), str(stats_file)], tmp, timeout)
        if returncode != 0 or not stats_file.is_file():
            tail = " | ".join(stderr.strip().splitlines()[-5:])
            return {"scrapy_pages": None, "scrapy_pages_per_s": None,
                    "scrapy_error": f"the Scrapy spider exited with {returncode}: {tail}"}
        stats = json.loads(stats_file.read_text())
    items = int(stats.get("item_scraped_count", 0))
    return {
        "scrapy_pages": items,
        "scrapy_pages_per_s": round(items / wall, 1),
        "scrapy_wall_s": round(wall, 2),
        "scrapy_crawl_s": round(float(stats.get("elapsed_time_seconds", 0)), 2),
        "scrapy_requests": stats.get("downloader/request_count"),
        "scrapy_peak_rss_mb": _mb(sampler.peak_total),
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
            figures.update(run_quaero(server.url, args.concurrency, args.workers, args.timeout))
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
