"""peewee models. :func:`bind_models` makes a fresh set bound to one database, so nothing is global."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import peewee as pw

from quaero.stores import vectors
from quaero.stores.account_models import ApiToken, LoginFailure, Session, User
from quaero.stores.db import SCHEMA_LOCK
from quaero.stores.jsonutil import loads
from quaero.stores.webhook_models import POSTGRES_TRIGGER as _POSTGRES_WEBHOOK_TRIGGER
from quaero.stores.webhook_models import SQLITE_TRIGGER as _SQLITE_WEBHOOK_TRIGGER
from quaero.stores.webhook_models import WebhookDelivery, WebhookEvent

JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


def now() -> float:
    """Timestamps are UTC epoch seconds: cheap to store, compare and index."""
    return time.time()


class Job(pw.Model):
    """One unit of work: an execution's root (type ``parent``), a step's parent (``step``) or a child task."""

    id = pw.CharField(primary_key=True, max_length=40)
    parent_id = pw.CharField(null=True, max_length=40)
    root_id = pw.CharField(null=True, max_length=40, index=True)
    definition_id = pw.CharField(null=True, max_length=200)
    discovered_by = pw.CharField(null=True, max_length=40)
    type = pw.CharField(max_length=100)
    name = pw.TextField()
    phase = pw.CharField(max_length=20, default="execution")
    status = pw.CharField(max_length=20, default="pending")
    # The status before the last transition: lets one UPDATE ... RETURNING report what it changed.
    previous_status = pw.CharField(max_length=20, null=True)
    error_message = pw.TextField(null=True)
    progress_current = pw.IntegerField(default=0)
    progress_total = pw.IntegerField(default=0)
    payload = pw.TextField(default="{}")
    depth = pw.IntegerField(default=0)
    attempts = pw.IntegerField(default=0)
    # Bumped when the job's message is sent again because it looked lost; a message carries the generation
    # it was sent for (``options["generation"]``, 0 when absent) and runs the job only while it matches, so
    # that a message that was not lost after all does nothing.
    generation = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    # Counts of direct children by status, kept in the same transaction as every child transition, so the
    # monitor reads one row instead of counting thousands.
    count_pending = pw.IntegerField(default=0)
    count_running = pw.IntegerField(default=0)
    count_completed = pw.IntegerField(default=0)
    count_failed = pw.IntegerField(default=0)
    count_cancelled = pw.IntegerField(default=0)
    result_count = pw.IntegerField(default=0)
    # What a finished job came to, beyond its status: ``saved``, ``unchanged``, ``skipped:<reason>`` or
    # ``failed[:<reason>]`` (quaero.api.outcomes); None for a job that reported none (a plain "completed").
    outcome = pw.CharField(max_length=80, null=True)
    # Why a running job is not working right now (waiting for a politeness slot, say); None while it works.
    waiting = pw.CharField(max_length=200, null=True)
    created_at = pw.DoubleField(default=now)
    updated_at = pw.DoubleField(default=now)
    started_at = pw.DoubleField(null=True)
    finished_at = pw.DoubleField(null=True)

    @property
    def data(self) -> dict:
        """The decoded payload."""
        cached = self.__dict__.get("_data")
        if cached is None:
            cached = self.__dict__["_data"] = loads(self.payload)
        return cached

    @property
    def config(self) -> dict:
        """The job's own configuration (a child's work item, a step's options)."""
        return self.data.get("config", {})

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    class Meta:
        table_name = "jobs"
        # Lists are ordered by id (time-ordered and unique, so also a stable paging cursor): each filter the
        # API offers has an index ending in id, so a page of 100,000 jobs is read in index order, not sorted.
        indexes = (
            (("parent_id", "status"), False),  # child counts by status, cancelling a subtree
            (("parent_id", "id"), False),
            (("status", "type"), False),  # the monitor's running parents, the metrics' jobs by status and type
            (("status", "id"), False),
            (("type", "id"), False),
            (("definition_id", "id"), False),
            (("parent_id", "outcome"), False),  # a step's children by outcome: its counts, the outcome filter
        )


# Indexes of earlier versions that a later one replaced: dropped at start so that writes stop paying for them.
_REPLACED_INDEXES = ("job_definition_id_created_at", "job_created_at")
# Columns later versions added to tables that exist already: (table, column, definition).
_ADDED_COLUMNS = (
    ("jobs", "generation", "INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "outcome", "VARCHAR(80)"),
    ("jobs", "waiting", "VARCHAR(200)"),
)


def _add_columns(database: pw.Database) -> None:
    """Add the columns an existing table lacks (before the indexes on them are made)."""
    for table, column, definition in _ADDED_COLUMNS:
        if database.table_exists(table) and column not in {c.name for c in database.get_columns(table)}:
            database.execute_sql(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


class JobLog(pw.Model):
    """One line of a job's log."""

    id = pw.AutoField()
    job_id = pw.CharField(max_length=40)
    level = pw.CharField(max_length=10)
    message = pw.TextField()
    timestamp = pw.DoubleField(default=now)

    class Meta:
        table_name = "job_logs"
        indexes = ((("job_id", "id"), False),)


class JobDefinitionRecord(pw.Model):
    """A stored job definition: its YAML source is the truth, the other columns are for listing."""

    id = pw.CharField(primary_key=True, max_length=200)
    name = pw.TextField()
    description = pw.TextField(default="")
    source = pw.TextField()
    origin = pw.TextField(default="api")
    enabled = pw.BooleanField(default=True)
    schedule = pw.TextField(null=True)
    created_at = pw.DoubleField(default=now)
    updated_at = pw.DoubleField(default=now)

    class Meta:
        table_name = "job_definitions"


class DefinitionFile(pw.Model):
    """A definition file as it was when last imported: its content's hash tells a changed file apart from an
    unchanged one, and the stored definition's hash an edit made through the API since."""

    path = pw.TextField(primary_key=True)
    definition_id = pw.CharField(max_length=200)
    sha256 = pw.CharField(max_length=64)
    imported_at = pw.DoubleField(default=now)

    class Meta:
        table_name = "definition_files"


class Document(pw.Model):
    """One item of the knowledge base."""

    id = pw.AutoField()
    source_type = pw.CharField(max_length=50)
    source_ref = pw.TextField()
    title = pw.TextField(default="")
    markdown = pw.TextField(default="")
    html = pw.TextField(null=True)
    metadata = pw.TextField(default="{}")
    tags = pw.TextField(default="[]")
    keywords = pw.TextField(default="[]")
    summary = pw.TextField(default="")
    content_hash = pw.CharField(max_length=64, default="")
    job_id = pw.CharField(null=True, max_length=40)
    created_at = pw.DoubleField(default=now)
    updated_at = pw.DoubleField(default=now)

    class Meta:
        table_name = "documents"
        indexes = (
            (("source_type", "source_ref"), True),
            (("updated_at",), False),
            (("job_id",), False),
        )


class Credential(pw.Model):
    """Cookies, headers or keys for an ``auth_id``; values are never sent back out."""

    id = pw.CharField(primary_key=True, max_length=200)
    base_url = pw.TextField(default="")
    data = pw.TextField(default="{}")
    created_at = pw.DoubleField(default=now)

    class Meta:
        table_name = "credentials"


@dataclass(frozen=True)
class Models:
    """The model classes bound to one database."""

    Job: type[Job]
    JobLog: type[JobLog]
    JobDefinitionRecord: type[JobDefinitionRecord]
    Document: type[Document]
    Credential: type[Credential]
    User: type[User]
    ApiToken: type[ApiToken]
    Session: type[Session]
    LoginFailure: type[LoginFailure]
    DefinitionFile: type[DefinitionFile]
    WebhookEvent: type[WebhookEvent]
    WebhookDelivery: type[WebhookDelivery]

    def all(self) -> list[type[pw.Model]]:
        return [self.Job, self.JobLog, self.JobDefinitionRecord, self.Document, self.Credential, self.User,
                self.ApiToken, self.Session, self.LoginFailure, self.DefinitionFile, self.WebhookEvent,
                self.WebhookDelivery]


def _count_change(status: str) -> str:
    return (f"count_{status} = count_{status} + CASE WHEN NEW.status = '{status}' THEN 1 ELSE 0 END "
            f"- CASE WHEN OLD.status = '{status}' THEN 1 ELSE 0 END")


# A child's status change moves it between its parent's per-status counts in the same statement, so a
# transition is one UPDATE, atomic on its own, whatever changes the status.
_COUNT_CHANGES = ", ".join(_count_change(status) for status in JOB_STATUSES)
_SQLITE_TRIGGER = f"""
CREATE TRIGGER IF NOT EXISTS jobs_count_children AFTER UPDATE OF status ON jobs
WHEN NEW.parent_id IS NOT NULL AND NEW.status <> OLD.status
BEGIN
    UPDATE jobs SET {_COUNT_CHANGES} WHERE id = NEW.parent_id;
END"""
_POSTGRES_TRIGGER = [
    f"""CREATE OR REPLACE FUNCTION quaero_count_children() RETURNS trigger AS $$
BEGIN
    IF NEW.parent_id IS NOT NULL AND NEW.status <> OLD.status THEN
        UPDATE jobs SET {_COUNT_CHANGES} WHERE id = NEW.parent_id;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS jobs_count_children ON jobs",
    "CREATE TRIGGER jobs_count_children AFTER UPDATE OF status ON jobs FOR EACH ROW "
    "EXECUTE FUNCTION quaero_count_children()",
]


# The full-text index follows every write to documents in the same statement (triggers on SQLite, a
# generated column on PostgreSQL), so it can never fall behind what is stored. It holds the title, the
# body, and what enrichment adds (keywords, as their JSON list, and the summary); the title weighs more.
FTS_COLUMNS = ("title", "markdown", "keywords", "summary")
_COLUMNS = ", ".join(FTS_COLUMNS)
_NEW = ", ".join(f"new.{name}" for name in FTS_COLUMNS)
_OLD = ", ".join(f"old.{name}" for name in FTS_COLUMNS)
_SQLITE_FTS_NAMES = ["documents_fts_insert", "documents_fts_delete", "documents_fts_update"]
_SQLITE_FTS = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5({_COLUMNS}, content='documents', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    f"""CREATE TRIGGER IF NOT EXISTS documents_fts_insert AFTER INSERT ON documents BEGIN
        INSERT INTO documents_fts (rowid, {_COLUMNS}) VALUES (new.id, {_NEW});
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS documents_fts_delete AFTER DELETE ON documents BEGIN
        INSERT INTO documents_fts (documents_fts, rowid, {_COLUMNS}) VALUES ('delete', old.id, {_OLD});
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS documents_fts_update AFTER UPDATE OF {_COLUMNS} ON documents BEGIN
        INSERT INTO documents_fts (documents_fts, rowid, {_COLUMNS}) VALUES ('delete', old.id, {_OLD});
        INSERT INTO documents_fts (rowid, {_COLUMNS}) VALUES (new.id, {_NEW});
    END""",
]
# Each document's tags, one row per tag, kept by triggers beside the JSON list the row holds: tag filters
# and tag counts read this index instead of every document row (and its body). ``documents_filter``
# holds every column a search filter looks at, by id: checking a full-text match against the filter is
# one lookup in this small index instead of reading the document's row past its body.
_SQLITE_DOCUMENT_INDEXES = [
    "CREATE INDEX IF NOT EXISTS documents_filter ON documents (id, updated_at, source_type, job_id)",
    "CREATE TABLE IF NOT EXISTS document_tags (tag TEXT NOT NULL, document_id INTEGER NOT NULL, "
    "PRIMARY KEY (tag, document_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS document_tags_document ON document_tags (document_id)",
    """CREATE TRIGGER IF NOT EXISTS document_tags_insert AFTER INSERT ON documents BEGIN
        INSERT OR IGNORE INTO document_tags (tag, document_id) SELECT value, new.id FROM json_each(new.tags);
    END""",
    """CREATE TRIGGER IF NOT EXISTS document_tags_update AFTER UPDATE OF tags ON documents BEGIN
        DELETE FROM document_tags WHERE document_id = old.id;
        INSERT OR IGNORE INTO document_tags (tag, document_id) SELECT value, new.id FROM json_each(new.tags);
    END""",
    """CREATE TRIGGER IF NOT EXISTS document_tags_delete AFTER DELETE ON documents BEGIN
        DELETE FROM document_tags WHERE document_id = old.id;
    END""",
]
_POSTGRES_TAGS = ["CREATE INDEX IF NOT EXISTS documents_tags ON documents USING GIN ((tags::jsonb))"]
# Weights: A the title, B the body, C the keywords, D the summary (search.py gives each its factor).
_POSTGRES_FTS = [
    "ALTER TABLE documents ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(markdown, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(keywords, '')), 'C') || "
    "setweight(to_tsvector('english', coalesce(summary, '')), 'D')) STORED",
    "CREATE INDEX IF NOT EXISTS documents_search ON documents USING GIN (search)",
]
# The generated column of releases that indexed only the title and the body.
_POSTGRES_OLD_SEARCH = """SELECT 1 FROM pg_attribute a
JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'documents'::regclass AND a.attname = 'search'
AND strpos(pg_get_expr(d.adbin, d.adrelid), 'keywords') = 0"""


def _install_full_text(database: pw.Database) -> None:
    if isinstance(database, pw.PostgresqlDatabase):
        if database.execute_sql(_POSTGRES_OLD_SEARCH).fetchone():  # its index goes with it
            database.execute_sql("ALTER TABLE documents DROP COLUMN search")
        for statement in [*_POSTGRES_FTS, *_POSTGRES_TAGS]:
            database.execute_sql(statement)
        return
    tags_existed = database.execute_sql(
        "SELECT 1 FROM sqlite_master WHERE name = 'document_tags'").fetchone() is not None
    for statement in _SQLITE_DOCUMENT_INDEXES:
        database.execute_sql(statement)
    if not tags_existed:  # documents stored before the tag index existed
        database.execute_sql("INSERT OR IGNORE INTO document_tags (tag, document_id) "
                             "SELECT j.value, d.id FROM documents AS d, json_each(d.tags) AS j")
    existing = database.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'documents_fts'").fetchone()
    existed = existing is not None and "keywords" in existing[0]
    if existing is not None and not existed:  # an index of the title and body only: made again below
        for trigger in _SQLITE_FTS_NAMES:
            database.execute_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        database.execute_sql("DROP TABLE documents_fts")
    for statement in _SQLITE_FTS:
        database.execute_sql(statement)
    if not existed:  # documents stored before the index existed get indexed now
        database.execute_sql("INSERT INTO documents_fts (documents_fts) VALUES ('rebuild')")


def bind_models(database: pw.Database) -> Models:
    """Subclass every model for ``database``, create the tables that are missing, install the trigger."""
    bound = {}
    for model in (Job, JobLog, JobDefinitionRecord, Document, Credential, User, ApiToken, Session, LoginFailure,
                  DefinitionFile, WebhookEvent, WebhookDelivery):
        meta = type("Meta", (), {"database": database, "table_name": model._meta.table_name})
        bound[model.__name__] = type(model.__name__, (model,), {"Meta": meta, "__doc__": model.__doc__})
    models = Models(**bound)
    postgres = isinstance(database, pw.PostgresqlDatabase)
    with database.atomic():
        digest = ""
        if postgres:
            database.execute_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")  # workers start together
            # The schema this release makes, as a digest: when the database holds it already, nothing is
            # run. Even an IF NOT EXISTS statement locks its table (ALTER TABLE and CREATE TRIGGER
            # exclusively), and a server starting beside workers that write then deadlocked with them.
            digest = _schema_digest(database, models)
            if _schema_recorded(database) == digest:
                return models
        _add_columns(database)
        database.create_tables(models.all(), safe=True)  # and the indexes an existing table lacks
        for name in _REPLACED_INDEXES:
            database.execute_sql(f"DROP INDEX IF EXISTS {name}")
        if isinstance(database, pw.PostgresqlDatabase):
            for statement in [*_POSTGRES_TRIGGER, *_POSTGRES_WEBHOOK_TRIGGER]:
                database.execute_sql(statement)
        else:
            database.execute_sql(_SQLITE_TRIGGER)
            database.execute_sql(_SQLITE_WEBHOOK_TRIGGER)
        _install_full_text(database)
        vectors.install(database)
        if postgres:
            database.execute_sql("CREATE TABLE IF NOT EXISTS quaero_schema (id INTEGER PRIMARY KEY, "
                                 "digest TEXT NOT NULL)")
            database.execute_sql("INSERT INTO quaero_schema (id, digest) VALUES (1, %s) ON CONFLICT (id) DO UPDATE "
                                 "SET digest = excluded.digest", (digest,))
    return models


def _schema_digest(database: pw.Database, models: Models) -> str:
    """A hash of every statement :func:`bind_models` runs on PostgreSQL."""
    statements: list[str] = []
    for model in models.all():
        schema: Any = model._schema  # type: ignore[attr-defined]  # peewee's SchemaManager, untyped
        for query in [schema._create_table(safe=True), *schema._create_indexes(safe=True)]:
            statements.append(database.get_sql_context().sql(query).query()[0])
    statements += [f"{table}.{column} {definition}" for table, column, definition in _ADDED_COLUMNS]
    statements += [*_REPLACED_INDEXES, *_POSTGRES_TRIGGER, *_POSTGRES_WEBHOOK_TRIGGER, *_POSTGRES_FTS,
                   *_POSTGRES_TAGS, _POSTGRES_OLD_SEARCH, *vectors.POSTGRES_SCHEMA]
    return hashlib.sha256("\n;\n".join(statements).encode("utf-8")).hexdigest()


def _schema_recorded(database: pw.Database) -> str | None:
    """The digest of the schema the database was last made with (``None``: never recorded)."""
    if database.execute_sql("SELECT to_regclass('quaero_schema')").fetchone()[0] is None:
        return None
    row = database.execute_sql("SELECT digest FROM quaero_schema WHERE id = 1").fetchone()
    return row[0] if row else None
