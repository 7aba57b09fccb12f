"""Re-running failed children and bulk actions, on a real runtime: counts, statuses and results agree."""

from __future__ import annotations

import threading

import pytest
from support import execute, make_settings, wait_done, wait_for

from quaero.api import Action, ChildSpec, DocumentInput, JobError, JobWorker, StepManager, StepOptions, hookimpl
from quaero.errors import Conflict, QuaeroError
from quaero.runtime import Runtime
from quaero.stores.jobs import JobFilter


class MendOptions(StepOptions):
    count: int = 6
    broken: list[int] = []


class MendManager(StepManager):
    def start_step(self, ctx):
        ctx.spawn_many([ChildSpec("mend_item", f"item {i}", {"i": i}, item_ref=f"item-{i}")
                        for i in range(ctx.options.count)])


class MendWorker(JobWorker):
    """Saves one document per item; the items listed as broken fail until the plugin is mended."""

    worker_type = "mend_item"

    def __init__(self, plugin: MendPlugin) -> None:
        self.plugin = plugin

    def execute(self, ctx, job):
        index = job.config["i"]
        self.plugin.gate.wait(30)
        if not self.plugin.mended and index in ctx.options.broken:
            raise JobError(f"item {index} is broken")
        ctx.save_document(DocumentInput(source_type="mend", source_ref=f"mend://{ctx.step.id}/{index}",
                                        title=f"Item {index}", markdown=f"# Item {index}"))

    def before_rerun(self, ctx, job):
        self.plugin.reruns.append(job.id)


class MendPlugin:
    def __init__(self) -> None:
        self.mended = False
        self.reruns: list[str] = []
        self.gate = threading.Event()  # items wait until it is set: an execution that runs for sure
        self.gate.set()

    @hookimpl
    def register_actions(self, register):
        register(Action(name="mend", manager=MendManager(), workers=[MendWorker(self)], options=MendOptions))


@pytest.fixture
def mend(tmp_path):
    plugin = MendPlugin()
    runtime = Runtime(make_settings(tmp_path), role="run", extra_plugins=[("mend", plugin)])
    runtime.start()
    try:
        yield runtime, plugin
    finally:
        runtime.stop()


TWO_STEPS = """id: two-steps
name: Two steps
steps:
  - {name: first, action: mend, config: {count: 6, broken: [1, 4]}}
  - {name: second, action: mend, config: {count: 4, broken: [2]}}
"""

FAILING_FIRST = """id: failing-first
name: Failing first
steps:
  - {name: first, action: mend, config: {count: 3, broken: [0, 1, 2]}}
  - {name: second, action: mend, config: {count: 2}}
"""


def steps_of(runtime, root_id):
    return [job for job in runtime.jobs.children(root_id) if job.type == "step"]


def agree(runtime, root_id):
    """Every count stored agrees with the rows: by status, and the results saved, step by step and in all."""
    root = runtime.jobs.get(root_id)
    assert runtime.jobs.counts(root_id) == runtime.jobs.recount(root_id)
    total = 0
    for step in steps_of(runtime, root_id):
        assert runtime.jobs.counts(step.id) == runtime.jobs.recount(step.id)
        assert step.result_count == step.count_completed  # each completed child saved one document
        total += step.result_count
    assert root.result_count == total
    return root


def test_rerun_failed_children_of_an_execution_completes_it(mend):
    runtime, plugin = mend
    root_id = execute(runtime, TWO_STEPS)
    root = wait_done(runtime, root_id)
    assert root.status == "completed"  # each step saved some pages
    first, second = steps_of(runtime, root_id)
    assert (first.count_failed, second.count_failed) == (2, 1)
    assert agree(runtime, root_id).result_count == 7
    assert runtime.recovery.failed_children(runtime.jobs.get(root_id)) == 3

    plugin.mended = True
    outcome = runtime.recovery.rerun_failed(root_id)
    assert outcome["requeued"] == 3
    assert len(plugin.reruns) == 3  # the worker's hook saw each child
    assert runtime.jobs.get(root_id).status == "running"  # reopened at once
    wait_for(lambda: runtime.jobs.get(root_id).status == "completed", 30, what="the execution to end again")
    root = agree(runtime, root_id)
    assert root.result_count == 10
    assert runtime.documents.count() == 10  # saved once each: nothing lost, nothing twice
    for step in steps_of(runtime, root_id):
        assert step.status == "completed" and step.count_failed == 0
    rerun = runtime.jobs.children(first.id, status="completed", limit=100)
    again = [job for job in rerun if job.id in plugin.reruns]
    assert again and all(job.attempts == 1 and job.error_message is None for job in again)
    assert runtime.recovery.failed_children(root) == 0


def test_a_failed_execution_goes_on_from_its_failed_step(mend):
    runtime, plugin = mend
    root_id = execute(runtime, FAILING_FIRST)
    root = wait_done(runtime, root_id)
    assert root.status == "failed" and len(steps_of(runtime, root_id)) == 1  # the second never started
    plugin.mended = True
    first = steps_of(runtime, root_id)[0]
    assert runtime.recovery.rerun_failed(first.id)["requeued"] == 3
    wait_for(lambda: runtime.jobs.get(root_id).status == "completed", 30, what="the execution to go on")
    root = agree(runtime, root_id)
    assert [step.status for step in steps_of(runtime, root_id)] == ["completed", "completed"]
    assert root.result_count == 5 and root.error_message is None


def test_rerun_failed_is_refused_where_it_does_not_apply(mend):
    runtime, plugin = mend
    root_id = execute(runtime, TWO_STEPS)
    wait_done(runtime, root_id)
    child = runtime.jobs.children(steps_of(runtime, root_id)[0].id, status="failed")[0]
    with pytest.raises(Conflict, match="from a step or an execution"):
        runtime.recovery.rerun_failed(child.id)
    plugin.gate.clear()
    runtime.recovery.rerun_failed(root_id)  # still broken: they will fail again, once the gate opens
    with pytest.raises(Conflict, match="still running"):
        runtime.recovery.rerun_failed(root_id)
    plugin.gate.set()
    wait_done(runtime, root_id)
    assert runtime.jobs.get(root_id).status == "completed"
    assert agree(runtime, root_id).result_count == 7


def test_bulk_dry_run_then_cancel_delete_and_rerun(mend):
    runtime, plugin = mend
    first_id = execute(runtime, TWO_STEPS)
    wait_done(runtime, first_id)
    failed = JobFilter(status="failed", type="mend_item")
    dry = runtime.recovery.bulk("rerun", failed)
    assert dry["matched"] == 3 and len(dry["ids"]) == 3 and dry["by_status"] == {"failed": 3}
    assert runtime.jobs.get(first_id).status == "completed"  # a dry run changes nothing

    with pytest.raises(Conflict, match="now matches 3 jobs, not the 2"):
        runtime.recovery.bulk("rerun", failed, dry_run=False, confirm_count=2)
    plugin.mended = True
    done = runtime.recovery.bulk("rerun", failed, dry_run=False, confirm_count=3)
    assert done["done"] == 3 and done["requeued"] == 3
    wait_for(lambda: runtime.jobs.get(first_id).status == "completed"
             and runtime.recovery.bulk("rerun", failed)["matched"] == 0, 30)
    assert agree(runtime, first_id).result_count == 10

    # Cancel: only the unfinished jobs are cancelled; the finished ones are skipped and counted.
    plugin.mended = False
    executions = JobFilter(type="parent", definition_id="two-steps")
    cancelled = runtime.recovery.bulk("cancel", executions, dry_run=False)
    assert cancelled["done"] == 0 and cancelled["skipped"] == {"finished": 1}

    # Rerun of executions: one fresh execution per definition.
    again = runtime.recovery.bulk("rerun", executions, dry_run=False)
    assert again["done"] == 1 and len(again["started"]) == 1
    new_root = wait_done(runtime, again["started"][0])
    assert new_root.status == "completed"

    # Delete: every matching execution with its descendants; none is left.
    assert runtime.recovery.bulk("delete", executions)["matched"] == 2
    deleted = runtime.recovery.bulk("delete", executions, dry_run=False, confirm_count=2)
    assert deleted["done"] == 2 and deleted["jobs_removed"] == 2 * (1 + 2 + 6 + 4)
    assert runtime.recovery.bulk("delete", JobFilter())["matched"] == 0


def test_bulk_input_errors_name_what_is_allowed(mend):
    runtime, _ = mend
    with pytest.raises(QuaeroError, match="is not one of cancel, delete, rerun"):
        runtime.recovery.bulk("purge", JobFilter())
