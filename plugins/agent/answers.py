"""JSON answers: read a model's text as JSON, check it against the schema, and word the one request for a
corrected answer when it does not match."""

from __future__ import annotations

import json
import re
from typing import Any

import re2
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match

# A whole answer wrapped in a Markdown code fence, as some models add despite being asked for JSON.
_FENCE = re.compile(r"^```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```$", re.DOTALL)


class AnswerInvalid(Exception):
    """The answer is not JSON, or not JSON of the schema; the message says where and why."""


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
# Where a schema holds schemas: maps of them, one of them, lists of them (JSON Schema 2020-12, and older).
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_VALUES = ("items", "additionalItems", "not", "additionalProperties", "contains", "propertyNames", "if",
                  "then", "else", "unevaluatedItems", "unevaluatedProperties")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")


def _re2(pattern: str, where: str) -> Any:
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"{where}: pattern {pattern!r} cannot be used: {reason}. Answer patterns run on RE2, "
                         f"which matches in linear time and so has no backreferences or lookaround: rewrite "
                         f"the pattern without them") from None


def check_patterns(schema: Any, where: str = "the answer schema") -> None:
    """Refuse regular expressions an answer could make slow: every ``pattern`` must compile with RE2, and
    ``patternProperties`` (whose expressions jsonschema runs with Python's ``re``) is not accepted."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            check_patterns(item, f"{where}[{index}]")
        return
    if not isinstance(schema, dict):
        return
    if "patternProperties" in schema:
        raise ValueError(f"{where}: patternProperties is not supported in answer schemas (its expressions would "
                         f"run on Python's re, which a hostile answer can make take forever): name the "
                         f"properties in properties instead")
    if isinstance(schema.get("pattern"), str):
        _re2(schema["pattern"], where)
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            for name, sub in schema[key].items():
                check_patterns(sub, f"{where}.{key}.{name}")
    for key in (*_SCHEMA_VALUES, *_SCHEMA_LISTS):
        if key in schema:
            check_patterns(schema[key], f"{where}.{key}")


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    """jsonschema's ``pattern`` keyword on RE2 (linear time, whatever the answer)."""
    if validator.is_type(instance, "string") and _re2(pattern, "the answer schema").search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: Draft 2020-12, with ``pattern`` matched by RE2.
AnswerValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def validator_for(schema: dict[str, Any]) -> Any:
    """A validator of answers against ``schema``; :class:`ValueError` if the schema itself is invalid."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"the answer schema is not a valid JSON Schema: {exc.message}") from None
    check_patterns(schema)
    return AnswerValidator(schema)


def strip_fences(text: str) -> str:
    """``text`` without a Markdown code fence around the whole of it."""
    stripped = text.strip()
    match = _FENCE.match(stripped)
    return match.group(1).strip() if match else stripped


def parse_answer(text: str, validator: Any) -> Any:
    """The JSON value of an answer, checked; :class:`AnswerInvalid` says what is wrong with it."""
    body = strip_fences(text)
    if not body:
        raise AnswerInvalid("the answer is empty, not JSON")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise AnswerInvalid(f"the answer is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                            ) from None
    error = best_match(validator.iter_errors(data))
    if error is not None:
        where = error.json_path if error.path else "the top level"
        raise AnswerInvalid(f"the answer does not match the schema at {where}: {error.message}")
    return data


def repair_request(problem: AnswerInvalid) -> str:
    """The user message that sends a bad answer back (it follows that answer in the conversation)."""
    return (f"Your answer cannot be used: {problem}. Answer again with only the corrected JSON, matching "
            f"the schema exactly, with no other text.")


def schema_instruction(schema: dict[str, Any]) -> str:
    """The system-message paragraph that asks for JSON of ``schema`` when the server cannot enforce it."""
    return ("Answer with one JSON value and nothing else (no prose, no code fence) that matches this JSON "
            "Schema:\n```json\n" + json.dumps(schema, ensure_ascii=False) + "\n```")
