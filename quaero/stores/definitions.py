"""Job definitions: parsing and validating YAML, with every problem located by path, line and column."""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml
from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from quaero.api.actions import StepOptions
from quaero.api.credentials import is_credential_header
from quaero.api.settings import Secret, references
from quaero.errors import DefinitionError
from quaero.registry import Registry
from quaero.settings import Webhook

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
#: A schedule with no firing time within this many years is refused: it would never run.
CRON_HORIZON_YEARS = 5


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``90``, ``30s``, ``15m``, ``2h``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '30s', '15m' or '2h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; use e.g. 30, '30s', '15m' or '2h'")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


# The field descriptions are the API's too: the OpenAPI document describes a definition body with this model.
class ErrorTolerance(BaseModel):
    """How many failed children a step tolerates, and what happens beyond that."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_child_failures: int | None = Field(None, ge=0, description="more failed child jobs than this ...")
    failure_action: Literal["fail", "continue"] = Field(
        "fail", description="... fails the step and cancels its pending children, or lets it continue")


class JobStep(BaseModel):
    """One step: which action runs, with which config, and what to do when it fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, description="unique within the definition")
    action: str = Field(min_length=1, description="the action (of a plugin) that runs the step")
    config: dict[str, Any] = Field(default_factory=dict, description="the action's options, checked against them")
    on_error: Literal["fail", "continue", "retry"] = Field("fail", description="what the step's failure does")
    max_retries: int = Field(2, ge=0, le=100, description="for on_error: retry")
    #: The validated options (set by :func:`validate_definition`; not part of the YAML).
    options: SkipJsonSchema[Any] = Field(None, exclude=True)

    @field_validator("options", mode="before")
    @classmethod
    def _not_from_input(cls, value: Any) -> Any:
        # Only validation sets it (model_copy, which does not validate): in a definition it is an unknown key.
        raise PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")


#: Query parameter names that carry a credential besides those shaped like credential headers.
_CREDENTIAL_PARAMS = frozenset({"key", "sig", "signature", "code", "session", "pass", "pwd"})


class DefinitionWebhook(Webhook):
    """A webhook of one definition: its executions' events are sent there (besides the settings' webhooks).

    The definition is stored and shown, so a secret in it is only a ``${ENV_VAR}`` reference, read when sending.
    """

    secret: Secret | None = Field(
        None, description="key of the HMAC-SHA256 signature (X-Quaero-Signature), as a ${ENV_VAR} reference; "
                          "without one, deliveries are not signed")

    @field_validator("secret")
    @classmethod
    def _reference(cls, value: Secret | None) -> Secret | None:
        if value is not None and value.reference is None:
            raise ValueError("a webhook's secret is written in a definition as a reference, e.g. secret: "
                             "\"${HOOK_SECRET}\", with HOOK_SECRET exported for the server: a value written here "
                             "would be stored and shown with the definition (or give the webhook its secret in the "
                             "settings, [[webhooks]] in quaero.toml)")
        return value

    @field_validator("url")
    @classmethod
    def _no_literal_credentials(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ValueError("a webhook URL in a definition must not carry a user name or password: the definition "
                             "is stored and shown; sign the deliveries with secret: \"${HOOK_SECRET}\" instead")
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if (is_credential_header(name) or name.lower() in _CREDENTIAL_PARAMS) and not references(value):
                raise ValueError(f"the URL's query parameter {name!r} carries a credential, which a definition must "
                                 f"not hold in clear: write it as a reference, {name}=${{HOOK_TOKEN}}, and export "
                                 f"HOOK_TOKEN for the server")
        return url

    @property
    def secret_text(self) -> str | None:
        return self.secret.shown() if self.secret is not None else None  # a reference: shown() is the text


def _id_from_name(schema: dict[str, Any]) -> None:
    # The model always gets an id, but a definition may leave it out: the loader takes the name's slug.
    schema["required"] = [name for name in schema["required"] if name != "id"]


_DURATION_SCHEMA = {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                              {"type": "string", "description": "a duration such as 90, '30s', '15m' or '2h'"},
                              {"type": "null"}]}


class JobDefinition(BaseModel):
    """A job definition: its steps run in order, each after the previous one finished.

    The same as YAML text (``Content-Type: application/yaml``) or as JSON; each step's ``config`` is checked
    against its action's options, and an error names the step, the key, the line and the column.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_id_from_name)
    id: str = Field(description="letters, digits, '_', '-' or '.' (default: the name, slugified)")
    name: str = Field(min_length=1, description="what the pages and the CLI call it")
    description: str = Field("", description="a sentence shown under its name")
    source_type: str = Field("web", description="what kind of source it reads; passed to its steps")
    base_url: str | None = Field(
        None, description="the site the definition is about; passed to its steps for the actions that use it")
    auth_id: str | None = Field(None, description="stored credentials (cookies, headers) its steps send")
    tags: list[str] = Field(default_factory=list, description="passed to its steps: a crawl tags the pages it saves")
    enabled: bool = Field(True, description="a disabled definition is neither executed nor scheduled")
    schedule: str | None = Field(
        None, description="cron, 5 fields (or 6 with seconds); never overlaps a running execution")
    timeout: Annotated[float | None, WithJsonSchema(_DURATION_SCHEMA)] = Field(
        None, description="for the whole execution, in seconds or as a duration (default: default_job_timeout)")
    error_tolerance: ErrorTolerance = Field(
        default_factory=ErrorTolerance, description="how many failed children each step tolerates")
    webhooks: list[DefinitionWebhook] = Field(
        default_factory=list, description="URLs sent a signed JSON body when an execution of it starts, completes, "
                                          "fails or is cancelled (besides the settings' webhooks)")
    steps: list[JobStep] = Field(min_length=1, description="run in order, each after the previous one finished")

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("an id is 1-200 letters, digits, '_', '-' or '.', starting with a letter or digit")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (five fields, e.g. '*/15 * * * *')")
        try:  # valid fields can still name a day that never comes, such as 31 February
            croniter(value, datetime.now(UTC), max_years_between_matches=CRON_HORIZON_YEARS).get_next(float)
        except CroniterBadDateError:
            raise ValueError(f"{value!r} never fires: no time in the next {CRON_HORIZON_YEARS} years matches it "
                             f"(check the day of the month against the month)") from None
        return value

    @model_validator(mode="after")
    def _unique_steps(self) -> JobDefinition:
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"two steps are named {step.name!r}; step names must be unique")
            seen.add(step.name)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data (what YAML or JSON would hold)."""
        return self.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None
    #: The known name closest to a mistyped key or action ("did you mean ...?").
    suggestion: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "line": self.line, "column": self.column,
                "suggestion": self.suggestion}


def _path_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _locate(node: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[int, int] | None:
    """Line and column (1-based) of the YAML node at ``loc``, or of the deepest ancestor found."""
    best = None
    for part in loc:
        if node is None:
            break
        best = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    # Point at the key: right for an unknown key, and on the line of a bad value.
                    best = (key.start_mark.line + 1, key.start_mark.column + 1)
                    node = value
                    break
            else:
                node = None
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None and loc and isinstance(loc[-1], int):
        best = (node.start_mark.line + 1, node.start_mark.column + 1)
    return best


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema node with its ``$ref`` followed; of an ``anyOf``, the choice that is an object or array."""
    while "$ref" in schema:
        schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
    for choice in schema.get("anyOf", ()):
        choice = _resolve(choice, defs)
        if "properties" in choice or "items" in choice:
            return choice
    return schema


def keys_at(schema: dict[str, Any], loc: tuple[Any, ...]) -> list[str]:
    """The keys the mapping at ``loc`` accepts, from a model's JSON schema (empty when it is not a model)."""
    defs = schema.get("$defs", {})
    node = _resolve(schema, defs)
    for part in loc:
        node = _resolve(node.get("items", {}) if isinstance(part, int) else node.get("properties", {}).get(part, {}),
                        defs)
    return list(node.get("properties", {}))


def unknown_key(key: str, known: list[str], subject: str = "") -> tuple[str, str | None]:
    """The message for an unknown key, with the closest known key as a suggestion (or the known keys)."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    message = f"unknown key {key!r}{subject}"
    if close:
        return f"{message}; did you mean {close[0]!r}?", close[0]
    return (f"{message} (accepted: {', '.join(known)})" if known else message), None


def _problems_from(exc: ValidationError, root: yaml.Node | None, prefix: tuple[Any, ...] = (),
                   schema: dict[str, Any] | None = None, subject: str = "") -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = prefix + tuple(error["loc"])
        message = error["msg"]
        suggestion = None
        if error["type"] == "extra_forbidden":
            known = keys_at(schema, tuple(error["loc"])[:-1]) if schema is not None else []
            message, suggestion = unknown_key(str(loc[-1]), known, subject)
        elif error["type"] == "missing":
            message = f"required key {loc[-1]!r} is missing"
        message = message.removeprefix("Value error, ")
        if error["type"] == "string_type" and isinstance(error.get("input"), bool):
            message += " (YAML reads yes/no/on/off/true/false as booleans: put the value in quotes)"
        line, column = _locate(root, loc) or (None, None)
        problems.append(Problem(_path_text(loc), message, line, column, suggestion))
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def _duplicate_keys(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> list[Problem]:
    """A key written twice in one mapping: YAML keeps the last silently, so the first would be lost unseen."""
    problems: list[Problem] = []
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(node, path)] if node is not None else []
    while stack:
        current, where = stack.pop()
        if isinstance(current, yaml.SequenceNode):
            stack.extend((child, (*where, index)) for index, child in enumerate(current.value))
        elif isinstance(current, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in first:
                        problems.append(Problem(
                            _path_text((*where, key.value)),
                            f"key {key.value!r} is written twice in this mapping (first on line {first[key.value]}); "
                            f"YAML would keep only the last one: remove or rename one of them",
                            key.start_mark.line + 1, key.start_mark.column + 1))
                    else:
                        first[key.value] = key.start_mark.line + 1
                stack.append((value, (*where, key.value if isinstance(key, yaml.ScalarNode) else "?")))
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


MAX_NODES = 100_000


def _expanded_size(node: yaml.Node | None) -> int:
    """How many values the YAML holds once aliases are expanded (counting stops past MAX_NODES).

    Aliases let a few lines stand for billions of values ("billion laughs"); the definition is stored
    and sent as JSON, where every alias becomes a copy.
    """
    count = 0
    stack = [node] if node is not None else []
    while stack and count <= MAX_NODES:
        current = stack.pop()
        count += 1
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
    return count


def parse_yaml(text: str, *, origin: str = "definition") -> tuple[dict[str, Any], yaml.Node | None]:
    """Parse YAML text into data and its node tree (for locating errors)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = Problem("", f"invalid YAML: {exc.problem or exc}",
                          mark.line + 1 if mark else None, mark.column + 1 if mark else None)
        raise DefinitionError(f"{origin}: {problem}", detail=[problem.as_dict()]) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{origin}: invalid YAML: {exc}", detail=[Problem("", str(exc)).as_dict()]) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # a 5,000-digit number, a date past year 9999,
        problem = Problem("", f"a value cannot be read: {str(exc)[:200]}")  # nesting too deep to follow
        raise DefinitionError(f"{origin}: {problem}", detail=[problem.as_dict()]) from None
    if _expanded_size(node) > MAX_NODES:
        problem = Problem("", f"the definition expands to more than {MAX_NODES} values (YAML aliases?)")
        raise DefinitionError(f"{origin}: {problem}", detail=[problem.as_dict()])
    duplicates = _duplicate_keys(node)
    if duplicates:
        raise DefinitionError(_summary(origin, duplicates), detail=[p.as_dict() for p in duplicates])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problem = Problem("", f"a definition is a mapping of keys (name, steps, ...), not a {type(data).__name__}",
                          1, 1)
        raise DefinitionError(f"{origin}: {problem}", detail=[problem.as_dict()])
    return data, node


def validate_definition(
    data: dict[str, Any],
    registry: Registry,
    *,
    origin: str = "definition",
    node: yaml.Node | None = None,
    default_id: str | None = None,
) -> JobDefinition:
    """Check a definition and its steps' options; raise :class:`DefinitionError` listing every problem."""
    data = dict(data)
    if "id" not in data:
        fallback = default_id or (slugify(str(data["name"])) if data.get("name") else None)
        if fallback:
            data["id"] = fallback
    try:
        definition = JobDefinition.model_validate(data)
    except ValidationError as exc:
        invalid = _problems_from(exc, node, schema=_schema(JobDefinition))
        raise DefinitionError(_summary(origin, invalid), detail=[p.as_dict() for p in invalid]) from None

    problems: list[Problem] = []
    steps = []
    for index, step in enumerate(definition.steps):
        where = ("steps", index)
        action = registry.actions.get(step.action)
        if action is None:
            line_col = _locate(node, (*where, "action"))
            message = f"step {step.name!r}: {registry.why_unknown(step.action)}"
            close = difflib.get_close_matches(step.action, list(registry.actions), n=1)
            line, column = line_col or (None, None)
            problems.append(Problem(f"steps[{index}].action", message, line, column,
                                    close[0] if close and step.action not in registry.unavailable else None))
            continue
        try:
            options: StepOptions = action.options.model_validate(step.config)
        except ValidationError as exc:
            for problem in _problems_from(exc, node, (*where, "config"), schema=_schema(action.options),
                                          subject=f" for action {action.name}"):
                problems.append(Problem(problem.path, f"step {step.name!r}: {problem.message}",
                                        problem.line, problem.column, problem.suggestion))
            continue
        steps.append(step.model_copy(update={"options": options}))
    if problems:
        raise DefinitionError(_summary(origin, problems), detail=[p.as_dict() for p in problems])
    return definition.model_copy(update={"steps": steps})


def load_definition_text(text: str, registry: Registry, *, origin: str = "definition",
                         default_id: str | None = None) -> JobDefinition:
    """Parse and validate YAML (or JSON, which is YAML) text."""
    data, node = parse_yaml(text, origin=origin)
    return validate_definition(data, registry, origin=origin, node=node, default_id=default_id)


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _summary(origin: str, problems: list[Problem]) -> str:
    return f"{origin}: " + "; ".join(str(p) for p in problems)


def slugify(text: str) -> str:
    """A definition id from a name: lower case, words joined by '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:200] or "definition"
