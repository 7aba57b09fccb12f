"""Search benchmark: indexing rate, /api/search latency beside the same MATCH run straight on SQLite, and
the brute-force vector scan search by meaning needs, at the same number of documents.

    python bench/search.py [--json] [--documents 100000] [--queries 200] [--vectors on|off|only]

- The corpus: ``--documents`` documents built from ``bench/data/stdlib_docs.json.gz``, the standard
  library's documentation (the language reference topics and the docstrings of a fixed list of modules,
  PSF licence, committed: the same documents on every machine whatever its Python or its packages;
  corpus_sha256 of the sorted (source_ref, markdown) pairs says so). Each document takes one of the
  texts with at least 100 characters of prose as its subject (its real name is the title:
  ``asyncio.tasks.gather``, "Python reference: The for statement"), and is filled up with real sentences
  from the texts beside it to a size drawn from a log-normal distribution (median 2 KB, 1st-99th
  percentile 250 B-16 KB, clipped to 200 B-40 KB). It ends with a "See also:" line of words from a long
  tail (200,000 made-up words at Zipf ranks, one per 200 characters), standing for the names, versions and
  identifiers real pages carry, so the vocabulary grows with the corpus as a real one does. The subjects
  repeat, titled with one of those words, once every text has had its document. Source types, tags (the
  module's package, "reference") and update times (spread over 2024-2025) are assigned with seeded RNGs.
- index_docs_per_s: the documents saved one by one through ``DocumentStore.upsert``, the call every
  crawled page goes through (one write transaction each, the full-text index kept by its triggers);
  index_wal_peak_mb: the largest the write-ahead log grew meanwhile.
- load_average_at_start/end: how busy the shared machine was (every figure shares its cores).
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
- embed_docs_per_s: every document chunked and embedded by the default offline model (``local``, 128
  dimensions), one thread, as the background embedder does it; vector_bytes_per_document what its
  vectors take in the database, and vector_bytes_per_2kb_document that scaled to a 2 KB document.
- hybrid_api_ms_p50/p95 (``--modes``): the same queries with ``mode=hybrid`` (BM25 and the vector scan,
  fused); search_api_* are ``mode=keyword``. server_rss_mb: the server process's resident memory after
  every query ran (the model and the in-memory vectors included).
- vector_* , numpy_*, vec0_*: ``bench/vector_scan.py`` at ``--documents`` (about 3 chunk vectors of 128
  dimensions a document): numpy float16 and float32 against sqlite-vec's ``vec0``, float32 and int8, per
  query and per document (see that file).
"""

from __future__ import annotations

import argparse
import hashlib
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
import tempfile
import threading
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
from stdlib_docs import committed
from vector_scan import measure as measure_vectors

from quaero.settings import load_settings
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
MEDIAN_SIZE, SIZE_SIGMA, MIN_SIZE, MAX_SIZE = 2000, 0.9, 200, 40_000  # characters; 1st-99th percentile 250 B-16 KB
RARE_WORDS = 200_000
SYLLABLES = ("ka", "lo", "mi", "ter", "vor", "san", "el", "qui", "dra", "po", "nu", "bel", "zi", "rak", "fen",
             "or", "tu", "ges", "ha", "lin", "mo", "cre", "da", "wy", "ix", "ul", "bri", "sto", "ne", "pha")
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


def _paragraphs(markdown: str) -> tuple[str, ...]:
    """The prose paragraphs of ``markdown``, each on one line (headings and code blocks left out)."""
    blocks = re.split(r"\n\s*\n", re.sub(r"(?ms)^```.*?^```", "", markdown))
    return tuple(" ".join(b.split()) for b in blocks if len(b.split()) >= 4 and not b.lstrip().startswith("#"))


def real_texts() -> list[Text]:
    """The committed standard-library documentation, each text with something to say, in a fixed order."""
    _, docs = committed()
    texts = []
    for doc in docs:
        kind, name = doc.source_ref.removeprefix("pydoc:").split("/", 1)
        if kind == "topic":
            text = Text(f"Python reference: {doc.title}", "web", f"https://docs.python.org/3/reference/#{name}",
                        "reference", _paragraphs(doc.markdown))
        else:
            package = name.split(".", 1)[0]
            text = Text(name, "web", f"https://docs.python.org/3/library/{package}.html#{name}", package,
                        _paragraphs(doc.markdown))
        if sum(map(len, text.paragraphs)) >= 100:
            texts.append(text)
    return texts


def rare_word(rank: int) -> str:
    """The ``rank``-th word of the long tail: syllables spelling ``rank`` (distinct for every rank)."""
    letters, rank = [], rank + len(SYLLABLES) ** 2  # at least three syllables
    while rank:
        rank, digit = divmod(rank, len(SYLLABLES))
        letters.append(SYLLABLES[digit])
    return "".join(letters)


def _rare_words(rng: random.Random, count: int) -> str:
    # Log-uniform ranks: Zipf's law with exponent 1, so a few recur often and most appear once or twice.
    return ", ".join(rare_word(int(math.exp(rng.uniform(0, math.log(RARE_WORDS))))) for _ in range(count))


def document_size(rng: random.Random) -> int:
    """A document's size in characters: log-normal, median 2 KB, clipped to 200 B - 40 KB."""
    return max(MIN_SIZE, min(MAX_SIZE, round(rng.lognormvariate(math.log(MEDIAN_SIZE), SIZE_SIGMA))))


def _sentences(text: Text) -> list[str]:
    return [s for p in text.paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if len(s.split()) >= 4]


def build_documents(texts: list[Text], count: int) -> Iterator[tuple[DocumentInput, float]]:
    """``count`` documents of markdown of every size, each about one text, with its update time."""
    sentences = [_sentences(t) for t in texts]
    for i in range(count):
        rng = random.Random(SEED + i)
        index, cycle = i % len(texts), i // len(texts)
        text = texts[index]
        title = text.title if cycle == 0 else f"{text.title} ({rare_word(i)})"
        target = document_size(rng)
        body = [f"# {title}", *text.paragraphs]
        size = sum(map(len, body))
        while size < target:  # fill with real sentences from the texts beside this one
            neighbour = sentences[(index + rng.randint(1, 8)) % len(texts)] or sentences[index]
            paragraph = " ".join(rng.choice(neighbour) for _ in range(rng.randint(2, 5)))
            body.append(paragraph)
            size += len(paragraph)
        # The names, versions and identifiers real pages carry: a long tail of words, about one in 30.
        body.append(f"See also: {_rare_words(rng, max(1, target // 200))}.")
        markdown = "\n\n".join(body)
        markdown = markdown[:target - len(body[-1]) - 2] + "\n\n" + body[-1] if len(markdown) > target else markdown
        source_type = text.source_type if rng.random() < 0.8 else rng.choice(("web", "file", "api"))
        tags = [text.tag] + (["docs"] if rng.random() < 0.3 else [])
        ref = text.ref if cycle == 0 else f"{text.ref}?v={cycle + 1}"
        yield (DocumentInput(source_type, ref, title, markdown, tags=tags),
               START + (END - START) * rng.random())


def corpus_hash(documents: list[tuple[DocumentInput, float]]) -> str:
    """sha256 of the sorted (source_ref, markdown) pairs: equal hashes, equal corpora."""
    pairs = sorted((d.source_ref, d.markdown) for d, _ in documents)
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode("utf-8")).hexdigest()


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


def index(database_path: Path, documents: list[tuple[DocumentInput, float]]) -> tuple[float, float]:
    """Save every document through DocumentStore.upsert; documents per second, and the largest the WAL
    grew meanwhile (MB, sampled every 0.2 s)."""
    database = Database(f"sqlite:///{database_path}")
    store = DocumentStore(database, bind_models(database.db))
    wal = database_path.with_name(database_path.name + "-wal")
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], wal.stat().st_size if wal.exists() else 0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    ids = [store.upsert(document, job_id="bench").id for document, _ in documents]
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    with database.write():  # spread the update times, for the date filters (not timed)
        database.db.connection().executemany("UPDATE documents SET updated_at = ? WHERE id = ?",
                                             [(stamp, doc_id) for doc_id, (_, stamp) in zip(ids, documents)])
    database.close()
    return len(documents) / elapsed, peak[0] / 1e6


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


def time_api(data_dir: Path, queries: list[str], modes: list[str]) -> tuple[dict[str, tuple[list[float], int]], int]:
    """For each mode, milliseconds per ``GET /api/search?mode=`` over one keep-alive connection (warm-up pass
    first) and how many queries found something; and the server process's resident memory after (KB)."""
    port = _free_port()
    server = _serve(data_dir, port)
    results: dict[str, tuple[list[float], int]] = {}
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for mode in modes:
            paths = [f"/api/search?{urlencode({'q': q, 'limit': 20, 'mode': mode})}" for q in queries]
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
                    page = json.loads(body)
                    if page["mode"] != mode:
                        raise RuntimeError(f"asked for {mode} search, got {page['mode']}: {page['notice']}")
                    if measure:
                        timings.append(elapsed)
                        found += page["total"] > 0
            results[mode] = (timings, found)
        connection.close()
        rss = _rss_kb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    return results, rss


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def embed(data_dir: Path) -> dict[str, Any]:
    """Embed every document with the default offline model, as the background embedder does, timed."""
    from quaero.runtime import Runtime

    settings = load_settings(environ={}, overrides={"data_dir": data_dir, "worker_processes": 0})
    runtime = Runtime(settings, role="control")  # no background parts: only this thread embeds
    try:
        embeddings = runtime.embeddings
        embeddings.embedder()  # the model's loading is not embedding
        started = time.perf_counter()
        done = 0
        while batch := embeddings.embed_queued(limit=10_000):
            done += batch
        seconds = time.perf_counter() - started
        report = embeddings.check()
    finally:
        runtime.stop()
    return {"embed_docs_per_s": round(done / seconds), "embed_model": report.model, "embed_chunks": report.chunks,
            "vector_bytes_per_document": report.bytes_per_document}


def measure_search(documents: list[tuple[DocumentInput, float]], query_count: int,
                   modes: list[str]) -> dict[str, Any]:
    """Index ``documents`` into a fresh data directory (and embed them, for the modes by meaning), then time
    the queries through the API in each mode, and raw."""
    with tempfile.TemporaryDirectory(prefix="quaero-bench-search-") as tmp:
        data_dir = Path(tmp)
        database_path = data_dir / "quaero.stores.db"
        rate, wal_peak_mb = index(database_path, documents)
        figures: dict[str, Any] = {"index_docs_per_s": round(rate), "index_wal_peak_mb": round(wal_peak_mb)}
        if any(mode != "keyword" for mode in modes):
            figures |= embed(data_dir)
            mean_kb = statistics.mean(len(d.markdown.encode()) for d, _ in documents) / 1000
            figures["vector_bytes_per_2kb_document"] = round(figures["vector_bytes_per_document"] * 2 / mean_kb)
        queries = build_queries(database_path, query_count)
        raw = time_raw(database_path, queries)
        timed, rss = time_api(data_dir, queries, modes)
        figures |= {"queries": len(queries), "server_rss_mb": round(rss / 1024)}
        for mode, (api, found) in timed.items():
            prefix = "search_api" if mode == "keyword" else f"{mode}_api"
            figures |= {f"{prefix}_ms_p50": round(statistics.median(api), 2),
                        f"{prefix}_ms_p95": round(_percentile(api, 0.95), 2),
                        f"{prefix}_queries_with_results": found}
        if "keyword" in timed:
            figures["queries_with_results"] = timed["keyword"][1]
            figures["api_overhead_ratio"] = round(statistics.median(timed["keyword"][0]) / statistics.median(raw), 2)
        figures |= {
            "raw_fts5_ms_p50": round(statistics.median(raw), 2),
            "raw_fts5_ms_p95": round(_percentile(raw, 0.95), 2),
            "database_mb": round(sum(f.stat().st_size for f in data_dir.glob("quaero.stores.db*")) / 1e6, 1),
        }
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--documents", "--docs", dest="docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--vectors", choices=("on", "off", "only"), default="on",
                        help="the vector scan too (on), not (off), or alone (only)")
    parser.add_argument("--vector-queries", type=int, default=100)
    parser.add_argument("--modes", default="keyword,hybrid",
                        help="search modes to time through the API (keyword, semantic, hybrid; comma-separated)")
    args = parser.parse_args(argv)
    modes = [mode for mode in args.modes.split(",") if mode]
    if set(modes) - {"keyword", "semantic", "hybrid"}:
        parser.error(f"--modes: unknown {', '.join(sorted(set(modes) - {'keyword', 'semantic', 'hybrid'}))}")

    figures: dict[str, Any] = {"docs": args.docs, "load_average_at_start": round(os.getloadavg()[0], 2)}
    if args.vectors != "only":
        texts = real_texts()
        documents = list(build_documents(texts, args.docs))
        sizes = sorted(len(d.markdown.encode()) for d, _ in documents)
        figures |= {
            "real_texts": len(texts),
            "corpus_sha256": corpus_hash(documents),
            "corpus_mb": round(sum(sizes) / 1e6, 1),
            "document_kb_p1_p50_p99": "/".join(str(round(_percentile(sizes, f) / 1000, 1)) for f in (0.01, 0.5, 0.99)),
        }
        figures |= measure_search(documents, args.queries, modes)
        del documents
    if args.vectors != "off":
        figures |= measure_vectors(args.docs, args.vector_queries)
    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print_figures(figures, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
