"""JSON Schema to Gemini's ``responseSchema``, a subset of OpenAPI 3.0's Schema object.

Kept: ``type`` (upper-case, a ``null`` alternative becoming ``nullable``), ``properties`` (with
``propertyOrdering`` in the schema's order, which Gemini otherwise sorts), ``required``, ``items``,
string ``enum`` (``const`` becomes a one-value enum), ``anyOf`` (``oneOf`` read as it), ``description``,
``minItems``/``maxItems``, ``minLength``/``maxLength``, ``minimum``/``maximum``, ``pattern`` and the
formats Gemini knows. Local ``$ref``s (``#/$defs/...``, ``#/definitions/...``, as pydantic writes them)
are inlined. Dropped: everything else (``additionalProperties``, ``$schema``, ``title``, ``default``,
``examples``, ...): the answer is still checked against the full schema once it comes back.
"""

from __future__ import annotations

from typing import Any

_TYPES = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN",
          "array": "ARRAY", "object": "OBJECT", "null": "NULL"}
_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}
_COPIED = {
    "description": (str,), "minItems": (int,), "maxItems": (int,), "minLength": (int,), "maxLength": (int,),
    "minimum": (int, float), "maximum": (int, float), "pattern": (str,),
    "minProperties": (int,), "maxProperties": (int,),
}


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (JSON Schema) as a Gemini ``responseSchema``; :class:`ValueError` for a recursive one."""
    return _convert(schema, schema, ())


def _resolve(reference: str, root: dict[str, Any]) -> dict[str, Any]:
    if reference == "#":
        return root
    node: Any = root
    if reference.startswith("#/"):
        for part in reference[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise ValueError(f"the answer schema refers to {reference!r}, which it does not define")
    return node


def _convert(node: Any, root: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {}
    reference = node.get("$ref")
    if isinstance(reference, str):
        if reference in seen:
            raise ValueError(f"the answer schema is recursive ({reference}): Gemini's responseSchema cannot say so")
        merged = {**_resolve(reference, root), **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, root, (*seen, reference))
    nullable = False
    options = node.get("anyOf") or node.get("oneOf")
    if isinstance(options, list):
        kept = [option for option in options if not (isinstance(option, dict) and option.get("type") == "null")]
        nullable = len(kept) < len(options)
        rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
        if len(kept) == 1 and isinstance(kept[0], dict):
            merged = _convert({**kept[0], **rest}, root, seen)
        else:
            merged = _convert(rest, root, seen)
            merged["anyOf"] = [_convert(option, root, seen) for option in kept]
        if nullable:
            merged["nullable"] = True
        return merged
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _convert({**all_of[0], **rest}, root, seen)

    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, list):
        nullable = "null" in kind
        kinds = [k for k in kind if k != "null"]
        if len(kinds) > 1:
            out["anyOf"] = [_convert({**node, "type": k}, root, seen) for k in kinds]
            kind = None
        else:
            kind = kinds[0] if kinds else "null"
    if kind is None and "anyOf" not in out:
        if "properties" in node:
            kind = "object"
        elif "items" in node:
            kind = "array"
        elif "enum" in node or "const" in node:
            kind = "string"
    gemini_type = _TYPES.get(kind) if isinstance(kind, str) else None
    if gemini_type:
        out["type"] = gemini_type
    for key, types in _COPIED.items():
        value = node.get(key)
        if isinstance(value, types) and not isinstance(value, bool):
            out[key] = value
    values = node.get("enum", [node["const"]] if "const" in node else None)
    if isinstance(values, list) and values and all(isinstance(value, str) for value in values) and \
            gemini_type in (None, "STRING"):
        out["enum"] = list(values)
    fmt = node.get("format")
    if gemini_type and fmt in _FORMATS.get(gemini_type, ()):
        out["format"] = fmt
    properties = node.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {name: _convert(child, root, seen) for name, child in properties.items()}
        out["propertyOrdering"] = list(properties)
        required = node.get("required")
        if isinstance(required, list):
            out["required"] = [name for name in required if name in properties]
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = _convert(items, root, seen)
    if nullable:
        out["nullable"] = True
    return out
