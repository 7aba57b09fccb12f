"""What the agent keeps in the database: which results exist (so re-runs skip them), and each step's tokens.

- ``agent_results``: one row per document and operation key (``keyword_extraction``, ``summarization`` or
  ``prompt:<result_key>``): the fingerprint of how it was made (operation, provider, model, prompt,
  parameters) and the content hash of the document it was made from. ``only_missing`` skips a document
  whose row has the same fingerprint and content hash.
- ``agent_steps`` and ``agent_reservations``: a step's token accounting. A call reserves its estimate
  before it is sent (refused when the budget cannot hold it with what is used and reserved) and settles
  to what the provider reported after, in transactions that serialise on the step's row, so concurrent
  jobs in any number of processes cannot overspend. A reservation is a lease: one whose process died
  before settling it expires (after the call's timeout and a margin) instead of holding budget for good.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from quaero.api import Migration, PluginDatabase

_TABLES = [
    """CREATE TABLE agent_results (
        document_id INTEGER NOT NULL, operation VARCHAR(100) NOT NULL, fingerprint VARCHAR(64) NOT NULL,
        content_hash VARCHAR(64) NOT NULL, step_id VARCHAR(40) NOT NULL, prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL, made_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (document_id, operation))""",
    "CREATE INDEX agent_results_step ON agent_results (step_id)",
    """CREATE TABLE agent_steps (
        step_id VARCHAR(40) PRIMARY KEY, budget INTEGER, used INTEGER NOT NULL, calls INTEGER NOT NULL,
        refused INTEGER NOT NULL)""",
    """CREATE TABLE agent_reservations (
        id {serial}, step_id VARCHAR(40) NOT NULL, tokens INTEGER NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX agent_reservations_step ON agent_reservations (step_id, expires_at)",
]
# The backends differ only in how an id counts up.
MIGRATIONS = [Migration(
    1, description="results by document and fingerprint; token accounting per step",
    sqlite=[statement.replace("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT") for statement in _TABLES],
    postgresql=[statement.replace("{serial}", "SERIAL PRIMARY KEY") for statement in _TABLES])]


@dataclass(frozen=True)
class StepTokens:
    """A step's accounting: its budget, tokens used by every call made (failed ones too), calls made and
    calls the budget refused, tokens reserved by calls under way; and the prompt and completion tokens of
    the results it stored."""

    budget: int | None
    used: int
    calls: int
    refused: int
    reserved: int
    prompt_tokens: int
    completion_tokens: int
    results: int


class AgentBooks:
    """The agent's tables."""

    def __init__(self, database: PluginDatabase) -> None:
        self.database = database

    # ------------------------------------------------------------------ results
    def done(self, operation: str, fingerprint: str) -> dict[int, str]:
        """Content hash by document id of every result made with ``fingerprint`` for ``operation``."""
        rows = self.database.execute("SELECT document_id, content_hash FROM agent_results WHERE operation = ? "
                                     "AND fingerprint = ?", (operation, fingerprint)).fetchall()
        return {row[0]: row[1] for row in rows}

    def is_done(self, document_id: int, operation: str, fingerprint: str, content_hash: str) -> bool:
        """Whether this document already has this result, made from the content it has now."""
        row = self.database.execute("SELECT 1 FROM agent_results WHERE document_id = ? AND operation = ? "
                                    "AND fingerprint = ? AND content_hash = ?",
                                    (document_id, operation, fingerprint, content_hash)).fetchone()
        return row is not None

    def record(self, document_id: int, operation: str, fingerprint: str, content_hash: str, step_id: str,
               prompt_tokens: int, completion_tokens: int) -> None:
        """Remember that a document's result was made (inside the transaction that stores it)."""
        self.database.execute(
            "INSERT INTO agent_results (document_id, operation, fingerprint, content_hash, step_id, prompt_tokens, "
            "completion_tokens, made_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (document_id, operation) DO "
            "UPDATE SET fingerprint = excluded.fingerprint, content_hash = excluded.content_hash, "
            "step_id = excluded.step_id, prompt_tokens = excluded.prompt_tokens, "
            "completion_tokens = excluded.completion_tokens, made_at = excluded.made_at",
            (document_id, operation, fingerprint, content_hash, step_id, prompt_tokens, completion_tokens,
             time.time()))

    def forget_documents(self, document_ids: list[int]) -> None:
        """Drop the rows of deleted documents (inside the deleting transaction)."""
        for start in range(0, len(document_ids), 500):
            chunk = document_ids[start:start + 500]
            self.database.execute(f"DELETE FROM agent_results WHERE document_id IN ({', '.join('?' * len(chunk))})",
                                  chunk)

    # ------------------------------------------------------------------ tokens
    def open_step(self, step_id: str, budget: int | None) -> None:
        """Start a step's accounting (idempotent: a redelivered start keeps what was counted)."""
        with self.database.transaction():
            self.database.execute("INSERT INTO agent_steps (step_id, budget, used, calls, refused) "
                                  "VALUES (?, ?, 0, 0, 0) ON CONFLICT (step_id) DO NOTHING", (step_id, budget))

    def reserve(self, step_id: str, tokens: int, *, lease: float) -> int | None:
        """Set ``tokens`` aside for one call, for at most ``lease`` seconds; returns the reservation, or
        ``None`` (nothing reserved) when the budget cannot hold it with what is used and reserved."""
        database = self.database
        lock = " FOR UPDATE" if database.is_postgres else ""  # SQLite's write transaction is the lock
        with database.transaction():
            row = database.execute(f"SELECT budget, used FROM agent_steps WHERE step_id = ?{lock}",
                                   (step_id,)).fetchone()
            if row is None:
                return None
            budget, used = row
            now = time.time()
            database.execute("DELETE FROM agent_reservations WHERE step_id = ? AND expires_at < ?", (step_id, now))
            held = database.execute("SELECT COALESCE(SUM(tokens), 0) FROM agent_reservations WHERE step_id = ?",
                                    (step_id,)).fetchone()[0]
            if budget is not None and used + held + tokens > budget:
                database.execute("UPDATE agent_steps SET refused = refused + 1 WHERE step_id = ?", (step_id,))
                return None
            database.execute("UPDATE agent_steps SET calls = calls + 1 WHERE step_id = ?", (step_id,))
            return int(database.execute("INSERT INTO agent_reservations (step_id, tokens, expires_at) "
                                        "VALUES (?, ?, ?) RETURNING id", (step_id, tokens, now + lease)).fetchone()[0])

    def settle(self, step_id: str, reservation: int, used: int) -> None:
        """Replace a call's reservation with the tokens it used."""
        with self.database.transaction():
            self.database.execute("DELETE FROM agent_reservations WHERE id = ?", (reservation,))
            self.database.execute("UPDATE agent_steps SET used = used + ? WHERE step_id = ?", (used, step_id))

    def tokens(self, step_id: str) -> StepTokens | None:
        """A step's accounting, or ``None`` for a step that never opened it."""
        row = self.database.execute("SELECT budget, used, calls, refused FROM agent_steps WHERE step_id = ?",
                                    (step_id,)).fetchone()
        if row is None:
            return None
        reserved = self.database.execute("SELECT COALESCE(SUM(tokens), 0) FROM agent_reservations WHERE step_id = ? "
                                         "AND expires_at >= ?", (step_id, time.time())).fetchone()[0]
        made = self.database.execute("SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                                     "COUNT(*) FROM agent_results WHERE step_id = ?", (step_id,)).fetchone()
        budget, used, calls, refused = row
        prompt_tokens, completion_tokens, results = made
        return StepTokens(budget, used, calls, refused, reserved, prompt_tokens, completion_tokens, results)

    def forget_steps(self, job_ids: list[str]) -> None:
        """Drop the accounting of deleted steps."""
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            self.database.execute(f"DELETE FROM agent_steps WHERE step_id IN ({marks})", chunk)
            self.database.execute(f"DELETE FROM agent_reservations WHERE step_id IN ({marks})", chunk)
