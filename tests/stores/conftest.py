"""One store test suite run against every backend: a real SQLite file in tmp_path and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quaero.registry import load_plugins
from quaero.stores.db import Database
from quaero.stores.definition_store import DefinitionStore
from quaero.stores.events import EventBus
from quaero.stores.jobs import JobManager
from quaero.stores.models import Models, bind_models


class Stores:
    """The stores over one database, and the database itself for setting timestamps by hand."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.models: Models = bind_models(database.db)
        self.jobs = JobManager(database, self.models, EventBus())
        registry = load_plugins(plugin_modules=["quaero.testing.actions"])
        self.definitions = DefinitionStore(database, self.models, registry)

    def set_finished(self, job_id: str, stamp: float) -> None:
        """Pretend a job finished at ``stamp``."""
        with self.database.write():
            self.database.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (stamp, job_id))


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path) -> Iterator[Stores]:
    url = (f"sqlite:///{tmp_path / 'data.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    database = Database(url)
    try:
        yield Stores(database)
    finally:
        database.close()
