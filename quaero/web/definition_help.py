"""The editor's help: every key a definition, a step and each installed action's options accept.

Generated from the models the validator checks a definition against (their fields and JSON schema), so the
help cannot list a key the validator rejects or leave out one it accepts: a plugin's new option, or a new
definition field, shows up here by itself.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from quaero.registry import Registry
from quaero.stores.definitions import JobDefinition
from quaero.web.plugin_listing import is_secret, type_text


def field_rows(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One row per key ``model`` accepts: name, type, default (or "required") and description."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    by_alias = {field.alias or name: (name, field) for name, field in model.model_fields.items()}
    by_name = model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name")
    rows = []
    for name, prop in schema.get("properties", {}).items():
        attribute, field = by_alias.get(name, (name, None))
        # A field with an alias may be written under its own name too, when the model allows it.
        also = [attribute] if by_name and attribute != name else []
        rows.append({"name": name, "also": also, "type": type_text(prop), "required": name in required,
                     "default": "required" if name in required else _default_text(field, prop),
                     "description": (field.description if field else None) or prop.get("description") or ""})
    return rows


def _default_text(field: FieldInfo | None, prop: dict[str, Any]) -> str:
    if is_secret(prop):
        return ""
    if field is None or field.is_required():  # required by the model, not by the schema: a derived default
        return json.dumps(prop["default"]) if "default" in prop else ""
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "not set"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, default=str)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type holds: ``list[JobStep]`` → ``[JobStep]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def model_sections(model: type[BaseModel], path: str = "") -> list[dict[str, Any]]:
    """``model``'s rows, then a section for each model nested in it (a step, the error tolerance, ...)."""
    rows = field_rows(model)
    sections: list[dict[str, Any]] = [
        {"path": path or "definition", "description": (model.__doc__ or "").strip().split("\n")[0], "rows": rows}]
    shown = {row["name"] for row in rows}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key not in shown:
            continue
        many = field.annotation is not None and getattr(field.annotation, "__origin__", None) is list
        for nested in _models_in(field.annotation):
            sections.extend(model_sections(nested, f"{path + '.' if path else ''}{key}{'[]' if many else ''}"))
    return sections


def definition_help(registry: Registry) -> dict[str, Any]:
    """The definition's own sections and, per installed action, its options."""
    actions = [{"name": name, "plugin": action.plugin, "description": action.description,
                "rows": field_rows(action.options)}
               for name, action in sorted(registry.actions.items())]
    return {"sections": model_sections(JobDefinition), "actions": actions}
