"""An Elasticsearch/OpenSearch/ZincSearch HTTP endpoint (the audit trail's index sink).

One method: send a request, retrying only transient faults (connection errors, 429, 5xx),
bounded and jittered. The answer comes back as JSON (``{}`` when the body is not JSON);
an HTTP error becomes ``IndexRefused`` with its status and the start of the body, a server
that never answered becomes ``Unreachable``. No ``requests`` type leaves this module.
"""

from __future__ import annotations

from typing import Any

import requests

from pipelinelib.errors import TransientError, Unreachable
from pipelinelib.retry import transient_retry


class IndexRefused(Exception):
    """The index answered an HTTP error (``status``, ``text``: the body's first 200 chars)."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


class SearchIndex:
    """One index server at ``url`` with basic auth or an API key (never logged)."""

    def __init__(self, url: str, *, user: str = "", password: str = "", api_key: str = "",
                 timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.auth = (user, password) if user else None
        self.headers = {"Authorization": f"ApiKey {api_key}"} if api_key else {}

    def send(self, method: str, path: str, body: str | bytes, content_type: str) -> Any:
        """``method`` ``url/path`` with ``body``; the JSON answer (``{}`` if not JSON)."""

        @transient_retry(attempts=3, max_delay_s=8.0, max_wait_s=1.0)
        def send() -> requests.Response:
            try:
                resp = requests.request(
                    method, f"{self.url}/{path}", data=body, auth=self.auth,
                    headers={**self.headers, "Content-Type": content_type},
                    timeout=self.timeout_s)
            except requests.RequestException as exc:
                raise TransientError(f"{type(exc).__name__}: {str(exc)[:160]}") from exc
            if resp.status_code in (429, 502, 503, 504) or resp.status_code >= 500:
                raise TransientError(f"HTTP {resp.status_code}", status=resp.status_code)
            return resp

        try:
            resp = send()
        except TransientError as exc:
            raise Unreachable(str(exc)) from exc
        if resp.status_code >= 400:
            raise IndexRefused(resp.status_code, resp.text[:200])
        try:
            return resp.json()
        except ValueError:
            return {}
