"""Ask a remote model: :func:`complete`, with the caller's rate limiter, retries and checked JSON answers.

Every request, a retry or the repair request included, goes through the limiter:

1. ``limiter.acquire(estimate)``: the request body's estimated tokens (:mod:`.tokens`) plus
   ``max_output_tokens``, or :data:`OUTPUT_ESTIMATE` without one;
2. one ``POST`` with ``timeout=config.timeout`` (no streaming);
3. ``reservation.settle(tokens)``, once: the prompt plus completion tokens the server reported (estimated
   when it reports none); ``0`` when the server answered with an error status or no connection could be
   made (nothing was processed); the estimate when the request went out but no answer came (a timeout,
   a dropped connection: the provider may have processed it), or when something else went wrong;
4. on a transient failure (408, 409, 429, 5xx, timeouts, connection errors), a ``warn`` line and a wait
   (what the server asked for, else :func:`.backoff.backoff`), then again, up to ``max_retries`` times.
   A server that asks for more than ``max_server_wait`` seconds, or says the quota is used up, ends the
   call at once.

With a ``schema``, the answer is parsed (a code fence around it tolerated) and validated; a bad one is sent
back once with the problem, and a second bad answer fails the call. A truncated answer (``length`` /
``MAX_TOKENS``) or one the provider withholds is never parsed as if complete: it fails the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import httpx

from quaero.api import OutboundRefused

from .answers import AnswerInvalid, parse_answer, repair_request, validator_for
from .backoff import backoff
from .gemini import GeminiProvider
from .openai import OpenAIProvider
from .provider import Completion, Provider, ProviderConfig, ProviderError, Reply, Request, Turn, excerpt, mask
from .tokens import estimate_tokens

OUTPUT_ESTIMATE = 512  # tokens reserved for the answer when max_output_tokens does not say

PROVIDERS: dict[str, type[Provider]] = {"openai": OpenAIProvider, "gemini": GeminiProvider}


class Reservation(Protocol):
    """One request's share of the rate limit, settled once with the real token count."""

    def settle(self, tokens: int) -> None: ...


class Limiter(Protocol):
    """The rate limit of one provider and key; ``acquire`` blocks until a request may go."""

    def acquire(self, tokens: int) -> Reservation: ...


Sleep = Callable[[float], None]
Log = Callable[..., None]
T = TypeVar("T")


def provider_for(config: ProviderConfig) -> Provider:
    """The wire format of ``config.kind``."""
    return PROVIDERS[config.kind](config)


def complete(client: httpx.Client, config: ProviderConfig, *, system: str, prompt: str,
             schema: dict[str, Any] | None = None, limiter: Limiter, sleep: Sleep, log: Log) -> Completion:
    """Ask ``config``'s model for one answer to ``prompt``; JSON of ``schema`` when one is given.

    Raises :class:`ProviderError` when no usable answer came (see the module docstring), and lets the
    limiter's and ``sleep``'s :class:`quaero.api.JobCancelled` through.
    """
    call = _Call(client, provider_for(config), limiter, sleep, log)
    try:
        validator = validator_for(schema) if schema is not None else None
    except ValueError as exc:
        raise ProviderError(str(exc)) from None
    turns = [Turn("user", prompt)]
    reply = call.ask(system, turns, schema)
    data = None
    if validator is not None:
        try:
            data = parse_answer(reply.text, validator)
        except AnswerInvalid as problem:
            call.say("warn", f"{call.label}: {problem}; asking once for a corrected answer")
            turns += [Turn("assistant", reply.text), Turn("user", repair_request(problem))]
            reply = call.ask(system, turns, schema)
            try:
                data = parse_answer(reply.text, validator)
            except AnswerInvalid as again:
                raise call.fail(ProviderError(f"{call.label}: {again} (the answer was still wrong after one "
                                              f"request for a corrected answer)")) from None
    call.say("debug", f"{call.label}: {call.prompt_tokens} prompt + {call.completion_tokens} completion tokens"
                      f" in {call.attempts} request{'s' if call.attempts != 1 else ''}",
             prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens, attempts=call.attempts)
    return Completion(text=reply.text, data=data, prompt_tokens=call.prompt_tokens,
                      completion_tokens=call.completion_tokens, finish_reason=reply.finish_reason,
                      attempts=call.attempts)


def post(client: httpx.Client, provider: Provider, request: Request, read: Callable[[Any], tuple[T, int]], *,
         estimate: int, limiter: Limiter, sleep: Sleep, log: Log) -> T:
    """Send a request of another of the provider's methods (embeddings) with :func:`complete`'s limiter,
    retries, waits and error reading: ``read`` turns a 2xx JSON body into the result and the tokens used
    (a :class:`ProviderError` when the body is not of the expected shape); ``estimate`` is reserved first."""
    return _Call(client, provider, limiter, sleep, log).post(request, estimate, read)


class _Call:
    """One ``complete`` call: its requests, their token counts, and the key kept out of what it says."""

    def __init__(self, client: httpx.Client, provider: Provider, limiter: Limiter, sleep: Sleep,
                 log: Log) -> None:
        self.client, self.provider, self.limiter, self.sleep, self.log = client, provider, limiter, sleep, log
        self.config = provider.config
        self.label = provider.label
        self.attempts = self.prompt_tokens = self.completion_tokens = 0

    def say(self, level: str, message: str, **metadata: Any) -> None:
        self.log(level, mask(message, self.config.api_key), **metadata)

    def fail(self, error: ProviderError) -> ProviderError:
        return error.masked(self.config.api_key)

    def ask(self, system: str, turns: list[Turn], schema: dict[str, Any] | None) -> Reply:
        """The next answer of the conversation, retried while the failures are transient."""
        config = self.config
        try:
            request = self.provider.request(system=system, turns=turns, schema=schema)
        except ValueError as exc:  # a schema the provider cannot take
            raise self.fail(ProviderError(f"{self.label}: {exc}")) from None
        prompt_estimate = self.provider.request_tokens(request)
        estimate = prompt_estimate + (config.max_output_tokens or OUTPUT_ESTIMATE)

        def read(payload: Any) -> tuple[Reply, int]:
            reply = self.provider.reply(payload)
            reply = replace(reply,
                            prompt_tokens=prompt_estimate if reply.prompt_tokens is None else reply.prompt_tokens,
                            completion_tokens=estimate_tokens(reply.text) if reply.completion_tokens is None
                            else reply.completion_tokens)
            return reply, (reply.prompt_tokens or 0) + (reply.completion_tokens or 0)

        return self._judge(self.post(request, estimate, read))

    def post(self, request: Request, estimate: int, read: Callable[[Any], tuple[T, int]]) -> T:
        """What ``read`` makes of the 2xx body of ``request`` (with the tokens to settle), the request
        retried while the failures are transient; the error it ended in, masked, otherwise."""
        config = self.config
        for attempt in range(1, config.max_retries + 2):
            self.attempts += 1
            reservation = self.limiter.acquire(estimate)
            try:
                outcome, used = self._send(request, estimate, read)
            except BaseException:
                reservation.settle(estimate)
                raise
            reservation.settle(used)
            if not isinstance(outcome, ProviderError):
                return outcome
            error = self.fail(outcome)
            if not error.transient:
                raise error
            if attempt > config.max_retries:
                raise ProviderError(f"{error.message} (gave up after {attempt} attempts)", transient=True,
                                    status=error.status, retry_after=error.retry_after)
            wait = error.retry_after if error.retry_after is not None else backoff(
                attempt, config.min_backoff, config.max_backoff)
            if wait > config.max_server_wait:
                raise ProviderError(f"{error.message} (the server asks to wait {wait:.0f} s, more than "
                                    f"max_server_wait, {config.max_server_wait:g} s)", transient=True,
                                    status=error.status, retry_after=wait)
            self.say("warn", f"{error.message}; retrying in {wait:.1f} s (attempt {attempt + 1} of "
                             f"{config.max_retries + 1})", wait=round(wait, 3), status=error.status,
                     attempt=attempt + 1)
            self.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _judge(self, reply: Reply) -> Reply:
        self.prompt_tokens += reply.prompt_tokens or 0
        self.completion_tokens += reply.completion_tokens or 0
        if reply.truncated:
            raise self.fail(ProviderError(f"{self.label}: the answer was cut at {reply.completion_tokens} tokens: "
                                          f"raise max_output_tokens", status=200))
        if reply.withheld:
            raise self.fail(ProviderError(f"{self.label}: {reply.withheld}", status=200))
        return reply

    def _send(self, request: Request, estimate: int,
              read: Callable[[Any], tuple[T, int]]) -> tuple[T | ProviderError, int]:
        """One request: what ``read`` made of its answer or the error it ended in, and the tokens to settle."""
        timeout = self.config.timeout
        try:
            response = self.client.post(request.url, headers=request.headers, json=request.body, timeout=timeout)
        except OutboundRefused as exc:  # refused again on every retry: said at once
            return ProviderError(f"{self.label}: {exc}"), 0
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return ProviderError(f"{self.label}: cannot connect ({type(exc).__name__}: {exc})",
                                 transient=True), 0
        except httpx.TimeoutException:
            return ProviderError(f"{self.label}: no answer within {timeout:g} s", transient=True), estimate
        except httpx.TransportError as exc:
            return ProviderError(f"{self.label}: the connection failed ({type(exc).__name__}: {exc})",
                                 transient=True), estimate
        status, text = response.status_code, response.text
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if 300 <= status < 400:
            where = response.headers.get("location", "elsewhere")
            return ProviderError(f"{self.label} answered {status}, a redirect to {where} (not followed: set "
                                 f"base_url to the final address)", status=status), 0
        if status >= 400:
            headers = {name.lower(): value for name, value in response.headers.items()}
            return self.provider.error(status, headers, payload, text), 0
        if payload is None:
            return ProviderError(f"{self.label} answered {status} with a body that is not JSON: {excerpt(text)}",
                                 status=status), estimate
        try:
            return read(payload)
        except ProviderError as exc:
            exc.status = status
            return exc, estimate
