"""The job page's progress and timeline: the execution's bar counts its steps' children, durations, steps and
children drawn over time (a density strip past 200 children), the rate chart, ETA, the breadcrumb and buttons."""

from __future__ import annotations

import re
import time

from support import app_client, execute, make_settings, wait_done, wait_for

from quaero.stores.jobs import ChildSpec
from quaero.stores.timeline import Buckets
from quaero.web.timeline import MAX_BARS, T_LEFT, T_RIGHT, T_WIDTH, job_timeline, rate_chart, steps_timeline

TWO_STEPS = """id: two-steps
name: Two steps
steps:
  - {name: first, action: test_fanout, config: {count: 6, work_ms: 20}}
  - {name: second, action: test_fanout, config: {count: 9, work_ms: 150}}
"""


def _step_with_children(runtime, count: int, *, origin: float, action: str = "test_fanout"):
    """A finished step of ``count`` children written straight to the store: child i ran from origin + i/100
    for half a second."""
    jobs = runtime.jobs
    root = jobs.create_job("parent", "big run", payload={"definition": {"steps": [{"name": "big"}]}})
    step = jobs.create_job("step", "big", parent=root, payload={"action": action})
    ids = jobs.create_children(step, [ChildSpec("test_task", f"item {i}", {"i": i}) for i in range(count)], depth=0)
    db = runtime.database
    with db.write():
        db.execute("UPDATE jobs SET status = 'completed', count_pending = 0, count_completed = ?, started_at = ?, "
                   "finished_at = ?, created_at = ? WHERE id = ?",
                   (count, origin, origin + count / 100 + 0.5, origin - 1, step.id))
        db.db.cursor().executemany(
            db.sql("UPDATE jobs SET status = 'completed', created_at = ?, started_at = ?, finished_at = ? "
                   "WHERE id = ?"),
            [(origin, origin + i / 100, origin + i / 100 + 0.5, job_id) for i, job_id in enumerate(ids)])
    return jobs.get(step.id)


# ------------------------------------------------------------------------------------------------ drawing
def test_steps_are_bars_over_time_queued_then_running_with_names_and_time_labels(runtime):
    jobs = runtime.jobs
    root = jobs.create_job("parent", "run")
    a = jobs.create_job("step", "crawl", parent=root)
    b = jobs.create_job("step", "reindex", parent=jobs.get(root.id))
    origin = root.created_at
    with runtime.database.write():
        for job_id, (created, started, finished) in ((a.id, (0, 1, 31)), (b.id, (31, 33, 60))):
            runtime.database.execute("UPDATE jobs SET created_at = ?, started_at = ?, finished_at = ?, "
                                     "status = 'completed' WHERE id = ?",
                                     (origin + created, origin + started, origin + finished, job_id))
    steps = jobs.steps_of([root.id])[root.id]
    timeline = steps_timeline(steps, origin=origin, end=origin + 60)
    assert timeline.empty is None
    assert [bar.label for bar in timeline.bars] == ["crawl", "reindex"]
    plot = T_WIDTH - T_RIGHT - T_LEFT
    first, second = timeline.bars
    assert abs(first.queued_x - T_LEFT) < 0.01 and abs(first.run_x - (T_LEFT + plot / 60)) < 0.01
    assert abs(first.end_x - (T_LEFT + plot * 31 / 60)) < 0.01 and abs(second.end_x - (T_LEFT + plot)) < 0.01
    assert second.y > first.y and "ran 30.0 s" in first.title and "queued 2.0 s" in second.title
    assert [t.label for t in timeline.x_ticks] == ["0", "15 s", "30 s", "45 s", "60 s"]
    assert steps_timeline([], origin=origin, end=origin + 1).empty == "No step has started yet."


def test_the_rate_chart_is_children_finished_per_second_over_the_steps_run_with_an_empty_state():
    buckets = Buckets(start=1000.0, width=10.0, started=(30, 30, 0), finished=(10, 40, 5))
    chart = rate_chart(buckets, origin=1000.0, end=1025.0, unit="pages/s")
    rates = [float(re.search(r": ([\d.]+) pages/s", mark.title).group(1)) for mark in chart.marks]
    assert rates == [1.0, 4.0, 1.0]  # the last bucket ran 5 s of its 10: 5 pages in 5 s
    assert chart.empty is None and chart.unit == "pages/s"
    assert [t.label for t in chart.y_ticks] == ["0", "2.5", "5"]
    assert [t.label for t in chart.x_ticks][0] == "0"
    nothing = rate_chart(Buckets(1000.0, 1.0, (0,), (0,)), origin=1000.0, end=1001.0, unit="jobs/s")
    assert nothing.empty == "No child has finished yet: no rate yet."


def test_a_step_of_a_few_children_draws_a_bar_each_on_its_page(runtime, client):
    step = _step_with_children(runtime, 12, origin=time.time() - 60, action="crawl")
    timeline = job_timeline(runtime.jobs, step)
    bars = timeline["children"].bars
    assert len(bars) == 12 and all(bar.href and bar.href.startswith("/jobs/job_") for bar in bars)
    assert [bar.label for bar in bars][:2] == ["item 0", "item 1"]  # in the order they started
    assert timeline["rate"].unit == "pages/s" and timeline["live"] is False
    page = client.get(f"/jobs/{step.id}").text
    section = page[page.index('id="job-timeline"'):]
    assert 'aria-label="children over time"' in section and section.count('class="ran"') == 12
    assert ">item 0</text>" in section and "Rate of big: pages/s" in section
    assert "hx-trigger" not in section[:200]  # finished: no more polling
    assert "<dt>Ran</dt><dd>620 ms</dd>" in section  # 12 children a hundredth of a second apart, half a second each


def test_thousands_of_children_are_a_density_strip_not_thousands_of_bars(runtime, client):
    step = _step_with_children(runtime, 3000, origin=time.time() - 100)
    timeline = job_timeline(runtime.jobs, step)
    children = timeline["children"]
    assert children.bars == () and [s.label for s in children.strips] == ["started (3,000)", "finished (3,000)"]
    assert "3,000 children" in children.note
    assert all(len(strip.cells) <= 60 for strip in children.strips)
    page = client.get(f"/jobs/{step.id}").text
    section = page[page.index('id="job-timeline"'):]
    assert 'aria-label="children started and finished over time"' in section
    assert section.count('class="cell"') <= 120 and section.count('class="ran"') == 0
    assert MAX_BARS == 200


def test_a_step_without_children_and_a_pending_execution_say_so(runtime, client):
    root = runtime.jobs.create_job("parent", "waiting", payload={"definition": {"steps": [{"name": "a"}]}})
    page = client.get(f"/jobs/{root.id}").text
    assert "No step has started yet." in page
    assert f'hx-get="/jobs/{root.id}/timeline"' in page  # it polls while the job can still change
    fragment = client.get(f"/jobs/{root.id}/timeline")
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith('<section id="job-timeline"')
    assert "0/None" not in page and "0/?" not in page and "0 / 0" not in page


# ------------------------------------------------------------------------------------------------ the page
def test_a_childs_breadcrumb_names_its_step_and_run_again_waits_for_the_end(runtime, client):
    jobs = runtime.jobs
    root = jobs.create_job("parent", "an execution", payload={"definition": {"steps": [{"name": "fetch pages"}]}})
    jobs.transition(root.id, "running")
    step = jobs.create_job("step", "fetch pages", parent=jobs.get(root.id))
    child = jobs.create_job("test_task", "one page", parent=step)
    crumbs = client.get(f"/jobs/{child.id}").text.split("<h1", 1)[0]
    assert f'<a href="/jobs/{step.id}">fetch pages</a>' in crumbs and ">parent<" not in crumbs
    assert "Run again…" not in client.get(f"/jobs/{root.id}").text
    jobs.transition(root.id, "completed")
    assert "Run again…" in client.get(f"/jobs/{root.id}").text


def test_a_real_two_step_run_reports_its_steps_children_through_the_api(tmp_path):
    with app_client(make_settings(tmp_path)) as client:
        runtime = client.app.state.runtime
        root_id = execute(runtime, TWO_STEPS)
        # While it runs: the bar counts children of the step at work, never 100 %.
        seen = wait_for(lambda: (p := client.get(f"/api/jobs/{root_id}").json()["progress"])["step"] == "second"
                        and p["total"] > 6 and client.get(f"/api/jobs/{root_id}").json()["status"] == "running" and p,
                        what="the second step to be at work")
        assert seen["step_index"] == 2 and seen["steps"] == 2 and seen["percent"] < 100
        assert seen["text"].startswith("step 2/2 second: ")
        assert set(seen) >= {"done", "total", "step", "step_index", "steps", "eta_s", "rate_per_s", "percent"}
        wait_done(runtime, root_id)
        final = client.get(f"/api/jobs/{root_id}").json()["progress"]
        assert (final["done"], final["total"], final["percent"]) == (15, 15, 100)
        assert final["eta_s"] is None and final["text"] == "2 steps: 15/15"
        listed = client.get("/api/jobs").json()["items"]
        assert [job["progress"]["done"] for job in listed if job["id"] == root_id] == [15]
        step_id = runtime.jobs.steps_of([root_id])[root_id][1].id
        step = client.get(f"/api/jobs/{step_id}").json()["progress"]
        assert (step["done"], step["total"]) == (9, 9) and step["rate_per_s"] > 0
        listing = client.get("/jobs").text  # the jobs list's bar and text come from the same helper
        assert 'aria-valuetext="2 steps: 15/15"' in listing and ">2 steps: 15/15</div>" in listing
        page = client.get(f"/jobs/{root_id}").text
        assert 'aria-valuenow="100"' in page and "2 steps: 15/15" in page
        timeline = page[page.index('id="job-timeline"'):]
        assert ">first</text>" in timeline and ">second</text>" in timeline and "Rate of second: jobs/s" in timeline
