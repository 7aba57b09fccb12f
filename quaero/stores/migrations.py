"""The migration runner for plugins' own tables: each version applied once, in order, on either backend.

Applied versions are recorded per plugin in ``plugin_migrations``. Every process runs the runner at start;
the first one in applies what is missing, the others find it applied: the writer lock serialises them on
SQLite and an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from quaero.api.database import Migration
from quaero.errors import PluginError
from quaero.stores.db import Database

_TABLE = ("CREATE TABLE IF NOT EXISTS plugin_migrations (plugin VARCHAR(200) NOT NULL, version INTEGER NOT NULL, "
          "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (plugin, version))")
_LOCK_KEY = 20261201  # any constant: only migrations take this advisory lock


def applied_versions(database: Database, plugin: str) -> list[int]:
    """The versions of a plugin's schema already applied, in order."""
    with database.schema():
        database.execute(_TABLE)
    rows = database.execute("SELECT version FROM plugin_migrations WHERE plugin = ? ORDER BY version", (plugin,))
    return [row[0] for row in rows.fetchall()]


def migrate(database: Database, plugin: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations of ``plugin`` not applied yet, in one transaction; returns their versions.

    Raises :class:`PluginError` for duplicate versions, for a database that holds a version this plugin
    does not know (it was migrated by a newer release of it), and for a statement that fails (naming the
    version; nothing of that run is kept).
    """
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise PluginError(f"plugin {plugin}: two migrations share a version ({sorted(versions)})")
    backend = "postgresql" if database.is_postgres else "sqlite"
    done: list[int] = []
    with database.schema():
        database.execute(_TABLE)
        if database.is_postgres:
            database.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
        applied = {row[0] for row in database.execute(
            "SELECT version FROM plugin_migrations WHERE plugin = ?", (plugin,)).fetchall()}
        unknown = sorted(applied - set(versions))
        if unknown and max(unknown) > max(versions, default=0):
            raise PluginError(f"plugin {plugin}: the database holds schema version {max(unknown)}, newer than "
                              f"this release of the plugin knows ({max(versions, default=0)}); install the newer "
                              f"release again or restore a backup")
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in applied:
                continue
            try:
                for statement in migration.statements(backend):
                    database.execute(statement)
            except Exception as exc:
                raise PluginError(f"plugin {plugin}: migration {migration.version} failed on {backend}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            database.execute("INSERT INTO plugin_migrations (plugin, version, description, applied_at) "
                             "VALUES (?, ?, ?, ?)", (plugin, migration.version, migration.description, time.time()))
            done.append(migration.version)
    return done
