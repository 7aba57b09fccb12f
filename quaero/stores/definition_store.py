"""DefinitionStore: job definitions kept in the database, synced from ``job-definitions/*.yaml`` at start."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from quaero.errors import Conflict, DefinitionError, NotFound
from quaero.registry import Registry
from quaero.stores.db import Database
from quaero.stores.definitions import JobDefinition, load_definition_text
from quaero.stores.events import iso
from quaero.stores.models import JobDefinitionRecord, Models

log = logging.getLogger(__name__)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def definition_source(body: str | bytes, content_type: str | None = None) -> str:
    """Definition text as YAML: JSON bodies are accepted and stored as YAML."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"the definition is not UTF-8 text (bad byte at offset {exc.start})",
                              detail=[{"path": "", "message": "not UTF-8"}]) from None
    if content_type and "json" in content_type:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DefinitionError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                                  detail=[{"path": "", "message": exc.msg, "line": exc.lineno,
                                           "column": exc.colno}]) from None
        except ValueError:  # a number of more than 4300 digits, which Python refuses to read
            raise DefinitionError("the JSON holds a number too long to read",
                                  detail=[{"path": "", "message": "a number too long to read"}]) from None
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return text


def record_dict(record: JobDefinitionRecord, definition: JobDefinition | None = None) -> dict[str, Any]:
    """A stored definition as JSON-ready data."""
    data: dict[str, Any] = {
        "id": record.id, "name": record.name, "description": record.description, "enabled": record.enabled,
        "schedule": record.schedule, "origin": record.origin, "source": record.source,
        "created_at": iso(record.created_at), "updated_at": iso(record.updated_at),
    }
    if definition is not None:
        data["definition"] = definition.to_dict()
    return data


class DefinitionStore:
    """Create, read, update, delete and validate job definitions."""

    def __init__(self, database: Database, models: Models, registry: Registry) -> None:
        self.database = database
        self.models = models
        self.registry = registry

    def parse(self, source: str, *, origin: str = "definition", default_id: str | None = None) -> JobDefinition:
        """Validate definition text without storing it."""
        return load_definition_text(source, self.registry, origin=origin, default_id=default_id)

    def load_directory(self, directory: Path) -> tuple[list[str], list[str]]:
        """Sync the ``*.yaml`` / ``*.yml`` files that changed since their last import; returns (imported ids,
        error messages).

        Nothing saved through the API is lost: a file whose content is as it was last imported is left
        alone (the stored definition may have been edited, disabled or deleted since); a changed file
        replaces its stored definition unless that was edited since the file's last import, in which case
        the edit stays and a warning names the file. A definition disabled through the API stays disabled.
        A bad file is reported, not fatal.
        """
        imported: list[str] = []
        errors: list[str] = []
        if not directory.is_dir():
            return imported, errors
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            try:
                definition_id = self._sync_file(path)
                if definition_id is not None:
                    imported.append(definition_id)
            except (DefinitionError, OSError, UnicodeDecodeError) as exc:
                errors.append(str(exc))
                log.error("job definition %s skipped: %s", path, exc)
        return imported, errors

    def _sync_file(self, path: Path) -> str | None:
        """Import one definition file if it changed since its last import; the id it imported, if any."""
        File, Record = self.models.DefinitionFile, self.models.JobDefinitionRecord
        source = path.read_text(encoding="utf-8")
        digest = _sha256(source)
        known = File.get_or_none(File.path == str(path))
        if known is not None and known.sha256 == digest:
            return None
        definition = self.parse(source, origin=str(path), default_id=path.stem)
        origin = f"file:{path}"
        with self.database.write():
            record = Record.get_or_none(Record.id == definition.id)
            # Edited through the API since this file was imported (or made there before the file came)?
            edited = record is not None and (_sha256(record.source) != known.sha256 if known is not None
                                             else record.origin != origin)
            if edited:
                log.warning("job definition file %s changed, but job definition %r was edited through the API "
                            "since the file was last imported: the edit is kept and the file is not imported "
                            "(delete the definition, or save the file's content through the API, to take it)",
                            path, definition.id)
            else:
                self._save(definition, source, origin=origin, replace=True,
                           enabled=self._enabled_after_import(record, definition))
            values = dict(definition_id=definition.id, sha256=digest, imported_at=time.time())
            if known is None:
                File.insert(path=str(path), **values).execute()
            else:
                File.update(**values).where(File.path == str(path)).execute()
        return None if edited else definition.id

    def _enabled_after_import(self, record: JobDefinitionRecord | None, definition: JobDefinition) -> bool:
        """The file's ``enabled``, unless the stored one was switched through the API since the last import."""
        if record is None:
            return definition.enabled
        try:  # an unedited record's source is the file's previous content
            before = self.parse(record.source, origin=f"job definition {record.id}", default_id=record.id)
        except DefinitionError:
            return definition.enabled
        return definition.enabled if record.enabled == before.enabled else record.enabled

    def _save(self, definition: JobDefinition, source: str, *, origin: str, replace: bool,
              enabled: bool | None = None) -> JobDefinitionRecord:
        Record = self.models.JobDefinitionRecord
        stamp = time.time()
        values = dict(name=definition.name, description=definition.description, source=source,
                      enabled=definition.enabled if enabled is None else enabled, schedule=definition.schedule,
                      updated_at=stamp)
        with self.database.write():
            existing = Record.get_or_none(Record.id == definition.id)
            if existing is None:
                Record.insert(id=definition.id, origin=origin, created_at=stamp, **values).execute()
            elif not replace:
                raise Conflict(f"a job definition with id {definition.id!r} already exists; update it with PUT")
            else:
                Record.update(origin=origin, **values).where(Record.id == definition.id).execute()
        return Record.get(Record.id == definition.id)

    def create(self, source: str) -> tuple[JobDefinitionRecord, JobDefinition]:
        """Store a new definition; :class:`Conflict` if its id is taken."""
        definition = self.parse(source)
        return self._save(definition, source, origin="api", replace=False), definition

    def update(self, definition_id: str, source: str) -> tuple[JobDefinitionRecord, JobDefinition]:
        """Replace a stored definition; the text's id, if any, must match."""
        self.record(definition_id)
        definition = self.parse(source, default_id=definition_id)
        if definition.id != definition_id:
            raise DefinitionError(f"the definition's id {definition.id!r} does not match {definition_id!r}",
                                  detail=[{"path": "id", "message": "id does not match the URL"}])
        return self._save(definition, source, origin="api", replace=True), definition

    def set_enabled(self, definition_id: str, enabled: bool) -> JobDefinitionRecord:
        """Enable or disable a definition (and its schedule)."""
        Record = self.models.JobDefinitionRecord
        self.record(definition_id)
        with self.database.write():
            Record.update(enabled=enabled, updated_at=time.time()).where(Record.id == definition_id).execute()
        return self.record(definition_id)

    def delete(self, definition_id: str) -> None:
        """Remove a definition (jobs it already produced stay)."""
        Record = self.models.JobDefinitionRecord
        self.record(definition_id)
        with self.database.write():
            Record.delete().where(Record.id == definition_id).execute()

    def record(self, definition_id: str) -> JobDefinitionRecord:
        """The stored row, or :class:`NotFound`."""
        Record = self.models.JobDefinitionRecord
        record = Record.get_or_none(Record.id == definition_id)
        if record is None:
            raise NotFound(f"job definition {definition_id!r} not found")
        return record

    def exists(self, definition_id: str) -> bool:
        """Whether a definition with this id is stored (a quick crawl's, or a deleted one's, is not)."""
        Record = self.models.JobDefinitionRecord
        return Record.select().where(Record.id == definition_id).exists()

    def get(self, definition_id: str) -> tuple[JobDefinitionRecord, JobDefinition]:
        """The stored row and its validated definition (``enabled`` as stored)."""
        record = self.record(definition_id)
        return record, self.definition_of(record)

    def definition_of(self, record: JobDefinitionRecord) -> JobDefinition:
        """A stored row's validated definition (``enabled`` as stored)."""
        definition = self.parse(record.source, origin=f"job definition {record.id}", default_id=record.id)
        return definition.model_copy(update={"enabled": record.enabled})

    def list(self) -> list[JobDefinitionRecord]:
        """Every stored definition, by id."""
        Record = self.models.JobDefinitionRecord
        return list(Record.select().order_by(Record.id))
