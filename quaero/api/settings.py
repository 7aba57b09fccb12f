"""Plugin settings and the secrets in them.

A plugin's settings come from the ``[plugins.NAME]`` table of ``quaero.toml`` and from
``QUAERO_PLUGIN_<NAME>_<KEY>`` environment variables (which win), validated by the model the plugin gives
``plugin.configure(...)`` in its ``startup`` hook. A :class:`Secret` field holds either a literal value or a
``${ENV_VAR}`` reference; a reference is resolved each time :meth:`Secret.reveal` is called, so the value
itself is never stored, logged or shown (settings pages and the API show ``${ENV_VAR}`` or ``********``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from quaero.errors import ConfigError

_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
MASK = "********"


class Secret:
    """A secret setting: a literal value or a ``${ENV_VAR}`` reference, resolved only when revealed."""

    __slots__ = ("_raw",)

    def __init__(self, raw: str) -> None:
        if not isinstance(raw, str) or not raw:
            raise ValueError("a secret is a non-empty string: the value, or ${ENV_VAR} to read it at use")
        self._raw = raw

    @property
    def reference(self) -> str | None:
        """The environment variable it names, or ``None`` for a literal value."""
        match = _REFERENCE.match(self._raw)
        return match.group(1) if match else None

    def reveal(self, environ: Mapping[str, str] | None = None) -> str:
        """The value: the literal, or the named environment variable as it is now.

        Raises :class:`quaero.api.ConfigError` naming the variable when it is not set.
        """
        name = self.reference
        if name is None:
            return self._raw
        value = (os.environ if environ is None else environ).get(name)
        if not value:
            raise ConfigError(f"the secret ${{{name}}} is not set: export {name} in the environment of every "
                              f"Quaero process (server and workers)")
        return value

    def shown(self) -> str:
        """What pages and the API show: the reference, or a mask for a literal value."""
        return f"${{{self.reference}}}" if self.reference else MASK

    def __repr__(self) -> str:
        return f"Secret({self.shown()!r})"

    __str__ = shown

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from_text = core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, Secret) else Secret(value))
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema([core_schema.str_schema(min_length=1), from_text]),
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(Secret),
                                                    core_schema.chain_schema([core_schema.str_schema(min_length=1),
                                                                              from_text])]),
            # Serialised as what may be shown, so a dump of the settings never holds the value.
            serialization=core_schema.plain_serializer_function_ser_schema(lambda secret: secret.shown()),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "format": "password", "writeOnly": True,
                "description": "a value, or ${ENV_VAR} to read it from the environment at use"}


_ANY_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(text: str) -> list[str]:
    """The environment variables ``text`` names as ``${ENV_VAR}``, in order."""
    return _ANY_REFERENCE.findall(text)


def expand_references(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with each ``${ENV_VAR}`` replaced by the variable's value (``Bearer ${API_TOKEN}``).

    Call it where the value is used, in the worker, so that the definition and the job's payload keep the
    reference and never the value. Raises :class:`quaero.api.ConfigError` naming a variable that is not set.
    """
    env = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        found = env.get(match.group(1))
        if not found:
            raise ConfigError(f"${{{match.group(1)}}} is not set: export {match.group(1)} in the environment of "
                              f"every Quaero process (server and workers)")
        return found

    return _ANY_REFERENCE.sub(value, text)


def _reference_only(secret: Secret) -> Secret:
    if secret.reference is None:
        raise ValueError("write a secret in a definition as a reference, e.g. \"${MY_API_KEY}\", and export "
                         "that variable (or keep the key in the plugin's settings): a value written here "
                         "would be stored and shown with the definition")
    return secret


#: A :class:`Secret` that must be a ``${ENV_VAR}`` reference: use it for secrets in step options, which are
#: stored with the definition and shown with it and its jobs.
SecretReference = Annotated[Secret, AfterValidator(_reference_only)]


class PluginSettings(BaseModel):
    """Base class of a plugin's settings model: subclass it and declare fields with defaults.

    Unknown keys are errors that name the key and where it came from (the file or the variable).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
