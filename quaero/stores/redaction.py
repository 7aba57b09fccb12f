"""Redaction: secrets never reach a log line, a job log, an error message or a page in clear.

One :class:`Redactor` per process (:func:`process_redactor`): logging is per process, so the secrets it
must hide are too. It masks two kinds of thing:

- what looks like a secret wherever it comes from: the values of query parameters such as ``access_token``,
  ``token``, ``key``, ``api_key`` or ``password``; the values of ``Authorization``, ``Cookie`` and other
  credential headers (``Name: value`` in text, ``'Name': 'value'`` in a dict's repr); the password in a
  URL's user info (``postgresql://user:***@host/db``);
- the secret values this process knows: stored credential values as they are saved and read, the access
  token, plugin secret settings, and environment variables whose names say they hold one (``*_KEY``,
  ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD`` ...), which ``${ENV_VAR}`` references read.

:class:`RedactingFilter` applies it to every record a logging handler writes (uvicorn's access log
included); the job log writer and the job manager apply it to job log lines and error messages before they
are stored or published.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from quaero.api.credentials import CREDENTIAL_HEADER_NAME
from quaero.api.settings import Secret
from quaero.errors import ConfigError

MASK = "***"
#: A known value shorter than this is not masked: it would blank out ordinary words and numbers.
MIN_SECRET_LENGTH = 6
_PARAMS = ("access_token", "token", "key", "api_key", "apikey", "api-key", "password", "passwd", "pwd", "secret",
           "client_secret", "auth", "signature", "sig", "session", "refresh_token", "id_token", "code")
# ?token=... and &api_key=...: the value up to the next separator.
_PARAM_NAMES = "|".join(map(re.escape, _PARAMS))
_QUERY = re.compile(rf"""([?&;](?:{_PARAM_NAMES})=)[^&;#\s"'<>]+""", re.IGNORECASE)
# 'Authorization': 'Bearer x' (a dict's repr, JSON) or Authorization: Bearer x (a header line).
_QUOTED_HEADER = re.compile(rf"""(["']{CREDENTIAL_HEADER_NAME}["']\s*[:=]\s*)(["'])(?:(?!\2).)*\2""", re.IGNORECASE)
# Not inside a URL's path ("/private/secret: robots" is a path and a word, not a header).
_HEADER_LINE = re.compile(rf"""((?<![\w/.~%-]){CREDENTIAL_HEADER_NAME}\s*[:=]\s*)(?!["']|\*\*\*)[^\r\n"']+""",
                          re.IGNORECASE)
# scheme://user:password@host
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(@)", re.IGNORECASE)
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|COOKIE|AUTH)", re.IGNORECASE)


class Redactor:
    """Masks secrets in text: the patterns above and every value :meth:`remember` was given."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._known: re.Pattern[str] | None = None

    def remember(self, *values: str | None) -> None:
        """Mask these values from now on (empty and short ones are ignored)."""
        fresh = {value for value in values if value and len(value) >= MIN_SECRET_LENGTH} - self._values
        if not fresh:
            return
        with self._lock:
            self._values |= fresh
            # Longest first, so a value that contains another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._known = re.compile("|".join(map(re.escape, ordered)))

    def remember_environment(self, environ: Mapping[str, str]) -> None:
        """Remember the values of variables whose names say they hold a secret (``OPENAI_API_KEY``)."""
        self.remember(*(value for name, value in environ.items() if _SECRET_NAME.search(name)))

    def remember_settings(self, values: BaseModel, environ: Mapping[str, str] | None = None) -> None:
        """Remember the :class:`~quaero.api.Secret` fields of a plugin's settings (those that can be read)."""
        for name in type(values).model_fields:
            field = getattr(values, name)
            for secret in field if isinstance(field, list | tuple) else [field]:
                if isinstance(secret, Secret):
                    try:
                        self.remember(secret.reveal(environ))
                    except ConfigError:
                        pass  # a reference to a variable not set: nothing to hide yet

    def redact(self, text: str) -> str:
        """``text`` with every secret it shows replaced by ``***``."""
        if not text:
            return text
        known = self._known
        if known is not None:
            text = known.sub(MASK, text)
        if "=" in text:
            text = _QUERY.sub(r"\1" + MASK, text)
        if "@" in text:
            text = _USERINFO.sub(r"\1" + MASK + r"\2", text)
        if ":" in text or "=" in text:
            text = _QUOTED_HEADER.sub(r"\1\2" + MASK + r"\2", text)
            text = _HEADER_LINE.sub(r"\1" + MASK, text)
        return text

    def redact_data(self, value: Any) -> Any:
        """A JSON-like value with every string in it redacted (keys kept)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self.redact_data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_data(item) for item in value]
        return value


@functools.cache
def process_redactor() -> Redactor:
    """The redactor of this process, which every part that writes text out uses."""
    return Redactor()


def redact(text: str) -> str:
    """``text`` redacted by the process's redactor."""
    return process_redactor().redact(text)


def mask_url(url: str | None) -> str | None:
    """A URL with the password of its user info masked: ``postgresql://user:***@host/db``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return redact(url)
    if not password:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message, exception text and stack before it is written.

    Set on handlers, not loggers: a logger's filters see only the records logged on that logger, a
    handler's see every record that reaches it (uvicorn's, dramatiq's, the plugins').
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or process_redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        # The message is formatted here once; the handler's formatter then uses it as it is.
        record.msg, record.args = redactor.redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True


def install(handlers: Iterable[logging.Handler]) -> None:
    """Put the process's :class:`RedactingFilter` on each handler (once)."""
    for handler in handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
