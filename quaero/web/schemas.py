"""OpenAPI 3.0 schemas from pydantic models, for the document's ``components/schemas``.

Pydantic writes JSON Schema 2020-12; the document (``web/openapi.py``) is OpenAPI 3.0, whose schema objects
are an older dialect: ``nullable`` instead of a ``null`` type, one ``example`` instead of ``examples``,
boolean ``exclusiveMinimum`` and ``exclusiveMaximum``, no ``const`` and no ``$defs``. :func:`component_schemas`
translates, and refuses what it cannot translate rather than publish a document that says something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

REF_TEMPLATE = "#/components/schemas/{model}"
_NULL = {"type": "null"}
# 2020-12 keywords with no OpenAPI 3.0 equivalent: a model that needs one must be described by hand.
_UNTRANSLATABLE = {"prefixItems", "$defs", "$dynamicRef", "$anchor", "$schema", "if", "then", "else", "contains",
                   "dependentSchemas", "dependentRequired", "unevaluatedProperties", "unevaluatedItems",
                   "propertyNames", "patternProperties", "minContains", "maxContains", "contentSchema"}
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_VALUES = ("items", "not", "additionalProperties")


def component_schemas(models: Mapping[str, type[BaseModel]]) -> dict[str, dict[str, Any]]:
    """Each model's OpenAPI 3.0 schema under its name, with the models it nests under theirs.

    A nested model is referred to by its class name; two different schemas under one name are an error.
    """
    schemas: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        generated = model.model_json_schema(ref_template=REF_TEMPLATE)
        nested = generated.pop("$defs", {})
        for key, schema in {**nested, name: generated}.items():
            converted = openapi30(schema)
            if schemas.setdefault(key, converted) != converted:
                raise ValueError(f"two different schemas are both named {key!r} in components/schemas")
    return schemas


def openapi30(schema: dict[str, Any]) -> dict[str, Any]:
    """One JSON Schema 2020-12 schema (``$defs`` removed, refs rewritten) as an OpenAPI 3.0 schema object."""
    if schema == _NULL:
        raise ValueError("OpenAPI 3.0 has no null type: only a nullable one")
    if _NULL in schema.get("anyOf", []):
        return _nullable(schema)
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNTRANSLATABLE:
            raise ValueError(f"the JSON Schema keyword {key!r} has no OpenAPI 3.0 equivalent")
        if key == "title":
            continue  # pydantic titles each field after its own name: noise in the document
        if key == "type" and not isinstance(value, str):
            raise ValueError(f"OpenAPI 3.0 allows one type per schema, not {value!r}")
        if key == "const":
            converted["enum"] = [value]
        elif key == "examples":
            converted["example"] = value[0]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            converted["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            converted[key] = True
        elif key == "properties":
            converted[key] = {name: openapi30(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            converted[key] = [openapi30(sub) for sub in value]
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            converted[key] = openapi30(value)
        else:
            converted[key] = value
    if "$ref" in converted and len(converted) > 1:
        # OpenAPI 3.0 ignores whatever sits beside a $ref (a field's description, its default).
        converted = {"allOf": [{"$ref": converted.pop("$ref")}], **converted}
    return converted


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` as X with ``nullable: true`` (``anyOf`` kept when X is several)."""
    others = [sub for sub in schema["anyOf"] if sub != _NULL]
    outer = openapi30({key: value for key, value in schema.items() if key != "anyOf"})
    if len(others) == 1:
        inner = openapi30(others[0])
        if "$ref" in inner:
            inner = {"allOf": [inner]}
        merged = {**inner, **outer, "nullable": True}
    else:
        merged = {"anyOf": [openapi30(sub) for sub in others], **outer, "nullable": True}
    if "enum" in merged and None not in merged["enum"]:
        merged["enum"] = [*merged["enum"], None]  # in 3.0, an enum without null refuses null, nullable or not
    return merged
