"""Relevance benchmark: how well search finds the right page, in keyword, semantic and hybrid mode.

    python bench/relevance.py [--json] [--modes keyword,semantic,hybrid] [--committed] [--per-query]

- The corpus (``bench/stdlib_docs.py``): the running interpreter's own documentation, the language
  reference topics of ``pydoc_data.topics`` and the docstrings of a fixed list of standard-library modules
  read with ``ast`` (about 2,500 documents on 3.11): the same documents wherever the same Python version
  runs, whatever else is installed. corpus_sha256 (of the sorted (source_ref, markdown) pairs) and
  python say which corpus a figure was measured on. ``--committed`` reads the copy written from 3.11.7
  instead (``bench/data/stdlib_docs.json.gz``): the same corpus under any Python.
- The queries (``bench/data/relevance_queries.yaml``, written by hand): words in the page's own
  vocabulary, paraphrases in a user's words, and one- or two-word queries, each with its graded answers
  (2: the answer, 1: related). Every answer must be a document of the corpus, or the benchmark stops.
- The documents are saved through ``DocumentStore.upsert`` into a fresh data directory; each query goes
  through ``DocumentSearch.search(q, limit=10, mode=...)`` as the user typed it (the query language's
  real path: punctuation skipped, every word required in keyword mode, so a long paraphrase can find
  nothing there). A query the language rejects counts as finding nothing.
- Semantic and hybrid modes need every document embedded first: :func:`prepare_embeddings` (the
  ``QUAERO_*`` environment picks the embedder). Until the core provides it, those modes are skipped and
  say why.
- Per mode: hit_at_3 (an answer in the first 3), mrr_at_10, ndcg_at_10 (graded, log2 discount; see
  ``bench/ranking.py``), the same per kind of query, and empty (queries that found nothing); the ratios
  hybrid/keyword and semantic/keyword of each. ``--per-query`` adds, for each query and mode, the rank
  of its first answer and its first three results.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ranking import hit_at, ndcg_at, reciprocal_rank_at
from report import print_figures
from stdlib_docs import Doc, committed, corpus, corpus_hash

from quaero.errors import QueryError
from quaero.runtime import Runtime
from quaero.settings import Settings, load_settings
from quaero.stores.db import Database
from quaero.stores.documents import DocumentInput, DocumentStore
from quaero.stores.models import bind_models

QUERIES = ROOT / "bench" / "data" / "relevance_queries.yaml"
MODES = ("keyword", "semantic", "hybrid")
KINDS = ("words", "paraphrase", "short")
SOURCE_TYPE = "file"
LIMIT = 10


@dataclass(frozen=True)
class Query:
    """One hand-written query and its graded answers (source_ref -> 2 or 1)."""

    text: str
    kind: str
    grades: dict[str, int]


def load_queries(path: Path, refs: set[str]) -> list[Query]:
    """The queries of ``path``; exits naming every answer that is not in the corpus, or any malformed entry."""
    queries, problems = [], []
    for number, entry in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")), start=1):
        grades = {str(ref): int(grade) for ref, grade in (entry.get("relevant") or {}).items()}
        if entry.get("kind") not in KINDS:
            problems.append(f"query {number} ({entry.get('q')!r}): kind must be one of {', '.join(KINDS)}")
        if 2 not in grades.values():
            problems.append(f"query {number} ({entry.get('q')!r}): no answer of grade 2")
        problems += [f"query {number} ({entry['q']!r}): {ref} is not in the corpus"
                     for ref in grades if ref not in refs]
        queries.append(Query(str(entry["q"]), entry.get("kind", ""), grades))
    if problems:
        raise SystemExit(f"{path}:\n  " + "\n  ".join(problems))
    return queries


def load_corpus(settings: Settings, docs: Sequence[Doc]) -> tuple[Database, float]:
    """Save every document through the real store; the database and the documents saved per second."""
    database = Database(settings.resolved_database_url)
    store = DocumentStore(database, bind_models(database.db))
    started = time.perf_counter()
    for doc in docs:
        store.upsert(DocumentInput(SOURCE_TYPE, doc.source_ref, doc.title, doc.markdown, tags=["python"]),
                     job_id="bench")
    return database, len(docs) / (time.perf_counter() - started)


def prepare_embeddings(runtime: Runtime) -> str | None:
    """Embed every document now, in this thread, so that semantic search can run; ``None`` when done,
    else why the semantic modes cannot run (the embedder the settings name is not installed, say)."""
    embeddings = runtime.embeddings
    why = embeddings.available
    if why is not None:
        return why
    embeddings.queue_stale()
    while embeddings.embed_queued(limit=100_000):
        pass
    return None


def make_search(runtime: Runtime) -> Callable[[str, str], list[str]]:
    """The search each mode runs: the source_refs of the first results of ``search(q, limit, mode)``."""
    search = runtime.search

    def run(text: str, mode: str) -> list[str]:
        try:
            page = search.search(text, limit=LIMIT, mode=mode)
        except QueryError:
            return []
        if page.mode != mode:
            raise RuntimeError(f"asked for {mode} search, got {page.mode}: {page.notice}")
        return [hit.source_ref for hit in page.items]

    return run


def score(queries: Sequence[Query], rankings: Sequence[list[str]]) -> dict[str, float]:
    """The mean of each measure over ``queries``, and how many found nothing."""
    pairs = list(zip(queries, rankings))
    return {
        "hit_at_3": round(statistics.fmean(hit_at(r, q.grades, 3) for q, r in pairs), 3),
        "mrr_at_10": round(statistics.fmean(reciprocal_rank_at(r, q.grades, LIMIT) for q, r in pairs), 3),
        "ndcg_at_10": round(statistics.fmean(ndcg_at(r, q.grades, LIMIT) for q, r in pairs), 3),
        "empty": sum(not r for _, r in pairs),
    }


def measure_mode(run: Callable[[str, str], list[str]], queries: Sequence[Query],
                 mode: str) -> tuple[dict[str, Any], list[list[str]]]:
    """Every figure of one mode (overall, per kind of query, its latency), and each query's results."""
    rankings, timings = [], []
    for query in queries:
        started = time.perf_counter()
        rankings.append(run(query.text, mode))
        timings.append((time.perf_counter() - started) * 1000)
    figures = score(queries, rankings)
    for kind in KINDS:
        chosen = [(q, r) for q, r in zip(queries, rankings) if q.kind == kind]
        kind_figures = score([q for q, _ in chosen], [r for _, r in chosen])
        figures |= {f"{kind}_{name}": value for name, value in kind_figures.items() if name != "empty"}
    figures["ms_p50"] = round(statistics.median(timings), 2)
    return figures, rankings


def print_per_query(queries: Sequence[Query], rankings: dict[str, list[list[str]]]) -> None:
    """Each query, and per mode the rank of its first answer ("-": none in the first 10) and its top 3."""
    for number, query in enumerate(queries):
        print(f"[{query.kind}] {query.text}")
        for mode, results in rankings.items():
            ranks = [i for i, ref in enumerate(results[number], start=1) if query.grades.get(ref, 0) >= 2]
            top = ", ".join(ref.removeprefix("pydoc:") for ref in results[number][:3])
            print(f"    {mode:<9} {ranks[0] if ranks else '-':>2}  {top}")
    print()


def print_table(results: dict[str, dict[str, Any]]) -> None:
    """One row per measure, one column per mode, and the ratio of each mode to keyword mode."""
    modes = list(results)
    ratios = [m for m in modes if m != "keyword" and "keyword" in results]
    print(f"{'':<24}" + "".join(f"{m:>10}" for m in modes) + "".join(f"{m + '/kw':>14}" for m in ratios))
    for name in results[modes[0]]:
        row = f"{name:<24}" + "".join(f"{results[m][name]:>10}" for m in modes)
        for mode in ratios:
            base = results["keyword"][name]
            row += f"{round(results[mode][name] / base, 2) if base else '-':>14}"
        print(row)
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, of " + ", ".join(MODES))
    parser.add_argument("--committed", action="store_true", help="the corpus committed in bench/data")
    parser.add_argument("--per-query", action="store_true", help="each query's results too")
    parser.add_argument("--dimensions", type=int, choices=(64, 128, 256),
                        help="the offline model's dimensions ([plugins.embed] dimensions; default: the setting's)")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")

    python, docs = committed() if args.committed else (platform.python_version(), corpus())
    queries = load_queries(QUERIES, {d.source_ref for d in docs})
    figures: dict[str, Any] = {"python": python, "documents": len(docs),
                               "corpus_sha256": corpus_hash(docs), "queries": len(queries)}
    figures |= {f"queries_{kind}": sum(q.kind == kind for q in queries) for kind in KINDS}
    results: dict[str, dict[str, Any]] = {}
    rankings: dict[str, list[list[str]]] = {}
    with tempfile.TemporaryDirectory(prefix="quaero-bench-relevance-") as tmp:
        # The environment may pick the embedder; the documents always go to this fresh SQLite file.
        database_url = f"sqlite:///{Path(tmp) / 'quaero.stores.db'}"
        settings = load_settings(environ=dict(os.environ), overrides={
            "data_dir": Path(tmp), "database_url": database_url, "worker_processes": 0,
            **({"plugins": {"embed": {"dimensions": args.dimensions}}} if args.dimensions else {})})
        database, rate = load_corpus(settings, docs)
        figures["index_docs_per_s"] = round(rate)
        database.close()
        # The services without background parts: nothing embeds behind the benchmark's back.
        runtime = Runtime(settings, role="control")
        try:
            run = make_search(runtime)
            if "keyword" in modes:
                results["keyword"], rankings["keyword"] = measure_mode(run, queries, "keyword")
            semantic = [m for m in modes if m != "keyword"]
            if semantic:
                started = time.perf_counter()
                why_not = prepare_embeddings(runtime)
                if why_not is None:
                    seconds = time.perf_counter() - started
                    report = runtime.embeddings.check()
                    figures |= {"embed_s": round(seconds, 1), "embed_docs_per_s": round(len(docs) / seconds),
                                "model": report.model, "chunks": report.chunks,
                                "vector_bytes_per_document": report.bytes_per_document}
                    for mode in semantic:
                        results[mode], rankings[mode] = measure_mode(run, queries, mode)
                else:
                    figures["skipped"] = f"{', '.join(semantic)}: {why_not}"
        finally:
            runtime.stop()
    for mode, mode_figures in results.items():
        figures |= {f"{mode}_{name}": value for name, value in mode_figures.items()}
    for mode in ("hybrid", "semantic"):
        if mode in results and "keyword" in results:
            for name in ("hit_at_3", "mrr_at_10", "ndcg_at_10", "paraphrase_ndcg_at_10"):
                base = results["keyword"][name]
                figures[f"{mode}_over_keyword_{name}"] = round(results[mode][name] / base, 2) if base else None
    if args.per_query and not args.json:
        print_per_query(queries, rankings)
    if not args.json and results:
        print_table(results)
    print_figures(figures, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
