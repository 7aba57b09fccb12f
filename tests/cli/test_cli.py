"""The quaero command: run, jobs, validate, serve, worker."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import free_port, wait_for

FANOUT = "name: cli fan\nsteps:\n  - {name: fan, action: test_fanout, config: {count: 25}}\n"


def quaero(*args: str, cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    environ.update({"QUAERO_PLUGIN_MODULES": "quaero.testing.actions", **env})
    return subprocess.run([sys.executable, "-m", "quaero", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_run_json_reports_the_outcome(tmp_path, workers):
    (tmp_path / "fan.yaml").write_text(FANOUT)
    result = quaero("run", "fan.yaml", "--json", "--data-dir", "data", "--workers", workers, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == {"job_id", "status", "counts", "result_count", "elapsed_s"}
    assert summary["status"] == "completed"
    assert summary["counts"]["completed"] == summary["counts"]["total"] == 25
    jobs = quaero("jobs", "--json", "--type", "parent", "--data-dir", "data", cwd=tmp_path)
    assert [j["id"] for j in json.loads(jobs.stdout)["items"]] == [summary["job_id"]]


# A plugin that prints, at import in every process and in each job it runs: the CLI's JSON must survive it.
NOISY_PLUGIN = """
from quaero.api import Action, ChildSpec, JobWorker, StepManager, StepOptions, hookimpl

print("noisy plugin imported")


class Options(StepOptions):
    count: int = 4


class Manager(StepManager):
    manager_type = "noisy"

    def start_step(self, ctx):
        ctx.spawn_many([ChildSpec("noisy_item", f"n{i}", {"i": i}) for i in range(ctx.options.count)])


class Worker(JobWorker):
    worker_type = "noisy_item"

    def execute(self, ctx, job):
        print(f"noisy job {job.config['i']} printing")
        ctx.log("info", f"noisy job {job.config['i']} logging")
        if job.config["i"] == 0:
            raise RuntimeError("noisy job 0 fails on purpose")


@hookimpl
def register_actions(register):
    register(Action(name="noisy", manager=Manager(), workers=[Worker()], options=Options))
"""
NOISY = "name: noisy\nerror_tolerance: {max_child_failures: 1}\nsteps:\n  - {name: noise, action: noisy}\n"


@pytest.mark.parametrize("workers", [None, "0", "2"])
def test_run_json_prints_only_json_on_stdout_and_everything_else_on_stderr(tmp_path, workers):
    """Job logs (INFO from worker processes, ERROR from threads), prints of a plugin: all on stderr."""
    (tmp_path / "noisy_plugin.py").write_text(NOISY_PLUGIN)
    (tmp_path / "noisy.yaml").write_text(NOISY)
    env = {"QUAERO_PLUGIN_MODULES": "noisy_plugin", "PYTHONPATH": str(tmp_path)}
    flags = ("--workers", workers) if workers is not None else ()  # none: one worker process per core
    result = quaero("run", "noisy.yaml", "--json", "--data-dir", "data", *flags, cwd=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # fails on any line but the JSON
    assert summary["status"] == "completed" and summary["counts"]["failed"] == 1
    assert "noisy plugin imported" in result.stderr and "noisy job 1 printing" in result.stderr
    assert "noisy job 0 fails on purpose" in result.stderr  # a job log line, at ERROR: shown even with --json
    if workers != "0":  # worker processes log at their own level; in-process workers are quieted to ERROR
        assert "quaero.job: [job_" in result.stderr and "noisy job 1 logging" in result.stderr

    for command in (("plugins", "--json"), ("jobs", "--json"), ("search", "noisy", "--json")):
        listed = quaero(*command, "--data-dir", "data", cwd=tmp_path, **env)
        assert listed.returncode == 0, listed.stderr
        json.loads(listed.stdout)
        assert command[0] != "plugins" or "noisy plugin imported" in listed.stderr


def make_executions(data_dir: Path, count: int) -> list[str]:
    """``count`` executions of two steps with three children each, as stored rows; their ids, oldest first."""
    from quaero.settings import load_settings
    from quaero.stores.db import Database
    from quaero.stores.events import EventBus
    from quaero.stores.jobs import ChildSpec, JobManager
    from quaero.stores.models import bind_models

    database = Database(load_settings(environ={}, overrides={"data_dir": data_dir}).resolved_database_url)
    jobs = JobManager(database, bind_models(database.db), EventBus())
    roots = []
    for i in range(count):
        root = jobs.create_job("parent", f"execution {i}", phase="orchestration", definition_id="listed")
        for name in ("a", "b"):
            step = jobs.create_job("step", f"step {name}", parent=root, phase="orchestration")
            jobs.create_children(step, [ChildSpec("test_task", f"{name}{k}", {}) for k in range(3)], depth=0)
        roots.append(root.id)
    jobs.transition(roots[0], "running")
    jobs.transition(roots[0], "failed")
    database.close()
    return roots


def test_jobs_lists_executions_with_a_header_and_says_when_more_exist(tmp_path):
    roots = make_executions(tmp_path / "data", 5)
    shown = quaero("jobs", "--limit", "3", "--data-dir", "data", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    header, *rows, last = shown.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "CREATED", "NAME"]  # all executions: no type column
    assert [row.split()[0] for row in rows] == roots[::-1][:3] and not any("parent" in row for row in rows)
    assert last == "3 of 5 executions; --limit to see more"

    everything = quaero("jobs", "--data-dir", "data", cwd=tmp_path).stdout.splitlines()
    assert len(everything) == 6 and "of 5" not in everything[-1]  # all shown: no line about more
    failed = quaero("jobs", "--status", "failed", "--data-dir", "data", cwd=tmp_path).stdout.splitlines()
    assert [row.split()[:2] for row in failed[1:]] == [[roots[0], "failed"]]
    assert quaero("jobs", "--status", "running", "--data-dir", "data", cwd=tmp_path).stdout == "no running executions\n"
    steps = quaero("jobs", "--type", "step", "--limit", "4", "--data-dir", "data", cwd=tmp_path).stdout
    assert steps.splitlines()[0].split() == ["ID", "STATUS", "TYPE", "CREATED", "NAME"]
    assert steps.splitlines()[-1] == "4 of 10 jobs of type step; --limit to see more"
    every_type = quaero("jobs", "--all", "--limit", "2", "--data-dir", "data", cwd=tmp_path).stdout
    assert every_type.splitlines()[-1] == "2 of 45 jobs; --limit to see more"

    as_json = json.loads(quaero("jobs", "--json", "--limit", "2", "--data-dir", "data", cwd=tmp_path).stdout)
    assert set(as_json) == {"items", "total", "limit", "offset", "next"}  # the page of GET /api/jobs
    assert (as_json["total"], as_json["limit"], as_json["offset"]) == (5, 2, 0)
    assert [j["id"] for j in as_json["items"]] == roots[::-1][:2] and as_json["next"] == roots[3]
    assert as_json["items"][0]["counts"]["total"] == 2  # its two steps
    last_page = json.loads(quaero("jobs", "--json", "--data-dir", "data", cwd=tmp_path).stdout)
    assert len(last_page["items"]) == 5 and last_page["next"] is None

    refused = quaero("jobs", "--limit", "0", "--data-dir", "data", cwd=tmp_path)
    assert refused.returncode == 2 and "--limit must be between 1 and 1000" in refused.stderr and not refused.stdout
    both = quaero("jobs", "--all", "--type", "step", "--data-dir", "data", cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_run_exits_non_zero_when_the_execution_fails(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "name: bad\nsteps:\n  - {name: fail, action: test_fanout, config: {count: 2, fail_every: 1}}\n")
    result = quaero("run", "bad.yaml", "--data-dir", "data", "--workers", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert "\nfailed: 0 completed, 2 failed" in result.stdout
    assert "error: step 'fail' failed: all 2 child jobs failed" in result.stderr


def test_run_rejects_an_invalid_definition_with_its_location(tmp_path):
    (tmp_path / "typo.yaml").write_text("name: t\nsteps:\n  - {name: a, action: test_fanout, config: {cnt: 1}}\n")
    result = quaero("run", "typo.yaml", "--data-dir", "data", cwd=tmp_path)
    assert result.returncode == 2
    assert "typo.yaml: line 3" in result.stderr and "unknown key 'cnt'" in result.stderr


def test_bad_setting_is_a_clear_error(tmp_path):
    result = quaero("plugins", cwd=tmp_path, QUAERO_PORTT="1")
    assert result.returncode == 2 and "unknown setting 'portt'" in result.stderr



def test_serve_executes_over_the_api_with_worker_processes_and_stops_cleanly(tmp_path):
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "fan.yaml").write_text(FANOUT)
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    environ["QUAERO_PLUGIN_MODULES"] = "quaero.testing.actions"
    server = subprocess.Popen([sys.executable, "-m", "quaero", "serve", "--port", str(port), "--data-dir", "data",
                               "--definitions", "defs", "--workers", "2"], cwd=tmp_path, env=environ,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            try:
                return httpx.get(f"{base}/api/health", timeout=1).json()
            except httpx.HTTPError:
                return None

        health = wait_for(healthy, 30, 0.2, "the server to answer")
        assert health["worker_processes"] == 2
        job_id = httpx.post(f"{base}/api/jobs/definitions/fan/execute").json()["job_id"]
        job = wait_for(lambda: (j := httpx.get(f"{base}/api/jobs/{job_id}").json())["status"] == "completed" and j,
                       60, 0.1, "the execution to complete")
        assert job["type"] == "parent" and job["definition_id"] == "fan"
        children = httpx.get(f"{base}/api/jobs/{job_id}/children").json()
        [step] = children["items"]
        assert step["counts"]["completed"] == 25 and step["progress_text"].startswith("0 pending")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal it handled
    assert (tmp_path / "data" / "logs" / "quaero.log").exists()
    time.sleep(0.5)
    assert "Traceback" not in output, output


def test_sigkill_of_the_server_then_restart_finishes_the_execution(tmp_path):
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "slow.yaml").write_text(
        "name: slow\nsteps:\n"
        "  - {name: a, action: test_fanout, config: {count: 12, work_ms: 400, save_documents: true}}\n"
        "  - {name: b, action: test_fanout, config: {count: 3}}\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    environ.update(QUAERO_PLUGIN_MODULES="quaero.testing.actions", QUAERO_QUEUE_LEASE_MS="1500")

    def serve(port):
        return subprocess.Popen([sys.executable, "-m", "quaero", "serve", "--port", str(port), "--data-dir", "data",
                                 "--definitions", "defs", "--workers", "2", "--threads", "2"], cwd=tmp_path,
                                env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(base, path):
        try:
            return httpx.get(base + path, timeout=2).json()
        except httpx.HTTPError:
            return None

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(port)
    try:
        wait_for(lambda: get(base, "/api/health"), 30, 0.2, "the server to answer")
        job_id = httpx.post(f"{base}/api/jobs/definitions/slow/execute").json()["job_id"]
        wait_for(lambda: (c := get(base, f"/api/jobs/{job_id}/children")) and c["items"]
                 and c["items"][0]["counts"]["completed"] >= 2, 30, 0.1, "some children to complete")
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                                  text=True).stdout.split()]
        assert len(workers) == 2
        server.kill()
        server.wait()
        # Its worker processes notice and stop instead of living on as orphans.
        wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") and "zombie" not in _state(pid) for pid in workers),
                 15, 0.2, "the orphaned workers to exit")
    finally:
        if server.poll() is None:
            server.kill()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(port)
    try:
        job = wait_for(lambda: (j := get(base, f"/api/jobs/{job_id}")) and j["status"] in ("completed", "failed")
                       and j, 60, 0.2, "the execution to finish after the restart")
        assert job["status"] == "completed", job
        a, b = get(base, f"/api/jobs/{job_id}/children")["items"]
        assert a["counts"]["completed"] == 12 and b["counts"]["completed"] == 3
        assert a["result_count"] == 12
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_search_prints_ranked_results_and_refuses_a_malformed_query(tmp_path):
    from quaero.settings import load_settings
    from quaero.stores.db import Database
    from quaero.stores.documents import DocumentInput, DocumentStore
    from quaero.stores.models import bind_models

    database = Database(load_settings(environ={}, overrides={"data_dir": tmp_path / "data"}).resolved_database_url)
    store = DocumentStore(database, bind_models(database.db))
    store.upsert(DocumentInput("web", "https://a.test/snakes", "Snakes", "A python is a [large] snake."))
    store.upsert(DocumentInput("web", "https://a.test/python", "Python tutorial", "Learn python today."))
    database.close()

    result = quaero("search", "python", "--data-dir", "data", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [" 1. Python tutorial", "    https://a.test/python", "    Learn **python** today."]
    # The text's own brackets stay as they are, and cannot be taken for a match.
    assert lines[3:6] == [" 2. Snakes", "    https://a.test/snakes", "    A **python** is a [large] snake."]
    assert lines[-1] == "2 results for 'python'"

    as_json = quaero("search", "python -snake", "--json", "--data-dir", "data", cwd=tmp_path)
    body = json.loads(as_json.stdout)
    assert body["total"] == 1 and body["items"][0]["snippet"] == "Learn <mark>python</mark> today."

    bad = quaero("search", "python OR", "--data-dir", "data", cwd=tmp_path)
    assert bad.returncode == 2 and "the query ends with OR" in bad.stderr and bad.stdout == ""


def test_search_on_a_terminal_colours_the_matches_and_wraps_each_snippet_under_its_hit(tmp_path, monkeypatch):
    import io
    import re

    from quaero.cli import _print_hits
    from quaero.settings import load_settings
    from quaero.stores.db import Database
    from quaero.stores.documents import DocumentInput, DocumentStore
    from quaero.stores.models import bind_models
    from quaero.stores.search import DocumentSearch

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)
    database = Database(load_settings(environ={}, overrides={"data_dir": tmp_path / "data"}).resolved_database_url)
    store = DocumentStore(database, bind_models(database.db))
    long_url = "https://a.test/" + "deep/" * 30 + "python"
    words = " ".join(f"word{i}" for i in range(12))
    store.upsert(DocumentInput("web", long_url, "Python tutorial", f"{words} learn python today {words}."))
    page = DocumentSearch(database).search("python", limit=5)
    database.close()

    out = Terminal()
    _print_hits(page, out)
    text = out.getvalue()
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "\x1b[" in text and "**" not in plain and "[python]" not in plain
    lines = plain.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].startswith("    https://a.test/deep/") and lines[1].endswith("…")
    snippet = lines[2:-1]
    assert len(snippet) >= 2 and all(line.startswith("    ") for line in snippet), lines


def test_the_live_bar_says_what_it_knows_before_the_total_is_known():
    import io

    from quaero.cli import _LiveDisplay

    out = io.StringIO()
    display = _LiveDisplay("crawl", out)
    display.close()
    assert "0/?" in out.getvalue() and "None" not in out.getvalue()


def test_jobs_rows_fit_an_80_column_terminal_and_cut_long_names():
    from quaero.cli import _print_jobs

    job = {"id": "job_01JF8ZQ3W4X5Y6Z7A8B9C0D1E2", "status": "completed", "created_at": "2026-12-02T06:42:56.123Z"}
    listing = {"items": [{**job, "type": "parent", "name": "Crawl of the whole Python documentation, every page"},
                         {**job, "type": "database_maintenance", "name": "Nightly vacuum"}], "total": 2}
    out = io.StringIO()
    _print_jobs(listing, "jobs", out, width=80)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split() == ["ID", "STATUS", "TYPE", "CREATED", "NAME"]
    assert "12-02 06:42" in lines[1] and lines[1].endswith("…") and "Crawl of th" in lines[1]
    assert "database_m  " in lines[2] and lines[2].endswith("Nightly vac…")  # type cut to its column
    piped = io.StringIO()
    _print_jobs(listing, "jobs", piped)  # not a terminal, no width: whole names
    assert "every page" in piped.getvalue()


FAILING = "name: cli failing\nsteps:\n  - {name: fan, action: test_fanout, config: {count: 6, fail_every: 3}}\n"


def test_jobs_actions_count_first_then_act(tmp_path):
    (tmp_path / "failing.yaml").write_text(FAILING)
    run = quaero("run", "failing.yaml", "--json", "--data-dir", "data", "--workers", "0", cwd=tmp_path)
    summary = json.loads(run.stdout)
    assert summary["status"] == "completed" and summary["counts"]["failed"] == 2
    failed = ("--all", "--status", "failed", "--data-dir", "data")

    dry = quaero("jobs", "delete", *failed, "--dry-run", "--json", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["matched"] == 2 and len(json.loads(dry.stdout)["ids"]) == 2
    declined = quaero("jobs", "delete", *failed, cwd=tmp_path)  # stdin is no terminal: it asks for --yes
    assert declined.returncode == 2 and "add --yes to delete these 2 job(s)" in declined.stderr

    # Re-run the failed children of the step: they are queued again (no server runs them here).
    steps = json.loads(quaero("jobs", "--type", "step", "--json", "--data-dir", "data", cwd=tmp_path).stdout)
    step_id = steps["items"][0]["id"]
    rerun = quaero("jobs", "rerun-failed", step_id, "--json", "--data-dir", "data", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["requeued"] == 2
    pending = json.loads(quaero("jobs", "--all", "--status", "pending", "--json", "--data-dir", "data",
                                cwd=tmp_path).stdout)
    assert pending["total"] == 2
    refused = quaero("jobs", "rerun-failed", step_id, "--data-dir", "data", cwd=tmp_path)
    assert refused.returncode == 2 and "is still running" in refused.stderr

    # Cancel what is pending; deleting it is refused while its execution runs; the execution goes whole.
    cancel = quaero("jobs", "cancel", "--all", "--status", "pending", "--yes", "--data-dir", "data", cwd=tmp_path)
    assert cancel.returncode == 0 and "cancel: 2 of 2 done" in cancel.stdout, cancel.stderr
    delete = quaero("jobs", "delete", "--all", "--status", "cancelled", "--yes", "--json", "--data-dir", "data",
                    cwd=tmp_path)
    assert json.loads(delete.stdout)["skipped"] == {"execution_running": 2}
    assert "cancel: 1 of 1 done" in quaero("jobs", "cancel", "--yes", "--data-dir", "data", cwd=tmp_path).stdout
    gone = json.loads(quaero("jobs", "delete", "--yes", "--json", "--data-dir", "data", cwd=tmp_path).stdout)
    assert gone["done"] == 1 and gone["jobs_removed"] == 1 + 1 + 6
    assert json.loads(quaero("jobs", "--all", "--json", "--data-dir", "data", cwd=tmp_path).stdout)["total"] == 0
