"""A remote model that search by meaning uses outside any step: where it is, its key, its rate limit.

Everything comes from the agent plugin's settings, as for a step that names nothing itself: the provider's
base URL (``openai_base_url`` / ``gemini_base_url``, else the public endpoint) and its key
(``openai_api_key`` / ``gemini_api_key``, else ``OPENAI_API_KEY`` / ``GEMINI_API_KEY``). The key goes only to
that base URL. A server on another base URL may need no key (Ollama, llama.cpp): without one, none is sent;
the public endpoints without one are a :class:`ConfigError` naming where the key is looked for.

Requests are counted against ``requests_per_minute`` / ``tokens_per_minute`` of the settings (in the same
buckets as the steps' calls with the same key), and go through ``ctx.http``. Retries' waits and warnings
are logged on the ``quaero_plugins.agent`` logger (the key masked), as there is no job to log them to.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

from quaero.api import ConfigError, PluginContext, RateReservation

from .keys import fingerprint, home_url, settings_of
from .options import DEFAULT_KEY_VARIABLES, AgentSettings
from .provider import DEFAULT_BASE_URLS, Kind, ProviderConfig, mask

logger = logging.getLogger("quaero_plugins.agent")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
           "error": logging.ERROR}
TIMEOUT = 60.0  # seconds to wait for one answer
MAX_RETRIES = 4


def settings_key(settings: AgentSettings, kind: Kind) -> str:
    """The key of ``kind`` from the settings, else its environment variable; ``""`` when there is none."""
    setting = getattr(settings, f"{kind}_api_key")
    if setting is not None:
        return str(setting.reveal())
    return os.environ.get(DEFAULT_KEY_VARIABLES[kind], "")


@dataclass(frozen=True)
class Connection:
    """One remote model of the settings, with what a call needs: the client, the limiter, sleep and log."""

    config: ProviderConfig
    http: httpx.Client
    ctx: PluginContext

    @classmethod
    def open(cls, ctx: PluginContext, kind: Kind, model: str, *, what: str,
             max_output_tokens: int | None = None) -> Connection:
        """The connection to ``model`` of ``kind`` the settings describe (``what`` names its use in the
        :class:`ConfigError` for a missing key)."""
        settings = settings_of(ctx)
        base_url = home_url(settings, kind)
        key = settings_key(settings, kind)
        if not key and base_url == DEFAULT_BASE_URLS[kind]:
            variable = DEFAULT_KEY_VARIABLES[kind]
            raise ConfigError(f"no API key for the {kind} {what}: set {kind}_api_key in [plugins.agent] "
                              f"(e.g. \"${{{variable}}}\") or export {variable}")
        config = ProviderConfig(kind=kind, model=model, api_key=key, base_url=base_url, timeout=TIMEOUT,
                                max_retries=MAX_RETRIES, max_output_tokens=max_output_tokens)
        return cls(config, ctx.http, ctx)

    @property
    def bucket(self) -> str:
        """The rate-limit bucket: the steps' for the same provider, endpoint and key."""
        key = self.config.api_key
        return f"agent:{self.config.kind}:{self.config.base_url}:{fingerprint(key) if key else 'no-key'}"

    def acquire(self, tokens: int) -> RateReservation:
        """Wait until one request of ``tokens`` fits the settings' limits (the :class:`.remote.Limiter`)."""
        settings = settings_of(self.ctx)
        return self.ctx.rate_limit(self.bucket, requests_per_minute=settings.requests_per_minute,
                                   tokens_per_minute=settings.tokens_per_minute, tokens=tokens)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def log(self, level: str, message: str, **metadata: Any) -> None:
        logger.log(_LEVELS.get(level, logging.INFO), "%s", mask(message, self.config.api_key))

    def __repr__(self) -> str:
        return f"Connection({self.config.kind}, {self.config.model!r} at {self.config.host})"
