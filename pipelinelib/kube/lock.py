"""The deploy lock: a ``coordination.k8s.io`` Lease per app and namespace.

Held (and renewed by a background thread) for the whole rollout. A second rollout queues
behind it, saying who holds it and since when, up to a timeout. A lease whose holder
stopped renewing (a killed job) expires after ``ttl_s`` and is taken over: never a stuck
lock that needs a human.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from typing import Any

from pipelinelib.errors import StepFailed
from pipelinelib.kube import APP_LABEL, MANAGED_BY, MANAGER

HOLDER_ANN = "pipelinelib.dev/holder"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    value = value.replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def lease_name(app: str) -> str:
    return f"pipelinelib-deploy-{app}"[:63].rstrip("-")


class DeployLock:
    """Context manager: acquire the app's Lease, renew it, release it on exit."""

    def __init__(self, kube: Any, app: str, namespace: str, holder: str, *,
                 ttl_s: int = 30, wait_s: float = 300.0, log: Any = None):
        self.kube, self.app, self.namespace = kube, app, namespace
        self.name = lease_name(app)
        self.holder = holder
        self.identity = f"{holder} #{uuid.uuid4().hex[:8]}"
        self.ttl_s, self.wait_s, self.log = max(2, int(ttl_s)), wait_s, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        self.waited_s = 0.0

    @staticmethod
    def holder_of(ci: Any) -> str:
        """A human holder name: user, job and build URL (or host and pid locally)."""
        user = getattr(ci, "user", "") or "unknown"
        where = getattr(ci, "build_url", "") or getattr(ci, "job", "") or \
            f"{socket.gethostname()} pid {os.getpid()}"
        return f"{user} ({where})"

    def _body(self, rv: str | None = None, transitions: int = 0,
              acquired: str | None = None) -> dict[str, Any]:
        now = _fmt(_now())
        meta: dict[str, Any] = {
            "name": self.name, "namespace": self.namespace,
            "labels": {MANAGED_BY: MANAGER, APP_LABEL: self.app},
            "annotations": {HOLDER_ANN: self.holder}}
        if rv:
            meta["resourceVersion"] = rv
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.ttl_s,
                         "acquireTime": acquired or now, "renewTime": now,
                         "leaseTransitions": transitions}}

    def try_acquire(self) -> dict[str, Any] | None:
        """One attempt: None when acquired, else the live lease held by someone else."""
        live = self.kube.get("Lease", self.name, self.namespace)
        if live is None:
            made = self.kube.create(self._body(), self.namespace, ok=(409,))
            return None if "__status__" not in made else self.kube.get(
                "Lease", self.name, self.namespace) or {}
        spec = live.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        ttl = spec.get("leaseDurationSeconds") or self.ttl_s
        expired = not holder or renewed is None or \
            renewed + dt.timedelta(seconds=ttl) < _now()
        if holder != self.identity and not expired:
            return live
        body = self._body(live["metadata"]["resourceVersion"],
                          (spec.get("leaseTransitions") or 0) + (holder != self.identity))
        if expired and holder and self.log:
            self.log.warning("taking over an expired deploy lock", lock=self.name,
                             previous=live["metadata"].get("annotations", {}).get(HOLDER_ANN))
        done = self.kube.replace(body, ok=(409,))
        return None if "__status__" not in done else {}

    def acquire(self) -> None:
        started = time.monotonic()
        last_log = 0.0
        while True:
            held = self.try_acquire()
            if held is None:
                self.waited_s = round(time.monotonic() - started, 3)
                break
            now = time.monotonic()
            who = self.describe(held)
            if now - started >= self.wait_s:
                raise StepFailed(f"deploy lock {self.namespace}/{self.name} is held by {who}",
                                 cause=f"waited {self.wait_s:.0f}s",
                                 hint="wait for that rollout to finish, or raise --lock-timeout")
            if self.log and now - last_log >= 3:
                self.log.info("waiting for the deploy lock", held_by=who,
                              waited_s=round(now - started, 1))
                last_log = now
            time.sleep(0.5)
        self._thread = threading.Thread(target=self._renew, daemon=True, name="lease-renew")
        self._thread.start()

    def describe(self, lease: dict[str, Any]) -> str:
        if not lease:
            return "another rollout"
        spec = lease.get("spec") or {}
        holder = (lease.get("metadata", {}).get("annotations") or {}).get(HOLDER_ANN) or \
            spec.get("holderIdentity", "?")
        return f"{holder} since {spec.get('acquireTime', '?')}"

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                live = self.kube.get("Lease", self.name, self.namespace)
                spec = (live or {}).get("spec") or {}
                if not live or spec.get("holderIdentity") != self.identity:
                    self.lost = True
                    return
                spec["renewTime"] = _fmt(_now())
                self.kube.replace(live, ok=(409,))
            except Exception as exc:  # keep trying until the lease would expire
                if self.log:
                    self.log.debug("lease renewal failed", error=str(exc)[:200])

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        live = self.kube.get("Lease", self.name, self.namespace)
        if live and (live.get("spec") or {}).get("holderIdentity") == self.identity:
            self.kube.delete("Lease", self.name, self.namespace,
                             resource_version=live["metadata"]["resourceVersion"])

    def __enter__(self) -> DeployLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
