"""Small test doubles for time and for HTTP peers that cannot run here (never for docker/kube)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class FakeClock:
    """Time that advances only when the client under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers with JSON bodies."""

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
