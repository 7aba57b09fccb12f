"""WebhookSender: sends the webhook deliveries of executions from a background thread of the server.

The job pipeline never waits for a receiver: a trigger records each execution's transition in the database
(:mod:`quaero.stores.webhook_models`), and this thread turns those events into deliveries and sends them,
a few at a time from a small pool, through the process's outbound client, so that the core's address
policy applies (a private address is refused unless ``allow_private_networks`` allows it). It wakes when an
execution changes status and otherwise polls, so deliveries left by a stopped process (or one killed in the
middle) go out from the next one.

An attempt that cannot connect, times out, or gets a 5xx or a 429 is tried again after ``webhook_backoff``
seconds, then four times longer each time (at most ``webhook_backoff_max``; a ``Retry-After`` is honoured),
until ``webhook_attempts``; any other answer but a 2xx fails the delivery at once. Signing is in
:mod:`quaero.engine.webhook_signing`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from quaero import __version__
from quaero.api.outbound import OutboundRefused, retry_after
from quaero.api.settings import Secret, expand_references
from quaero.engine.webhook_signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from quaero.errors import QuaeroError
from quaero.settings import Settings
from quaero.stores.events import JOB_STATUS_CHANGE, Event, EventBus
from quaero.stores.logs import JobLogWriter
from quaero.stores.webhooks import Claim, WebhookStore

log = logging.getLogger(__name__)
#: Deliveries sent at once by one process.
SENDERS = 4
#: Seconds between looks for due deliveries when nothing wakes the sender.
POLL = 1.0
#: How long a claim outlives the attempt's timeout before another process may take the delivery.
LEASE_MARGIN = 30.0
#: Bytes of a refusing answer kept in the delivery's last error.
ERROR_SNIPPET = 300


class Outcome:
    """How one attempt went: ``delivered``, ``retry`` or ``failed``, with the status code and error."""

    __slots__ = ("kind", "status_code", "error", "wait")

    def __init__(self, kind: str, status_code: int | None = None, error: str | None = None,
                 wait: float | None = None) -> None:
        self.kind, self.status_code, self.error, self.wait = kind, status_code, error, wait


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th attempt failed: 1, 4, 16, ... times ``webhook_backoff``."""
    return min(settings.webhook_backoff * 4 ** max(0, attempts - 1), settings.webhook_backoff_max)


class WebhookSender:
    """The background thread (and its pool) that makes and sends webhook deliveries."""

    def __init__(self, store: WebhookStore, client: httpx.Client, bus: EventBus, settings: Settings, *,
                 logs: JobLogWriter | None = None, poll: float = POLL) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.logs = logs
        self.poll = poll
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = settings.webhook_timeout + LEASE_MARGIN
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="quaero-webhook")
        self._in_flight: set[Future[None]] = set()
        self._cond = threading.Condition()
        self._woken = True  # a first pass at once: deliveries a stopped process left behind
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="quaero-webhooks", daemon=True)
        self._unsubscribe = bus.subscribe(self._on_event, [JOB_STATUS_CHANGE])

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look for work now (an execution changed status, a delivery was sent again)."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    def _on_event(self, event: Event) -> None:
        if event.payload.get("job_type") == "parent":
            self.wake()

    # ---------------------------------------------------------------- the loop
    def _run(self) -> None:
        while True:
            sleep = self._sleep()  # a read of the database: not while holding the lock wake() takes
            with self._cond:
                if self._stopped:
                    return
                if not self._woken:
                    self._cond.wait(sleep)
                self._woken = False
                if self._stopped:
                    return
            try:
                self.pass_once()
            except Exception:
                log.exception("webhook pass failed; it will run again")
                time.sleep(0.5)

    def _sleep(self) -> float:
        if len(self._in_flight) >= SENDERS:
            return self.poll  # a send that ends wakes the loop sooner
        try:
            due = self.store.next_due()
        except Exception:
            return self.poll
        if due is None:
            return self.poll
        return max(0.0, min(self.poll, due - time.time()))

    def pass_once(self) -> int:
        """Make the deliveries of waiting events and start the due ones; returns how many were started."""
        self.store.expand_events()
        self._in_flight = {future for future in self._in_flight if not future.done()}
        claims = self.store.claim(self.owner, limit=SENDERS - len(self._in_flight), lease=self.lease)
        for claim in claims:
            future = self._pool.submit(self.attempt, claim)
            future.add_done_callback(lambda _: self.wake())
            self._in_flight.add(future)
        return len(claims)

    # ---------------------------------------------------------------- one attempt
    def attempt(self, claim: Claim) -> None:
        """Send ``claim`` once and record how it went."""
        try:
            outcome = self._send(claim)
        except Exception as exc:  # a bug, not the receiver: try again later rather than lose the delivery
            log.exception("webhook delivery %s failed unexpectedly", claim.id)
            outcome = Outcome("retry", error=f"{type(exc).__name__}: {exc}")
        last = claim.attempts >= self.settings.webhook_attempts
        if outcome.kind == "retry" and not last:
            wait = backoff(self.settings, claim.attempts)
            if outcome.wait is not None:
                wait = min(max(wait, outcome.wait), self.settings.webhook_backoff_max)
            self.store.settle(claim, self.owner, status="pending", status_code=outcome.status_code,
                              error=outcome.error, retry_at=time.time() + wait)
            self._log(claim, "warn", f"attempt {claim.attempts} failed ({outcome.error}); next in {wait:g} s")
            return
        if outcome.kind == "retry":
            outcome = Outcome("failed", outcome.status_code, f"{outcome.error} (gave up after {claim.attempts} "
                                                             f"attempts)")
        self.store.settle(claim, self.owner, status=outcome.kind, status_code=outcome.status_code,
                          error=outcome.error)
        if outcome.kind == "delivered":
            self._log(claim, "info", f"delivered (HTTP {outcome.status_code}, attempt {claim.attempts})")
        else:
            self._log(claim, "warn", f"failed: {outcome.error}")

    def _log(self, claim: Claim, level: str, text: str) -> None:
        if self.logs is not None:
            self.logs.write(claim.job_id, level, f"webhook {claim.event} to {claim.url}: {text}")

    def _send(self, claim: Claim) -> Outcome:
        try:
            url = expand_references(self.store.open(claim.target))
            secret = Secret(self.store.open(claim.secret)).reveal() if claim.secret else None
        except QuaeroError as exc:  # a ${ENV_VAR} not set, or the key that sealed it missing
            return Outcome("failed", error=exc.message)
        body = claim.body.encode("utf-8")
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": f"Quaero/{__version__} (webhooks)",
                   EVENT_HEADER: claim.event, DELIVERY_HEADER: claim.id, TIMESTAMP_HEADER: str(stamp)}
        if secret is not None:
            headers[SIGNATURE_HEADER] = signature(secret, stamp, body)
        timeout = self.settings.webhook_timeout
        try:
            with self.client.stream("POST", url, content=body, headers=headers,
                                    timeout=httpx.Timeout(timeout)) as response:
                snippet = _snippet(response)
        except OutboundRefused as exc:  # it would be refused again: not retried
            return Outcome("failed", error=str(exc))
        except httpx.TimeoutException:
            return Outcome("retry", error=f"no answer within {timeout:g} s (webhook_timeout)")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return Outcome("failed", error=f"the URL cannot be used: {exc}")
        except httpx.TransportError as exc:
            return Outcome("retry", error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        code = response.status_code
        if 200 <= code < 300:
            return Outcome("delivered", code)
        said = f"HTTP {code} {response.reason_phrase}".rstrip() + (f": {snippet}" if snippet else "")
        if code == 429 or code >= 500:
            return Outcome("retry", code, said, wait=retry_after(response.headers))
        if 300 <= code < 400:
            where = response.headers.get("location", "")
            return Outcome("failed", code, f"HTTP {code}: redirected{' to ' + where if where else ''}; webhooks do "
                                           f"not follow redirects: configure the URL it points to")
        return Outcome("failed", code, said)

    # ---------------------------------------------------------------- stopping
    def close(self, *, drain: float = 0.0) -> None:
        """Stop; with ``drain`` seconds, first send what is due now (``quaero run`` ends right after its
        execution, whose last event would otherwise wait for the next process)."""
        self._unsubscribe()
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if drain > 0:
            deadline = time.monotonic() + drain
            try:
                while time.monotonic() < deadline:
                    self._in_flight = {future for future in self._in_flight if not future.done()}
                    started = self.pass_once()
                    if not started and not self._in_flight:
                        break
                    time.sleep(0.02)
            except Exception:
                log.warning("webhook deliveries could not be sent before stopping; the next start sends them",
                            exc_info=True)
        self._pool.shutdown(wait=True)


def _snippet(response: httpx.Response) -> str:
    """The start of a refusing answer's body, on one line (nothing is read of a 2xx's)."""
    if 200 <= response.status_code < 300:
        return ""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= ERROR_SNIPPET:
            break
    text = data[:ERROR_SNIPPET].decode("utf-8", errors="replace")
    return " ".join(text.split())
