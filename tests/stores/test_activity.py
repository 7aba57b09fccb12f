"""ActivityStore: the dashboard's figures, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from quaero.stores.activity import ActivityStore, Throughput
from quaero.stores.jobs import ChildSpec


def activity_of(stores, job_timeout: float = 3600.0) -> ActivityStore:
    return ActivityStore(stores.database, stores.models, job_timeout=job_timeout)


def execution(stores, status: str, name: str | None = None):
    """A root job moved to ``status`` (a pause after it keeps ids in creation order)."""
    root = stores.jobs.create_job("parent", name or status)
    if status != "pending":
        stores.jobs.transition(root.id, "running")
    if status not in ("pending", "running"):
        stores.jobs.transition(root.id, status)
    time.sleep(0.002)
    return root.id


def test_executions_by_status_counts_only_roots_and_names_every_status(stores):
    activity = activity_of(stores)
    assert activity.executions_by_status() == {"pending": 0, "running": 0, "completed": 0, "failed": 0,
                                               "cancelled": 0}
    for status in ("completed", "completed", "failed", "running", "pending"):
        execution(stores, status)
    stores.jobs.create_job("step", "not an execution")
    assert activity.executions_by_status() == {"pending": 1, "running": 1, "completed": 2, "failed": 1,
                                               "cancelled": 0}


def test_running_executions_are_the_unfinished_roots_newest_first(stores):
    pending = execution(stores, "pending")
    execution(stores, "completed")
    running = execution(stores, "running")
    newest = execution(stores, "running")
    stores.jobs.create_job("step", "a running step", parent=stores.jobs.get(running))
    activity = activity_of(stores)
    assert [job.id for job in activity.running_executions()] == [newest, running, pending]
    assert [job.id for job in activity.running_executions(limit=2)] == [newest, running]


def test_recent_failures_come_by_finish_time_not_by_creation(stores):
    first, second, third = (execution(stores, "failed", name) for name in ("first", "second", "third"))
    execution(stores, "completed")
    now = time.time()
    stores.set_finished(first, now - 10)  # created first, failed last
    stores.set_finished(second, now - 300)
    stores.set_finished(third, now - 200)
    activity = activity_of(stores)
    assert [job.id for job in activity.recent_failures()] == [first, third, second]
    assert [job.name for job in activity.recent_failures(limit=1)] == ["first"]


def test_throughput_buckets_every_finished_job_by_minute(stores):
    now = time.time()
    step = stores.jobs.create_job("step", "step")
    ids = stores.jobs.create_children(step, [ChildSpec("t", f"c{n}", {}) for n in range(7)], depth=1)
    finished = {
        ids[0]: now - 3599.5,  # the window's first minute
        ids[1]: now - 90.2,  # minute 58
        ids[2]: now - 30,  # minute 59, 59.5 minutes into the window: truncated, never rounded up
        ids[3]: now - 0.4,  # minute 59
        ids[4]: now - 3700,  # before the window
        ids[5]: now + 5,  # after ``now``: not counted
    }
    for job_id, stamp in finished.items():
        stores.set_finished(job_id, stamp)  # ids[6] never finished
    figures = activity_of(stores).throughput(now=now)
    assert len(figures.values) == 60
    assert figures.values[0] == 1 and figures.values[58] == 1 and figures.values[59] == 2
    assert figures.total == 4 and figures.peak == 2
    assert figures.as_dict() == {"values": list(figures.values), "total": 4, "peak": 2}
    assert activity_of(stores).throughput(minutes=1, now=now).values == (2,)


def test_throughput_reads_only_jobs_created_within_the_job_timeout_of_the_window(stores):
    now = time.time()
    root = execution(stores, "completed")
    stores.set_finished(root, now - 60)
    assert activity_of(stores).throughput(now=now).total == 1
    # Seen from two hours on, with a one-second timeout, the job was created too early to finish in the
    # window; its finish is moved into that window to show that the id bound, not the finish, leaves it out.
    later = now + 7200
    stores.set_finished(root, later - 60)
    assert activity_of(stores).throughput(now=later).total == 1
    assert activity_of(stores, job_timeout=1.0).throughput(now=later).total == 0


def test_an_empty_window_has_no_peak():
    assert Throughput((0, 0)).as_dict() == {"values": [0, 0], "total": 0, "peak": 0}
