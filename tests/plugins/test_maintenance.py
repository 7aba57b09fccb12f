"""The database_maintenance action: each operation a real job on a real database, reporting what it did."""

from __future__ import annotations

from itertools import pairwise

import pytest
from jobruns import children, log_lines, only_step, run, run_example
from pydantic import ValidationError
from support import execute, make_settings, wait_for

from quaero.api import DocumentInput
from quaero.runtime import Runtime
from quaero_plugins.maintenance.options import DEFAULT_OPERATIONS, OPERATIONS, MaintenanceOptions

DAY = 86_400


def maintenance(runtime, *operations: str, older_than_days: int = 30):
    config = f"{{operations: [{', '.join(operations)}], older_than_days: {older_than_days}}}"
    return run(runtime, f"name: maintenance\nsteps:\n  - {{name: m, action: database_maintenance, config: {config}}}\n")


def results(runtime, root) -> dict[str, dict]:
    return {job.config["operation"]: job.data.get("result") for job in children(runtime, root)}


def trees(runtime, root_ids) -> tuple[set[str], set[int]]:
    """The ids of these executions' jobs and of their log lines."""
    runtime.logs.flush()
    marks = ", ".join("?" * len(root_ids))
    jobs = runtime.database.execute(f"SELECT id FROM jobs WHERE root_id IN ({marks})", root_ids).fetchall()
    logs = runtime.database.execute(f"SELECT id FROM job_logs WHERE job_id IN "
                                    f"(SELECT id FROM jobs WHERE root_id IN ({marks}))", root_ids).fetchall()
    return {row[0] for row in jobs}, {row[0] for row in logs}


def backdate(runtime, root_id: str, days: float) -> None:
    """Make an execution look as if it ran ``days`` ago."""
    shift = days * DAY
    with runtime.database.write():
        runtime.database.execute("UPDATE jobs SET created_at = created_at - ?, finished_at = finished_at - ? "
                                 "WHERE root_id = ?", (shift, shift, root_id))


def file_size(runtime) -> int:
    path = runtime.settings.data_dir / "quaero.stores.db"
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_prune_removes_exactly_the_old_finished_executions_and_their_logs(runtime):
    fanout = "name: fan\nsteps:\n  - {{name: fan, action: test_fanout, config: {{count: 4, {extra}}}}}\n"
    old_completed = run(runtime, fanout.format(extra="log_pid: true"))
    old_failed = run(runtime, fanout.format(extra="fail_every: 1"))
    recent = run(runtime, fanout.format(extra="log_pid: true"))
    assert (old_completed.status, old_failed.status, recent.status) == ("completed", "failed", "completed")
    running = execute(runtime, "name: slow\nsteps:\n  - {name: slow, action: test_fanout, "
                               "config: {count: 1, work_ms: 60000}}\n")
    wait_for(lambda: runtime.database.execute("SELECT COUNT(*) FROM jobs WHERE root_id = ? AND type = 'test_task' "
                                              "AND status = 'running'", (running,)).fetchone()[0],
             what="the slow execution's child to run")
    for root in (old_completed, old_failed):
        backdate(runtime, root.id, 40)
    backdate(runtime, running, 40)  # started long ago, still running: kept
    backdate(runtime, recent.id, 20)  # finished, but not long enough ago
    old = [old_completed.id, old_failed.id]
    kept = [recent.id, running]
    old_jobs, old_logs = trees(runtime, old)
    kept_jobs, kept_logs = trees(runtime, kept)
    assert len(old_jobs) == 12 and len(old_logs) >= 12

    root = maintenance(runtime, "prune", older_than_days=30)

    assert root.status == "completed", root.error_message
    report = results(runtime, root)["prune"]
    assert report["executions_removed"] == 2
    assert (report["jobs_removed"], report["logs_removed"]) == (len(old_jobs), len(old_logs))
    assert trees(runtime, old) == (set(), set())
    jobs_after, logs_after = trees(runtime, kept)
    assert jobs_after == kept_jobs and logs_after >= kept_logs  # the running execution may log more meanwhile
    assert runtime.jobs.get(running).status == "running"
    [job] = children(runtime, root)
    removed = f"{len(old_jobs)} job(s), {len(old_logs)} log line(s)"
    assert any("deleted 2 execution(s) finished before" in line and removed in line for line in log_lines(runtime, job))
    runtime.orchestrator.cancel(running)


def test_vacuum_gives_back_the_space_of_deleted_documents_and_the_check_passes(runtime):
    for n in range(300):
        runtime.documents.upsert(DocumentInput(source_type="test", source_ref=f"test://{n}",
                                                        title=f"Big {n}", markdown=f"word{n} " * 3000))
    with runtime.database.write():
        runtime.database.execute("DELETE FROM documents")
    before = file_size(runtime)

    root = maintenance(runtime, "integrity_check", "vacuum")  # listed out of order: run in the fixed order

    assert root.status == "completed", root.error_message
    assert [job.config["operation"] for job in children(runtime, root)] == ["vacuum", "integrity_check"]
    vacuum, check = results(runtime, root)["vacuum"], results(runtime, root)["integrity_check"]
    assert vacuum["size_after"] < vacuum["size_before"] / 5
    assert vacuum["pages_after"] < vacuum["free_pages_before"] and vacuum["checkpoint_complete"] is True
    assert file_size(runtime) < before / 5
    assert check["ok"] is True and check["problems"] == [] and check["summary"].startswith("ok")


def test_every_operation_of_the_nightly_example_reports_what_it_did(runtime):
    for n in range(50):
        runtime.documents.upsert(DocumentInput(source_type="test", source_ref=f"test://{n}",
                                                        title=f"Doc {n}", markdown=f"text {n}"))

    root = run_example(runtime, "maintenance-nightly.yaml")

    assert root.status == "completed", root.error_message
    jobs = children(runtime, root)
    assert [job.config["operation"] for job in jobs] == list(OPERATIONS)
    assert all(job.status == "completed" for job in jobs)
    assert [job.started_at for job in jobs] == sorted(job.started_at for job in jobs)
    for earlier, later in pairwise(jobs):  # one after another, never side by side
        assert earlier.started_at + earlier.data["result"]["seconds"] <= later.started_at
    for job in jobs:
        result = job.data["result"]
        assert result["operation"] == job.config["operation"] and result["applicable"] and result["ok"]
        assert result["seconds"] >= 0 and result["size_before"] > 0 and result["size_after"] > 0
        assert any(line.startswith(f"{result['operation']}: {result['summary']}") for line in log_lines(runtime, job))
    by_name = results(runtime, root)
    assert by_name["analyze"]["tables"] >= 3 and by_name["reindex"]["indexes"] >= 5
    assert by_name["wal_checkpoint"]["wal_bytes_after"] == 0
    stats = runtime.step_stats(only_step(runtime, root))
    assert [entry["operation"] for entry in stats["operations"]] == list(OPERATIONS)


def test_a_failed_check_fails_its_job_and_the_next_operation_still_runs(runtime):
    runtime.documents.upsert(DocumentInput(source_type="test", source_ref="test://1", markdown="x"))
    with runtime.database.write():
        runtime.database.execute("INSERT INTO documents_fts (documents_fts) VALUES ('delete-all')")

    root = maintenance(runtime, "integrity_check", "wal_checkpoint")

    checkpoint, check = children(runtime, root)
    assert (checkpoint.status, check.status) == ("completed", "failed")
    assert "does not match the stored documents" in check.error_message
    assert check.data["result"]["ok"] is False and check.data["result"]["problems"]


def test_operations_are_checked_and_put_in_order():
    assert MaintenanceOptions().operations == list(DEFAULT_OPERATIONS) and "prune" not in DEFAULT_OPERATIONS
    assert MaintenanceOptions(operations=["analyze", "prune"]).operations == ["prune", "analyze"]
    with pytest.raises(ValidationError, match="listed more than once"):
        MaintenanceOptions(operations=["vacuum", "vacuum"])
    with pytest.raises(ValidationError):
        MaintenanceOptions(operations=["defragment"])


@pytest.mark.services
def test_operations_on_postgresql(tmp_path, postgres_url):
    with Runtime(make_settings(tmp_path, database_url=postgres_url), role="run") as runtime:
        old = run(runtime, "name: fan\nsteps:\n  - {name: fan, action: test_fanout, config: {count: 3}}\n")
        backdate(runtime, old.id, 40)

        root = maintenance(runtime, *OPERATIONS)

        assert root.status == "completed", root.error_message
        report = results(runtime, root)
        assert report["prune"]["executions_removed"] == 1 and report["prune"]["jobs_removed"] == 5
        for name in ("prune", "vacuum", "reindex", "analyze", "optimize"):
            assert report[name]["applicable"] and report[name]["ok"], report[name]
            assert report[name]["size_before"] > 0
        for name in ("wal_checkpoint", "integrity_check"):
            assert not report[name]["applicable"] and report[name]["summary"].startswith("not applicable")
