"""Registry HTTP API v2 client: existence, digests and image config, with basic/token auth.

We ask the registry itself (not the engine) what a tag points at: the digest it
reports in ``Docker-Content-Digest`` is the one deployments pin.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import re
from typing import Any

import requests

from pipelinelib.errors import StepFailed, TransientError, Unreachable
from pipelinelib.retry import (
    TRANSIENT_STATUS,
    is_storage_failure,
    parse_retry_after,
    transient_retry,
)

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryAuthFailed(StepFailed):
    """The registry refused our credentials (or we had none and it wants some)."""


def default_scheme(host: str) -> str:
    """``http`` for loopback registries (the engine's default insecure range), else ``https``."""
    name = host.rsplit(":", 1)[0].strip("[]")
    if name == "localhost":
        return "http"
    try:
        return "http" if ipaddress.ip_address(name).is_loopback else "https"
    except ValueError:
        return "https"


class RegistryClient:
    """A client for one registry host; credentials are passed per instance, never read from disk."""

    def __init__(
        self,
        host: str,
        username: str | None = None,
        password: str | None = None,
        scheme: str | None = None,
        timeout: float = 10.0,
    ):
        self.host = host
        self.base = f"{scheme or default_scheme(host)}://{host}"
        self.username, self.password = username, password
        self.timeout = timeout
        self.session = requests.Session()
        self._tokens: dict[str, str] = {}

    @property
    def auth_config(self) -> dict[str, str] | None:
        """Credentials in docker-py's ``auth_config`` shape, or None."""
        if self.username and self.password:
            return {"username": self.username, "password": self.password}
        return None

    def ping(self) -> None:
        """Check the registry answers and accepts our credentials."""
        self._request("GET", "/v2/", scope="")

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest ``repository:reference`` points at, or None when it does not exist."""
        response = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": MANIFEST_TYPES},
            allow_404=True,
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        body = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": MANIFEST_TYPES},
        ).content
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def manifest(self, repository: str, reference: str) -> tuple[dict[str, Any], str, bytes]:
        """The manifest document, its media type and raw bytes."""
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": MANIFEST_TYPES},
        )
        return response.json(), response.headers.get("Content-Type", ""), response.content

    def image_config(self, repository: str, reference: str) -> dict[str, Any]:
        """The image config (``config.Labels`` etc.) of a single-platform image."""
        manifest, _, _ = self.manifest(repository, reference)
        if "manifests" in manifest:  # an index: take linux/amd64, else the first
            entries = manifest["manifests"]
            chosen = next(
                (m for m in entries if m.get("platform", {}).get("architecture") == "amd64"),
                entries[0],
            )
            manifest, _, _ = self.manifest(repository, chosen["digest"])
        digest = manifest["config"]["digest"]
        blob = self._request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull"
        )
        config: dict[str, Any] = json.loads(blob.content)
        return config

    def labels(self, repository: str, reference: str) -> dict[str, str]:
        """The image's labels (empty when it has none)."""
        return self.image_config(repository, reference).get("config", {}).get("Labels") or {}

    def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        """Point ``tag`` at an existing manifest (a re-tag that pushes no layers)."""
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            scope=f"repository:{repository}:pull,push",
            headers={"Content-Type": media_type},
            data=body,
        )
        return response.headers.get("Docker-Content-Digest", "")

    # -- blobs (attestations) ----------------------------------------------------------------
    def blob_exists(self, repository: str, digest: str) -> bool:
        """True when the registry has blob ``digest`` in ``repository``."""
        response = self._request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            scope=f"repository:{repository}:pull",
            allow_404=True,
        )
        return response.status_code != 404

    def get_blob(self, repository: str, digest: str) -> bytes:
        """The bytes of blob ``digest``."""
        return self._request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull"
        ).content

    def upload_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` as a blob (monolithic POST + PUT) unless present; return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.blob_exists(repository, digest):
            return digest
        scope = f"repository:{repository}:pull,push"
        started = self._request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
        location = started.headers.get("Location", "")
        if location.startswith(self.base):
            location = location[len(self.base):]
        elif location.startswith("http"):
            location = "/" + location.split("/", 3)[3]
        if not location:
            raise StepFailed(f"registry {self.host}: blob upload gave no Location")
        separator = "&" if "?" in location else "?"
        self._request(
            "PUT",
            f"{location}{separator}digest={digest}",
            scope=scope,
            headers={"Content-Type": "application/octet-stream"},
            data=data,
        )
        return digest

    def check_uploads(self, repository: str) -> None:
        """Start a blob upload and cancel it: raises ``Unreachable`` (no retry ladder) when
        the registry's storage refuses writes. The engine's push stream only says
        "Retrying in N seconds" and retries each layer five times; this asks once why."""
        scope = f"repository:{repository}:pull,push"
        started = self._request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
        location = started.headers.get("Location", "")
        if location:
            path = location[len(self.base):] if location.startswith(self.base) else (
                "/" + location.split("/", 3)[3] if location.startswith("http") else location)
            # an upload session left behind would be garbage in the registry
            headers = self._auth_headers(scope)
            basic = (self.username, self.password) if (
                not headers and self.username and self.password) else None
            with contextlib.suppress(TransientError, Unreachable):
                self._send("DELETE", path, headers, None, auth=basic)

    def _auth_headers(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- transport ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request, transient faults retried; when they persist: ``Unreachable``."""
        try:
            return self._request_retried(method, path, **kwargs)
        except TransientError as exc:
            raise Unreachable(
                f"registry {self.host} is unreachable or failing",
                cause=str(exc),
                hint="check the registry address and that it is running",
            ) from exc

    @transient_retry(attempts=4, max_delay_s=20)
    def _request_retried(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        allow_404: bool = False,
    ) -> requests.Response:
        headers = dict(headers or {})
        if scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        response = self._send(method, path, headers, data, auth=None)
        if response.status_code == 401:
            response = self._authenticate_and_retry(method, path, scope, headers, data, response)
        if response.status_code >= 500 and is_storage_failure(_error_text(response)):
            raise Unreachable(  # the same answer until someone fixes the disk: not retried
                f"registry {self.host} cannot store uploads: its storage refuses writes",
                cause=f"{method} {path.split('?')[0]} answered {response.status_code}: "
                f"{_error_text(response)}"[:300],
                hint="the registry's storage is read-only or full; fix it and re-run",
            )
        if response.status_code in TRANSIENT_STATUS:
            raise TransientError(
                f"registry {self.host} answered {response.status_code}", response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code == 404 and allow_404:
            return response
        if response.status_code >= 400:
            raise StepFailed(
                f"registry {self.host}: {method} {path} answered {response.status_code}",
                cause=_error_text(response),
            )
        return response

    def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        data: bytes | None,
        auth: tuple[str, str] | None,
    ) -> requests.Response:
        try:
            return self.session.request(
                method,
                self.base + path,
                headers=headers,
                data=data,
                auth=auth,
                timeout=self.timeout,
            )
        except requests.exceptions.SSLError as exc:
            raise Unreachable(f"registry {self.host}: TLS failed", cause=str(exc)[:200]) from exc
        except requests.exceptions.RequestException as exc:
            raise TransientError(f"registry {self.host} unreachable: {type(exc).__name__}") from exc

    def _authenticate_and_retry(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str],
        data: bytes | None,
        challenged: requests.Response,
    ) -> requests.Response:
        challenge = challenged.headers.get("WWW-Authenticate", "")
        if not (self.username and self.password):
            raise RegistryAuthFailed(
                f"registry {self.host} requires credentials",
                hint="set REGISTRY_USER and REGISTRY_PASSWORD",
            )
        if challenge.lower().startswith("bearer"):
            params = dict(_CHALLENGE.findall(challenge))
            token = self._fetch_token(params, scope)
            self._tokens[scope] = token
            headers = {**headers, "Authorization": f"Bearer {token}"}
            response = self._send(method, path, headers, data, auth=None)
        else:
            response = self._send(method, path, headers, data, auth=(self.username, self.password))
        if response.status_code == 401:
            raise RegistryAuthFailed(
                f"registry {self.host} refused the credentials of {self.username!r}",
                hint="check the registry user and password",
            )
        return response

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        query = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope
        try:
            response = self.session.get(
                params["realm"],
                params=query,
                timeout=self.timeout,
                auth=(self.username or "", self.password or ""),
            )
        except (KeyError, requests.exceptions.RequestException) as exc:
            raise TransientError(f"registry {self.host}: token service failed") from exc
        if response.status_code in (401, 403):
            raise RegistryAuthFailed(
                f"registry {self.host}: token service refused {self.username!r}"
            )
        if response.status_code >= 400:
            raise TransientError(
                f"registry token service answered {response.status_code}", response.status_code
            )
        body = response.json()
        return str(body.get("token") or body["access_token"])


def _error_text(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return (
            "; ".join(f"{e.get('code')}: {e.get('message')}"
                      + (f" ({_detail_text(e['detail'])})" if e.get("detail") else "")
                      for e in errors)
            or response.text[:200]
        )
    except ValueError:
        return response.text[:200]


def _detail_text(detail: Any) -> str:
    """An error's ``detail``; a storage driver's failure as distribution sends it
    (``{"DriverName": "filesystem", "Enclosed": {"Op": "mkdir", "Path": ..., "Err": 13}}``)
    in words: ``filesystem: mkdir PATH: permission denied``."""
    import os

    enclosed = detail.get("Enclosed") if isinstance(detail, dict) else None
    if isinstance(enclosed, dict) and isinstance(enclosed.get("Err"), int):
        return (f"{detail.get('DriverName', 'storage')}: {enclosed.get('Op', '')} "
                f"{enclosed.get('Path', '')}: {os.strerror(enclosed['Err']).lower()}")
    return json.dumps(detail)[:200] if not isinstance(detail, str) else detail[:200]
