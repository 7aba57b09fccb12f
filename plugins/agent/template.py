"""A ``prompt`` step's template: ``{title}``, ``{url}``, ``{markdown}``, ``{source_type}``, ``{source_ref}``
and ``{metadata[key]}`` are filled in; ``{{`` and ``}}`` are literal braces. Nothing else is evaluated: the
template is text, not code."""

from __future__ import annotations

import json
import re
from typing import Any

FIELDS = ("title", "url", "markdown", "source_type", "source_ref")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_METADATA = re.compile(r"^metadata\[([^\[\]]+)\]$")


def check_template(template: str) -> None:
    """Raise ``ValueError`` naming a placeholder the template may not use."""
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name is None:
            continue
        if name.strip() not in FIELDS and not _METADATA.match(name.strip()):
            allowed = ", ".join("{" + field + "}" for field in FIELDS)
            raise ValueError(f"the prompt uses {{{name}}}: only {allowed} and {{metadata[key]}} are filled in "
                             f"(write {{{{ and }}}} for literal braces)")


def fill(template: str, values: dict[str, str], metadata: dict[str, Any]) -> str:
    """The template with its placeholders replaced (a missing metadata key becomes empty text)."""
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1).strip()
        if name in values:
            return values[name]
        key = _METADATA.match(name)
        if key:
            value = metadata.get(key.group(1), "")
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return token

    return _PLACEHOLDER.sub(replace, template)
