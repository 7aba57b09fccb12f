"""Dead letters: the messages of jobs that failed for good, listed, run again or thrown away.

A job's message is dead-lettered when the job failed after its last retry. Running it again takes two
writes in this order: the job back to ``pending`` (the processor ignores a message whose job is finished),
then the message back on its queue. Were the message first, a worker could take it before the job was
reset and drop it; if the second write fails, the monitor finds the pending job without a message and
enqueues it again. Only a queue that can list its dead letters (SQLite, Redis) supports this;
:attr:`DeadLetters.supported` tells.
"""

from __future__ import annotations

from typing import Any

from quaero.broker import DeadLetter, QueueInspector
from quaero.errors import Conflict, NotFound
from quaero.stores.events import iso
from quaero.stores.jobs import JobManager
from quaero.stores.logs import JobLogWriter

_SCAN = 500  # dead letters read per query while looking for one by id
RERUNNABLE = ("failed", "cancelled", "pending")


class DeadLetters:
    """The dead letters of the queue, each with the job it would run."""

    def __init__(self, queue: QueueInspector, jobs: JobManager, logs: JobLogWriter) -> None:
        self.queue = queue
        self.jobs = jobs
        self.logs = logs

    @property
    def supported(self) -> bool:
        """Whether the queue can list, requeue and delete its dead letters."""
        return self.queue.supports_dead_letters

    def page(self, *, queue: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Dead letters newest first, each with its job's status and error, and how many there are."""
        letters = self.queue.dead_letters(queue, limit=limit, offset=offset)
        stats = self.queue.stats()
        total = sum(entry["dead"] for name, entry in stats.items() if queue is None or name == queue)
        return self._with_jobs(letters), total

    def requeue(self, letter_id: int) -> dict[str, Any]:
        """Run a dead letter's job again; :class:`Conflict` when its job is gone, running or completed."""
        letter = self._find(letter_id)
        job_id = self._rerunnable_job(letter)
        self.jobs.reset_for_rerun(job_id)
        self.queue.requeue_dead([letter_id])
        self.logs.write(job_id, "info", f"requeued from the dead letters (message {letter_id})")
        return {"id": letter_id, "job_id": job_id, "status": self.jobs.get(job_id).status}

    def delete(self, letter_id: int) -> None:
        """Throw a dead letter away (its job stays as it is)."""
        if not self.queue.delete_dead([letter_id]):
            raise NotFound(f"dead letter {letter_id} not found")

    def requeue_all(self, *, queue: str | None = None) -> dict[str, int]:
        """Run again every dead letter whose job can run again; the others stay where they are."""
        requeued, skipped = [], 0
        for letter in self._all(queue):
            try:
                job_id = self._rerunnable_job(letter)
            except Conflict:
                skipped += 1
                continue
            self.jobs.reset_for_rerun(job_id)
            requeued.append(letter["id"])
        moved = self.queue.requeue_dead(requeued) if requeued else 0
        return {"requeued": moved, "skipped": skipped}

    def delete_all(self, *, queue: str | None = None) -> int:
        """Throw every dead letter (of one queue) away; returns how many."""
        ids = [letter["id"] for letter in self._all(queue)]
        return self.queue.delete_dead(ids) if ids else 0

    # ------------------------------------------------------------------ internals
    def _find(self, letter_id: int) -> DeadLetter:
        offset = 0
        while batch := self.queue.dead_letters(limit=_SCAN, offset=offset):
            for letter in batch:
                if letter["id"] == letter_id:
                    return letter
            offset += _SCAN
        raise NotFound(f"dead letter {letter_id} not found")

    def _all(self, queue: str | None) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        while batch := self.queue.dead_letters(queue, limit=_SCAN, offset=len(letters)):
            letters += batch
        return letters

    def _rerunnable_job(self, letter: DeadLetter) -> str:
        job_id = letter["message_id"]  # a job's message carries the job's id (Services.enqueue)
        job = self.jobs.find(job_id)
        if job is None:
            raise Conflict(f"the job {job_id} of dead letter {letter['id']} no longer exists; delete the letter")
        if job.status not in RERUNNABLE:
            raise Conflict(f"the job {job_id} of dead letter {letter['id']} is {job.status}; nothing to run again")
        return job_id

    def _with_jobs(self, letters: list[DeadLetter]) -> list[dict[str, Any]]:
        jobs = self.jobs.brief([letter["message_id"] for letter in letters])
        return [_letter_dict(letter, jobs.get(letter["message_id"])) for letter in letters]


def _letter_dict(letter: DeadLetter, job: tuple[str, str | None, int] | None) -> dict[str, Any]:
    """A dead letter as JSON-ready data: times in ISO 8601, the job's id, status, error and attempts beside it.

    ``received`` counts the deliveries of this message; a retried job is sent a new message each time, so
    ``attempts`` (the job's own count, as its log tells them) is what says how often it ran."""
    return {
        "id": letter["id"], "queue": letter["queue"], "actor_name": letter["actor_name"], "args": letter["args"],
        "received": letter["received"], "attempts": max(job[2], letter["received"]) if job else letter["received"],
        "enqueued_at": iso(letter["enqueued_at"] / 1000), "dead_at": iso(letter["dead_at"] / 1000),
        "job_id": letter["message_id"], "job_status": job[0] if job else None,
        "job_error": job[1] if job else None,
    }
