"""The settings in effect as the settings page, ``GET /api/settings`` and ``quaero settings`` show them.

Every field of :class:`~quaero.settings.Settings` is listed (a new setting shows up by itself) with the value
in effect (a derived default, such as the SQLite file actually used, rather than "not set") and where it came
from: the default, a file, an environment variable or a flag. No secret is shown: passwords in URLs are
masked, a secret setting says only whether it is set, and a key that looks secret in a nested value
(``token``, ``secret``, ``password``, ``key``...) is masked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from quaero.api.settings import MASK, Secret
from quaero.runtime import Runtime
from quaero.settings import SECRET_SETTINGS, Settings
from quaero.stores.redaction import mask_url
from quaero.stores.webhooks import shown_webhook

#: A nested key whose value is a secret (a webhook's ``secret``, a plugin's ``api_key``, ...).
SECRET_KEY_NAME = re.compile(r"secret|token|passw|api_?key|private|credential|authorization|cookie", re.I)


def masked(value: Any, *, secret: bool = False) -> Any:
    """``value`` as JSON-ready data that may be shown: URLs without passwords, secrets masked."""
    if isinstance(value, Secret):
        return value.shown()
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if secret:
        return MASK if value not in (None, "", [], {}) else value
    if isinstance(value, dict):
        return {str(key): masked(item, secret=bool(SECRET_KEY_NAME.search(str(key)))) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [masked(item) for item in value]
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def effective(settings: Settings, name: str) -> Any:
    """The value in effect: a ``resolved_<name>`` property when the class derives one (the default database
    file, one worker process per core, ...), else the field's own value."""
    resolved = getattr(type(settings), f"resolved_{name}", None)
    return getattr(settings, name) if not isinstance(resolved, property) else getattr(settings, f"resolved_{name}")


def settings_table(settings: Settings, *, sealed_by: str | None = None) -> dict[str, dict[str, Any]]:
    """``{name: {value, source, description}}`` for every setting, in the class's order, nothing secret in it.

    ``sealed_by``: what to show for ``secret_key`` (which key seals the credentials, by its public id).
    """
    sources = settings.sources
    table = {}
    for name, field in type(settings).model_fields.items():
        raw = getattr(settings, name)
        if name == "webhooks":  # where each one goes and what it is sent; never its secret or query
            value: Any = [shown_webhook(hook) for hook in raw]
        elif name in SECRET_SETTINGS:
            value = "set" if raw else "not set"
            if name == "secret_key" and sealed_by:
                value = sealed_by
        elif not field.repr:  # kept out of repr because its values may be secrets: show their names only
            value = sorted(raw) if isinstance(raw, dict) else ("set" if raw else "not set")
        elif name == "plugins":  # each plugin's own settings (their secrets unmasked): the Plugins page shows them
            value = {plugin: "see the Plugins page" for plugin in raw} if raw else {}
        else:
            value = masked(effective(settings, name))
        table[name] = {"value": value, "source": sources[name], "description": field.description or ""}
    return table


def settings_in_effect(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """:func:`settings_table` of a runtime's settings; of the key that seals the credentials, its public id."""
    sealer = runtime.credentials.sealer
    return settings_table(runtime.settings, sealed_by=f"key {sealer.key_id}, from {sealer.source}")


def value_text(value: Any) -> str:
    """A shown value as one line of text: ``not set`` for none, JSON for lists, tables and booleans."""
    if value is None:
        return "not set"
    if isinstance(value, str):
        return value
    return json.dumps(value)
