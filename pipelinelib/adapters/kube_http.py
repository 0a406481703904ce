"""The Kubernetes adapter's HTTP client for kubeconfigs with static credentials.

The official client (``kubernetes``) costs ~250 ms of imports on every ``pipeline`` run that
talks to a cluster — its kubeconfig loader pulls in requests, oauthlib, pydantic and the
websocket client — for what most deployers' kubeconfigs need: a server URL, its CA, and a
bearer token or a client certificate. ``lean_client`` reads exactly that kind of kubeconfig
(YAML, as ``kubectl config view`` shows it) and serves it with urllib3, the HTTP library
the official client runs on; ``KubeClient`` then never imports ``kubernetes``.

Anything else goes through the official loader, unchanged: exec plugins, auth-provider,
username/password, impersonation, ``proxy-url``, ``tls-server-name``, a proxy in the
environment, a missing file or context (its error messages), and in-cluster credentials.
``lean_client`` answers None for those.

``LeanApiClient`` offers the two methods of ``kubernetes.client.ApiClient`` the adapter
calls (``param_serialize``, ``call_api``) with the same behaviour: JSON bodies, query
encoding, ``Authorization: Bearer``, urllib3 responses read whole (``read()``) or streamed
(``.response``).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

# kubeconfig fields the lean client serves; any other field of the user or cluster (exec,
# auth-provider, username, as, proxy-url...) leaves the kubeconfig to the official loader
USER_FIELDS = {"token", "tokenFile", "client-certificate", "client-certificate-data",
               "client-key", "client-key-data"}
CLUSTER_FIELDS = {"server", "certificate-authority", "certificate-authority-data",
                  "insecure-skip-tls-verify", "extensions"}


@dataclass
class Configuration:
    """What the adapter's users read of a client's configuration (the server and its CA)."""

    host: str
    ssl_ca_cert: str | None = None  # a CA file, when the kubeconfig names one
    ca_cert_data: str | None = None  # PEM, when the kubeconfig embeds it


class _Answer:
    """A response as ``kubernetes.client.rest.RESTResponse`` offers it."""

    def __init__(self, response: Any):
        self.response = response
        self.status = response.status
        self.headers = response.headers

    def read(self) -> bytes:
        return bytes(self.response.data)


class LeanApiClient:
    """urllib3 with a kubeconfig's server, CA and token or client certificate."""

    def __init__(self, configuration: Configuration, token: str | None, ssl_context: Any,
                 pool_size: int):
        import urllib3

        self.configuration = configuration
        self._token = token
        self.pool = urllib3.PoolManager(maxsize=pool_size, ssl_context=ssl_context)

    def param_serialize(self, method: str, resource_path: str,
                        query_params: list[tuple[str, Any]] | None = None,
                        header_params: dict[str, str] | None = None, body: Any = None,
                        auth_settings: list[str] | None = None
                        ) -> tuple[str, str, dict[str, str], Any]:
        """(method, url, headers, body), as the official client's ``param_serialize``."""
        headers = {"User-Agent": "pipelinelib", **(header_params or {})}
        if self._token and auth_settings:
            headers["Authorization"] = f"Bearer {self._token}"
        url = self.configuration.host + resource_path
        if query_params:
            url += "?" + urlencode([(k, str(v)) for k, v in query_params])
        return method, url, headers, body

    def call_api(self, method: str, url: str, headers: dict[str, str], body: Any = None,
                 _request_timeout: float | tuple[float, float] | None = None) -> _Answer:
        """One request; the body as JSON (JSON is YAML too: apply patches)."""
        import urllib3

        timeout: Any = None
        if isinstance(_request_timeout, tuple):
            timeout = urllib3.Timeout(connect=_request_timeout[0], read=_request_timeout[1])
        elif _request_timeout:
            timeout = urllib3.Timeout(total=_request_timeout)
        data = None
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return _Answer(self.pool.request(method, url, body=data, headers=headers,
                                         timeout=timeout, preload_content=False))


def lean_client(path: str, context: str | None, pool_size: int) -> LeanApiClient | None:
    """A client for the kubeconfig at ``path`` (``context`` or its current one), or None
    when it needs the official loader (see the module docstring)."""
    if _proxied():
        return None
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    import yaml

    from pipelinelib import yamlsafe
    from pipelinelib.errors import BadInput

    try:
        doc = yamlsafe.safe_load(text, path, mapping=True)
        ctx = _named(doc, "contexts", context or doc.get("current-context"))["context"]
        cluster = _named(doc, "clusters", ctx["cluster"])["cluster"]
        user = _named(doc, "users", ctx["user"]).get("user") or {}
    except (yaml.YAMLError, BadInput, AttributeError, KeyError, TypeError, StopIteration):
        return None
    if set(user) - USER_FIELDS or set(cluster) - CLUSTER_FIELDS or set(ctx) - {
            "cluster", "user", "namespace", "extensions"}:
        return None
    base = Path(path).parent
    try:
        return _client(cluster, user, base, pool_size)
    except (OSError, ValueError):
        return None  # unreadable files, bad PEM: the official loader says what is wrong


def _client(cluster: dict[str, Any], user: dict[str, Any], base: Path,
            pool_size: int) -> LeanApiClient | None:
    import ssl

    from urllib3.util.ssl_ import create_urllib3_context

    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        return None
    config = Configuration(server)
    context = create_urllib3_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        if cluster.get("certificate-authority-data"):
            config.ca_cert_data = base64.b64decode(
                cluster["certificate-authority-data"]).decode()
            context.load_verify_locations(cadata=config.ca_cert_data)
        elif cluster.get("certificate-authority"):
            config.ssl_ca_cert = str(base / cluster["certificate-authority"])
            context.load_verify_locations(cafile=config.ssl_ca_cert)
        else:
            context.load_default_certs()
    cert = _pem(user, "client-certificate", base)
    key = _pem(user, "client-key", base)
    if bool(cert) != bool(key):
        return None
    if cert and key:
        with tempfile.TemporaryDirectory(prefix="kube-cert-") as tmp:  # read, then removed
            cert_file, key_file = os.path.join(tmp, "cert"), os.path.join(tmp, "key")
            for name, pem in ((cert_file, cert), (key_file, key)):
                with open(os.open(name, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                    handle.write(pem)
            context.load_cert_chain(cert_file, key_file)
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base / user["tokenFile"]).read_text().strip()
    return LeanApiClient(config, token or None, context, pool_size)


def _pem(user: dict[str, Any], field: str, base: Path) -> bytes | None:
    if user.get(f"{field}-data"):
        return base64.b64decode(str(user[f"{field}-data"]))
    if user.get(field):
        return (base / str(user[field])).read_bytes()
    return None


def _named(doc: dict[str, Any], section: str, name: str | None) -> dict[str, Any]:
    """The entry called ``name`` of a kubeconfig section (StopIteration when none is)."""
    found: dict[str, Any] = next(e for e in doc.get(section) or [] if e.get("name") == name)
    return found


def _proxied() -> bool:
    """A proxy in the environment (HTTPS_PROXY...): the official client's proxy rules."""
    return any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                                           "http_proxy", "ALL_PROXY", "all_proxy"))
