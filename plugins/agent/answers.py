"""JSON answers: read a model's text as JSON, check it against the schema, and word the one request for a
corrected answer when it does not match."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

# A whole answer wrapped in a Markdown code fence, as some models add despite being asked for JSON.
_FENCE = re.compile(r"^```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```$", re.DOTALL)


class AnswerInvalid(Exception):
    """The answer is not JSON, or not JSON of the schema; the message says where and why."""


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of answers against ``schema``; :class:`ValueError` if the schema itself is invalid."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"the answer schema is not a valid JSON Schema: {exc.message}") from None
    return Draft202012Validator(schema)


def strip_fences(text: str) -> str:
    """``text`` without a Markdown code fence around the whole of it."""
    stripped = text.strip()
    match = _FENCE.match(stripped)
    return match.group(1).strip() if match else stripped


def parse_answer(text: str, validator: Draft202012Validator) -> Any:
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
