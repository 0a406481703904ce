"""Compare with the live state (server-side dry run), roll back, and prune.

``plan_changes`` is read-only: each object is applied with ``dryRun=All`` and compared with
the live object; equal means nothing to write. Our record annotations (who, build URL)
are compared as they are live, so a re-run from another build with the same manifests
writes nothing. Secret values never appear in a diff.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pipelinelib.errors import BadInput, PipelineError, Refused, StepFailed
from pipelinelib.kube.kinds import PRUNABLE as PRUNE_KINDS  # plus any kind the manifests ship
from pipelinelib.kube.labels import (
    APP_LABEL,
    COLOR_LABEL,
    MANAGED_BY,
    MANAGER,
    PURPOSE_LABEL,
    RECORD_ANNOTATIONS,
    owner_selector,
)
from pipelinelib.kube.manifests import Manifest

READS_AT_ONCE = 8  # reads of one plan in flight together (independent GETs, lists, dry runs)
VOLATILE_META = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


@dataclass
class Change:
    """One object's planned write: ``create`` or ``update`` (with the diff), or ``none``.

    ``new`` is the object as the server would store it (the dry run's answer); the diff is
    rendered from it only when asked for (a dry run shows it, a rollout does not need it).
    """

    manifest: Manifest
    action: str
    live: dict[str, Any] | None = None
    new: dict[str, Any] | None = None

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @functools.cached_property
    def diff(self) -> list[str]:
        if self.action == "none" or self.new is None:
            return []
        lines = unified_diff(self.live, self.new, self.ref)
        if not lines and self.manifest.kind == "Secret" and self.live is not None \
                and _data(self.new) != _data(self.live):
            return ["(secret values changed; not shown)"]
        return lines


def _data(obj: dict[str, Any]) -> str:
    return json.dumps(obj.get("data"), sort_keys=True)


def normalize(obj: dict[str, Any] | None, mask: bool = True) -> dict[str, Any]:
    """The object without server bookkeeping (for comparison and diffs); Secret values
    masked unless ``mask`` is false (a comparison must see a changed value)."""
    if not obj:
        return {}
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata", {})
    for key in VOLATILE_META:
        meta.pop(key, None)
    if mask and out.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if isinstance(out.get(key), dict):
                out[key] = {k: "***" for k in out[key]}
    return out


def unified_diff(live: dict[str, Any] | None, new: dict[str, Any], ref: str) -> list[str]:
    import difflib

    import yaml

    def dump(o: dict[str, Any] | None) -> list[str]:
        return yaml.safe_dump(normalize(o), sort_keys=True).splitlines() if o else []

    return list(difflib.unified_diff(dump(live), dump(new), f"live {ref}", f"new {ref}",
                                     lineterm="", n=2))


def _probe(m: Manifest, live: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest with our record annotations as they are live (not a change by itself)."""
    probe = copy.deepcopy(m.obj)
    if live is None:
        return probe
    ann = probe["metadata"].get("annotations") or {}
    live_ann = live["metadata"].get("annotations") or {}
    for key in RECORD_ANNOTATIONS:
        if key in live_ann:
            ann[key] = live_ann[key]
        else:
            ann.pop(key, None)
    if ann:
        probe["metadata"]["annotations"] = ann
    return probe


def list_owned(kube: Any, kind: str, namespace: str, selector: str,
               api_version: str | None = None, log: Any = None
               ) -> dict[str, dict[str, dict[str, Any]]] | None:
    """{app: {name: object}} of ``kind`` in ``namespace`` selected by ``selector`` (one
    list; items get the list's apiVersion and the kind); None when the deployer may not
    list the kind (its objects are then read one by one, and it is not pruned)."""
    try:
        try:
            listed = kube.list(kind, namespace, selector=selector, api_version=api_version)
        except BadInput:  # not served at that version (any more): at its preferred one
            if api_version is None:
                return {}  # the cluster serves no such kind: nothing of it can exist
            return list_owned(kube, kind, namespace, selector, None, log)
    except Refused as exc:
        if log:
            log.debug("cannot list owned objects", kind=kind, error=exc.message)
        return None
    version = listed.get("apiVersion") or api_version
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for item in listed.get("items", []):
        app = (item["metadata"].get("labels") or {}).get(APP_LABEL)
        if app:
            out.setdefault(app, {})[item["metadata"]["name"]] = {
                "apiVersion": version, **item, "kind": kind}
    return out


def read_namespace(kube: Any, namespace: str) -> tuple[bool, dict[str, str]]:
    """Whether ``namespace`` exists, and its labels ({} when absent or not readable)."""
    try:
        ns = kube.get("Namespace", namespace)
    except Refused:
        return True, {}  # a deployer may not read namespaces; its own namespace exists
    return ns is not None, dict(((ns or {}).get("metadata") or {}).get("labels") or {})


class RunLists:
    """Every app's owned objects, one list per namespace and kind for a whole run that
    deploys many apps (``pipeline apply``): selected by the managed-by label, split by the
    app label here. Each app reads only its own objects, which only its own rollout of the
    run writes, after its plan; a change made outside the run meanwhile is caught by the
    apply's resourceVersion precondition (``apply_planned``)."""

    def __init__(self, kube: Any, log: Any = None):
        self.kube, self.log = kube, log
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._found: dict[tuple[str, str], dict[str, dict[str, dict[str, Any]]] | None] = {}
        self._namespaces: dict[str, tuple[bool, dict[str, str]]] = {}
        self.planned: dict[str, list[Change]] = {}  # by app: the run's plan (apply's)

    def plan_of(self, app: str, manifests: list[Manifest]) -> list[Change] | None:
        """The run's plan of ``app`` when it planned exactly ``manifests`` (the same objects
        in the same order; its dry runs validated them), else None: plan again."""
        changes = self.planned.get(app)
        if changes is None or [c.manifest.obj for c in changes] != [m.obj for m in manifests]:
            return None
        return changes

    def namespace(self, namespace: str) -> tuple[bool, dict[str, str]]:
        """``read_namespace``, once per run for a namespace that exists (the run made its
        namespaces before its first app: one that does not is read again)."""
        with self._lock:
            known = self._namespaces.get(namespace)
        if known is None:
            known = read_namespace(self.kube, namespace)
            if known[0]:
                with self._lock:
                    self._namespaces[namespace] = known
        return known

    def by_app(self, kind: str, namespace: str, api_version: str | None = None
               ) -> dict[str, dict[str, dict[str, Any]]] | None:
        """{app: {name: object}} of ``kind`` in ``namespace`` (None: it cannot be listed)."""
        key = (namespace, kind)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._found:
                self._found[key] = list_owned(self.kube, kind, namespace,
                                              f"{MANAGED_BY}={MANAGER}", api_version, self.log)
            return self._found[key]


class Owned:
    """The app's live objects: one label-selected list per kind, read once per rollout and
    shared by the plan (no GET per object), the prune, the app's record of owned kinds and
    the apply (the resourceVersion each update is conditional on: no re-read under the lock).

    ``kinds`` are listed lazily; a kind the deployer may not list is ``None`` (its objects
    are read one by one, and it is not pruned).
    """

    def __init__(self, kube: Any, app: str, namespace: str, log: Any = None,
                 shared: RunLists | None = None):
        self.kube, self.app, self.namespace, self.log = kube, app, namespace, log
        self.shared = shared
        self._items: dict[str, dict[str, dict[str, Any]] | None] = {}
        self._pending: dict[str, Future[dict[str, dict[str, Any]] | None]] = {}

    @classmethod
    def from_objects(cls, kube: Any, app: str, namespace: str, objects: list[dict[str, Any]],
                     kinds: set[str], log: Any = None) -> Owned:
        """The app's objects of ``kinds`` as a caller already listed them (the plan step's
        lists, served at each kind's default version): no list of its own for those."""
        owned = cls(kube, app, namespace, log)
        found: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in kinds}
        for obj in objects:
            meta = obj.get("metadata") or {}
            if obj.get("kind") in kinds and meta.get("namespace") == namespace:
                version = obj.get("apiVersion") or kube.resource(obj["kind"])[0]
                found[obj["kind"]][meta["name"]] = {**obj, "apiVersion": version}
        owned._items.update(found)
        return owned

    def prefetch(self, kinds: dict[str, str | None], wait: bool = True) -> None:
        """List ``kinds`` ({kind: apiVersion or None}) at once, a few requests in flight.

        ``wait=False`` returns at once: the lists go on meanwhile (while the caller reads
        something else, e.g. the Namespace or the dry runs) and ``items`` waits for its
        kind's. Call it from one thread (the rollout's)."""
        todo = [(k, v) for k, v in kinds.items() if k not in self._items
                and k not in self._pending]
        if len(todo) > 1 or (todo and not wait):
            pool = ThreadPoolExecutor(max_workers=min(READS_AT_ONCE, len(todo)))
            for kind, version in todo:
                self._pending[kind] = pool.submit(self._list, kind, version)
            pool.shutdown(wait=False)  # its threads end with the last list
        if wait:
            for kind in kinds:
                self._settle(kind)

    def items(self, kind: str, api_version: str | None = None
              ) -> dict[str, dict[str, Any]] | None:
        """Owned objects of ``kind`` by name (None when the kind cannot be listed)."""
        self._settle(kind)
        if kind not in self._items:
            self._items[kind] = self._list(kind, api_version)
        return self._items[kind]

    def _settle(self, kind: str) -> None:
        """A list of ``kind`` in flight: wait for it (its error is raised here)."""
        pending = self._pending.get(kind)
        if pending is not None:
            self._items[kind] = pending.result()
            del self._pending[kind]

    def recorded(self) -> set[tuple[str, str]] | None:
        """The app's record of owned kinds as listed (None: no record yet)."""
        record = (self.items("ConfigMap", "v1") or {}).get(record_name(self.app))
        return None if record is None else parse_record(record)

    def _list(self, kind: str, api_version: str | None) -> dict[str, dict[str, Any]] | None:
        if self.shared is not None:
            by_app = self.shared.by_app(kind, self.namespace, api_version)
        else:
            by_app = list_owned(self.kube, kind, self.namespace, owner_selector(self.app),
                                api_version, self.log)
        return None if by_app is None else dict(by_app.get(self.app, {}))


# --- the app's record of owned kinds (kapp's "app record") ------------------------------
# Which kinds the app's rollouts applied, as (apiVersion, kind): the prune lists those and
# the kinds being applied, not every kind there is. It is a ConfigMap of the app (listed with
# the app's ConfigMaps anyway: no read of its own), written under the deploy lock before the
# first object when the kinds being applied are not all in it yet, and narrowed after a
# complete prune; so it always names every kind the app may still own. Without one (the
# first run after an upgrade, or the record deleted) the prune lists every prunable kind —
# so a first deploy of prunable kinds only writes it after its objects (steps.rollout).
RECORD_PREFIX = "pipelinelib-owned-"
RECORD_KEY = "kinds"


def record_name(app: str) -> str:
    """The name of ``app``'s record of owned kinds (a ConfigMap in its namespace)."""
    return f"{RECORD_PREFIX}{app}"


def parse_record(obj: dict[str, Any]) -> set[tuple[str, str]]:
    """(apiVersion, kind) pairs of a record (``apps/v1/Deployment`` a line)."""
    text = str((obj.get("data") or {}).get(RECORD_KEY) or "")
    out = set()
    for line in text.split():
        version, _, kind = line.rpartition("/")
        if version and kind:
            out.add((version, kind))
    return out


def record_body(app: str, namespace: str, gvks: set[tuple[str, str]]) -> dict[str, Any]:
    """The record ConfigMap naming ``gvks``."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": record_name(app), "namespace": namespace,
                         "labels": {MANAGED_BY: MANAGER, APP_LABEL: app,
                                    PURPOSE_LABEL: "owned-kinds"}},
            "data": {RECORD_KEY: "\n".join(f"{v}/{k}" for v, k in sorted(gvks))}}


def applied_kinds(manifests: list[Manifest]) -> set[tuple[str, str]]:
    """(apiVersion, kind) of each manifest."""
    return {(str(m.obj.get("apiVersion")), m.kind) for m in manifests}


def prune_kinds(applying: set[tuple[str, str]], recorded: set[tuple[str, str]] | None
                ) -> dict[str, str | None]:
    """{kind: apiVersion or None} a prune lists: the recorded kinds and those being applied;
    without a record every prunable kind as well (correctness first: nothing the app owned
    may be left)."""
    kinds: dict[str, str | None] = {}
    if recorded is None:
        kinds.update(dict.fromkeys(PRUNE_KINDS))
    for version, kind in sorted(recorded or set()) + sorted(applying):
        kinds[kind] = version
    return kinds


def plan_changes(kube: Any, manifests: list[Manifest], namespace_exists: bool,
                 owned: Owned | None = None) -> list[Change]:
    """Each manifest's change against the live state (read-only).

    With ``owned`` the live objects come from its lists: an object absent from them is
    dry-run at once, and read only when the dry run shows it exists (someone else's, not
    labelled ours: the apply takes it over)."""
    changes = []
    for m in manifests:
        if not namespace_exists:
            changes.append(Change(m, "create", None, m.obj))
            continue
        namespace, version = m.obj["metadata"]["namespace"], m.obj["apiVersion"]
        listed = owned.items(m.kind, version) if owned is not None else None
        if listed is None:
            live = kube.get(m.kind, m.name, namespace, version)
        else:
            live = listed.get(m.name)
        if live is not None and holds(live, _as_stored(_probe(m, live))):
            changes.append(Change(m, "none", live))  # same applied hash, every field as live
            continue
        dry = kube.apply(_probe(m, live), dry_run=True)
        if live is None and listed is not None and _version(dry):
            live = kube.get(m.kind, m.name, namespace, version)  # exists, not labelled ours
            if live is not None:
                dry = kube.apply(_probe(m, live), dry_run=True)
        if live is None:
            changes.append(Change(m, "create", None, dry))
        elif normalize(dry, mask=False) != normalize(live, mask=False):
            changes.append(Change(m, "update", live, dry))
        else:
            changes.append(Change(m, "none", live))
    return changes


def holds(live: Any, want: Any) -> bool:
    """Whether ``live`` has every field of ``want`` with the same value and type (lists of
    the same length, item by item; an empty or null field may be absent, as the apiserver
    omits it). Server defaults are extra fields and do not matter; a value the server
    normalizes differs, and the dry run then decides."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(
            holds(live[k], v) if k in live else v in (None, {}, [])  # omitted when empty
            for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(
            holds(h, w) for h, w in zip(live, want, strict=True))
    return type(live) is type(want) and live == want


def _as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret's ``stringData`` folded into base64 ``data``, as the apiserver keeps it."""
    if obj.get("kind") != "Secret" or not isinstance(obj.get("stringData"), dict):
        return obj
    import base64

    data = dict(obj.get("data") or {})
    for k, v in obj["stringData"].items():
        data[k] = base64.b64encode(str(v).encode()).decode()
    return {**{k: v for k, v in obj.items() if k != "stringData"}, "data": data}


def refresh(kube: Any, changes: list[Change]) -> list[Change]:
    """The plan again (under the deploy lock): an object whose live version is the one
    planned against keeps its change; any other is planned anew (one GET each, and a dry
    run only for what moved meanwhile)."""
    def read(change: Change) -> dict[str, Any] | None:
        m = change.manifest
        live: dict[str, Any] | None = kube.get(m.kind, m.name, m.obj["metadata"]["namespace"],
                                               m.obj["apiVersion"])
        return live

    with ThreadPoolExecutor(max_workers=max(1, min(READS_AT_ONCE, len(changes)))) as pool:
        lives = list(pool.map(read, changes))
    out = []
    for change, live in zip(changes, lives, strict=True):
        m = change.manifest
        if _version(live) == _version(change.live):
            out.append(change)
        else:
            out.extend(plan_changes(kube, [m], True))
    return out


def apply_planned(kube: Any, change: Change, attempts: int = 3
                  ) -> tuple[dict[str, Any] | None, Change]:
    """Write a planned change: (the apply's answer, the change written), or (None, change)
    when nothing is left to write.

    An update carries the resourceVersion it was planned against (optimistic concurrency,
    the plan's lists are the live state: no re-read before the write); an object that moved
    since is planned again (one GET and a dry run) and that change written."""
    for _ in range(attempts):
        body = change.manifest.obj
        version = _version(change.live) if change.action == "update" else None
        if version:
            body = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        result = kube.apply(body, ok=(409,))
        if "__status__" not in result:
            return result, change
        (change,) = plan_changes(kube, [change.manifest], True)  # it moved: plan again
        if change.action == "none":
            return None, change
    raise StepFailed(f"{change.ref} kept changing while it was written",
                     cause=f"{attempts} conflicts (409) in a row",
                     hint="something else writes this object; re-run once it is done")


def _version(obj: dict[str, Any] | None) -> str | None:
    return obj["metadata"].get("resourceVersion") if obj else None

def prune_candidates(kube: Any, app: str, namespace: str, keep: set[tuple[str, str]],
                     log: Any = None, owned: Owned | None = None,
                     kinds: dict[str, str | None] | None = None) -> list[tuple[str, str]]:
    """(kind, name) of objects labelled as owned by ``app`` and absent from ``keep``
    (from ``owned``'s lists when given: the plan's own reads), among ``kinds`` (by default
    the app's recorded kinds, see ``prune_kinds``). The record itself is never a candidate.

    A blue/green Deployment's other colour stays: ``NAME-green`` is kept while
    ``NAME-blue`` is shipped. A plain ``NAME`` (from before the app went blue/green) is not.
    """
    owned = owned or Owned(kube, app, namespace, log)
    colored = {(k, n.rsplit("-", 1)[0]) for k, n in keep
               if k == "Deployment" and n.rsplit("-", 1)[-1] in ("blue", "green")}
    if kinds is None:
        kinds = prune_kinds(set(), owned.recorded())
        for kind, _ in sorted(keep):
            kinds.setdefault(kind, None)
    owned.prefetch(kinds)
    found = []
    for kind, version in kinds.items():
        for item in (owned.items(kind, version) or {}).values():
            meta = item["metadata"]
            if kind == "ConfigMap" and meta["name"] == record_name(app):
                continue  # the record of owned kinds: written and deleted on its own
            if meta.get("ownerReferences"):
                continue  # created by a controller (a CronJob's Job): not ours to delete
            labels = meta.get("labels") or {}
            if (kind, meta["name"]) in keep:
                continue
            if COLOR_LABEL in labels and (kind, meta["name"].rsplit("-", 1)[0]) in colored:
                continue  # the other colour of a blue/green Deployment stays
            found.append((kind, meta["name"]))
    return found


def restore_body(previous: dict[str, Any]) -> dict[str, Any]:
    """An apply body that returns an object to a recorded previous state."""
    meta = previous["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "deployment.kubernetes.io/revision"}
    body = {"apiVersion": previous["apiVersion"], "kind": previous["kind"],
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                         "labels": meta.get("labels") or {}, "annotations": annotations},
            "spec": copy.deepcopy(previous.get("spec") or {})}
    template = body["spec"].get("template") or {}
    (template.get("metadata") or {}).pop("creationTimestamp", None)
    return body


def rollback(kube: Any, changes: list[Change], log: Any
             ) -> tuple[list[str], list[tuple[str, str, int]]]:
    """Undo a failed rollout's writes, like ``helm --atomic``.

    Every updated workload gets its previous state back; then every object the rollout
    created (a first deploy's workloads, a new hashed ConfigMap) is deleted, newest first,
    so nothing is orphaned. Updated ConfigMaps, Services and the like keep their new
    content (they are harmless without the workloads; the next rollout rewrites them).
    Returns the story lines and (kind, name, generation) of each restored workload.
    """
    from pipelinelib.kube.manifests import WORKLOADS

    story, restored = [], []
    for change in changes:
        if change.manifest.kind not in WORKLOADS or change.action != "update" or not change.live:
            continue
        try:
            applied = kube.apply(restore_body(change.live))
        except PipelineError as exc:
            story.append(f"{change.ref}: rollback failed: {exc.message}")
            continue
        image = ",".join(c.get("image", "") for c in (
            ((change.live.get("spec") or {}).get("template") or {}).get("spec") or {}
        ).get("containers") or [])
        story.append(f"{change.ref}: rolled back to the previous revision ({image})")
        restored.append((change.manifest.kind, change.manifest.name,
                         applied["metadata"].get("generation", 0)))
        log.warning("rolled back", object=change.ref)
    for change in reversed([c for c in changes if c.action == "create"]):
        m = change.manifest
        try:
            kube.delete(m.kind, m.name, m.obj["metadata"].get("namespace"),
                        m.obj.get("apiVersion"))
        except PipelineError as exc:
            story.append(f"{change.ref}: could not delete what this rollout created: "
                         f"{exc.message}")
            continue
        story.append(f"{change.ref}: deleted (created by this rollout)")
        log.warning("deleted what the failed rollout created", object=change.ref)
    return story, restored
