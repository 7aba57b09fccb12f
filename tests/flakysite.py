"""A local site that fails some pages at first, then serves them (for re-runs of failed pages)."""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler

PAGES = [f"/p{i}" for i in range(1, 7)]
#: Pages whose first requests get no answer (the connection is dropped): a network error, which fails the
#: job once its retries (2) are spent. Their fourth request is answered.
FLAKY = {"/p2": 3, "/p5": 3}


class FlakySite(BaseHTTPRequestHandler):
    """A home page linking to six pages, two of which fail at first: a real server with state."""

    hits: Counter[str] = Counter()
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        with self.lock:
            self.hits[self.path] += 1
            hit = self.hits[self.path]
        if self.path in FLAKY and hit <= FLAKY[self.path]:
            self.close_connection = True  # no answer at all
            return
        if self.path == "/":
            body = "<html><head><title>Home</title></head><body>" + "".join(
                f'<a href="{page}">{page}</a> ' for page in PAGES) + "</body></html>"
        elif self.path in PAGES:
            body = f"<html><head><title>Page {self.path}</title></head><body><p>words of {self.path}</p></body></html>"
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
