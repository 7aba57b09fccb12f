"""What the Plugins page shows of each plugin: its actions, its settings in effect beside their schema,
and why it is not running when it failed to load or start.

A secret setting is shown as the registry lists it (its ``${VAR}`` reference, or a mask for a literal
value) and its default never: a page a colleague can open must not leak a token.
"""

from __future__ import annotations

import json
import re
from typing import Any

from quaero.api.settings import MASK
from quaero.runtime import Runtime

_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def plugins_context(runtime: Runtime) -> dict[str, Any]:
    """Every plugin with its settings as rows, and every action with its options."""
    registry = runtime.registry
    plugins = [{**info, "action_names": [action["name"] for action in info["actions"]],
                "setting_rows": setting_rows(info["settings_schema"], info["settings"])}
               for info in registry.listing()]
    actions = [{**action.describe(), "options": action.options.model_json_schema().get("properties", {})}
               for _, action in sorted(registry.actions.items())]
    return {"plugins": plugins, "actions": actions}


def setting_rows(schema: dict[str, Any] | None, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per setting of a plugin's settings schema: name, type, the value in effect, the default and
    the description, as text; empty when the plugin has no settings model (or never got to configure it)."""
    if not schema:
        return []
    values = values or {}
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        secret = is_secret(prop)
        rows.append({
            "name": name, "type": type_text(prop), "secret": secret, "required": name in required,
            "value": _value_text(values[name], secret) if name in values else "",
            "default": json.dumps(prop["default"]) if "default" in prop and not secret else "",
            "description": prop.get("description") or "",
        })
    return rows


def is_secret(prop: dict[str, Any]) -> bool:
    """Whether a JSON schema property is a :class:`~quaero.api.Secret` (alone, or optional)."""
    parts = [prop, *prop.get("anyOf", ()), *prop.get("oneOf", ())]
    return any(part.get("writeOnly") or part.get("format") == "password" for part in parts)


def type_text(prop: dict[str, Any]) -> str:
    """A JSON schema property's type in a few words: ``integer``, ``secret | null``, ``array of string``."""
    choices = prop.get("anyOf") or prop.get("oneOf")
    if choices:
        return " | ".join(type_text(choice) for choice in choices)
    if prop.get("writeOnly") or prop.get("format") == "password":
        return "secret"
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "enum" in prop:
        return " | ".join(json.dumps(choice) for choice in prop["enum"])
    kind = prop.get("type", "any")
    if kind == "array" and isinstance(prop.get("items"), dict):
        return f"array of {type_text(prop['items'])}"
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def _value_text(value: Any, secret: bool) -> str:
    if value is None:
        return "not set"
    if secret and not (isinstance(value, str) and (value == MASK or _REFERENCE.fullmatch(value))):
        # The registry already lists secrets masked; this holds even if a settings model dumps one as is.
        return MASK
    return value if isinstance(value, str) else json.dumps(value)
