"""Search benchmark: indexing rate, and /api/search latency beside the same MATCH run straight on SQLite.

    python bench/search.py [--json] [--docs 100000] [--queries 200]

- The corpus: ``--docs`` documents of 1-3 KB of real English from this machine: the docstrings of Python's
  standard library and of the installed packages (read with ``ast``, nothing imported), the language
  reference topics in ``pydoc_data.topics``, the licences in /usr/share/common-licenses and the copyright
  files in /usr/share/doc. Each document takes one of those texts as its subject (its real name is the
  title: ``asyncio.tasks.gather``, "Python reference: for", "GPL-3, part 4") and, when it is short, is
  filled up with real sentences from the texts beside it; the subjects repeat with a number once every
  text has had its document. Source types, tags (the package, "reference", "license") and update times
  (spread over 2024-2025) are assigned deterministically.
- index_docs_per_s: the documents saved one by one through ``DocumentStore.upsert``, the call every
  crawled page goes through (one write transaction each, the full-text index kept by its triggers).
- The queries: ``--queries`` fixed queries drawn with a seeded RNG from the corpus's own vocabulary
  (words ranked by document frequency, common function words left out) and its own adjacent word pairs:
  single words, two words, phrases, prefixes, OR, exclusions, and words with source:, tag:, after: and
  before: filters.
- search_api_ms_p50/p95: ``GET /api/search?q=...&limit=20`` against ``quaero serve`` (a subprocess on
  127.0.0.1, default worker processes), one keep-alive connection, timed from request to the last byte
  of the response, after one warm-up pass over every query.
- raw_fts5_ms_p50/p95: the same queries' MATCH expressions (as the API compiles them) run straight through
  Python's sqlite3 on the same file: bm25 with the same weights, the same snippet, ORDER BY rank LIMIT 20,
  rows fetched; after the same warm-up. It has no filters, no total count, no HTTP and no JSON.
- api_overhead_ratio = search_api_ms_p50 / raw_fts5_ms_p50.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import http.client
import itertools
import json
import math
import os
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import print_figures

from quaero.stores.db import SQLITE_PRAGMAS, Database
from quaero.stores.documents import DocumentInput, DocumentStore
from quaero.stores.models import bind_models
from quaero.stores.search import (
    BODY_WEIGHT,
    SNIPPET_TOKENS,
    TITLE_WEIGHT,
    fts5_match,
    parse_query,
)

SEED = 20250101
START, END = 1704067200.0, 1767225600.0  # 2024-01-01 .. 2026-01-01 UTC
STOPWORDS = frozenset([
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "with", "on", "be", "by", "this", "are", "or",
    "from", "at", "an", "which", "can", "not", "but", "have", "all", "when", "more", "one", "if", "will", "each",
    "their", "there", "so", "its", "use", "into", "only", "also", "these", "than", "then", "should", "other", "may",
    "any", "how", "most", "such", "between", "after", "before", "because", "while", "where", "both", "through", "over",
    "under", "same", "was", "were", "has", "been", "you", "your", "they", "them", "what", "who", "would", "could",
    "does", "did", "used", "using", "none", "true", "false", "return", "returns", "self", "see", "given"
])
RAW_SQL = (f"SELECT rowid, rank, snippet(documents_fts, 1, '\ue000', '\ue001', '…', {SNIPPET_TOKENS}) "
           f"FROM documents_fts WHERE documents_fts MATCH ? AND rank MATCH 'bm25({TITLE_WEIGHT}, {BODY_WEIGHT})' "
           "ORDER BY rank LIMIT 20")


# ------------------------------------------------------------------------------------------------ the corpus


@dataclass(frozen=True)
class Text:
    """One real text: its name, where it comes from and its paragraphs."""

    title: str
    source_type: str
    ref: str
    tag: str
    paragraphs: tuple[str, ...]


def _paragraphs(text: str) -> tuple[str, ...]:
    return tuple(" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 4)


def _docstrings(root: Path, url: str) -> Iterator[Text]:
    """Docstrings of modules, classes and functions under ``root``, read with ast (nothing imported)."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if any(p in ("test", "tests", "idle_test", "site-packages", "__pycache__") for p in parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        module = ".".join(p for p in parts if p != "__init__")
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            text = ast.get_docstring(node)
            if not text or len(text) < 120:
                continue
            name = module if isinstance(node, ast.Module) else f"{module}.{node.name}"
            package = parts[0].strip("_") or "python"
            yield Text(name, "web", url.format(package=package, module=module, name=name), package,
                       _paragraphs(text))


def _files() -> Iterator[Text]:
    """The language reference topics, the licences and the packages' copyright files."""
    from pydoc_data.topics import topics

    for name, text in sorted(topics.items()):
        yield Text(f"Python reference: {name}", "web", f"https://docs.python.org/3/reference/#{name}",
                   "reference", _paragraphs(text))
    for path in sorted(Path("/usr/share/common-licenses").glob("*")):
        if path.is_file():
            paragraphs = _paragraphs(path.read_text(encoding="utf-8", errors="replace"))
            for part in range(0, len(paragraphs), 6):
                yield Text(f"{path.name}, part {part // 6 + 1}", "file", f"{path}#{part // 6 + 1}", "license",
                           paragraphs[part:part + 6])
    for path in sorted(Path("/usr/share/doc").glob("*/copyright")):
        text = path.read_text(encoding="utf-8", errors="replace")
        yield Text(f"{path.parent.name} copyright", "file", str(path), "copyright", _paragraphs(text))
    for path in sorted(Path("/usr/share/doc").glob("*/changelog.Debian.gz"))[:400]:
        text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        yield Text(f"{path.parent.name} changelog", "api", str(path), "changelog", _paragraphs(text))


def real_texts() -> list[Text]:
    """Every text with something to say, in a fixed order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    packages = Path(sysconfig.get_paths()["purelib"])
    texts = [*_docstrings(stdlib, "https://docs.python.org/3/library/{module}.html#{name}"),
             *_docstrings(packages, "https://pypi.org/project/{package}/#{name}"), *_files()]
    unique = {(t.source_type, t.ref): t for t in reversed(texts)}  # the first of each reference
    return [t for t in texts if unique[t.source_type, t.ref] is t and sum(map(len, t.paragraphs)) >= 200]


def _sentences(text: Text) -> list[str]:
    return [s for p in text.paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if len(s.split()) >= 4]


def build_documents(texts: list[Text], count: int) -> Iterator[tuple[DocumentInput, float]]:
    """``count`` documents of 1-3 KB of markdown, each about one text, with its update time."""
    sentences = [_sentences(t) for t in texts]
    for i in range(count):
        rng = random.Random(SEED + i)
        index, cycle = i % len(texts), i // len(texts)
        text = texts[index]
        title = text.title if cycle == 0 else f"{text.title} ({cycle + 1})"
        target = rng.randint(1000, 3000)
        body = [f"# {title}", *text.paragraphs]
        size = sum(map(len, body))
        while size < target:  # fill with real sentences from the texts beside this one
            neighbour = sentences[(index + rng.randint(1, 8)) % len(texts)] or sentences[index]
            paragraph = " ".join(rng.choice(neighbour) for _ in range(rng.randint(2, 5)))
            body.append(paragraph)
            size += len(paragraph)
        markdown = "\n\n".join(body)[:target]
        source_type = text.source_type if rng.random() < 0.8 else rng.choice(("web", "file", "api"))
        tags = [text.tag] + (["docs"] if rng.random() < 0.3 else [])
        ref = text.ref if cycle == 0 else f"{text.ref}?v={cycle + 1}"
        yield (DocumentInput(source_type, ref, title, markdown, tags=tags),
               START + (END - START) * rng.random())


# ------------------------------------------------------------------------------------------------ the queries


def build_queries(database_path: Path, count: int) -> list[str]:
    """``count`` queries of every kind, from the corpus's own words and word pairs."""
    connection = sqlite3.connect(database_path)
    rows = connection.execute("SELECT markdown FROM documents WHERE id % 20 = 0 ORDER BY id").fetchall()
    tags = [t for (t,) in connection.execute(
        "SELECT j.value FROM documents, json_each(documents.tags) AS j GROUP BY j.value "
        "ORDER BY COUNT(*) DESC, j.value LIMIT 12")]
    connection.close()
    frequency: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for (markdown,) in rows:
        words = re.findall(r"[a-z]+", markdown.lower())
        frequency.update({w for w in words if len(w) >= 3 and w not in STOPWORDS})
        pairs.update({(a, b) for a, b in itertools.pairwise(words)
                      if len(a) >= 3 and len(b) >= 3 and a not in STOPWORDS and b not in STOPWORDS})
    def ranked(counter: Counter) -> list:  # ties by name: the same queries whatever the hash seed
        return [key for key, _ in sorted(counter.items(), key=lambda item: (-item[1], item[0]))]

    vocabulary = ranked(frequency)[30:6000]  # the 30 most common say nothing
    phrases = [f"{a} {b}" for a, b in ranked(pairs)[:600]]
    rng = random.Random(SEED)

    def word() -> str:  # frequent words more often, as people type them, but no one word everywhere
        return vocabulary[int(math.exp(rng.uniform(math.log(10), math.log(len(vocabulary) + 10)))) - 10]

    def prefix() -> str:
        long_word = word()
        while len(long_word) < 6:
            long_word = word()
        return long_word[:rng.randint(4, 5)] + "*"

    kinds = [
        lambda: word(),
        lambda: f"{word()} {word()}",
        lambda: f'"{rng.choice(phrases)}"',
        prefix,
        lambda: f"{word()} OR {word()}",
        lambda: f"{word()} -{word()}",
        lambda: f"{word()} source:{rng.choice(('web', 'file', 'api'))}",
        lambda: f"{word()} tag:{rng.choice(tags)}",
        lambda: f"{word()} after:{rng.choice(('2024-06-01', '2025-01-01', '2025-09-01'))}",
        lambda: f'"{rng.choice(phrases)}" before:2025-01-01',
    ]
    return [kinds[i % len(kinds)]() for i in range(count)]


# ------------------------------------------------------------------------------------------------ measuring


def index(database_url: str, documents: list[tuple[DocumentInput, float]]) -> float:
    """Save every document through DocumentStore.upsert; returns documents per second."""
    database = Database(database_url)
    store = DocumentStore(database, bind_models(database.db))
    started = time.perf_counter()
    ids = [store.upsert(document, job_id="bench").id for document, _ in documents]
    elapsed = time.perf_counter() - started
    with database.write():  # spread the update times, for the date filters (not timed)
        database.db.connection().executemany("UPDATE documents SET updated_at = ? WHERE id = ?",
                                             [(stamp, doc_id) for doc_id, (_, stamp) in zip(ids, documents)])
    database.close()
    return len(documents) / elapsed


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def time_raw(database_path: Path, queries: list[str]) -> list[float]:
    """Milliseconds per query for the bare MATCH (warm-up pass first), on a connection set up as Quaero's."""
    connection = sqlite3.connect(database_path)
    for name, value in SQLITE_PRAGMAS.items():
        connection.execute(f"PRAGMA {name} = {value}")
    matches = [fts5_match(parse_query(q)) for q in queries]
    timings = []
    for measure in (False, True):
        for match in matches:
            started = time.perf_counter()
            connection.execute(RAW_SQL, (match,)).fetchall()
            if measure:
                timings.append((time.perf_counter() - started) * 1000)
    connection.close()
    return timings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(data_dir: Path, port: int) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    environ["QUAERO_LOG_LEVEL"] = "WARNING"
    empty = data_dir / "no-definitions"
    empty.mkdir(exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "quaero", "serve", "--data-dir", str(data_dir),
                               "--host", "127.0.0.1", "--port", str(port), "--definitions", str(empty)],
                              cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                connection.close()
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("quaero serve did not answer within 60 s")


def time_api(data_dir: Path, queries: list[str]) -> tuple[list[float], int]:
    """Milliseconds per ``GET /api/search`` over one keep-alive connection (warm-up pass first), and how
    many queries found something."""
    port = _free_port()
    server = _serve(data_dir, port)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        paths = [f"/api/search?{urlencode({'q': q, 'limit': 20})}" for q in queries]
        timings, found = [], 0
        for measure in (False, True):
            for path in paths:
                started = time.perf_counter()
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
                if measure:
                    timings.append(elapsed)
                    found += json.loads(body)["total"] > 0
        connection.close()
    finally:
        server.terminate()
        server.wait(30)
    return timings, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)

    texts = real_texts()
    documents = list(build_documents(texts, args.docs))
    with tempfile.TemporaryDirectory(prefix="quaero-bench-search-") as tmp:
        data_dir = Path(tmp)
        database_path = data_dir / "quaero.stores.db"
        rate = index(f"sqlite:///{database_path}", documents)
        queries = build_queries(database_path, args.queries)
        raw = time_raw(database_path, queries)
        api, found = time_api(data_dir, queries)
        figures: dict[str, Any] = {
            "docs": args.docs,
            "real_texts": len(texts),
            "corpus_mb": round(sum(len(d.markdown.encode()) for d, _ in documents) / 1e6, 1),
            "index_docs_per_s": round(rate),
            "queries": len(queries),
            "queries_with_results": found,
            "search_api_ms_p50": round(statistics.median(api), 2),
            "search_api_ms_p95": round(_percentile(api, 0.95), 2),
            "raw_fts5_ms_p50": round(statistics.median(raw), 2),
            "raw_fts5_ms_p95": round(_percentile(raw, 0.95), 2),
            "api_overhead_ratio": round(statistics.median(api) / statistics.median(raw), 2),
            "database_mb": round(sum(f.stat().st_size for f in data_dir.glob("quaero.db*")) / 1e6, 1),
        }
    print_figures(figures, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
