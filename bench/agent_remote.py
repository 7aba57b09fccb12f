"""The agent's remote figures: the real ``agent`` action against the fake LLM service, limited to 600 a minute.

    python bench/agent_remote.py [--json] [--docs 700] [--rpm 600] [--latency 0.05]

A real runtime (SQLite data and queue in a temporary directory, the engine, 16 worker threads) runs an
``agent`` step (OpenAI chat completions, summaries) over ``--docs`` documents built from the same corpus as
``bench/agent.py``. The fake service (``tests/plugins/agent/fake_llm.py``) answers every request after
``--latency`` seconds and records when each arrived. Figures:

- remote_docs_per_s: documents summarised / wall time of the step;
- max_observed_rpm: the most requests that arrived in any 60-second window (every window that starts at a
  request), and the limit (``--rpm``); limit_exceeded says whether any window held more;
- rate_limit_utilisation: max_observed_rpm / the limit (the target is at least 0.8), measured over a run
  longer than a minute so that a full window exists (``--docs`` above ``--rpm``).
"""

from __future__ import annotations

import argparse
import bisect
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "plugins" / "agent"))

from report import print_figures

TARGET_UTILISATION = 0.8
WINDOW = 60.0
KEY_VARIABLE = "QUAERO_BENCH_LLM_KEY"


def max_in_window(times: list[float], window: float = WINDOW) -> int:
    """The most of ``times`` (sorted) in any span of ``window`` seconds."""
    best = 0
    for index, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + window) - index)
    return best


def measure_remote(docs: int = 700, rpm: int = 600, latency: float = 0.05) -> dict[str, Any]:
    """Run the agent step against the fake service and report the figures (see the module docstring)."""
    from agent import build_documents
    from fake_llm import FakeLLM

    import quaero_plugins.agent as agent
    from quaero.api import DocumentInput
    from quaero.testing import Testbed

    texts = build_documents(docs)
    with FakeLLM(latency=latency) as fake, tempfile.TemporaryDirectory() as directory:
        os.environ[KEY_VARIABLE] = fake.api_key
        # The fake service listens on 127.0.0.1, which the outbound policy refuses unless allowed.
        core = {"worker_threads": 16, "allow_private_networks": ["127.0.0.0/8"]}
        with Testbed(directory, plugins=[agent], core=core) as testbed:
            for i, text in enumerate(texts):
                testbed.runtime.documents.upsert(DocumentInput("web", f"https://bench.example/{i}",
                                                               title=f"Document {i}", markdown=text))
            definition = {"name": "bench", "steps": [{"name": "summaries", "action": "agent", "config": {
                "operation": "summarization", "provider": "openai", "base_url": fake.openai_url,
                "model": "bench-model", "api_key": "${" + KEY_VARIABLE + "}", "requests_per_minute": rpm,
                "max_input_tokens": 2000, "max_output_tokens": 200}}]}
            started = time.monotonic()
            run = testbed.run(definition, timeout=docs / (rpm / 60) * 3 + 120)
            elapsed = time.monotonic() - started
            stored = sum(1 for job in run.children() if job.result.get("stored"))
        times = sorted(request.time for request in fake.requests)
    observed = max_in_window(times)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "remote_docs": docs, "remote_status": run.status, "remote_stored": stored,
        "remote_requests": len(times), "remote_elapsed_s": round(elapsed, 2),
        "remote_docs_per_s": round(stored / elapsed, 2) if elapsed else None,
        "remote_latency_s": latency, "rate_limit_rpm": rpm, "requests_span_s": round(span, 1),
        "max_observed_rpm": observed, "limit_exceeded": observed > rpm,
        "rate_limit_utilisation": round(observed / rpm, 3) if span >= WINDOW else None,
        "rate_limit_utilisation_target": TARGET_UTILISATION,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--docs", type=int, default=700, help="documents to summarise (default 700)")
    parser.add_argument("--rpm", type=int, default=600, help="the requests-per-minute limit (default 600)")
    parser.add_argument("--latency", type=float, default=0.05, help="the fake's answer time (default 0.05 s)")
    args = parser.parse_args(argv)
    figures = measure_remote(args.docs, args.rpm, args.latency)
    print_figures(figures, as_json=args.json)
    return 0 if figures["remote_status"] == "completed" and not figures["limit_exceeded"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
