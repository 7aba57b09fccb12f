"""The read queries the pages use: a definition's executions, a job's child ids, the job types, whether a
definition is stored; on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from quaero.stores.jobs import ChildSpec

DEFINITION = "id: fan\nname: Fan\nsteps:\n  - {name: fan, action: test_fanout, config: {count: 1}}\n"


def test_executions_are_roots_newest_first_by_definition_and_status(stores):
    jobs = stores.jobs
    runs = []
    for n in range(3):
        runs.append(jobs.create_job("parent", f"run {n}", definition_id="fan").id)
        time.sleep(0.002)  # ids carry the creation millisecond
    other = jobs.create_job("parent", "other", definition_id="other").id
    jobs.create_job("step", "a step of run 0", parent=jobs.get(runs[0]))
    jobs.transition(runs[1], "running")
    assert [job.id for job in jobs.executions(definition_id="fan")] == runs[::-1]
    assert [job.id for job in jobs.executions(definition_id="fan", limit=1)] == [runs[2]]
    assert [job.id for job in jobs.executions(definition_id="fan", statuses=("running",))] == [runs[1]]
    assert [job.id for job in jobs.executions()] == [other, *runs[::-1]]
    assert jobs.executions(definition_id="missing") == []


def test_child_ids_are_the_direct_children_only(stores):
    jobs = stores.jobs
    root = jobs.create_job("parent", "root")
    step = jobs.create_job("step", "step", parent=root)
    children = jobs.create_children(step, [ChildSpec("t", "a", {}), ChildSpec("t", "b", {})], depth=1)
    assert jobs.child_ids(root.id) == [step.id]
    assert sorted(jobs.child_ids(step.id)) == sorted(children)
    assert jobs.child_ids(children[0]) == []


def test_types_are_the_distinct_types_sorted(stores):
    jobs = stores.jobs
    assert jobs.types() == []
    root = jobs.create_job("parent", "root")
    step = jobs.create_job("step", "step", parent=root)
    jobs.create_children(step, [ChildSpec(kind, kind, {}) for kind in ("zeta", "crawl", "zeta", "agent")], depth=1)
    assert jobs.types() == ["agent", "crawl", "parent", "step", "zeta"]
    assert jobs.types(limit=2) == ["agent", "crawl"]


def test_a_definition_exists_once_stored_and_not_after_deletion(stores):
    definitions = stores.definitions
    assert definitions.exists("fan") is False
    definitions.create(DEFINITION)
    assert definitions.exists("fan") is True and definitions.exists("fa") is False
    definitions.delete("fan")
    assert definitions.exists("fan") is False
