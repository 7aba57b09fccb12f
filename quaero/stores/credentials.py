"""CredentialStore: cookies, headers and keys for an ``auth_id``. Values go in; they never come back out
through the API or the pages, only to the workers that need them.

The values are sealed at rest (:mod:`quaero.stores.sealing`); the ids and base URLs stay readable. Every
value saved or read is remembered by the process's redactor, so it is masked in any log line it reaches.
"""

from __future__ import annotations

import time
from typing import Any

from quaero.api.credentials import Credentials, scope_of
from quaero.errors import NotFound, QuaeroError
from quaero.stores.db import Database
from quaero.stores.events import iso
from quaero.stores.jsonutil import dumps, loads
from quaero.stores.models import Models
from quaero.stores.redaction import Redactor, process_redactor
from quaero.stores.sealing import Sealer, sealed_key_id


def sealed_key_ids(models: Models) -> set[str]:
    """The ids of the keys that sealed the stored values (what a process needs to open them)."""
    Credential = models.Credential
    return {kid for row in Credential.select(Credential.data) if (kid := sealed_key_id(row.data))}


class CredentialStore:
    """Create, look up and delete credentials."""

    def __init__(self, database: Database, models: Models, sealer: Sealer, *,
                 redactor: Redactor | None = None) -> None:
        self.database = database
        self.models = models
        self.sealer = sealer
        self.redactor = redactor or process_redactor()

    def seal_stored(self) -> int:
        """Seal the values stored in clear (by a release before sealing) or with an older key; returns how
        many rows changed. Each row is rewritten only if it is still what was read, so processes starting
        together do not undo one another."""
        Credential = self.models.Credential
        if not any(self.sealer.needs_resealing(row.data) for row in Credential.select(Credential.data)):
            return 0  # the usual start: no write transaction
        changed = 0
        with self.database.write():
            for row in Credential.select(Credential.id, Credential.data):
                if not self.sealer.needs_resealing(row.data):
                    continue
                plain = row.data if sealed_key_id(row.data) is None else self.sealer.open(row.data)
                changed += Credential.update(data=self.sealer.seal(plain)).where(
                    (Credential.id == row.id) & (Credential.data == row.data)).execute()
        return changed

    def _open(self, data: str) -> dict[str, Any]:
        plain = self.sealer.open(data) if sealed_key_id(data) is not None else data
        values = loads(plain)
        self._remember(values)
        return values

    def _remember(self, values: dict[str, Any]) -> None:
        for kind in ("cookies", "headers"):
            for value in values.get(kind, {}).values():
                if isinstance(value, str):
                    # "Bearer abc...": the token may be logged without its scheme
                    self.redactor.remember(value, value.split()[-1] if value.split() else "")

    def save(self, auth_id: str, *, base_url: str = "", cookies: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> None:
        """Create or replace the credentials of ``auth_id``."""
        if not auth_id or len(auth_id) > 200:
            raise QuaeroError("an auth id is 1 to 200 characters")
        if scope_of(base_url or "") is None:
            raise QuaeroError(f"give base_url, the http:// or https:// address of the site the credentials are "
                              f"for (such as https://intranet.example.com/): they are sent only to URLs of its "
                              f"scheme, host and port under its path (got {base_url!r})")
        for name, given in (("cookies", cookies or {}), ("headers", headers or {})):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in given.items()):
                raise QuaeroError(f"{name} must map names to text values")
        Credential = self.models.Credential
        values: dict[str, Any] = {"cookies": cookies or {}, "headers": headers or {}}
        self._remember(values)
        data = self.sealer.seal(dumps(values))
        with self.database.write():
            Credential.delete().where(Credential.id == auth_id).execute()
            Credential.insert(id=auth_id, base_url=base_url, data=data, created_at=time.time()).execute()

    def get(self, auth_id: str) -> Credentials:
        """The credentials of ``auth_id``, or :class:`NotFound`."""
        row = self.models.Credential.get_or_none(self.models.Credential.id == auth_id)
        if row is None:
            raise NotFound(f"no credentials are stored for auth_id {auth_id!r}")
        data = self._open(row.data)
        return Credentials(row.id, row.base_url, data.get("cookies", {}), data.get("headers", {}))

    def delete(self, auth_id: str) -> None:
        """Forget the credentials of ``auth_id``."""
        Credential = self.models.Credential
        with self.database.write():
            if not Credential.delete().where(Credential.id == auth_id).execute():
                raise NotFound(f"no credentials are stored for auth_id {auth_id!r}")

    def unscoped(self) -> list[str]:
        """The auth ids stored without a usable base URL (saved before one was required): never sent."""
        Credential = self.models.Credential
        return [row.id for row in Credential.select(Credential.id, Credential.base_url).order_by(Credential.id)
                if scope_of(row.base_url or "") is None]

    def listing(self) -> list[dict[str, Any]]:
        """Every auth id with the names (never the values) of what it holds."""
        items = []
        for row in self.models.Credential.select().order_by(self.models.Credential.id):
            data = self._open(row.data)
            items.append({"id": row.id, "base_url": row.base_url, "cookies": sorted(data.get("cookies", {})),
                          "headers": sorted(data.get("headers", {})), "created_at": iso(row.created_at)})
        return items
