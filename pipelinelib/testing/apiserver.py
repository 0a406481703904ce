"""Count every request the apiserver receives from one client, as the apiserver counts them.

The testbed's audit policy records writes only (reads would flood it), so reads are counted
from the apiserver's own API Priority and Fairness metrics: a ``RequestCounter`` makes a
ServiceAccount of its own and a FlowSchema that matches only that account, and reads
``apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`` from ``/metrics`` —
every request the account makes (get, list, watch, discovery, writes) is dispatched there
once, whoever else uses the cluster meanwhile. Writes are also read from the audit log
(``PIPELINELIB_KUBE_AUDIT_LOG``) by the account's user name, as a cross-check.

    with RequestCounter(admin) as counter:        # admin: a KubeClient (cluster-admin)
        counter.grant(namespace)                   # the deployer's ClusterRole there
        before = counter.snapshot()
        run(..., env={"KUBECONFIG": counter.kubeconfig})
        used = counter.since(before)               # Counts(requests=.., writes=..)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT_NAMESPACE = "pipelinelib-system"
DEPLOYER_ROLE = "pipelinelib-deployer"
METRIC = "apiserver_flowcontrol_dispatched_requests_total"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass(frozen=True)
class Counts:
    """Requests dispatched (all verbs) and writes audited for the counter's account."""

    requests: int
    writes: int
    audit_offset: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.requests - other.requests, self.writes - other.writes)


class RequestCounter:
    """A ServiceAccount whose every request the apiserver counts (see the module doc)."""

    def __init__(self, admin: Any, name: str | None = None, audit_log: str | None = None):
        self.admin = admin
        self.name = name or f"count-{uuid.uuid4().hex[:8]}"
        self.user = f"system:serviceaccount:{ACCOUNT_NAMESPACE}:{self.name}"
        self.audit_log = audit_log or os.environ.get("PIPELINELIB_KUBE_AUDIT_LOG", "")
        self._dir = Path(tempfile.mkdtemp(prefix="reqcount-"))
        self.kubeconfig = str(self._dir / "kubeconfig")
        self._granted: list[str] = []

    # lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> RequestCounter:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Create the account, its FlowSchema and a kubeconfig holding its token."""
        a = self.admin
        a.create({"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": self.name, "namespace": ACCOUNT_NAMESPACE}},
                 ok=(409,))
        a.request("POST", "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", body={
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
            "metadata": {"name": f"pipelinelib-{self.name}"},
            "spec": {"matchingPrecedence": 850,
                     "priorityLevelConfiguration": {"name": "workload-high"},
                     "rules": [{"subjects": [{"kind": "ServiceAccount", "serviceAccount": {
                         "name": self.name, "namespace": ACCOUNT_NAMESPACE}}],
                         "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"],
                                            "resources": ["*"], "namespaces": ["*"],
                                            "clusterScope": True}],
                         "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}},
            ok=(409,))
        token = a.request(
            "POST", f"/api/v1/namespaces/{ACCOUNT_NAMESPACE}/serviceaccounts/{self.name}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 7200}})["status"]["token"]
        self._write_kubeconfig(token)
        self._wait_matched()

    def stop(self) -> None:
        """Delete the account, its FlowSchema and role bindings."""
        for namespace in self._granted:
            self.admin.delete("RoleBinding", self.name, namespace)
        self.admin.request("DELETE", "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/"
                           f"pipelinelib-{self.name}", ok=(404,))
        self.admin.delete("ServiceAccount", self.name, ACCOUNT_NAMESPACE)
        for file in self._dir.iterdir():
            file.unlink()
        self._dir.rmdir()

    def grant(self, namespace: str) -> None:
        """Bind the deployer's ClusterRole to the account in ``namespace``."""
        self.admin.apply({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": self.name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": DEPLOYER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": self.name,
                          "namespace": ACCOUNT_NAMESPACE}]})
        self._granted.append(namespace)
        self._wait_allowed(namespace)

    def _wait_allowed(self, namespace: str, timeout_s: float = 30.0) -> None:
        """Until the apiserver's authorizer has seen the binding (its RBAC cache lags a
        write by a moment under load: a first write would be refused)."""
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": self.user, "groups": ["system:serviceaccounts"],
                           "resourceAttributes": {"namespace": namespace, "verb": "patch",
                                                  "resource": "configmaps"}}}
        deadline = time.monotonic() + timeout_s
        while not self.admin.request(
                "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                body=review).get("status", {}).get("allowed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.user} is still not allowed in {namespace}")
            time.sleep(0.1)

    # counting -------------------------------------------------------------------------------
    def requests(self) -> int:
        """Requests the apiserver has dispatched for the account so far."""
        text = self._metrics()
        total = 0
        pattern = re.compile(rf'^{METRIC}\{{[^}}]*flow_schema="pipelinelib-{re.escape(self.name)}"'
                             r'[^}]*\}\s+([0-9.e+]+)$', re.M)
        for match in pattern.finditer(text):
            total += int(float(match.group(1)))
        return total

    def writes_since(self, offset: int) -> int:
        """Writes (answered < 400, dry runs excluded) the audit log recorded for the account
        after byte ``offset``."""
        if not self.audit_log or not os.path.exists(self.audit_log):
            return 0
        count = 0
        with open(self.audit_log, "rb") as f:
            f.seek(offset)
            for line in f:
                if self.user.encode() not in line:
                    continue
                event = json.loads(line)
                if (event.get("user", {}).get("username") == self.user
                        and event.get("verb") in WRITE_VERBS
                        and "dryRun=" not in event.get("requestURI", "")
                        and (event.get("responseStatus") or {}).get("code", 500) < 400
                        and event.get("stage") == "ResponseComplete"):
                    count += 1
        return count

    def snapshot(self) -> Counts:
        """The counts now (pass it to ``since``)."""
        offset = os.path.getsize(self.audit_log) if self.audit_log and os.path.exists(
            self.audit_log) else 0
        return Counts(self.requests(), 0, offset)

    def since(self, before: Counts, settle_s: float = 1.0) -> Counts:
        """Requests and writes made since ``before`` (waits ``settle_s`` for the audit log's
        buffered writer)."""
        time.sleep(settle_s)
        return Counts(self.requests() - before.requests, self.writes_since(before.audit_offset))

    # internals --------------------------------------------------------------------------------
    def _metrics(self) -> str:
        status, text = self.admin.raw("GET", "/metrics")
        if status != 200 or not isinstance(text, str):
            raise RuntimeError(f"GET /metrics answered {status}")
        return text

    def _write_kubeconfig(self, token: str) -> None:
        import yaml

        config = self.admin.api_client.configuration
        cluster: dict[str, Any] = {"server": config.host}
        import base64

        if getattr(config, "ca_cert_data", None):  # the lean client keeps the CA's PEM
            cluster["certificate-authority-data"] = base64.b64encode(
                str(config.ca_cert_data).encode()).decode()
        elif config.ssl_ca_cert:
            cluster["certificate-authority-data"] = base64.b64encode(
                Path(config.ssl_ca_cert).read_bytes()).decode()
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": self.name,
               "clusters": [{"name": self.name, "cluster": cluster}],
               "users": [{"name": self.name, "user": {"token": token}}],
               "contexts": [{"name": self.name,
                             "context": {"cluster": self.name, "user": self.name}}]}
        path = Path(self.kubeconfig)
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)

    def _wait_matched(self, timeout_s: float = 20.0) -> None:
        """Until the FlowSchema is in effect (its first request of the account is counted)."""
        from pipelinelib.adapters.kube import KubeClient

        client = KubeClient.from_kubeconfig(self.kubeconfig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            before = self.requests()
            client.raw("GET", "/version")
            if self.requests() > before:
                return
            time.sleep(0.2)
        raise RuntimeError(f"FlowSchema pipelinelib-{self.name} never matched {self.user}")
