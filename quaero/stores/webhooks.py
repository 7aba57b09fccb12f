"""WebhookStore: executions' events turned into deliveries, and deliveries claimed, settled and listed.

Both steps are safe with several processes on one database (``quaero serve`` and ``quaero run``, two servers on
PostgreSQL): an event is taken (and deleted) in the same transaction that writes its deliveries, and a due
delivery is claimed by one conditional ``UPDATE ... RETURNING`` that pushes its next attempt past a lease, so
no two processes send it. ``FOR UPDATE SKIP LOCKED`` lets PostgreSQL claimants pass each other; SQLite's
``BEGIN IMMEDIATE`` serialises them. A process that dies while sending leaves the row to come back when its
lease is over: a receiver may then see a delivery twice, and tells by ``X-Quaero-Delivery``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from quaero.api.settings import Secret
from quaero.errors import Conflict, NotFound
from quaero.settings import Settings, Webhook
from quaero.stores.db import Database
from quaero.stores.definitions import DefinitionWebhook
from quaero.stores.events import iso
from quaero.stores.job_reads import ID_BATCH
from quaero.stores.jobs import JobManager
from quaero.stores.jsonutil import dumps
from quaero.stores.models import Models
from quaero.stores.redaction import redact
from quaero.stores.sealing import Sealer
from quaero.stores.webhook_body import webhook_body
from quaero.stores.webhook_models import EVENT_OF_STATUS

log = logging.getLogger(__name__)
#: Events turned into deliveries per transaction.
EVENT_BATCH = 100
_COLUMNS = "id, job_id, event, url, status, attempts, last_status_code, last_error, next_attempt_at, created_at, " \
           "last_attempt_at, delivered_at"


def new_delivery_id() -> str:
    """A time-ordered id, like a job's."""
    return f"whd_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def shown_url(url: str) -> str:
    """A webhook URL as it may be shown and stored in clear: scheme, host, port and path; no user info, no
    query string (where tokens often travel), no fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path or '/'}"


def shown_webhook(hook: Webhook) -> str:
    """A webhook as the settings page lists it: its URL as :func:`shown_url` makes it, its events, and of its
    secret only the ``${ENV_VAR}`` it names, or a mask."""
    secret = hook.secret_text
    signed = "unsigned" if secret is None else f"secret {Secret(secret).shown()}"
    return f"{shown_url(hook.url)} ({', '.join(hook.events)}; {signed})"


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery claimed for one attempt: what sending it needs (sealed values still sealed)."""

    id: str
    job_id: str
    event: str
    url: str
    target: str
    secret: str | None
    body: str
    attempts: int


class WebhookStore:
    """The ``webhook_events`` and ``webhook_deliveries`` tables."""

    def __init__(self, database: Database, models: Models, jobs: JobManager, sealer: Sealer,
                 settings: Settings) -> None:
        self.database = database
        self.models = models
        self.jobs = jobs
        self.sealer = sealer
        self.settings = settings
        self._skip_locked = "" if database.is_sqlite else " FOR UPDATE SKIP LOCKED"

    # ---------------------------------------------------------------- events → deliveries
    def targets(self, root: Any, event: str) -> list[Webhook]:
        """The webhooks that want ``event`` of the execution ``root``: the settings', then its definition's."""
        found: list[Webhook] = [hook for hook in self.settings.webhooks
                                if event in hook.events and hook.applies_to(root.definition_id)]
        for index, raw in enumerate((root.data.get("definition") or {}).get("webhooks") or []):
            try:
                hook = DefinitionWebhook.model_validate(raw)
            except ValidationError as exc:  # a snapshot of an older release, say: the others still go out
                log.warning("execution %s: its definition's webhook %d is not valid any more: %s", root.id, index, exc)
                continue
            if event in hook.events:
                found.append(hook)
        return found

    def expand_events(self, *, limit: int = EVENT_BATCH) -> int:
        """Turn waiting events into deliveries (and delete them); returns how many deliveries were made."""
        if self.database.execute("SELECT 1 FROM webhook_events LIMIT 1").fetchone() is None:
            return 0  # nothing to do: no write transaction (the writer lock is shared with the job pipeline)
        made = 0
        with self.database.write():
            rows = self.database.execute(
                f"SELECT id, job_id, status, created_at FROM webhook_events ORDER BY id LIMIT ?{self._skip_locked}",
                (limit,)).fetchall()
            for _, job_id, status, created_at in rows:
                made += self._deliveries_of(job_id, status, created_at)
            ids = [row[0] for row in rows]
            for start in range(0, len(ids), ID_BATCH):
                chunk = ids[start:start + ID_BATCH]
                self.database.execute(f"DELETE FROM webhook_events WHERE id IN ({', '.join('?' * len(chunk))})",
                                      chunk)
        return made

    def _deliveries_of(self, job_id: str, status: str, created_at: float) -> int:
        root = self.jobs.find(job_id)
        event = EVENT_OF_STATUS.get(status)
        if root is None or event is None:  # deleted since
            return 0
        hooks = self.targets(root, event)
        for hook in hooks:
            delivery_id = new_delivery_id()
            body = webhook_body(self.jobs, root, event=event, status=status, occurred_at=created_at,
                                delivery_id=delivery_id, public_url=self.settings.resolved_public_url)
            secret = hook.secret_text
            self.models.WebhookDelivery.insert(
                id=delivery_id, job_id=job_id, event=event, url=shown_url(hook.url),
                target=self.sealer.seal(hook.url),
                # Sealed as configured: a reference is read from the environment at each attempt.
                secret=self.sealer.seal(secret) if secret is not None else None,
                body=dumps(body), status="pending", attempts=0, next_attempt_at=created_at,
                created_at=time.time(),
            ).execute()
        return len(hooks)

    # ---------------------------------------------------------------- sending
    def due(self, now: float | None = None) -> bool:
        """Whether a delivery waits for an attempt now (a read: cheap enough to ask every poll)."""
        stamp = time.time() if now is None else now
        return self.database.execute(
            "SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? LIMIT 1",
            (stamp,)).fetchone() is not None

    def next_due(self) -> float | None:
        """When the next pending delivery is due (epoch seconds), or ``None`` when none is pending."""
        row = self.database.execute(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'").fetchone()
        return row[0] if row and row[0] is not None else None

    def claim(self, owner: str, *, limit: int, lease: float) -> list[Claim]:
        """Claim up to ``limit`` due deliveries for one attempt each, hidden from others for ``lease`` s."""
        now = time.time()
        if limit < 1 or not self.due(now):
            return []
        with self.database.write():
            rows = self.database.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, claimed_by = ?, last_attempt_at = ?, "
                "next_attempt_at = ? WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND "
                f"next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?{self._skip_locked}) "
                "AND status = 'pending' AND next_attempt_at <= ? "
                "RETURNING id, job_id, event, url, target, secret, body, attempts",
                (owner, now, now + lease, now, limit, now)).fetchall()
        return [Claim(*row) for row in rows]

    def open(self, sealed: str) -> str:
        """A sealed URL or secret as configured."""
        return self.sealer.open(sealed)

    def settle(self, claim: Claim, owner: str, *, status: str, status_code: int | None = None,
               error: str | None = None, retry_at: float | None = None) -> bool:
        """Record how ``claim``'s attempt went: ``delivered``, ``failed``, or ``pending`` again at ``retry_at``.
        False when the claim had lapsed and another process took the delivery meanwhile."""
        now = time.time()
        row = self.database.write_one(
            "UPDATE webhook_deliveries SET status = ?, last_status_code = ?, last_error = ?, next_attempt_at = ?, "
            "delivered_at = ?, claimed_by = NULL WHERE id = ? AND claimed_by = ? AND attempts = ? RETURNING id",
            (status, status_code, redact(error)[:1000] if error else None,
             retry_at if retry_at is not None else now, now if status == "delivered" else None,
             claim.id, owner, claim.attempts))
        return row is not None

    def release(self, claim: Claim, owner: str) -> None:
        """Give back a claim that was not attempted (the process is stopping): due again at once."""
        self.database.write_one(
            "UPDATE webhook_deliveries SET attempts = attempts - 1, claimed_by = NULL, next_attempt_at = ? "
            "WHERE id = ? AND claimed_by = ? AND attempts = ? RETURNING id",
            (time.time(), claim.id, owner, claim.attempts))

    # ---------------------------------------------------------------- reading and redelivery
    def for_job(self, job_id: str, *, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """A job's deliveries, oldest first, as the API and the job page show them (no secret, no body)."""
        self.jobs.get(job_id)  # NotFound for an unknown job
        total = self.database.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE job_id = ?",
                                      (job_id,)).fetchone()[0]
        rows = self.database.execute(
            f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE job_id = ? ORDER BY created_at, id LIMIT ? OFFSET ?",
            (job_id, limit, offset)).fetchall()
        return [_delivery_dict(row) for row in rows], total

    def get(self, delivery_id: str) -> dict[str, Any]:
        """One delivery as :meth:`for_job` lists it; :class:`NotFound` when there is none."""
        row = self.database.execute(f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE id = ?",
                                    (delivery_id,)).fetchone()
        if row is None:
            raise NotFound(f"webhook delivery {delivery_id} not found")
        return _delivery_dict(row)

    def redeliver(self, job_id: str, delivery_id: str) -> dict[str, Any]:
        """Send a failed delivery again, with a fresh set of attempts; :class:`Conflict` unless it failed."""
        delivery = self.get(delivery_id)
        if delivery["job_id"] != job_id:
            raise NotFound(f"job {job_id} has no webhook delivery {delivery_id}")
        row = self.database.write_one(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, claimed_by = NULL "
            "WHERE id = ? AND status = 'failed' RETURNING id", (time.time(), delivery_id))
        if row is None:
            raise Conflict(f"webhook delivery {delivery_id} is {delivery['status']}: only a failed delivery is sent "
                           f"again")
        return self.get(delivery_id)

    def forget_jobs(self, job_ids: Sequence[str]) -> None:
        """Delete the deliveries and waiting events of deleted jobs (inside the deletion's transaction)."""
        ids = list(job_ids)
        for start in range(0, len(ids), ID_BATCH):
            chunk = ids[start:start + ID_BATCH]
            marks = ", ".join("?" * len(chunk))
            self.database.execute(f"DELETE FROM webhook_deliveries WHERE job_id IN ({marks})", chunk)
            self.database.execute(f"DELETE FROM webhook_events WHERE job_id IN ({marks})", chunk)


def _delivery_dict(row: Sequence[Any]) -> dict[str, Any]:
    (delivery_id, job_id, event, url, status, attempts, code, error, next_at, created, attempted, delivered) = row
    return {
        "id": delivery_id, "job_id": job_id, "event": event, "url": url, "status": status, "attempts": attempts,
        "last_status_code": code, "last_error": error,
        "next_attempt_at": iso(next_at) if status == "pending" else None,
        "created_at": iso(created), "last_attempt_at": iso(attempted) if attempted else None,
        "delivered_at": iso(delivered) if delivered else None,
    }
