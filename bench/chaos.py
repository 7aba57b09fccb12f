"""Chaos benchmark: a crawl killed with SIGKILL again and again, restarted each time; how soon it resumes.

    python bench/chaos.py [--json] [--pages 2000] [--kills 5] [--backends sqlite,postgres-redis]

- The site: ``--pages`` pages of the seeded documentation site of ``quaero/testing/site.py`` (about 20 KB of
  HTML each, 20-50 links per page, all within 4 links of ``/``; the same pages on every machine), served
  from memory on 127.0.0.1 by a thread of this process; every 25th page answers after half a second.
- Each backend: ``quaero serve --workers 2 --threads 4`` as a subprocess (its own data directory; for
  ``postgres-redis`` a new PostgreSQL database on 127.0.0.1:5432 and Redis db 11) crawls the site
  (``per_host_concurrency`` 8, no delay). At ``--kills`` moments drawn with a seeded RNG (when 5-85 % of the
  pages are saved, then 0-0.5 s more) the server and every worker process are sent SIGKILL at once, and the
  server is started again through the CLI. Then one SIGTERM (a drain) and one more start.
- resume_to_progress_s: for each restart, seconds from spawning the new ``quaero serve`` to the first page
  saved after it (a new row in ``documents``), the default 30 s queue lease notwithstanding.
- ``--server-python``: the interpreter of another installation of Quaero (an older release, say) to run the
  server with; the checks and the site stay this one's.
- crawl_s: from the crawl's start to its end, restarts included; checks: the execution completed, each page
  saved exactly once (documents == site pages, no duplicate URL, every step's result count == pages), no job
  pending or running, the queue empty, ``PRAGMA integrity_check`` ok for every SQLite file.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import print_figures

from quaero.testing.chaos import ChaosCrawl
from quaero.testing.site import LocalSite

SEED = 20261202
REDIS_URL = "redis://127.0.0.1:6379/11"


@contextmanager
def backend(name: str) -> Iterator[dict[str, str]]:
    """The database and queue URLs of a backend, made and removed around the run."""
    if name == "sqlite":
        yield {}
        return
    if name != "postgres-redis":
        raise SystemExit(f"unknown backend {name!r}: sqlite or postgres-redis")
    import psycopg2
    import redis

    database = f"quaero_chaos_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{database}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    try:
        yield {"database_url": f"postgresql://127.0.0.1:5432/{database}", "queue_url": REDIS_URL}
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def problems(report: dict[str, Any], pages: int) -> list[str]:
    """What the run's report says went wrong (nothing: an empty list)."""
    found = []
    if report["root_status"] != "completed":
        found.append(f"execution {report['root_status']}: {report['root_error']}")
    if not report["documents"] == report["distinct_urls"] == pages or report["missing_pages"]:
        found.append(f"{report['documents']} documents, {report['distinct_urls']} distinct, "
                     f"{report['missing_pages']} pages missing, for {pages} pages")
    if report["steps"] != [("completed", pages)] or report["root_result_count"] != pages:
        found.append(f"result counts {report['steps']} / {report['root_result_count']}")
    if report["unfinished_jobs"]:
        found.append(f"jobs left {report['unfinished_jobs']}")
    if any(result != "ok" for result in report["integrity"].values()):
        found.append(f"integrity {report['integrity']}")
    queue = report.get("queue", {})
    if queue.get("ready") or queue.get("delayed") or queue.get("in_flight") or queue.get("dead"):
        found.append(f"queue {queue}")
    return found


def run_backend(name: str, site: LocalSite, pages: int, kills: int, rng: random.Random,
                workers: int, threads: int, python: str | None) -> dict[str, Any]:
    """One chaos run on one backend; its figures."""
    with backend(name) as urls, tempfile.TemporaryDirectory(prefix=f"quaero-chaos-{name}-") as tmp:
        crawl = ChaosCrawl(Path(tmp), site, workers=workers, threads=threads, python=python, **urls)
        resumes: list[float] = []
        killed_at: list[int] = []
        try:
            crawl.start(wait=True)
            crawl.execute()
            began = time.monotonic()
            for mark in sorted(rng.sample(range(pages * 5 // 100, pages * 85 // 100), kills)):
                crawl.wait_documents(mark)
                time.sleep(rng.uniform(0, 0.5))
                crawl.kill()
                before = crawl.documents()
                killed_at.append(before)
                spawned = crawl.start()
                if before < pages:
                    resumes.append(round(crawl.wait_progress(before, spawned), 2))
            after_term = None
            if crawl.documents() < pages * 9 // 10:
                crawl.wait_documents(crawl.documents() + pages // 50)
                crawl.terminate()
                before = crawl.documents()
                spawned = crawl.start()
                after_term = round(crawl.wait_progress(before, spawned), 2)
            status = crawl.wait_done(timeout=1800)
            crawl_s = time.monotonic() - began
            crawl.terminate()
            report = crawl.verify()
        finally:
            crawl.close()
    found = problems(report, pages) if status == "completed" else [f"execution {status}"]
    return {
        f"{name}_resume_to_progress_s": resumes,
        f"{name}_resume_to_progress_max_s": max(resumes) if resumes else None,
        f"{name}_resume_to_progress_median_s": round(statistics.median(resumes), 2) if resumes else None,
        f"{name}_resume_after_sigterm_s": after_term,
        f"{name}_killed_at_documents": killed_at,
        f"{name}_crawl_s": round(crawl_s, 1),
        f"{name}_documents": report["documents"],
        f"{name}_checks": "ok" if not found else "; ".join(found),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--pages", type=int, default=2000, help="pages of the generated site")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the server and its workers")
    parser.add_argument("--backends", default="sqlite,postgres-redis", help="comma-separated: sqlite, postgres-redis")
    parser.add_argument("--workers", type=int, default=2, help="quaero serve --workers")
    parser.add_argument("--threads", type=int, default=4, help="quaero serve --threads")
    parser.add_argument("--server-python", help="the python of another Quaero installation to run the server with")
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    started = time.monotonic()
    figures: dict[str, Any] = {"pages": args.pages, "kills": args.kills, "cores": os.cpu_count(),
                               "load_average_1m": round(os.getloadavg()[0], 1)}
    with LocalSite(args.pages, args.seed, slow_every=25, slow_s=0.5) as site:
        for name in args.backends.split(","):
            figures.update(run_backend(name.strip(), site, args.pages, args.kills, random.Random(args.seed),
                                       args.workers, args.threads, args.server_python))
    every = [value for key, values in figures.items() if key.endswith("_resume_to_progress_s") for value in values]
    figures["resume_to_progress_max_s"] = max(every) if every else None
    figures["resume_under_2s"] = sum(value < 2 for value in every)
    figures["restarts"] = len(every)
    figures["bench_s"] = round(time.monotonic() - started, 1)
    print_figures(figures, as_json=args.json)
    return 0 if all(figures[key] == "ok" for key in figures if key.endswith("_checks")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
