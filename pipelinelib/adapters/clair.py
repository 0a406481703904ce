"""A client for Clair v4's HTTP API: index a manifest, then fetch its vulnerability report.

::

    POST /indexer/api/v1/index_report                     body: {"hash", "layers": [...]}
    GET  /indexer/api/v1/index_report/{digest}            poll until state IndexFinished
    GET  /matcher/api/v1/vulnerability_report/{digest}    the report ``parse_clair`` reads

Layers are described by URIs Clair fetches itself (the registry's blob URLs) with the
headers it should send (e.g. ``Authorization``); those header values are secrets.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from pipelinelib.adapters.registry import RegistryClient
from pipelinelib.errors import StepFailed, TransientError, Unreachable
from pipelinelib.retry import TRANSIENT_STATUS, transient_retry

FINISHED = "IndexFinished"
INDEX_ERROR = "IndexError"


class ClairClient:
    """Talks to one Clair deployment (combo mode, or indexer and matcher URLs apart);
    the ``ClairScanner`` seam (``ctx.scanner("clair", indexer=...)``)."""

    name = "clair"

    def __init__(self, indexer_url: str, matcher_url: str | None = None, *,
                 token: str | None = None, timeout: float = 30.0):
        self.indexer = indexer_url.rstrip("/")
        self.matcher = (matcher_url or indexer_url).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def index(self, manifest_digest: str, layers: list[dict[str, Any]], *,
              wait_s: float = 300.0, poll_s: float = 1.0) -> dict[str, Any]:
        """Submit a manifest for indexing and wait until Clair finished it."""
        body = {"hash": manifest_digest, "layers": layers}
        report = self._call("POST", f"{self.indexer}/indexer/api/v1/index_report", json=body)
        deadline = time.monotonic() + wait_s
        while report.get("state") not in (FINISHED, INDEX_ERROR):
            if time.monotonic() > deadline:
                raise StepFailed(f"clair did not finish indexing {manifest_digest} in {wait_s}s",
                                 evidence=[f"last state: {report.get('state')}"])
            time.sleep(poll_s)
            report = self._call(
                "GET", f"{self.indexer}/indexer/api/v1/index_report/{manifest_digest}"
            )
        if report.get("state") == INDEX_ERROR or report.get("success") is False:
            raise StepFailed(f"clair could not index {manifest_digest}",
                             cause=str(report.get("err") or "")[:300] or None,
                             hint="check that Clair can fetch the layer URIs")
        return report

    def vulnerability_report(self, manifest_digest: str) -> dict[str, Any]:
        """The matcher's vulnerability report for an indexed manifest."""
        return self._call(
            "GET", f"{self.matcher}/matcher/api/v1/vulnerability_report/{manifest_digest}"
        )

    def scan(self, manifest_digest: str, layers: list[dict[str, Any]],
             **wait: Any) -> dict[str, Any]:
        """Index, then report: the whole seed-003 flow in one call."""
        self.index(manifest_digest, layers, **wait)
        return self.vulnerability_report(manifest_digest)

    def scan_image(self, registry: RegistryClient, repository: str, reference: str,
                   **wait: Any) -> tuple[str, dict[str, Any]]:
        """(manifest digest, vulnerability report) of an image Clair fetches from
        ``registry`` itself (layer URIs with our credentials as headers)."""
        digest, layers = registry_layers(registry, repository, reference)
        return digest, self.scan(digest, layers, **wait)

    def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self._call_retried(method, url, **kwargs)
        except TransientError as exc:
            raise Unreachable("clair is unreachable or failing", cause=str(exc),
                              hint="check the Clair URL and that it is running") from exc

    @transient_retry(attempts=4, max_delay_s=10)
    def _call_retried(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.RequestException as exc:
            raise TransientError(f"clair {type(exc).__name__}") from exc
        if response.status_code in TRANSIENT_STATUS:
            raise TransientError(f"clair answered {response.status_code}", response.status_code)
        if response.status_code >= 400:
            raise StepFailed(f"clair: {method} {url} answered {response.status_code}",
                             cause=response.text[:300])
        try:
            answer: dict[str, Any] = response.json()
            return answer
        except ValueError as exc:
            raise StepFailed(f"clair: {method} {url} did not answer JSON",
                             cause=response.text[:200]) from exc


def registry_layers(registry: RegistryClient, repository: str, reference: str
                    ) -> tuple[str, list[dict[str, Any]]]:
    """The manifest digest and Clair layer descriptions for an image in our registry."""
    manifest, _, _ = registry.manifest(repository, reference)
    digest = registry.manifest_digest(repository, reference) or reference
    headers: dict[str, list[str]] = {}
    if registry.username and registry.password:
        import base64

        pair = f"{registry.username}:{registry.password}".encode()
        headers["Authorization"] = ["Basic " + base64.b64encode(pair).decode()]
    layers = [
        {"hash": layer["digest"],
         "uri": f"{registry.base}/v2/{repository}/blobs/{layer['digest']}",
         "headers": headers}
        for layer in manifest.get("layers", [])
    ]
    return digest, layers
