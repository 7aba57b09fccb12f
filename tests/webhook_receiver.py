"""A webhook receiver on 127.0.0.1 for the tests: it answers with scripted status codes and keeps every
request (headers and raw body), so a test can check the signature as a real receiver would."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from support import served

from quaero.engine.webhook_signing import verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.headers["x-quaero-event"]

    def signed_with(self, secret: str) -> bool:
        """What a receiver checks: HMAC-SHA256 of timestamp.body with the secret, and a recent timestamp."""
        return verify(secret, self.headers["x-quaero-timestamp"], self.body,
                      self.headers.get("x-quaero-signature", ""), now=time.time())


class Receiver:
    """Answers each request with the next of ``codes`` (then 200), optionally with extra headers."""

    def __init__(self, codes: tuple[int, ...] = (), headers: dict[str, str] | None = None) -> None:
        self.codes = list(codes)
        self.headers = headers or {}
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.url = ""

    def events(self) -> list[str]:
        with self.lock:
            return [request.event for request in self.requests]

    def of(self, event: str) -> list[Received]:
        with self.lock:
            return [request for request in self.requests if request.event == event]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    code = receiver.codes.pop(0) if receiver.codes else 200
                answer = b"no thanks" if code >= 400 else b"ok"
                self.send_response(code)
                extra = receiver.headers if code >= 400 else {}
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@contextlib.contextmanager
def receiving(*codes: int, headers: dict[str, str] | None = None) -> Iterator[Receiver]:
    """A running :class:`Receiver`; its URL is ``receiver.url``."""
    receiver = Receiver(codes, headers)
    with served(receiver.handler()) as url:
        receiver.url = url
        yield receiver
