"""A small local website whose pages end in every outcome a crawl child can have, for the outcome tests.

``/`` links to ``/a`` (saved), ``/private/secret`` (robots.txt disallows it: ``skipped:robots``),
``/missing`` (404: ``skipped:http_404``) and ``/reset`` (the connection drops mid-body on every try: the
job fails after its retries). :data:`HOLD` pages answer only once ``site.release`` is set (for the tests of
jobs waiting for a per-host slot).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from support import served

HOLD = "/hold/"
EXPECTED = {"/": "saved", "/a": "saved", "/private/secret": "skipped:robots", "/missing": "skipped:http_404",
            "/reset": "failed"}


def _page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html><head><title>{title}</title></head><body><main><h1>{title}</h1>"
            f"<p>{body}</p></main></body></html>").encode()


@dataclass
class OutcomeSite:
    url: str
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[str] = field(default_factory=list)

    def __call__(self, path: str) -> str:
        return self.url + path


@contextlib.contextmanager
def outcome_site() -> Iterator[OutcomeSite]:
    """The site, served on a free port of 127.0.0.1 while the block runs."""
    site: OutcomeSite

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            site.requests.append(self.path)
            if self.path == "/robots.txt":
                return self._send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
            if self.path == "/":
                links = "".join(f'<a href="{p}">{p}</a> ' for p in EXPECTED if p != "/")
                return self._send(200, _page("Outcome home", f"The outcome home page. {links}"))
            if self.path == "/a":
                return self._send(200, _page("Page A", "The alphaword page, saved."))
            if self.path == "/reset":
                # A Content-Length the body never reaches, then the connection is gone: a network error.
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", "5000")
                self.end_headers()
                self.wfile.write(b"<html><body>cut off")
                self.wfile.flush()
                self.close_connection = True
                return None
            if self.path.startswith(HOLD):
                site.release.wait(30)
                return self._send(200, _page(f"Held {self.path}", "A page that answers once released."))
            return self._send(404, _page("Not found", "Nothing here."))

        def _send(self, status: int, body: bytes, kind: str = "text/html; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    with served(Handler) as url:
        site = OutcomeSite(url)
        try:
            yield site
        finally:
            site.release.set()
