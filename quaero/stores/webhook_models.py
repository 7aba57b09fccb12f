"""peewee models of webhook notifications: the events executions raised, and their deliveries.

A trigger on ``jobs`` writes one ``webhook_events`` row in the very statement that moves an execution (a root
job, type ``parent``) to running, completed, failed or cancelled, whatever code moved it: an event can be
neither lost by a crash nor raised twice. The sender (:mod:`quaero.engine.webhooks`) turns each event into
one ``webhook_deliveries`` row per webhook that wants it and sends those. A delivery keeps the URL only as it
may be shown (no user info, no query string); the URL itself and the signing secret are sealed
(:mod:`quaero.stores.sealing`).
"""

from __future__ import annotations

import time

import peewee as pw

#: A delivery's states: waiting for its (next) attempt, done, or given up.
DELIVERY_STATUSES = ("pending", "delivered", "failed")
#: An execution's status → the event it raises.
EVENT_OF_STATUS = {"running": "started", "completed": "completed", "failed": "failed", "cancelled": "cancelled"}


class WebhookEvent(pw.Model):
    """An execution's transition, written by the trigger, until the sender has made its deliveries."""

    id = pw.AutoField()
    job_id = pw.CharField(max_length=40)
    status = pw.CharField(max_length=20)
    created_at = pw.DoubleField(default=time.time)

    class Meta:
        table_name = "webhook_events"


class WebhookDelivery(pw.Model):
    """One event sent to one webhook: its attempts so far and how the last one went."""

    id = pw.CharField(primary_key=True, max_length=40)
    job_id = pw.CharField(max_length=40)
    event = pw.CharField(max_length=20)
    url = pw.TextField()  # as shown: scheme, host, port and path
    target = pw.TextField()  # sealed: the URL as configured (${ENV_VAR} references kept)
    secret = pw.TextField(null=True)  # sealed: the secret as configured (a value or a reference)
    body = pw.TextField()
    status = pw.CharField(max_length=20, default="pending")
    attempts = pw.IntegerField(default=0)
    last_status_code = pw.IntegerField(null=True)
    last_error = pw.TextField(null=True)
    next_attempt_at = pw.DoubleField()
    claimed_by = pw.CharField(max_length=64, null=True)
    created_at = pw.DoubleField(default=time.time)
    last_attempt_at = pw.DoubleField(null=True)
    delivered_at = pw.DoubleField(null=True)

    class Meta:
        table_name = "webhook_deliveries"
        indexes = (
            (("status", "next_attempt_at"), False),  # the sender's claim of due deliveries
            (("job_id", "created_at"), False),  # a job's deliveries, for its page
        )


_WHEN = ("NEW.type = 'parent' AND NEW.parent_id IS NULL AND NEW.status <> OLD.status "
         "AND NEW.status IN ('running', 'completed', 'failed', 'cancelled')")
SQLITE_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS jobs_webhook_events AFTER UPDATE OF status ON jobs
WHEN {_WHEN}
BEGIN
    INSERT INTO webhook_events (job_id, status, created_at) VALUES (NEW.id, NEW.status, NEW.updated_at);
END"""
POSTGRES_TRIGGER = [
    """CREATE OR REPLACE FUNCTION quaero_webhook_events() RETURNS trigger AS $$
BEGIN
    INSERT INTO webhook_events (job_id, status, created_at) VALUES (NEW.id, NEW.status, NEW.updated_at);
    RETURN NEW;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS jobs_webhook_events ON jobs",
    # The condition in the trigger itself: the function is not even called for the other jobs' changes.
    f"CREATE TRIGGER jobs_webhook_events AFTER UPDATE OF status ON jobs FOR EACH ROW WHEN ({_WHEN}) "
    "EXECUTE FUNCTION quaero_webhook_events()",
]
