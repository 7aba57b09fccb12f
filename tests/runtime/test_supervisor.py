"""The worker supervisor of `quaero serve`: workers forked from the server at start, spawned when restarted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a process of its own: forking needs a process that runs no other thread (pytest's may).
SCRIPT = """
    import json, os, signal, sys, time
    from quaero.runtime.supervisor import WorkerSupervisor
    from quaero.runtime.worker_process import preload, serve_worker
    from quaero.settings import load_settings

    settings = load_settings(environ={}, overrides={"data_dir": sys.argv[1], "worker_threads": 1,
                                                    "definitions_dir": sys.argv[1] + "/none"})
    supervisor = WorkerSupervisor(settings, 2)
    supervisor.start(fork=lambda index: serve_worker(settings, index), preload=lambda: preload(settings))
    forked = [type(p).__name__ for p in supervisor.processes]
    first = supervisor.pids()
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while (len(supervisor.pids()) < 2 or first[0] in supervisor.pids()) and time.monotonic() < deadline:
        time.sleep(0.05)
    again = [type(p).__name__ for p in supervisor.processes]
    pids = supervisor.pids()
    supervisor.stop()
    print(json.dumps({"forked": forked, "again": again, "first": first, "pids": pids,
                      "after_stop": supervisor.pids()}))
"""


def test_workers_are_forked_at_start_and_a_dead_one_is_spawned_again(tmp_path):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["forked"] == ["Forked", "Forked"]
    # The one killed came back as a new interpreter (the supervisor runs threads by then).
    assert result["again"] == ["Popen", "Forked"] and result["first"][0] not in result["pids"]
    assert len(result["pids"]) == 2 and result["after_stop"] == []
