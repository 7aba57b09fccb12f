"""Full-text index maintenance: is every stored document indexed, and only those, as they are now? Rebuild,
optimise and check the index, on SQLite and on PostgreSQL.

The index follows every write of a document by itself (see :mod:`quaero.models`), so it falls behind only
when something goes around that: a restored backup, a hand-edited database, an index emptied on purpose.

SQLite: ``documents_fts`` is an FTS5 table over ``documents`` (external content). Its shadow table
``documents_fts_docsize`` holds one row per indexed document with its token count per column, so its ids
against the documents' ids give the *missing* and the *extra* rows, and its counts against those of the
stored text tokenised again give the *stale* ones (a change that keeps every column's token count is not
seen there; :meth:`FullTextIndex.integrity_check` compares the index with the text itself and sees it).
``'rebuild'`` indexes every document again from the table, ``'optimize'`` merges the index's b-trees into
one.

PostgreSQL: the index is the generated ``tsvector`` column ``search`` with the GIN index
``documents_search``. PostgreSQL computes the column in every write of the row, so no row can be missing,
extra or stale: the counts agree by construction and are reported as such. "Rebuild" is ``REINDEX`` of
the GIN index (it rebuilds the index from the column); "optimise" moves GIN's pending list into the main
index (``gin_clean_pending_list``). The integrity check finds nothing to compare: the column is the text's.
"""

from __future__ import annotations

import re
from abc import abstractmethod

import peewee as pw

from quaero import api
from quaero.api.documents import IndexReport
from quaero.stores.db import Database
from quaero.stores.models import FTS_COLUMNS

#: The index's names, as :mod:`quaero.models` creates them.
FTS_TABLE = "documents_fts"
DOCSIZE_TABLE = "documents_fts_docsize"
PG_INDEX = "documents_search"
#: Documents tokenised at a time when looking for stale rows.
PROBE_BATCH = 500
_PROBE = "quaero_fts_probe"
_TOKENIZE = re.compile(r"""tokenize\s*=\s*('(?:[^']|'')*'|"[^"]*")""", re.IGNORECASE)


class FullTextIndex(api.FullTextIndex):
    """The full-text index of one database; :func:`full_text_index` picks the implementation."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def count_stored(self) -> int:
        """How many documents are stored."""
        return self.database.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    @abstractmethod
    def count_indexed(self) -> int:
        """How many documents the index holds."""


class SqliteFullTextIndex(FullTextIndex):
    """FTS5 over the documents table."""

    def count_indexed(self) -> int:
        return self.database.execute(f"SELECT COUNT(*) FROM {DOCSIZE_TABLE}").fetchone()[0]

    def missing(self, limit: int | None = None) -> list[int]:
        """Ids of stored documents the index does not hold."""
        return self._ids(f"SELECT d.id FROM documents d WHERE NOT EXISTS "
                         f"(SELECT 1 FROM {DOCSIZE_TABLE} s WHERE s.id = d.id) ORDER BY d.id", limit)

    def extra(self, limit: int | None = None) -> list[int]:
        """Ids the index holds for documents no longer stored."""
        return self._ids(f"SELECT s.id FROM {DOCSIZE_TABLE} s WHERE NOT EXISTS "
                         f"(SELECT 1 FROM documents d WHERE d.id = s.id) ORDER BY s.id", limit)

    def stale(self, limit: int | None = None) -> list[int]:
        """Ids of indexed documents whose stored text no longer has the token counts the index holds.

        The stored text is tokenised again, a batch at a time, into a temporary contentless FTS5 table with the
        index's own tokenizer, whose ``docsize`` rows then compare with the index's.
        """
        names = ", ".join(FTS_COLUMNS)
        columns = f"{names}, content='', tokenize={self._tokenizer()}"
        self.database.execute(f"CREATE VIRTUAL TABLE temp.{_PROBE} USING fts5({columns})")
        try:
            found: list[int] = []
            last = 0
            while limit is None or len(found) < limit:
                rows = self.database.execute(f"SELECT id, {names} FROM documents WHERE id > ? "
                                             "ORDER BY id LIMIT ?", (last, PROBE_BATCH)).fetchall()
                if not rows:
                    break
                last = rows[-1][0]
                self.database.execute(f"INSERT INTO temp.{_PROBE} ({_PROBE}) VALUES ('delete-all')")
                self.database.db.cursor().executemany(
                    f"INSERT INTO temp.{_PROBE} (rowid, {names}) VALUES (?{', ?' * len(FTS_COLUMNS)})", rows)
                found += self._ids(f"SELECT p.id FROM temp.{_PROBE}_docsize p JOIN {DOCSIZE_TABLE} s "
                                   f"ON s.id = p.id WHERE s.sz <> p.sz ORDER BY p.id", None)
            return found[:limit]
        finally:
            self.database.execute(f"DROP TABLE temp.{_PROBE}")

    def check(self, *, stale: bool = True, sample: int = 10) -> IndexReport:
        # One statement: one snapshot, so a write in between cannot make the figures disagree.
        stored, indexed, missing, extra = self.database.execute(
            f"SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM {DOCSIZE_TABLE}), "
            f"(SELECT COUNT(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM {DOCSIZE_TABLE} s WHERE s.id = d.id)), "
            f"(SELECT COUNT(*) FROM {DOCSIZE_TABLE} s WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = s.id))"
        ).fetchone()
        samples = {"missing": self.missing(sample) if missing else [], "extra": self.extra(sample) if extra else []}
        stale_ids = self.stale() if stale else None
        if stale_ids is not None:
            samples["stale"] = stale_ids[:sample]
        return IndexReport(stored, indexed, missing, extra, None if stale_ids is None else len(stale_ids), samples)

    def rebuild(self) -> None:
        self._command("rebuild")

    def optimize(self) -> None:
        self._command("optimize")

    def integrity_check(self) -> str | None:
        try:
            with self.database.write():
                # rank 1: compare with the documents' text too, not only the index's own structure.
                self.database.execute(f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rank) VALUES ('integrity-check', 1)")
        except pw.DatabaseError as exc:
            return f"the index does not match the stored documents ({exc})"
        return None

    def _command(self, command: str) -> None:
        with self.database.write():
            self.database.execute(f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}) VALUES (?)", (command,))

    def _ids(self, query: str, limit: int | None) -> list[int]:
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return [row[0] for row in self.database.execute(query).fetchall()]

    def _tokenizer(self) -> str:
        """The index's ``tokenize`` argument as it was created (a probe must tokenise the same way)."""
        row = self.database.execute("SELECT sql FROM sqlite_master WHERE name = ?", (FTS_TABLE,)).fetchone()
        match = _TOKENIZE.search(row[0] if row else "")
        return match.group(1) if match else "'unicode61'"


class PostgresFullTextIndex(FullTextIndex):
    """A generated tsvector column with a GIN index: always in step with the rows (see the module docstring)."""

    def count_indexed(self) -> int:
        return self.database.execute("SELECT COUNT(*) FROM documents WHERE search IS NOT NULL").fetchone()[0]

    def check(self, *, stale: bool = True, sample: int = 10) -> IndexReport:
        stored, indexed = self.database.execute(
            "SELECT COUNT(*), COUNT(search) FROM documents").fetchone()
        return IndexReport(stored, indexed, missing=0, extra=0, stale=0 if stale else None)

    def rebuild(self) -> None:
        self.database.execute(f"REINDEX INDEX {PG_INDEX}")

    def optimize(self) -> None:
        self.database.execute(f"SELECT gin_clean_pending_list('{PG_INDEX}'::regclass)")

    def integrity_check(self) -> str | None:
        return None  # the column is computed from the row in every write: it cannot differ from the text


def full_text_index(database: Database) -> FullTextIndex:
    """The full-text index of ``database``."""
    return SqliteFullTextIndex(database) if database.is_sqlite else PostgresFullTextIndex(database)
