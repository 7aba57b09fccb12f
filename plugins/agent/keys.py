"""Which provider a step talks to, where, with which model, and the key it uses.

The key is looked for, in order: the step's ``api_key`` (a ``${ENV_VAR}`` reference), the stored
credentials named by the step's ``auth_id`` (an ``Authorization: Bearer`` or ``x-goog-api-key`` header),
the plugin settings (``openai_api_key`` / ``gemini_api_key``), then ``OPENAI_API_KEY`` / ``GEMINI_API_KEY``
in the environment (a step whose server needs no key, such as Ollama's, says ``key_required: false``).
It is read when a job needs it and is never written anywhere. A key from the settings
or the environment goes only to the provider's base URL in the settings (or its default): a step that
sends its calls elsewhere names its key itself.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from quaero.api import ConfigError, JobContext, NotFound, PluginContext, ReadinessContext, StepContext

from .options import DEFAULT_KEY_VARIABLES, DEFAULT_MODELS, AgentOptions, AgentSettings
from .provider import DEFAULT_BASE_URLS

_KEY_HEADERS = ("x-goog-api-key", "x-api-key")


class MissingKey(Exception):
    """No key for a remote provider; the message says every place that was looked at."""


@dataclass(frozen=True)
class Target:
    """Where a step's calls go: provider, endpoint and model (no key: see :func:`find_key`)."""

    provider: str
    base_url: str
    model: str

    @property
    def remote(self) -> bool:
        return self.provider != "local"


def settings_of(ctx: PluginContext) -> AgentSettings:
    """The plugin's settings (the defaults when it was started without any)."""
    return ctx.settings if isinstance(ctx.settings, AgentSettings) else AgentSettings()


def target(options: AgentOptions, settings: AgentSettings) -> Target:
    """The provider, endpoint and model a step uses: its own options, else the settings, else defaults."""
    provider = options.provider or settings.provider
    if provider == "local":
        return Target("local", "", "")
    base_url = (options.base_url or home_url(settings, provider)).rstrip("/")
    model = options.model or getattr(settings, f"{provider}_model") or DEFAULT_MODELS[provider]
    return Target(provider, base_url, model)


def home_url(settings: AgentSettings, provider: str) -> str:
    """Where a provider's calls go unless a step says otherwise: the settings' base URL, else its default;
    the only place a key from the settings or the environment is sent."""
    return (getattr(settings, f"{provider}_base_url") or DEFAULT_BASE_URLS[provider]).rstrip("/")


def find_key(ctx: ReadinessContext | StepContext | JobContext, options: AgentOptions, where: Target) -> str:
    """The key for ``where`` (``""`` for a step that says its server needs none); :class:`MissingKey`
    naming the places looked at when there is none."""
    provider = where.provider
    if not options.key_required:
        return ""
    if options.api_key is not None:
        try:
            return options.api_key.reveal()
        except ConfigError as exc:
            raise MissingKey(exc.message) from None
    if options.auth_id:
        try:
            stored = ctx.credentials_for(where.base_url, auth_id=options.auth_id)
        except NotFound:
            raise MissingKey(f"auth_id {options.auth_id!r} names no stored credentials") from None
        if stored is None:
            raise MissingKey(f"the credentials {options.auth_id!r} are for another site than {where.base_url}")
        headers = {name.lower(): value for name, value in stored.headers.items()}
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer ") and bearer[7:].strip():
            return bearer[7:].strip()
        for name in _KEY_HEADERS:
            if headers.get(name):
                return headers[name]
        raise MissingKey(f"the credentials {options.auth_id!r} have no Authorization: Bearer or x-goog-api-key "
                         f"header")
    settings = settings_of(ctx)
    home = home_url(settings, provider)
    if where.base_url != home:
        # A definition must not be able to send the server's own key to a host of its choosing.
        raise MissingKey(f"the step sends its {provider} calls to its own base_url ({where.base_url}), so it must "
                         f"name its key: api_key: \"${{VARIABLE}}\" or auth_id (the key from the settings or the "
                         f"environment only goes to {home})")
    setting = getattr(settings, f"{provider}_api_key")
    if setting is not None:
        try:
            return setting.reveal()
        except ConfigError as exc:
            raise MissingKey(exc.message) from None
    variable = DEFAULT_KEY_VARIABLES[provider]
    value = os.environ.get(variable)
    if value:
        return value
    raise MissingKey(f"no API key for the {provider} provider: give the step api_key: \"${{{variable}}}\" (or "
                     f"auth_id of stored credentials), set {provider}_api_key in [plugins.agent], or export "
                     f"{variable}")


def fingerprint(key: str) -> str:
    """A short, one-way name for a key (rate-limit buckets, logs): the same key, the same bucket."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]
