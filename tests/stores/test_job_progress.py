"""An execution's progress is its steps' work (children done of children known, the step it is on, an ETA),
and the timeline's reads count thousands of children per time bucket in one query; on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from quaero.stores.jobs import ChildSpec
from quaero.stores.progress import progress_of
from quaero.stores.timeline import child_buckets, child_spans

THREE_STEPS = {"definition": {"steps": [{"name": "seed"}, {"name": "crawl"}, {"name": "index"}]}, "step_index": 1}


def _children(jobs, step, count: int) -> list[str]:
    return jobs.create_children(step, [ChildSpec("t", f"c{i}", {}) for i in range(count)], depth=1)


def _finish(jobs, ids, status="completed") -> None:
    for job_id in ids:
        jobs.transition(job_id, "running")
        jobs.transition(job_id, status)


def _set(stores, job_id: str, **stamps: float) -> None:
    sets = ", ".join(f"{name} = ?" for name in stamps)
    with stores.database.write():
        stores.database.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*stamps.values(), job_id))


def _three_step_execution(stores):
    """An execution on its second step of three: seed 4/4 done, crawl 4 of 10 done (one failed), 2 running."""
    jobs = stores.jobs
    root = jobs.create_job("parent", "run", payload=THREE_STEPS)
    jobs.transition(root.id, "running")
    seed = jobs.create_job("step", "seed", parent=root)
    jobs.transition(seed.id, "running")
    _finish(jobs, _children(jobs, seed, 4))
    jobs.transition(seed.id, "completed")
    crawl = jobs.create_job("step", "crawl", parent=jobs.get(root.id))
    jobs.transition(crawl.id, "running")
    ids = _children(jobs, crawl, 10)
    _finish(jobs, ids[:3])
    _finish(jobs, ids[3:4], "failed")
    for job_id in ids[4:6]:
        jobs.transition(job_id, "running")
    return jobs.get(root.id), crawl.id


def test_an_executions_progress_is_its_steps_children_with_the_step_it_is_on(stores):
    root, crawl_id = _three_step_execution(stores)
    steps = stores.jobs.steps_of([root.id])[root.id]
    assert [s.name for s in steps] == ["seed", "crawl"]
    progress = progress_of(root, steps)
    assert (progress["done"], progress["total"]) == (8, 14)  # 4 + 4 done of 4 + 10 known
    assert (progress["completed"], progress["failed"], progress["cancelled"]) == (7, 1, 0)
    assert progress["percent"] == 8 * 100 // 14
    assert (progress["step"], progress["step_index"], progress["steps"]) == ("crawl", 2, 3)
    assert progress["text"] == "step 2/3 crawl: 4/10"
    # Without its steps, the execution's own counts count steps: 1 of 2 done, which is what the bar used to show.
    assert progress_of(root)["done"] == 1 and progress_of(root)["total"] == 2


def test_the_eta_is_the_steps_known_remaining_work_at_its_own_rate(stores):
    root, crawl_id = _three_step_execution(stores)
    started = time.time() - 100
    _set(stores, crawl_id, started_at=started)
    steps = stores.jobs.steps_of([root.id])[root.id]
    progress = progress_of(root, steps, now=started + 10)
    # 4 of the crawl's 10 children done in its first 10 s: 0.4/s, 6 left: 15 s.
    assert progress["rate_per_s"] == 0.4
    assert progress["eta_s"] == 15.0
    step_progress = progress_of(stores.jobs.get(crawl_id), now=started + 10)
    assert step_progress["eta_s"] == 15.0 and step_progress["text"] == "4/10"
    # Nothing finished yet: no rate, so no ETA (not infinity, not zero).
    fresh = stores.jobs.create_job("step", "fresh", parent=root)
    stores.jobs.transition(fresh.id, "running")
    _children(stores.jobs, stores.jobs.get(fresh.id), 3)
    assert progress_of(stores.jobs.get(fresh.id))["eta_s"] is None


def test_a_finished_execution_is_full_and_an_unknown_total_never_reads_0_of_nothing(stores):
    jobs = stores.jobs
    pending = jobs.create_job("parent", "queued", payload={"definition": {"steps": [{"name": "a"}]}})
    progress = progress_of(pending, jobs.steps_of([pending.id])[pending.id])
    assert progress["text"] == "" and progress["percent"] == 0 and progress["eta_s"] is None
    child = jobs.create_job("t", "a child", parent=pending)
    assert progress_of(child)["text"] == ""  # no progress_total: no "0/0", no "0/None"
    jobs.set_progress(child.id, 3, 8)
    assert progress_of(jobs.get(child.id))["text"] == "3/8"

    root, crawl_id = _three_step_execution(stores)
    crawl = jobs.get(crawl_id)
    jobs.cancel(crawl_id)
    jobs.transition(root.id, "failed", error="crawl cancelled")
    steps = jobs.steps_of([root.id])[root.id]
    done = progress_of(jobs.get(root.id), steps)
    assert done["done"] == done["total"] == 14 and done["percent"] == 100
    assert done["cancelled"] == 6 and done["eta_s"] is None
    assert done["text"] == "3 steps: 14/14"
    assert crawl.count_running == 2  # what it was before the cancel


def test_known_work_all_done_while_the_execution_runs_is_not_100_percent(stores):
    jobs = stores.jobs
    root = jobs.create_job("parent", "run", payload={"definition": {"steps": [{"name": "a"}]}})
    jobs.transition(root.id, "running")
    step = jobs.create_job("step", "a", parent=root)
    jobs.transition(step.id, "running")
    _finish(jobs, _children(jobs, step, 2))
    progress = progress_of(jobs.get(root.id), jobs.steps_of([root.id])[root.id])
    assert progress["done"] == progress["total"] == 2 and progress["percent"] == 99


def test_thousands_of_children_are_counted_per_bucket_in_one_query(stores):
    jobs = stores.jobs
    root = jobs.create_job("parent", "run")
    step = jobs.create_job("step", "big", parent=root)
    ids = _children(jobs, step, 1200)
    origin = 1_800_000_000.0
    # Child i starts at origin + i / 100 (12 s in all) and takes 0.5 s; the last 200 never start.
    with stores.database.write():
        stores.database.execute("UPDATE jobs SET started_at = NULL, finished_at = NULL WHERE parent_id = ?",
                                (step.id,))
        cursor = stores.database.db.cursor()
        cursor.executemany(stores.database.sql("UPDATE jobs SET started_at = ?, finished_at = ? WHERE id = ?"),
                           [(origin + i / 100, origin + i / 100 + 0.5, job_id) for i, job_id in enumerate(ids[:1000])])
    buckets = child_buckets(stores.database, step.id, start=origin, width=1.0, count=12)
    assert sum(buckets.started) == 1000 and sum(buckets.finished) == 1000
    assert buckets.started[:10] == (100,) * 10 and buckets.started[10:] == (0, 0)
    assert buckets.finished[0] == 50 and buckets.finished[10] == 50 and buckets.finished[1] == 100
    # A time past the last bucket counts in the last one.
    short = child_buckets(stores.database, step.id, start=origin, width=1.0, count=5)
    assert sum(short.started) == 1000 and short.started[-1] == 600
    spans = child_spans(stores.database, step.id, limit=200)
    assert len(spans) == 200 and len({span.id for span in spans}) == 200 and {span.id for span in spans} <= set(ids)
