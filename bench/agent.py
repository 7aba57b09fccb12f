"""Agent benchmark: the local provider's keywords and summaries, documents per second on 2 cores.

    python bench/agent.py [--json] [--docs 1000] [--batch 25] [--quality-docs 100]

- The corpus: ``bench/data/pydoc_topics.json.gz``, the 79 language-reference topics of Python's
  documentation as markdown (PSF licence, see bench/data/NOTICE), committed so that every machine builds
  the same documents whatever its Python. ``--docs`` documents are built from it with a seeded
  ``random.Random``: a size drawn from a log-normal distribution (median 7 KB, clipped to 2-50 KB: most
  documents small, a long tail of large ones), then a topic's blocks from one of its headings onwards,
  running on into the following topics until the size is reached (code fences kept whole).
- load_s: a fresh interpreter importing the provider and loading its models (``LocalModels().load()``).
- Single process, the documents in order: yake_rust_alone_docs_per_s and yake_alone_docs_per_s are the
  two YAKE implementations alone (``yake_rust.Yake``, the default backend, and ``yake.KeywordExtractor``,
  the pure-Python reference) with the provider's settings, on the text the provider gives them
  (:func:`keyword_text`, converted beforehand); keywords_docs_per_s is the provider's ``batch_keywords``
  (markdown conversion, YAKE, merging, WordLlama re-ranking), ``--batch`` documents a call;
  summary_docs_per_s its ``batch_summaries`` after it (the conversion is shared, as in a job);
  local_docs_per_s_single both.
  local_cpu_ms_per_doc: the CPU time of that (``time.process_time``), and local_docs_per_s_2_idle_cores
  = 2 s / that: what two cores would do with nothing else running (the wall-clock figures share the
  cores with whatever else the machine runs: load_average_at_start says how busy it was).
- local_docs_per_s: the same work in 2 worker processes (spawned, the models loaded before the clock
  starts, as the product's workers have them), ``--batch`` documents a task: documents / wall time.
  worker_peak_rss_mb: the largest VmHWM of a worker at the end.
- Keyword caps: how many characters of plain text YAKE reads (``keyword_chars``) sets the speed. For each
  cap, keywords_docs_per_s over the first ``--quality-docs`` documents (conversion included), and
  overlap_at_10: the share of the keywords (lowercased) also found when YAKE reads the whole document
  (up to 50,000 characters); yake_py_cap_*: the same with the pure-Python YAKE at the default cap.
- Remote (``--remote-docs``, see ``bench/agent_remote.py``): the real ``agent`` action (summaries over
  OpenAI chat completions) against the fake LLM service answering in 50 ms, limited to ``--rpm`` 600
  requests a minute: remote_docs_per_s, max_observed_rpm (the most requests in any 60 s window),
  limit_exceeded and rate_limit_utilisation (observed / allowed; target at least 0.8).
- Ratios are to the target (50 documents/s on 2 cores, 300 MB a worker): no peer runs in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import multiprocessing
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import print_figures

CORPUS = ROOT / "bench" / "data" / "pydoc_topics.json.gz"
SEED = 20250301
TARGET_DOCS_PER_S = 50.0
TARGET_RSS_MB = 300.0
MIN_SIZE, MEDIAN_SIZE, MAX_SIZE = 2_000, 7_000, 50_000
CAPS = (1_500, 3_000, 6_000, 10_000, 20_000)
REFERENCE_CAP = 50_000


# ------------------------------------------------------------------------------------------------ corpus


def _blocks(markdown: str) -> list[str]:
    """Blank-line separated blocks, a code fence with blank lines inside kept as one."""
    blocks: list[str] = []
    current: list[str] = []
    fenced = False
    for line in markdown.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def build_documents(count: int, seed: int = SEED) -> list[str]:
    """``count`` markdown documents of 2-50 KB from the committed corpus, the same on every machine."""
    texts = json.loads(gzip.decompress(CORPUS.read_bytes()))["texts"]
    topics = [_blocks(t["markdown"]) for t in texts]
    flat = [(t, b) for t, blocks in enumerate(topics) for b in range(len(blocks))]
    headings = [i for i, (t, b) in enumerate(flat) if topics[t][b].startswith("#")]
    documents = []
    for i in range(count):
        rng = random.Random(seed + i)
        size = int(min(MAX_SIZE, max(MIN_SIZE, math.exp(rng.gauss(math.log(MEDIAN_SIZE), 0.8)))))
        position = rng.choice(headings)
        parts: list[str] = []
        total = 0
        while total < size:
            t, b = flat[position % len(flat)]
            block = topics[t][b]
            if b == 0 and parts:  # a new topic starts a new section
                block = "#" + block
            parts.append(block)
            total += len(block) + 2
            position += 1
        documents.append("\n\n".join(parts))
    return documents


# ------------------------------------------------------------------------------------------------ workers

_MODELS: Any = None


def _init_worker() -> None:
    global _MODELS
    from quaero_plugins.agent.local import LocalModels

    _MODELS = LocalModels()
    _MODELS.load()


def _enrich(batch: list[str]) -> tuple[int, int]:
    keywords = _MODELS.batch_keywords(batch)
    summaries = _MODELS.batch_summaries(batch)
    assert len(keywords) == len(summaries) == len(batch)
    return len(batch), _peak_rss_kb()


def _peak_rss_kb(_: object = None) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) if match else 0


def _load_seconds() -> float:
    code = ("import time; t = time.perf_counter(); from quaero_plugins.agent.local import LocalModels; "
            "LocalModels().load(); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip())


def _timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def measure(docs: int, batch: int, quality_docs: int) -> dict[str, Any]:
    """Every figure of the module docstring."""
    import yake
    import yake_rust

    from quaero_plugins.agent import local, local_text

    documents = build_documents(docs)
    sizes = sorted(len(d.encode("utf-8")) for d in documents)
    figures: dict[str, Any] = {
        "docs": docs, "doc_kb_min": round(sizes[0] / 1000, 1), "doc_kb_median": round(sizes[len(sizes) // 2] / 1000, 1),
        "doc_kb_mean": round(sum(sizes) / len(sizes) / 1000, 1), "doc_kb_max": round(sizes[-1] / 1000, 1),
        "keyword_backend": local.LocalModels().keyword_backend, "keyword_chars": local.KEYWORD_CHARS,
        "load_s": round(_load_seconds(), 2),
    }
    models = local.LocalModels()
    models.load()
    models.batch_keywords(documents[:5])
    models.batch_summaries(documents[:5])
    digests = [local.keyword_text(d) for d in documents]
    top = 10 * local.CANDIDATES_PER_KEYWORD

    def yake_alone() -> None:
        for digest in digests:
            yake.KeywordExtractor(lan="en", n=local.YAKE_NGRAM, top=top, dedup_lim=1.0).extract_keywords(digest)

    def yake_rust_alone() -> None:
        for digest in digests:
            yake_rust.Yake(language="en", ngrams=local.YAKE_NGRAM, remove_duplicates=False).get_n_best(digest, n=top)

    local_text._CONVERTED.clear()  # the pipeline below pays for its markdown conversion
    figures["load_average_at_start"] = round(os.getloadavg()[0], 2)
    _, yake_s = _timed(yake_alone)
    _, yake_rust_s = _timed(yake_rust_alone)
    cpu = time.process_time()
    _, keyword_s = _timed(lambda: [models.batch_keywords(b) for b in _batches(documents, batch)])
    _, summary_s = _timed(lambda: [models.batch_summaries(b) for b in _batches(documents, batch)])
    cpu_ms = (time.process_time() - cpu) * 1000 / docs
    figures |= {"yake_alone_docs_per_s": round(docs / yake_s, 1),
                "yake_rust_alone_docs_per_s": round(docs / yake_rust_s, 1),
                "keywords_docs_per_s": round(docs / keyword_s, 1), "summary_docs_per_s": round(docs / summary_s, 1),
                "local_docs_per_s_single": round(docs / (keyword_s + summary_s), 1),
                "share_of_time_in_yake_rust": round(yake_rust_s / (keyword_s + summary_s), 2),
                "local_cpu_ms_per_doc": round(cpu_ms, 1),
                "local_docs_per_s_2_idle_cores": round(2000 / cpu_ms, 1)}

    context = multiprocessing.get_context("spawn")
    with context.Pool(2, initializer=_init_worker) as pool:
        pool.map(_peak_rss_kb, range(4))  # both workers up, models loaded
        start = time.perf_counter()
        results = pool.map(_enrich, _batches(documents, batch), chunksize=1)
        wall = time.perf_counter() - start
    assert sum(n for n, _ in results) == docs
    figures["local_docs_per_s"] = round(docs / wall, 1)
    figures["local_docs_per_s_vs_target"] = round(docs / wall / TARGET_DOCS_PER_S, 2)
    figures["worker_peak_rss_mb"] = round(max(rss for _, rss in results) / 1024, 1)
    figures["worker_peak_rss_vs_target"] = round(figures["worker_peak_rss_mb"] / TARGET_RSS_MB, 2)

    sample = documents[:quality_docs]
    reference = local.LocalModels(keyword_chars=REFERENCE_CAP).batch_keywords(sample)
    runs = [("yake-rust", cap) for cap in CAPS] + [("yake", local.KEYWORD_CHARS)]
    for backend, cap in runs:
        capped = local.LocalModels(keyword_chars=cap, keyword_backend=backend)
        capped.load()
        local_text._CONVERTED.clear()
        found, seconds = _timed(capped.batch_keywords, sample)
        overlap = [len({k.lower() for k in a} & {k.lower() for k in b}) / max(len(b), 1)
                   for a, b in zip(found, reference)]
        name = f"cap_{cap}" if backend == "yake-rust" else f"yake_py_cap_{cap}"
        figures[f"{name}_keywords_docs_per_s"] = round(len(sample) / seconds, 1)
        figures[f"{name}_overlap_at_10"] = round(sum(overlap) / len(overlap), 2)
    figures["cpu_count"] = os.cpu_count()
    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--docs", type=int, default=1000, help="documents to enrich (default 1000)")
    parser.add_argument("--batch", type=int, default=25, help="documents a worker task (default 25)")
    parser.add_argument("--quality-docs", type=int, default=100, help="documents for the keyword caps' figures")
    parser.add_argument("--remote-docs", type=int, default=700,
                        help="documents for the remote figures (default 700; 0 skips them)")
    parser.add_argument("--rpm", type=int, default=600, help="the remote rate limit (default 600 a minute)")
    args = parser.parse_args(argv)
    figures = measure(args.docs, args.batch, args.quality_docs)
    if args.remote_docs:
        from agent_remote import measure_remote

        figures.update(measure_remote(args.remote_docs, args.rpm))
    print_figures(figures, as_json=args.json)
    return 1 if figures.get("limit_exceeded") else 0


if __name__ == "__main__":
    sys.exit(main())
