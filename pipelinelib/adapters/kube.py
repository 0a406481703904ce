"""Kubernetes API adapter: server-side apply, get/list/delete, watch, logs, events.

Objects travel as plain JSON dicts (no client models) over the official client's
``ApiClient`` (auth, TLS, kubeconfig handling). Every API error is translated here, by the
Status ``reason`` first and the HTTP code second (retry.is_deterministic):

    deterministic: Invalid, BadRequest,  BadInput with the API's message, never retried
      RequestEntityTooLarge (413), a 500 (the same bytes get the same answer; exit 2)
      that says the body does not decode
      or fit the schema
    409 / 429 / other 5xx / connection   TransientError, retried; then Unreachable
    401 / 403                           Refused naming verb, resource and namespace
    other 4xx                           StepFailed with the API's message
    404                                 ``None`` from ``get``, ignored by ``delete``

Applies ask for strict field validation (``fieldValidation=Strict``, kubectl's default):
an unknown or duplicate field is an error, not a warning lost in a header.

``writes`` counts the mutating requests sent (dry runs excluded): a no-op rollout
must leave it at zero.

``follow`` is the watch as steps see it: an iterator that reads the current state (one
streaming watch-list where the apiserver serves it, else list + watch), watches, resumes a
watch the server ends at its last resourceVersion, and reads the state again (yielding what
changed) when the apiserver answers 410 Gone — never an exception for an expired watch.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from pipelinelib.errors import BadInput, Refused, StepFailed, TransientError, Unreachable
from pipelinelib.retry import (
    TRANSIENT_STATUS,
    is_deterministic,
    parse_retry_after,
    transient_retry,
)

FIELD_MANAGER = "pipelinelib"
MAX_REQUEST_BYTES = 3 * 1024 * 1024  # kube-apiserver --max-request-bytes default (3 MiB)
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_CONTENT_TYPE = "application/merge-patch+json"

# kind -> (apiVersion, plural, namespaced); others are found through discovery.
BUILTIN_KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("v1", "namespaces", False),
    "ConfigMap": ("v1", "configmaps", True),
    "Secret": ("v1", "secrets", True),
    "Service": ("v1", "services", True),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "Pod": ("v1", "pods", True),
    "Event": ("v1", "events", True),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims", True),
    "Deployment": ("apps/v1", "deployments", True),
    "ReplicaSet": ("apps/v1", "replicasets", True),
    "StatefulSet": ("apps/v1", "statefulsets", True),
    "DaemonSet": ("apps/v1", "daemonsets", True),
    "ControllerRevision": ("apps/v1", "controllerrevisions", True),
    "Job": ("batch/v1", "jobs", True),
    "CronJob": ("batch/v1", "cronjobs", True),
    "Ingress": ("networking.k8s.io/v1", "ingresses", True),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets", True),
    "Lease": ("coordination.k8s.io/v1", "leases", True),
}


# Connections kept per host. The client's default (5 per CPU) is below what parallel
# rollouts hold (each waits on a watch while others apply): connections beyond the pool are
# discarded after use, and every new one costs a TLS handshake.
POOL_SIZE = 64
# A watch's ``timeoutSeconds``: the server ends it then and ``follow`` watches again from
# the last resourceVersion (a stuck connection is noticed within this time).
WATCH_TIMEOUT_S = 15
INITIAL_EVENTS_END = "k8s.io/initial-events-end"  # the bookmark ending a watch-list's state


def _api_client(configuration: Any) -> Any:
    from kubernetes import client

    configuration.connection_pool_maxsize = max(POOL_SIZE, configuration.connection_pool_maxsize)
    return client.ApiClient(configuration)


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class KubeClient:
    """One cluster, reached through a kubeconfig context (or in-cluster credentials)."""

    def __init__(self, api_client: Any, *, source: str = "", timeout_s: float = 30.0):
        self.api_client = api_client
        self.source = source
        self.timeout_s = timeout_s
        self.writes = 0
        self.relists = 0  # watches answered 410 Gone and listed again (follow)
        # streaming lists (watch_list) served: None until the first one answers
        self.streaming_lists: bool | None = None
        self.watch_timeout_s = WATCH_TIMEOUT_S
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str], tuple[str, str, bool] | None] = {}

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> KubeClient:
        """From a kubeconfig file (first entry of a ``:``-separated list) and context.

        A server, CA and token or client certificate are served by urllib3 alone
        (``kube_http``: the official client's imports cost ~250 ms per run); any other
        kubeconfig by the official client's loader."""
        from pipelinelib.adapters.kube_http import lean_client

        path = (path or os.path.expanduser("~/.kube/config")).split(os.pathsep)[0]
        source = f"{path}" + (f"#{context}" if context else "")
        lean = lean_client(path, context, POOL_SIZE)
        if lean is not None:
            return cls(lean, source=source)
        from kubernetes import client as k8s
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        configuration = k8s.Configuration()
        try:
            config.load_kube_config(config_file=path, context=context,  # type: ignore[no-untyped-call]
                                    client_configuration=configuration)
        except (ConfigException, OSError, TypeError) as exc:
            where = f"{path}" + (f" (context {context})" if context else "")
            raise Unreachable(f"no usable kubeconfig at {where}", cause=str(exc)[:200],
                              hint="set KUBECONFIG or PIPELINE_KUBECONFIG") from exc
        return cls(_api_client(configuration), source=source)

    @classmethod
    def in_cluster(cls) -> KubeClient:
        """From the pod's service-account token."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(_api_client(configuration), source="in-cluster")

    # paths ----------------------------------------------------------------------------------
    def resource(self, kind: str, api_version: str | None = None) -> tuple[str, str, bool]:
        """(apiVersion, plural, namespaced) of ``kind``; BadInput when the cluster lacks it."""
        known = BUILTIN_KINDS.get(kind)
        if known and (api_version is None or api_version == known[0]):
            return known
        key = (api_version or "", kind)
        if key not in self._kinds:
            self._kinds[key] = self._discover(kind, api_version)
        found = self._kinds[key]
        if found is None:
            raise BadInput(f"unknown kind {kind}" + (f" in {api_version}" if api_version else ""),
                           field="kind", expected="a kind this cluster serves")
        return found

    def _discover(self, kind: str, api_version: str | None) -> tuple[str, str, bool] | None:
        versions = [api_version] if api_version else []
        if not versions:
            groups = self.request("GET", "/apis").get("groups", [])
            versions = ["v1"] + [g["preferredVersion"]["groupVersion"] for g in groups]
        for version in versions:
            base = "/api/v1" if version == "v1" else f"/apis/{version}"
            status, data = self.raw("GET", base)
            if status >= 400:
                continue
            for res in data.get("resources", []):
                if res.get("kind") == kind and "/" not in res.get("name", ""):
                    return version, res["name"], bool(res.get("namespaced"))
        return None

    def path(self, kind: str, namespace: str | None = None, name: str | None = None,
             api_version: str | None = None, subresource: str | None = None) -> str:
        """The REST path of a kind (collection) or one object."""
        version, plural, namespaced = self.resource(kind, api_version)
        base = "/api/v1" if version == "v1" else f"/apis/{version}"
        if namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{plural}"
        if name:
            base += f"/{quote(name)}"
        if subresource:
            base += f"/{subresource}"
        return base

    # HTTP -------------------------------------------------------------------------------------
    def raw(self, method: str, path: str, query: dict[str, Any] | None = None,
            body: Any = None, content_type: str | None = None,
            timeout_s: float | None = None) -> tuple[int, Any]:
        """One request without retries or translation: (status, parsed JSON or text)."""
        status, parsed, _ = self._raw(method, path, query, body, content_type, timeout_s)
        return status, parsed

    def _raw(self, method: str, path: str, query: dict[str, Any] | None = None,
             body: Any = None, content_type: str | None = None,
             timeout_s: float | None = None) -> tuple[int, Any, float | None]:
        """``raw`` and the ``Retry-After`` the answer asked for (429/503), if any."""
        response = self._send(method, path, query, body, content_type, timeout_s, stream=False)
        data = response.read()
        try:
            parsed: Any = json.loads(data) if data else {}
        except ValueError:
            parsed = data.decode(errors="replace") if isinstance(data, bytes) else data
        if method != "GET" and response.status < 300 and not (query or {}).get("dryRun"):
            with self._lock:
                self.writes += 1
        headers = response.headers if response.status in (429, 503) else None
        after = parse_retry_after(headers.get("Retry-After")) if headers else None
        return response.status, parsed, after

    def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              content_type: str | None, timeout_s: float | tuple[float, float] | None,
              stream: bool) -> Any:
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            request = self.api_client.param_serialize(
                method, path, query_params=params, header_params=headers, body=body,
                auth_settings=["BearerToken"])
            timeout = timeout_s if timeout_s is not None else self.timeout_s
            return self.api_client.call_api(*request, _request_timeout=timeout)
        except (HTTPError, OSError) as exc:
            raise TransientError(f"the Kubernetes API did not answer: {exc}"[:300]) from exc

    def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str | None = None,
                ok: tuple[int, ...] = ()) -> Any:
        """One request, retried on transient faults and translated; returns parsed JSON.

        Statuses in ``ok`` are returned as ``{"__status__": N}`` instead of raised.
        """
        try:
            return self._request(method, path, query, body, content_type, ok)
        except TransientError as exc:
            if exc.status == 409:
                raise StepFailed(f"conflict on {method} {path}", cause=str(exc)[:300],
                                 hint="someone else changed the object; re-run") from exc
            raise Unreachable(f"the Kubernetes API at {self.source or 'the cluster'} "
                              f"failed: {exc}"[:300], hint="check the cluster and KUBECONFIG"
                              ) from exc

    @transient_retry(attempts=5, max_delay_s=30.0, max_wait_s=4.0)
    def _request(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
                 content_type: str | None, ok: tuple[int, ...]) -> Any:
        status, data, retry_after = self._raw(method, path, query, body, content_type)
        if status < 300:
            return data
        if status in ok:
            return {"__status__": status, "body": data}
        error = translate(status, data, method, path)
        if isinstance(error, TransientError):
            error.retry_after = retry_after  # honoured by the retry's wait (Retry-After)
        raise error

    # verbs -------------------------------------------------------------------------------------
    def get(self, kind: str, name: str, namespace: str | None = None,
            api_version: str | None = None) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        data = _dict(self.request("GET", self.path(kind, namespace, name, api_version),
                                  ok=(404,)))
        return None if data.get("__status__") == 404 else data

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None,
             field_selector: str | None = None, api_version: str | None = None
             ) -> dict[str, Any]:
        """The list (``items`` and ``metadata.resourceVersion``)."""
        return _dict(self.request("GET", self.path(kind, namespace, api_version=api_version),
                                  {"labelSelector": selector, "fieldSelector": field_selector}))

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False, force: bool = True,
              namespace: str | None = None, ok: tuple[int, ...] = ()) -> dict[str, Any]:
        """Server-side apply ``obj`` as field manager ``pipelinelib``; returns the result.

        ``metadata.resourceVersion`` in ``obj`` makes it conditional (409 when the live
        object has moved on; pass ``ok=(409,)`` to get ``{"__status__": 409}`` back).
        An object over the apiserver's request limit is refused here (BadInput), unsent."""
        meta = obj.get("metadata", {})
        size = len(json.dumps(obj, default=str))
        if size > MAX_REQUEST_BYTES:
            raise BadInput(f"{obj.get('kind')}/{meta.get('name')} is {size} bytes as JSON",
                           expected=f"at most {MAX_REQUEST_BYTES} bytes (the apiserver's "
                           "request limit; 413 RequestEntityTooLarge)")
        path = self.path(obj["kind"], meta.get("namespace") or namespace, meta["name"],
                         obj.get("apiVersion"))
        query = {"fieldManager": FIELD_MANAGER, "force": "true" if force else None,
                 "dryRun": "All" if dry_run else None, "fieldValidation": "Strict"}
        return _dict(self.request("PATCH", path, query, obj, APPLY_CONTENT_TYPE, ok=ok))

    def patch(self, kind: str, name: str, namespace: str | None, patch: dict[str, Any],
              api_version: str | None = None) -> dict[str, Any]:
        """A JSON merge patch."""
        return _dict(self.request("PATCH", self.path(kind, namespace, name, api_version),
                                  {"fieldManager": FIELD_MANAGER}, patch, MERGE_CONTENT_TYPE))

    def create(self, obj: dict[str, Any], namespace: str | None = None,
               ok: tuple[int, ...] = ()) -> dict[str, Any]:
        """POST a new object."""
        meta = obj.get("metadata", {})
        path = self.path(obj["kind"], meta.get("namespace") or namespace,
                         api_version=obj.get("apiVersion"))
        return _dict(self.request("POST", path, {"fieldManager": FIELD_MANAGER}, obj, ok=ok))

    def replace(self, obj: dict[str, Any], ok: tuple[int, ...] = ()) -> dict[str, Any]:
        """PUT ``obj`` (optimistic concurrency through its resourceVersion)."""
        meta = obj["metadata"]
        path = self.path(obj["kind"], meta.get("namespace"), meta["name"], obj.get("apiVersion"))
        return _dict(self.request("PUT", path, {"fieldManager": FIELD_MANAGER}, obj, ok=ok))

    def delete(self, kind: str, name: str, namespace: str | None = None,
               api_version: str | None = None, propagation: str = "Background",
               resource_version: str | None = None) -> bool:
        """Delete one object; False when it was already gone."""
        body: dict[str, Any] = {"propagationPolicy": propagation}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        data = self.request("DELETE", self.path(kind, namespace, name, api_version),
                            body=body, ok=(404,))
        return bool(data.get("__status__") != 404)

    def watch(self, kind: str, namespace: str | None, resource_version: str,
              selector: str | None = None, field_selector: str | None = None,
              timeout_s: int = 60) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch events ``(type, object)`` after ``resource_version``, for ``timeout_s``.

        One server-side watch: raises WatchExpired (list again) on 410; connection faults
        end the iteration. Steps use ``follow``, which does both for them.
        """
        query = {"watch": "1", "resourceVersion": resource_version, "labelSelector": selector,
                 "fieldSelector": field_selector, "timeoutSeconds": str(timeout_s),
                 "allowWatchBookmarks": "true"}
        return self._stream(kind, namespace, query, timeout_s)

    def watch_list(self, kind: str, namespace: str | None, selector: str | None = None,
                   field_selector: str | None = None, timeout_s: int = 60
                   ) -> Iterator[tuple[str, dict[str, Any]]]:
        """A watch that starts with the current state: one request instead of list + watch.

        ``sendInitialEvents=true`` with ``resourceVersionMatch=NotOlderThan`` and no
        resourceVersion (a consistent read, as a list): an ADDED event for every object that
        exists, then a BOOKMARK annotated ``k8s.io/initial-events-end: "true"`` carrying the
        state's resourceVersion, then changes as any watch. An apiserver without streaming
        lists (WatchList, on by default since Kubernetes 1.32) refuses the parameters with a
        4xx, raised as from ``list``; ``follow`` then lists and watches instead.
        """
        query = {"watch": "1", "sendInitialEvents": "true",
                 "resourceVersionMatch": "NotOlderThan", "labelSelector": selector,
                 "fieldSelector": field_selector, "timeoutSeconds": str(timeout_s),
                 "allowWatchBookmarks": "true"}
        return self._stream(kind, namespace, query, timeout_s)

    def _stream(self, kind: str, namespace: str | None, query: dict[str, Any],
                timeout_s: int) -> Iterator[tuple[str, dict[str, Any]]]:
        response = self._send("GET", self.path(kind, namespace), query, None, None,
                              (5, timeout_s + 10), stream=True)
        if response.status >= 300:
            data = response.read()
            if response.status == 410:
                raise WatchExpired(kind)
            raise translate(response.status, _json(data), "watch", self.path(kind, namespace))
        from urllib3.exceptions import HTTPError

        raw = response.response
        buffer = b""
        try:
            for chunk in raw.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        if event.get("object", {}).get("code") == 410:
                            raise WatchExpired(kind)
                        return
                    yield event["type"], event["object"]
        except (HTTPError, OSError):
            return
        finally:
            raw.release_conn()

    def follow(self, kind: str, namespace: str | None, selector: str | None = None,
               field_selector: str | None = None, *, stop: threading.Event | None = None,
               resource_version: str | None = None,
               known: builtins.list[dict[str, Any]] | None = None,
               api_version: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """The current state, then every change, until ``stop`` is set (or the consumer
        stops iterating).

        Yields ``(ADDED | MODIFIED | DELETED, object)`` and, each time the state is read
        whole, ``(SYNCED, list)`` (its ``items`` and ``metadata.resourceVersion``): the
        consumer's "caught up" signal. The state is read by one streaming watch
        (``watch_list``: the objects, then the initial-events-end bookmark) where the
        apiserver serves it, else by a list followed by a watch. Started at
        ``resource_version`` with the ``known`` objects of that version, it watches from
        there without reading the state first. A watch the server ends (its
        ``timeoutSeconds``, a closed stream, a dropped connection) resumes at the last
        resourceVersion seen. A watch answered 410 Gone (the resourceVersion is older than
        what the apiserver keeps) reads the state again and yields what changed meanwhile,
        deletions included: the consumer misses no change and never sees the expiry.
        Faults of the API itself (forbidden, not found) are raised as from ``list``.
        """
        stop = stop or threading.Event()
        seen = {_name(o): o for o in known or []}
        version = resource_version
        quiet = 0  # watches in a row that ended at once without an event
        while not stop.is_set():
            initial: dict[str, dict[str, Any]] | None = None  # a watch-list's, until synced
            if version is None and self.streaming_lists is not False:
                initial = {}
                stream = self.watch_list(kind, namespace, selector, field_selector,
                                         timeout_s=self.watch_timeout_s)
            elif version is None:
                listed = self.list(kind, namespace, selector, field_selector, api_version)
                current = {_name(o): o for o in listed.get("items", [])}
                yield from _changes(seen, current)
                seen, version = current, str(listed.get("metadata", {}).get(
                    "resourceVersion", ""))
                yield "SYNCED", listed
            if version is not None:
                stream = self.watch(kind, namespace, version, selector, field_selector,
                                    timeout_s=self.watch_timeout_s)
            events, started = 0, time.monotonic()
            try:
                for etype, obj in stream:
                    events += 1
                    if initial is not None:  # the state, object by object, then its end
                        if etype != "BOOKMARK":
                            initial[_name(obj)] = obj
                        elif _initial_events_end(obj):
                            self.streaming_lists = True
                            yield from _changes(seen, initial)
                            seen, version, initial = initial, _rv(obj), None
                            yield "SYNCED", {"items": builtins.list(seen.values()),
                                             "metadata": {"resourceVersion": version}}
                        continue
                    version = _rv(obj) or version
                    if etype == "BOOKMARK":
                        continue
                    if etype == "DELETED":
                        seen.pop(_name(obj), None)
                    else:
                        seen[_name(obj)] = obj
                    yield etype, obj
                    if stop.is_set():
                        return
            except WatchExpired:
                with self._lock:
                    self.relists += 1
                version = None
                continue
            except TransientError:
                events = 0  # the API did not answer: back off below, then watch again
            except (BadInput, StepFailed):
                if initial is None or events or self.streaming_lists:
                    raise
                self.streaming_lists = False  # parameters refused: list and watch instead
                continue
            if initial is not None and events and not self.streaming_lists:
                self.streaming_lists = False  # ended without the initial-events-end bookmark
            quiet = 0 if events or time.monotonic() - started > 1 else quiet + 1
            if quiet and stop.wait(min(2.0, 0.05 * 2 ** quiet)):
                return

    def pod_logs(self, name: str, namespace: str, container: str | None = None,
                 tail: int = 20, previous: bool = False) -> builtins.list[str]:
        """The last ``tail`` log lines of a pod (empty when the node serves none)."""
        query = {"tailLines": str(tail), "container": container,
                 "previous": "true" if previous else None}
        # read as text: a log that happens to be JSON (or is empty) is still lines
        response = self._send("GET", self.path("Pod", namespace, name, subresource="log"),
                              query, None, None, 5, stream=False)
        data = response.read()
        if response.status >= 300:
            return []
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        return text.splitlines()[-tail:]

    def events(self, namespace: str, name: str | None = None, kind: str | None = None,
               limit: int = 10) -> builtins.list[dict[str, Any]]:
        """Recent events of an object (or the namespace), oldest first."""
        selectors: builtins.list[str] = []
        if name:
            selectors.append(f"involvedObject.name={name}")
        if kind:
            selectors.append(f"involvedObject.kind={kind}")
        listed = self.list("Event", namespace, field_selector=",".join(selectors) or None)
        items: builtins.list[dict[str, Any]] = listed.get("items", [])
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or
                   e.get("metadata", {}).get("creationTimestamp") or "")
        return items[-limit:]

    def server_version(self) -> str:
        """The API server's gitVersion (a cheap reachability check)."""
        return str(self.request("GET", "/version").get("gitVersion", ""))


def _dict(data: Any) -> dict[str, Any]:
    """A JSON object answer (the API answers objects; anything else is a broken proxy)."""
    if not isinstance(data, dict):
        raise TransientError(f"the Kubernetes API answered {str(data)[:100]!r}, not an object")
    return data


def _name(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _rv(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


def _initial_events_end(bookmark: dict[str, Any]) -> bool:
    """The bookmark that ends a watch-list's initial events (``k8s.io/initial-events-end``)."""
    annotations = bookmark.get("metadata", {}).get("annotations") or {}
    return bool(annotations.get(INITIAL_EVENTS_END) == "true")


def _changes(seen: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]
             ) -> Iterator[tuple[str, dict[str, Any]]]:
    """What a fresh read of the state shows against what was seen: added, modified, deleted."""
    for name, obj in current.items():
        if name not in seen:
            yield "ADDED", obj
        elif _rv(seen[name]) != _rv(obj):
            yield "MODIFIED", obj
    for name in seen.keys() - current.keys():
        yield "DELETED", seen[name]


def _json(data: Any) -> Any:
    try:
        return json.loads(data) if isinstance(data, (bytes, str)) and data else data
    except ValueError:
        return data


def api_message(data: Any) -> str:
    """The API's own message from a Status body (or the body itself)."""
    if isinstance(data, dict):
        return str(data.get("message") or data.get("reason") or data)[:500]
    if isinstance(data, bytes):
        data = data.decode(errors="replace")
    return str(data)[:500]


def translate(status: int, data: Any, verb: str, path: str) -> Exception:
    """Our error for an API error status; see the module docstring."""
    message = api_message(data)
    reason = data.get("reason") if isinstance(data, dict) else None
    if status not in (401, 403, 404, 409) and is_deterministic(status, reason, message):
        what = {"RequestEntityTooLarge": "the object is too large for the apiserver"}.get(
            str(reason), "the cluster rejected")
        if status == 413:
            what = "the object is too large for the apiserver"
        return BadInput(f"{what} ({verb} {path}: {status} {reason or ''}): {message}",
                        hint="fix the object; sending it again gets the same answer")
    if status in TRANSIENT_STATUS:
        return TransientError(f"{verb} {path}: {status} {message}", status=status)
    if status in (401, 403):
        details = data.get("details", {}) if isinstance(data, dict) else {}
        parts = path.split("?")[0].strip("/").split("/")
        namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts[:-1] else ""
        tail = parts[parts.index("namespaces") + 2:] if namespace else parts[-2:]
        resource = details.get("kind") or (tail[0] if tail else path)
        where = f" in namespace {namespace}" if namespace else ""
        return Refused(f"the cluster forbids {verb.lower()} {resource}{where}: {message}",
                       hint="the deployer's Role must allow it (docs/rollout.md, RBAC)")
    return StepFailed(f"{verb} {path} failed ({status}): {message}")
