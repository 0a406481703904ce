"""The deploy lock: a ``coordination.k8s.io`` Lease per app and namespace.

Held (and renewed by a background thread) for the whole rollout. A second rollout queues
behind it, saying who holds it and since when, up to a timeout. A lease whose holder
stopped renewing (a killed job) expires after ``ttl_s`` and is taken over: never a stuck
lock that needs a human.

Fencing: writes go through ``lock.fenced(kube)``, which checks before every write that the
Lease is still ours (a GET when the last confirmation is older than ``CONFIRM_S``; at once
when the renewal thread saw it taken or could not renew for a whole TTL). A run that lost
its Lease raises ``LeaseLost`` naming the new holder before its next write.

A dead holder is recognised without waiting for the TTL: the Lease records where its holder
runs (boot id, PID namespace, PID and the process start time from ``/proc``). A run on the
same machine and PID namespace whose holder process is gone (or the PID was reused by a
process started at another time) takes the lock over at once; elsewhere it waits for the
TTL. A run with nothing to do removes such a dead holder's Lease (``clear_dead``).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from typing import Any

from pipelinelib.errors import StepFailed
from pipelinelib.kube.labels import ANN_LOCK_HOLDER as HOLDER_ANN
from pipelinelib.kube.labels import ANN_LOCK_PROCESS as PROCESS_ANN
from pipelinelib.kube.labels import APP_LABEL, MANAGED_BY, MANAGER

CONFIRM_S = 1.0  # a write re-reads the Lease when the last confirmation is older than this


class LeaseLost(StepFailed):
    """The deploy lock was taken over by another run: stop writing."""


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The process start time (clock ticks since boot, /proc/PID/stat field 22) or ''."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _machine() -> str:
    """This boot and PID namespace: PIDs are comparable only within the same one."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    boot = _read("/proc/sys/kernel/random/boot_id")
    return f"{boot}/{pidns}" if boot and pidns else ""


def process_stamp(pid: int | None = None) -> str:
    """``BOOT/PIDNS/PID/START`` for a process (this one by default); '' when unknown."""
    pid = pid or os.getpid()
    machine, start = _machine(), _start_ticks(pid)
    return f"{machine}/{pid}/{start}" if machine and start else ""


def holder_dead(stamp: str | None) -> bool:
    """True only when ``stamp`` names a process on this machine and PID namespace that no
    longer runs (its PID is gone, or now belongs to a process started at another time)."""
    parts = (stamp or "").split("/")
    if len(parts) != 4 or not _machine() or "/".join(parts[:2]) != _machine():
        return False
    pid, start = parts[2], parts[3]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    return _start_ticks(int(pid)) != start


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


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def lease_name(app: str) -> str:
    return f"pipelinelib-deploy-{app}"[:63].rstrip("-")


class DeployLock:
    """Context manager: acquire the app's Lease, renew it, release it on exit."""

    def __init__(self, kube: Any, app: str, namespace: str, holder: str, *,
                 ttl_s: int = 30, wait_s: float = 300.0, log: Any = None):
        self.kube, self.app, self.namespace = kube, app, namespace
        self.name = lease_name(app)
        self.holder = holder
        self.identity = f"{holder} #{os.urandom(4).hex()}"  # this run's: 32 random bits
        self.ttl_s, self.wait_s, self.log = max(2, int(ttl_s)), wait_s, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        self.lost_to = ""
        self.waited_s = 0.0
        self._confirmed = 0.0  # monotonic time the Lease was last seen ours
        self._rv = ""  # the Lease's resourceVersion after our last write to it
        self._seen_held = False  # the last attempt found a Lease
        self.contended = False  # some attempt found a Lease: another run held (or holds) it

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
            "annotations": {HOLDER_ANN: self.holder, PROCESS_ANN: process_stamp()}}
        if rv:
            meta["resourceVersion"] = rv
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.ttl_s,
                         "acquireTime": acquired or now, "renewTime": now,
                         "leaseTransitions": transitions}}

    def try_acquire(self) -> dict[str, Any] | None:
        """One attempt: None when acquired, else the live lease held by someone else."""
        live = None
        if self._seen_held:  # a lease was there a moment ago: read it first
            live = self.kube.get("Lease", self.name, self.namespace)
        if live is None:  # usually free: create it at once (409 when someone holds it)
            made = self.kube.create(self._body(), self.namespace, ok=(409,))
            if "__status__" not in made:
                self._confirmed, self._rv = time.monotonic(), _rv(made)
                return None
            self._seen_held = self.contended = True
            live = self.kube.get("Lease", self.name, self.namespace)
            if live is None:
                return {}
        spec = live.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        ttl = spec.get("leaseDurationSeconds") or self.ttl_s
        expired = not holder or renewed is None or \
            renewed + dt.timedelta(seconds=ttl) < _now()
        annotations = live["metadata"].get("annotations") or {}
        dead = holder != self.identity and not expired and holder_dead(
            annotations.get(PROCESS_ANN))
        if holder != self.identity and not expired and not dead:
            return live
        body = self._body(live["metadata"]["resourceVersion"],
                          (spec.get("leaseTransitions") or 0) + (holder != self.identity))
        if (expired or dead) and holder and self.log:
            self.log.warning("taking over the deploy lock of a dead holder" if dead else
                             "taking over an expired deploy lock", lock=self.name,
                             previous=annotations.get(HOLDER_ANN))
        done = self.kube.replace(body, ok=(409,))
        if "__status__" in done:
            return {}
        self._confirmed, self._rv = time.monotonic(), _rv(done)
        return None

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
                if not self._still_ours(live):
                    return
                assert live is not None
                live["spec"]["renewTime"] = _fmt(_now())
                done = self.kube.replace(live, ok=(409,))
                if "__status__" not in done:
                    self._confirmed, self._rv = time.monotonic(), _rv(done)
            except Exception as exc:  # keep trying; check() stops writes after a TTL
                if self.log:
                    self.log.debug("lease renewal failed", error=str(exc)[:200])

    def _still_ours(self, live: dict[str, Any] | None) -> bool:
        spec = (live or {}).get("spec") or {}
        if live and spec.get("holderIdentity") == self.identity:
            return True
        self.lost = True
        self.lost_to = self.describe(live) if live else "nobody (the Lease was deleted)"
        return False

    def check(self, action: str = "write") -> None:
        """Raise ``LeaseLost`` unless the Lease is still ours (call before every write)."""
        if not self.lost and time.monotonic() - self._confirmed > CONFIRM_S:
            live = self.kube.get("Lease", self.name, self.namespace)
            if self._still_ours(live):
                self._confirmed = time.monotonic()
        if self.lost:
            if self.log:
                self.log.error("deploy lock lost: stopping", lock=self.name,
                               holder=self.lost_to, before=action)
            raise LeaseLost(f"lost the deploy lock {self.namespace}/{self.name} to "
                            f"{self.lost_to}: stopped before {action}",
                            cause="the Lease was taken over (or not renewed within its TTL)",
                            hint="another run owns this app now; re-run once it is done "
                                 "(the re-run converges)")

    def fenced(self, kube: Any) -> FencedKube:
        """``kube`` whose every write first checks that this lock is still held."""
        return FencedKube(kube, self)

    @staticmethod
    def clear_dead(kube: Any, app: str, namespace: str, log: Any = None) -> bool:
        """Delete the app's Lease when its holder is known dead; True when deleted."""
        name = lease_name(app)
        live = kube.get("Lease", name, namespace)
        if not live:
            return False
        annotations = live["metadata"].get("annotations") or {}
        if not holder_dead(annotations.get(PROCESS_ANN)):
            return False
        if log:
            log.warning("removing the deploy lock of a dead holder", lock=name,
                        previous=annotations.get(HOLDER_ANN))
        kube.delete("Lease", name, namespace,
                    resource_version=live["metadata"]["resourceVersion"])
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self._rv and not self.lost:  # our last write's version: no read needed
            gone = self.kube.request(
                "DELETE", self.kube.path("Lease", self.namespace, self.name),
                body={"propagationPolicy": "Background",
                      "preconditions": {"resourceVersion": self._rv}}, ok=(404, 409))
            if gone.get("__status__") != 409:
                return  # deleted (or already gone)
        live = self.kube.get("Lease", self.name, self.namespace)
        if live and (live.get("spec") or {}).get("holderIdentity") == self.identity:
            self.kube.delete("Lease", self.name, self.namespace,
                             resource_version=live["metadata"]["resourceVersion"])

    def __enter__(self) -> DeployLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class FencedKube:
    """A Kubernetes client whose writes are refused once the deploy lock is lost."""

    _WRITES = ("apply", "patch", "create", "replace", "delete")

    def __init__(self, kube: Any, lock: DeployLock):
        self._kube, self._lock = kube, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._kube, name)
        if name not in self._WRITES:
            return attr

        def fenced(*args: Any, **kwargs: Any) -> Any:
            if not (name == "apply" and kwargs.get("dry_run")):
                what = _describe_write(name, args)
                self._lock.check(what)
            return attr(*args, **kwargs)
        return fenced


def _describe_write(verb: str, args: tuple[Any, ...]) -> str:
    first = args[0] if args else None
    if isinstance(first, dict):
        return f"{verb} {first.get('kind')}/{(first.get('metadata') or {}).get('name')}"
    if len(args) >= 2:
        return f"{verb} {args[0]}/{args[1]}"
    return verb
