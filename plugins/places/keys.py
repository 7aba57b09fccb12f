"""Where a step's Google API key comes from, and the plugin's settings that hold one.

The order (the first that gives a key wins; one that is named but missing is an error, not a reason to
look further):

1. the step's ``api_key``, a ``${ENV_VAR}`` reference;
2. the ``X-Goog-Api-Key`` header of stored credentials: the step's ``auth_id``, else the definition's
   (whose credentials are used only when their ``base_url`` is the API's host and they hold that header);
3. the plugin's settings, ``[plugins.places] api_key`` (or ``QUAERO_PLUGIN_PLACES_API_KEY``), a value or a
   reference, which defaults to ``${GOOGLE_PLACES_API_KEY}``.

Wherever it comes from, the key is sent only to a base URL in ``[plugins.places] allowed_base_urls`` (Google's
by default), so a definition cannot point ``api_base_url`` at another server to collect it.

The key is read when a request is about to be made and lives only in that request's header and in the
hash of the rate-limit bucket: never in a job's config or result, a log line, an error or the database.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from quaero.api import ConfigError, JobContext, JobError, NotFound, PluginSettings, ReadinessContext, Secret

from .options import DEFAULT_BASE_URL, PlacesOptions

HEADER = "X-Goog-Api-Key"
FALLBACK_VARIABLE = "GOOGLE_PLACES_API_KEY"


class PlacesSettings(PluginSettings):
    """``[plugins.places]`` in ``quaero.toml`` (or ``QUAERO_PLUGIN_PLACES_<KEY>``)."""

    api_key: Secret | None = Field(Secret(f"${{{FALLBACK_VARIABLE}}}"), description=(
        "The Google API key for steps that name none: a value, or ${ENV_VAR} to read it at use."))
    requests_per_minute: int = Field(600, ge=1, le=100_000, description=(
        "Requests per minute per key and method, held across every worker process (Google's default quota "
        "is 600)."))
    allowed_base_urls: list[str] = Field([DEFAULT_BASE_URL], description=(
        "Where a step's api_base_url may point: the key is sent to these only (add a proxy or a test server)."))

    @field_validator("allowed_base_urls")
    @classmethod
    def _normalised(cls, urls: list[str]) -> list[str]:
        return [normalised(url) for url in urls]


def normalised(url: str) -> str:
    """A base URL as compared: scheme and host in lower case, no trailing slash."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def unallowed(settings: PlacesSettings, base_url: str) -> str | None:
    """Why a step may not send its key to ``base_url``, or ``None`` when it may."""
    if normalised(base_url) in settings.allowed_base_urls:
        return None
    return (f"api_base_url {base_url} is not in [plugins.places] allowed_base_urls "
            f"({', '.join(settings.allowed_base_urls) or 'none'}): the API key is sent only where the operator "
            f"allows, so a definition cannot send it elsewhere")


NO_KEY = ("no Google Places API key: looked in the step's api_key and auth_id (neither is set) and in "
          "[plugins.places] api_key (not set either). Export " + FALLBACK_VARIABLE + " in the environment of "
          "every Quaero process, set [plugins.places] api_key, or give the step api_key: \"${MY_PLACES_KEY}\" or "
          "auth_id: naming stored credentials with an " + HEADER + " header")


class NoKey(Exception):
    """No key can be found; the message says where it looked and what to do."""


def readiness(ctx: ReadinessContext, options: PlacesOptions) -> str | None:
    """Why no key can be found for a step with these options, or ``None`` when one can (the same lookup
    as a job's, the stored credentials included, without sending anything)."""
    try:
        lookup(ctx, options)
    except NoKey as exc:
        return str(exc)
    return None


def find_key(ctx: JobContext, options: PlacesOptions) -> str:
    """The key a job's requests carry, by the order above; :class:`JobError` (not retried) saying where it
    looked when there is none."""
    try:
        return lookup(ctx, options)
    except NoKey as exc:
        raise JobError(str(exc), retryable=False) from None


def lookup(ctx: JobContext | ReadinessContext, options: PlacesOptions) -> str:
    """The key, by the order above; :class:`NoKey` when there is none."""
    settings: PlacesSettings = ctx.settings or PlacesSettings()
    refused = unallowed(settings, options.api_base_url)
    if refused:
        raise NoKey(refused)
    if options.api_key is not None:
        return _revealed(options.api_key, "the step's api_key")
    auth_id, base_url = options.auth_id, options.api_base_url
    try:
        credentials = ctx.credentials_for(base_url, auth_id=auth_id)
    except NotFound as exc:
        raise NoKey(f"auth_id: {exc.message}") from None
    if credentials is not None:
        for name, value in credentials.headers.items():
            if name.lower() == HEADER.lower() and value:
                return value
    if auth_id:  # named for the key: it must hold one
        why = (f"they hold no {HEADER} header" if credentials is not None
               else f"their base_url is not {base_url}")
        raise NoKey(f"auth_id {auth_id!r}: the stored credentials give no API key ({why})")
    if settings.api_key is None:
        raise NoKey(NO_KEY)
    try:
        return settings.api_key.reveal()
    except ConfigError as exc:
        if settings.api_key.reference == FALLBACK_VARIABLE:
            unset = f"(reads ${{{FALLBACK_VARIABLE}}}, which is not set)"
            raise NoKey(NO_KEY.replace("(not set either)", unset)) from None
        raise NoKey(f"[plugins.places] api_key: {exc.message}") from None


def _revealed(secret: Secret, where: str) -> str:
    try:
        return secret.reveal()
    except ConfigError as exc:
        raise NoKey(f"{where}: {exc.message}") from None


def bucket(key: str, method: str) -> str:
    """The rate-limit bucket of one key and API method (Google's quotas are per method and project): a
    fingerprint of the key, never the key (the core stores only a hash of the name anyway)."""
    return f"places:{hashlib.sha256(key.encode()).hexdigest()[:16]}:{method}"
