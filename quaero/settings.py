"""Settings: defaults → ``quaero.toml`` → ``QUAERO_*`` environment → command-line flags.

All layers merge into one frozen :class:`Settings` that is passed down; nothing deeper reads the
environment. An unknown or ill-typed key is a :class:`~quaero.errors.ConfigError` naming the key and the
layer it came from.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import json
import os
import re
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from quaero.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
ENV_PREFIX = "QUAERO_"
PLUGIN_ENV_PREFIX = "QUAERO_PLUGIN_"
#: Environment names kept for settings that were renamed.
_RENAMED = {"plugins": "load_plugins"}
CONFIG_FILE_NAME = "quaero.toml"
#: Where ``quaero serve`` serves its user guide: the one path of the server's own address that outbound
#: requests may read without ``allow_private_networks`` (the shipped example crawl reads it).
GUIDE_PATH = "/guide/"
# Variables with the prefix that are not settings: the config file's path, and what a supervisor passes
# to the worker processes it starts.
_NOT_SETTINGS = {"QUAERO_CONFIG", "QUAERO_SETTINGS_JSON", "QUAERO_WORKER_INDEX"}
#: Settings whose values are never shown: not in an error, a page or a log.
SECRET_SETTINGS = frozenset({"access_token", "secret_key", "webhooks"})
#: Where a setting that no layer set comes from.
DEFAULT_SOURCE = "default"
#: What an execution notifies a webhook of: it started (running), and how it ended.
WEBHOOK_EVENTS = ("started", "completed", "failed", "cancelled")
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def check_webhook_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; ``${ENV_VAR}`` references in it count as text."""
    probe = _REFERENCE.sub("1", url.strip())  # a digit: a reference may stand for a port too
    try:
        parts = urlsplit(probe)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname or " " in probe:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host, such as "
                         f"https://example.com/hooks/quaero")
    return url.strip()


def check_webhook_events(events: list[str]) -> list[str]:
    """The events, each one of :data:`WEBHOOK_EVENTS` (a typo gets a suggestion), without repeats."""
    if not events:
        raise ValueError(f"list at least one event: {', '.join(WEBHOOK_EVENTS)}")
    for event in events:
        if event not in WEBHOOK_EVENTS:
            close = difflib.get_close_matches(event, WEBHOOK_EVENTS, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown event {event!r}: {hint}the events are {', '.join(WEBHOOK_EVENTS)}")
    return list(dict.fromkeys(events))


class Webhook(BaseModel):
    """A URL that is sent a JSON body when an execution starts, completes, fails or is cancelled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http:// or https:// URL; ${ENV_VAR} references in it are read when sending")
    events: list[str] = Field(default_factory=lambda: list(WEBHOOK_EVENTS),
                              description=f"which of {', '.join(WEBHOOK_EVENTS)} (default: all)")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_webhook_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return check_webhook_events(value)

    @property
    def secret_text(self) -> str | None:
        """The key that signs deliveries as configured (a value or a ``${ENV_VAR}`` reference), or ``None``:
        deliveries unsigned. ``Secret(text).reveal()`` reads it."""
        raise NotImplementedError


class GlobalWebhook(Webhook):
    """A webhook of the settings (``[[webhooks]]`` in quaero.toml): every execution's, or some definitions'."""

    # A plain string, like the other secret settings, so that a copy of the settings keeps it; never shown.
    secret: str | None = Field(
        None, min_length=1, repr=False,
        description="key of the HMAC-SHA256 signature (X-Quaero-Signature): a value or ${ENV_VAR}; without one, "
                    "deliveries are not signed")
    definitions: list[str] | None = Field(
        None, description="only executions of these definition ids (shell patterns such as crawl-*); default: all")

    @property
    def secret_text(self) -> str | None:
        return self.secret

    def applies_to(self, definition_id: str | None) -> bool:
        """Whether executions of ``definition_id`` notify this webhook."""
        if self.definitions is None:
            return True
        return definition_id is not None and any(fnmatch.fnmatchcase(definition_id, pattern)
                                                 for pattern in self.definitions)


class Settings(BaseModel):
    """The whole configuration of one Quaero process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(Path("data"), description="Directory for the databases, queue and logs.")
    database_url: str | None = Field(
        None, description="peewee database URL; default sqlite:///<data_dir>/quaero.stores.db."
    )
    queue_url: str | None = Field(
        None, description="sqlite:///path, redis://host:port/db or amqp://user:pass@host; default sqlite:///<data_dir>/queue.db."
    )
    host: str = Field("127.0.0.1", description="Address the web server binds.")
    port: int = Field(8085, ge=0, le=65535, description="Port the web server binds.")
    worker_threads: int = Field(8, ge=1, le=256, description="Worker threads per worker process.")
    worker_processes: int | None = Field(
        None, ge=0, le=64,
        description="Worker processes `quaero serve` starts (0: in-process threads only); default one per core.",
    )
    definitions_dir: Path = Field(
        Path("job-definitions"), description="Directory of job definition YAML files loaded at start.")
    monitor_interval: float = Field(1.0, gt=0, le=60, description="Seconds between the monitor's safety-net polls.")
    default_job_timeout: float = Field(
        3600.0, gt=0, description="Seconds an execution may run when its definition sets no timeout.")
    time_limit: float = Field(600.0, gt=0, description="Seconds one child job may run before it is stopped.")
    queue_lease_ms: int = Field(
        30000, ge=200, description="How long a claimed message stays invisible without a heartbeat.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    load_plugins: list[str] | None = Field(
        None, description="Only these plugins load (names, comma-separated in the environment).")
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Each plugin's settings: the [plugins.NAME] tables of quaero.toml.")
    plugin_environment: dict[str, str] = Field(
        default_factory=dict, repr=False,
        description="The QUAERO_PLUGIN_<NAME>_<KEY> variables, read when each plugin starts.")
    embedder: str = Field(
        "local", min_length=1, description="The embedding model for search by meaning: a provider a plugin offers "
                                           "(local: offline, built in; openai, gemini: the agent plugin's), or none.")
    answerer: str | None = Field(
        None, description="The model that writes answers to `ask` from the best passages (openai, gemini: the agent "
                          "plugin's); unset: ask returns the passages themselves.")
    templates_dir: Path | None = Field(
        None, description="Directory of Jinja templates that override the plugins' and the core's.")
    plugin_modules: list[str] = Field(
        default_factory=list, description="Extra plugin modules to import and register (dotted paths)."
    )
    access_token: str | None = Field(
        None, description="An admin credential for scripts (no user): 'Authorization: Bearer <token>'. When it or "
                          "any account (quaero users add) exists, the API, WebSocket and pages need signing in.")
    # Accounts and sessions (quaero/web/auth.py, quaero/stores/accounts.py).
    allowed_hosts: list[str] | None = Field(
        None, description="Host names the server answers to (comma-separated in the environment; a leading dot "
                          "for a domain and its subdomains; * for any). Default: localhost, 127.0.0.1, ::1 and "
                          "`host` when it is one address.")
    session_idle_timeout: float = Field(8 * 3600.0, gt=0, description="Seconds a browser session lasts unused.")
    session_max_age: float = Field(7 * 86400.0, gt=0, description="Seconds a browser session lasts at most.")
    login_max_failures: int = Field(
        5, ge=1, le=1000, description="Failed sign-ins, per user name and per client address, before each further "
                                      "try must wait.")
    login_lockout: float = Field(
        30.0, gt=0, le=3600,
        description="Seconds the first wait lasts; each further failure doubles it, up to an hour.")
    secret_key: str | None = Field(
        None, repr=False,
        description="Key(s) that encrypt stored credentials (Fernet keys, comma-separated, the first encrypts); "
                    "default: the key file <data_dir>/secret.key, made on first start.")
    max_stream_clients: int = Field(
        100, ge=1, le=100_000,
        description="WebSocket and Server-Sent Events clients one server process serves at once.")
    allow_private_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDRs, comma-separated in the environment) that outbound requests may reach "
                    "although they are private, loopback, link-local or reserved: e.g. 127.0.0.0/8,::1/128.")
    webhooks: list[GlobalWebhook] = Field(
        default_factory=list,
        description="Webhooks notified of every execution: [[webhooks]] tables of quaero.toml with url, secret, "
                    "events and definitions (a JSON list in the environment). Definitions add their own.")
    webhook_timeout: float = Field(10.0, gt=0, le=300, description="Seconds one webhook delivery attempt may take.")
    webhook_attempts: int = Field(5, ge=1, le=100, description="Attempts of a webhook delivery before it fails.")
    webhook_backoff: float = Field(
        1.0, gt=0, le=86400,
        description="Seconds before a webhook delivery's second attempt; each later wait is four times longer.")
    webhook_backoff_max: float = Field(600.0, gt=0, le=86400,
                                       description="The longest wait between two attempts of a webhook delivery.")
    public_url: str | None = Field(
        None, description="The server's address as others reach it (https://quaero.example.com), for the links of "
                          "webhook bodies; default http://<host>:<port>.")

    #: Where each value that a layer set came from (see :attr:`sources`); not a setting itself.
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def sources(self) -> dict[str, str]:
        """Where each setting's value came from, for every setting: ``default``, ``file PATH``,
        ``environment variable QUAERO_X`` or ``flag --x``."""
        return {name: self._sources.get(name, DEFAULT_SOURCE) for name in type(self).model_fields}

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("load_plugins", "plugin_modules", "allow_private_networks", "allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("webhooks", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # QUAERO_WEBHOOKS='[{"url": "https://...", "secret": "${HOOK_SECRET}"}]'
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise ValueError("write webhooks in the environment as a JSON list of tables, e.g. "
                                 '[{"url": "https://example.com/hook", "secret": "${HOOK_SECRET}"}]') from None
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not the server's address: write it as https://host[:port][/path]")
        return value.strip().rstrip("/")

    @field_validator("allow_private_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        networks = []
        for item in value:
            try:
                networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not a network: write an address or a CIDR such as 127.0.0.0/8 "
                                 f"or ::1/128") from None
        return networks

    @property
    def private_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`allow_private_networks` parsed."""
        return tuple(ipaddress.ip_network(item) for item in self.allow_private_networks)

    @property
    def server_url(self) -> str | None:
        """The web server's own base URL seen from this machine (``http://127.0.0.1:8085``), or ``None``
        when :attr:`host` is a name (which may resolve to anything)."""
        host = self.host.strip("[]").lower()
        if host in ("", "0.0.0.0", "::", "localhost"):
            return f"http://127.0.0.1:{self.port}"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"http://{shown}:{self.port}"

    @property
    def loopback_bind(self) -> bool:
        """Whether :attr:`host` is a loopback address, which only this machine can reach."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # a name: it may resolve to anything

    @property
    def resolved_allowed_hosts(self) -> tuple[str, ...]:
        """:attr:`allowed_hosts` lower-cased without IPv6 brackets, or the default: the loopback names and
        :attr:`host` when it is one address (not 0.0.0.0 or ::, which stand for every address)."""
        if self.allowed_hosts is not None:
            return tuple(dict.fromkeys(name.strip().strip("[]").lower() for name in self.allowed_hosts))
        names = ["localhost", "127.0.0.1", "::1"]
        host = self.host.strip("[]").lower()
        if host not in ("", "0.0.0.0", "::", *names):
            names.append(host)
        return tuple(names)

    @property
    def resolved_public_url(self) -> str:
        """:attr:`public_url`, or this server's own address (its host name when it binds every address)."""
        if self.public_url:
            return self.public_url
        host = self.host.strip("[]")
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    # Derived values, computed so that changing data_dir moves everything with it.
    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'quaero.stores.db').resolve()}"

    @property
    def resolved_queue_url(self) -> str:
        """The queue URL, defaulting to a SQLite file in the data directory."""
        return self.queue_url or f"sqlite:///{(self.data_dir / 'queue.db').resolve()}"

    @property
    def resolved_worker_processes(self) -> int:
        """Worker processes to start; one per core unless configured."""
        if self.worker_processes is not None:
            return self.worker_processes
        return os.cpu_count() or 1

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed, validated like the original."""
        return load_settings(overrides=changes, base=self)


def _problems(exc: ValidationError, model: type[BaseModel], origin: Mapping[str, str], *, prefix: str = "",
              unset: str = "settings", missing: Callable[[str], str] | None = None,
              show_input: bool = True) -> ConfigError:
    """One :class:`ConfigError` naming every bad key of ``model``'s values and where it came from.

    ``show_input=False`` leaves the offending values out (a plugin's values may be secrets).
    """
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        where = origin.get(str(error["loc"][0]), unset) if error["loc"] else unset
        if error["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields)) or "none"
            problems.append(f"{prefix}unknown setting {key!r} in {where} (known settings: {known})")
        elif error["type"] == "missing" and missing is not None:
            problems.append(f"{prefix}setting {key!r} is required: {missing(key)}")
        else:
            secret = str(error["loc"][0]) in SECRET_SETTINGS if error["loc"] else False
            got = f" (got {error.get('input')!r})" if show_input and not secret else ""
            problems.append(f"{prefix}setting {key!r} from {where}: {error['msg']}{got}")
    return ConfigError("; ".join(problems), detail=problems)


def _validate(values: Mapping[str, Any], origin: dict[str, str], sources: Mapping[str, str]) -> Settings:
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise _problems(exc, Settings, origin) from None
    settings._sources = {key: sources[key] for key in values if key in sources}
    return settings


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a ``quaero.toml``: top-level keys (or a ``[quaero]`` table) and ``[plugins.NAME]`` tables."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if isinstance(data.get("quaero"), dict):  # [quaero] beside [plugins.NAME] tables
        data = {**data.pop("quaero"), **data}
    if isinstance(data.get("plugins"), list):  # the setting's name before plugins had settings of their own
        data["load_plugins"] = data.pop("plugins")
    return data


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Pick the ``QUAERO_*`` setting variables as lower-case setting names.

    ``QUAERO_PLUGIN_<NAME>_<KEY>`` variables are plugins' settings: they are kept whole under
    ``plugin_environment``, to be matched with the plugins' names once those are known.
    """
    values: dict[str, Any] = {}
    plugin_environment: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX):].lower()
        if name.startswith(PLUGIN_ENV_PREFIX) and key not in Settings.model_fields:  # not QUAERO_PLUGIN_MODULES
            plugin_environment[name] = value
        else:
            values[_RENAMED.get(key, key)] = value
    if plugin_environment:
        values["plugin_environment"] = plugin_environment
    return values


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: Settings | None = None,
) -> Settings:
    """Build the settings from every layer, later layers winning.

    ``config_file`` (or ``QUAERO_CONFIG``) names the TOML file; without either, ``./quaero.toml`` is read
    when it exists. ``overrides`` are command-line flags; ``None`` values in it are ignored.
    """
    values: dict[str, Any] = base.model_dump(exclude_unset=True) if base else {}
    origin: dict[str, str] = {key: "settings" for key in values}
    # What pages and the API say of each value's origin (``origin`` words the errors).
    sources: dict[str, str] = {key: base.sources[key] for key in values} if base else {}
    if base is None:
        env = os.environ if environ is None else environ
        path = config_file or env.get(ENV_PREFIX + "CONFIG")
        if path is None and Path(CONFIG_FILE_NAME).is_file():
            path = CONFIG_FILE_NAME
        if path is not None:
            from_file = read_config_file(Path(path))
            values.update(from_file)
            origin.update({key: str(path) for key in from_file})
            sources.update({key: f"file {Path(path).resolve()}" for key in from_file})
        from_env = read_environment(env)
        values.update(from_env)
        for key in from_env:
            variable = _variable_of(key, env)
            origin[key] = sources[key] = f"environment variable {variable}"
        if "plugin_environment" in from_env:
            origin["plugin_environment"] = f"environment variables {PLUGIN_ENV_PREFIX}*"
            sources["plugin_environment"] = f"environment variables {PLUGIN_ENV_PREFIX}*"
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
            origin[key] = f"--{key.replace('_', '-')}"
            sources[key] = f"flag --{key.replace('_', '-')}"
    return _validate(values, origin, sources)


def _variable_of(key: str, environ: Mapping[str, str]) -> str:
    """The environment variable a setting was read from (a renamed setting keeps its old name too)."""
    for old, new in _RENAMED.items():
        if new == key and ENV_PREFIX + old.upper() in environ:
            return ENV_PREFIX + old.upper()
    return ENV_PREFIX + key.upper()


def _env_key(name: str) -> str:
    """A plugin's name as it appears in ``QUAERO_PLUGIN_<NAME>_<KEY>``: upper case, other characters ``_``."""
    return "".join(ch if ch.isalnum() else "_" for ch in name).upper()


def plugin_values(settings: Settings, name: str, known: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """A plugin's raw settings, the environment over ``[plugins.NAME]``, and where each key came from.

    ``known`` are the names of the other loaded plugins: a variable belongs to the plugin with the longest
    name that prefixes it, so ``QUAERO_PLUGIN_RSS_FEED_URL`` goes to a plugin ``rss_feed`` when one is
    loaded and to ``rss`` otherwise. Values that look like JSON lists or tables are parsed as JSON.
    """
    values = dict(settings.plugins.get(name, {}))
    origin = {key: f"[plugins.{name}] in the config file" for key in values}
    prefixes = sorted({_env_key(other) for other in (*known, name)}, key=len, reverse=True)
    mine = _env_key(name)
    for variable, raw in settings.plugin_environment.items():
        rest = variable[len(PLUGIN_ENV_PREFIX):]
        owner = next((prefix for prefix in prefixes if rest.startswith(prefix + "_")), None)
        if owner != mine:
            continue
        key = rest[len(mine) + 1:].lower()
        value: Any = raw
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise ConfigError(f"environment variable {variable}: {raw!r} starts like JSON but is not "
                                  f"valid JSON") from None
        values[key] = value
        origin[key] = f"environment variable {variable}"
    return values, origin


def validate_plugin_settings(settings: Settings, name: str, model: type[ModelT],
                             known: Iterable[str] = ()) -> ModelT:
    """A plugin's settings validated by its model; a :class:`ConfigError` names each bad key and its origin."""
    values, origin = plugin_values(settings, name, known)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        def missing(key: str) -> str:
            return f"set it in [plugins.{name}] of quaero.toml or as {PLUGIN_ENV_PREFIX}{_env_key(name)}_{key.upper()}"

        raise _problems(exc, model, origin, prefix=f"plugin {name}: ", unset="the defaults", missing=missing,
                        show_input=False) from None
