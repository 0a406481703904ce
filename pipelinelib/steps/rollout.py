"""The rollout step: validate -> plan (server-side dry run) -> lock -> apply -> wait -> prune.

Reads like the procedure (seed 003: create before delete):

1. Validate before any write, every problem reported together (exit 2): the app and
   namespace names (RFC 1123 labels), the YAML (bounded: yamlsafe), every object (a kind
   the cluster serves, a valid name, one namespace, images pinned by digest, referenced
   ConfigMaps/Secrets/ServiceAccounts/PVCs shipped or present, fields against the schema).
   Then hash ConfigMap/Secret names; stamp ownership labels and the record annotations;
   order dependencies -> workloads -> Services.
2. Plan: the live state is one owner-selected list per kind (the kinds applied and those
   the app's record of owned kinds names); each object that differs is server-side applied
   with ``dryRun=All`` (strict field validation) and compared with the live one — a schema
   error is collected with the others; in a namespace that does not exist yet, the
   cluster's OpenAPI schema checks the fields. Owned objects absent from the manifests are
   the prune list. An empty plan is ``unchanged`` and writes nothing (health is still
   checked, read-only).
3. Under the app's deploy lock (a Lease): record the kinds, apply (dependencies and Jobs
   first, then the rest; each update conditional on the version planned against), wait
   with watches, fail fast with evidence, roll back on failure, prune after success.
   Blue/green deploys the idle colour and switches the Services when it is ready.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipelinelib.context import Context
from pipelinelib.errors import BadInput, PipelineError, Refused, StepFailed
from pipelinelib.imageref import ImageRef
from pipelinelib.kube import bluegreen, kinds
from pipelinelib.kube import manifests as mf
from pipelinelib.kube.images import pin
from pipelinelib.kube.labels import MANAGED_BY, MANAGER
from pipelinelib.kube.lock import DeployLock, LeaseLost
from pipelinelib.kube.revisions import (
    Change,
    Owned,
    RunLists,
    applied_kinds,
    apply_planned,
    plan_changes,
    prune_candidates,
    prune_kinds,
    read_namespace,
    record_body,
    record_name,
    refresh,
    rollback,
)
from pipelinelib.kube.wait import wait_for
from pipelinelib.promotion.guard import guard_namespace
from pipelinelib.result import StepResult
from pipelinelib.step import step

# applied and waited for before the rest: the dependencies and the Jobs (a migration Job)
PHASE_ONE = kinds.ordered_up_to("Job")


def prepare(ctx: Context, manifests: Any, app: str, namespace: str,
            allowed_namespaces: list[str] | None = None,
            images: Mapping[str, ImageRef] | None = None) -> list[mf.Manifest]:
    """Load, pin images, validate, hash, stamp and order; raises BadInput before any write
    (:class:`~pipelinelib.kube.manifests.Invalid` with every problem)."""
    return _prepare(ctx, manifests, app, namespace, allowed_namespaces, images)[0]


def _prepare(ctx: Context, manifests: Any, app: str, namespace: str,
             allowed_namespaces: list[str] | None = None,
             images: Mapping[str, ImageRef] | None = None, cluster_checks: bool = False,
             run: RunLists | None = None, log: Any = None
             ) -> tuple[list[mf.Manifest], bool | None, dict[str, str], Owned | None]:
    """``prepare``; with ``cluster_checks`` also references and (new namespace) the schema,
    all reported with the rest. Returns the docs, whether the namespace exists and its
    labels (one read of the Namespace serves the checks and ``guard_namespace``), and the
    app's objects (``Owned``), their lists started once the Namespace was read and the
    manifests passed every local check (None in a namespace that does not exist yet)."""
    problems = [p for p in (mf.check_name(app, "app name", "--app"),
                            mf.check_name(namespace, "namespace", "--namespace")) if p]
    names_ok = not problems
    try:
        docs = mf.load(manifests if isinstance(manifests, list) else Path(manifests))
    except BadInput as exc:
        mf.Invalid.raise_if([*problems, exc])
    for m in docs:
        if m.kind == "Secret":
            _register_secret(ctx, m.obj)
    try:
        for line in pin(docs, images or {}):
            ctx.log.info("image pinned", change=line)
    except BadInput as exc:
        problems.append(exc)
    problems += mf.problems(docs, namespace, ctx.kube if names_ok else None,
                            allowed_namespaces)
    exists: bool | None = None
    labels: dict[str, str] = {}
    owned: Owned | None = None
    if cluster_checks and names_ok:
        exists, labels = run.namespace(namespace) if run is not None else \
            read_namespace(ctx.kube, namespace)
        if exists and not problems:  # the record of owned kinds and the kinds applied, in
            owned = Owned(ctx.kube, app, namespace, log, run)  # flight with the checks
            owned.prefetch(_listed_first(docs), wait=False)  # (only once the cluster
            # answered: an apiserver that is down gets one call's retries, not five calls')
        problems += mf.reference_problems(docs, ctx.kube, namespace, exists)
        if not exists:
            problems += schema_problems(ctx.kube, docs)
    mf.Invalid.raise_if(problems)
    mf.hash_config(docs)
    record = mf.Record(ctx.revision, ctx.ci.user, ctx.ci.build_url)
    mf.stamp(docs, app, namespace, record, ctx.secrets.redact)
    return mf.order(docs), exists, labels, owned if exists else None


def _listed_first(docs: list[mf.Manifest]) -> dict[str, str | None]:
    """The kinds a plan lists: ConfigMaps (the record of owned kinds is one) and the kinds
    applied, at the manifests' versions."""
    return {"ConfigMap": "v1", **{m.kind: m.obj.get("apiVersion") for m in docs}}


def _register_secret(ctx: Context, obj: dict[str, Any]) -> None:
    ctx.secrets.add_manifest(obj)


def namespace_exists(kube: Any, namespace: str) -> bool:
    return read_namespace(kube, namespace)[0]


def _workloads(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.manifest.kind, c.manifest.name) for c in changes
            if c.manifest.kind in kinds.WORKLOADS]


@step("rollout")
def rollout(ctx: Context, manifests: Any, *, app: str, namespace: str, timeout: float = 300,
            prune: bool = True, rollback_on_failure: bool = True,
            allowed_namespaces: list[str] | None = None, blue_green: bool = False,
            await_promotion: bool = False, lock_timeout: float = 300,
            lock_ttl: int = 30, images: Mapping[str, ImageRef] | None = None,
            owned_lists: RunLists | None = None) -> StepResult:
    """Deploy ``manifests`` (path or dicts) of ``app`` into ``namespace``; see the module doc.

    ``images`` pins container images to digests ({repository: pinned ref}, see kube.images).
    ``owned_lists``: the run's lists of owned objects, shared by the apps of one apply.
    """
    log = ctx.log.bind(app=app, namespace=namespace)
    docs, known, ns_labels, owned = _prepare(ctx, manifests, app, namespace,
                                             allowed_namespaces, images, cluster_checks=True,
                                             run=owned_lists, log=log)  # owned: list per kind
    kube = ctx.kube
    writes_before = kube.writes  # _prepare() only reads
    exists = bool(known)
    color = live = None
    converting = False  # rolling -> blue/green: Services switch to the first colour once ready
    if blue_green:
        colors = bluegreen.service_colors(kube, app, namespace) if exists else []
        live = bluegreen.live_of(colors)
        converting = not live and None in colors  # Services that ignore colour serve now
        going_to = _interrupted_switch(kube, docs, colors, exists)
        if going_to:  # finish the switch a killed run began, to the colour it deployed
            docs, color, live = bluegreen.colored(docs, going_to, going_to), going_to, \
                bluegreen.other(going_to)
        elif live and _all_unchanged(kube, bluegreen.colored(docs, live, live), exists):
            docs, color = bluegreen.colored(docs, live, live), live
        else:
            color = bluegreen.other(live) if live else "blue"
            docs = bluegreen.colored(docs, color, None if converting else live or color)
    keep = {(m.kind, m.name) for m in docs}
    applying = applied_kinds(docs)
    recorded: set[tuple[str, str]] | None = None  # the app's record of owned kinds
    listed: dict[str, str | None] = {}
    if owned is not None:  # the applied kinds and ConfigMaps (the record is one) at once
        owned.prefetch(_listed_first(docs))
        recorded = owned.recorded()
        if prune:  # the recorded kinds not applied now (none, usually; every prunable
            listed = prune_kinds(applying, recorded)  # kind without a record): listed
            owned.prefetch(listed, wait=False)  # while the objects are dry-run
    changes = (owned_lists.plan_of(app, docs) if owned_lists is not None and exists
               and not blue_green else None) or plan_validated(kube, docs, exists, owned)
    prunes = prune_candidates(kube, app, namespace, keep, log, owned, listed) \
        if prune and exists else []
    owning = applying | {(_version_of(owned, k, n), k) for k, n in prunes}
    actions = _actions(changes, prunes, exists, namespace)
    awaiting = bool(blue_green and live and color != live and await_promotion)
    switch_to = color if (blue_green and color != live and not await_promotion) else None
    switch_later = bool(switch_to and (live or converting))
    if switch_later:
        actions.append(f"switch services to {switch_to}")
    outputs: dict[str, Any] = {"namespace": namespace, "color": color, "live_color": live,
                               "prune": [f"{k}/{n}" for k, n in prunes]}
    if ctx.dry_run:
        diff = [line for c in changes for line in c.diff]
        for line in diff:
            log.info(ctx.secrets.redact_text(line))
        return StepResult.of("rollout", actions, dry_run=True, diff=diff, **outputs)
    if not actions:
        if exists:  # a killed run's lock must not outlive it
            DeployLock.clear_dead(kube, app, namespace, log)
        outcome = wait_for(kube, namespace, _workloads(changes), timeout, log,
                           known={(c.manifest.kind, c.manifest.name): c.live for c in changes})
        if not outcome.ok and rollback_on_failure and exists and not blue_green:
            _complete_rollback(ctx, app, namespace, outcome, timeout, lock_timeout, lock_ttl)
        if not outcome.ok:
            raise StepFailed(f"{app} in {namespace} is unchanged but not healthy: "
                             f"{outcome.message}", evidence=_redact(ctx, outcome.evidence))
        return StepResult.of("rollout", [], writes=kube.writes - writes_before,
                             awaiting_promotion=awaiting, **outputs)
    guard_namespace(ctx, kube, namespace, app, "rollout",  # protected: only verified changes
                    labels=ns_labels)  # as read by _prepare: one Namespace read per rollout
    holder = DeployLock.holder_of(ctx.ci)
    with DeployLock(kube, app, namespace, holder, ttl_s=lock_ttl, wait_s=lock_timeout,
                    log=log) if exists else _NoLock() as held:
        if held is not None:
            if held.contended:  # another run held the lock since the plan: plan anew
                changes = refresh(kube, changes)  # (else each update is conditional on
            lock = held  # the resourceVersion it was planned against: apply_planned)
        else:  # a first deploy: the namespace, then the Lease in it
            kube.apply({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace, "labels": {MANAGED_BY: MANAGER}}})
            lock = DeployLock(kube, app, namespace, holder, ttl_s=lock_ttl,
                              wait_s=lock_timeout, log=log)
            lock.acquire()
        fenced = lock.fenced(kube)  # every write first checks the Lease is still ours
        try:
            grown = (recorded or set()) | owning  # before the first object: the record
            later = _record_may_follow(recorded, grown)  # names every kind the app may own
            if grown != recorded and not later:
                fenced.apply(record_body(app, namespace, grown))
            try:
                seconds = _apply_and_wait(
                    ctx, log, fenced, app, namespace, changes, timeout, rollback_on_failure,
                    written=(lambda: fenced.apply(record_body(app, namespace, grown)))
                    if later else None)
            except StepFailed as exc:
                if not isinstance(exc, LeaseLost) and recorded is None and not prunes and all(
                        c.action == "create" for c in changes):  # a first deploy, undone
                    fenced.delete("ConfigMap", record_name(app), namespace)
                raise
            if switch_later:  # before the prune: what served stays until the new colour does
                bluegreen.switch(fenced, app, namespace, str(switch_to))
                log.info("services switched", color=switch_to, previous=live or "rolling")
            pruned, failed = _prune(fenced, namespace, prunes, log)
            left = {(_version_of(owned, k, n), k) for k, n in failed}
            if prune and applying | left != grown:  # kinds the app owns no more
                fenced.apply(record_body(app, namespace, applying | left))
        finally:
            if not exists:
                lock.release()
    outputs["live_color"] = switch_to or live
    return StepResult.of("rollout", actions, seconds_to_ready=seconds, pruned=pruned,
                         writes=kube.writes - writes_before, awaiting_promotion=awaiting,
                         **outputs)


def _record_may_follow(recorded: set[tuple[str, str]] | None,
                       grown: set[tuple[str, str]]) -> bool:
    """Whether the record of owned kinds may be written after the objects rather than
    before them: there is none yet and every kind is prunable — until it is written, a run
    (one that re-runs this one, killed) lists every prunable kind, as without a record.
    Then the first deploy's first object is one write earlier."""
    return recorded is None and all(kind in kinds.PRUNABLE for _, kind in grown)


def _version_of(owned: Owned | None, kind: str, name: str) -> str:
    """The apiVersion an owned object was listed at."""
    item = ((owned.items(kind) if owned is not None else None) or {}).get(name) or {}
    return str(item.get("apiVersion") or "v1")


def schema_problems(kube: Any, docs: list[mf.Manifest]) -> list[BadInput]:
    """Fields checked against the cluster's OpenAPI schema (no namespace to dry-run in)."""
    from pipelinelib.kube.schema import Schemas

    return Schemas(kube).problems(docs)


def plan_validated(kube: Any, docs: list[mf.Manifest], exists: bool,
                   owned: Owned | None = None) -> list[Change]:
    """``plan_changes`` object by object: every dry run the apiserver refuses is collected
    (schema errors, invalid values, too large) and all of them raised together."""
    from concurrent.futures import ThreadPoolExecutor

    from pipelinelib.kube.revisions import READS_AT_ONCE

    def one(m: mf.Manifest) -> list[Change] | BadInput:
        try:
            return plan_changes(kube, [m], exists, owned)
        except Refused:
            raise
        except BadInput as exc:
            return m.bad("", exc.message, "an object the apiserver accepts")

    if owned is not None:  # the lists first, all at once
        owned.prefetch({m.kind: m.obj.get("apiVersion") for m in docs})
    with ThreadPoolExecutor(max_workers=max(1, min(READS_AT_ONCE, len(docs)))) as pool:
        results = list(pool.map(one, docs))  # in order; the first Refused is raised
    mf.Invalid.raise_if([r for r in results if isinstance(r, BadInput)])
    return [c for r in results if not isinstance(r, BadInput) for c in r]


def _complete_rollback(ctx: Context, app: str, namespace: str, outcome: Any, timeout: float,
                       lock_timeout: float, lock_ttl: int) -> None:
    """The wanted version is live but unhealthy and nothing is left to apply: an earlier run
    applied it and was killed before its rollback. Finish that rollback, then fail."""
    from pipelinelib.steps.rollback import rollback as roll_back

    try:
        done = roll_back(ctx, app=app, namespace=namespace, timeout=timeout,
                         lock_timeout=lock_timeout, lock_ttl=lock_ttl)
        verdict = ("the previous revision is ready again" if done.actions
                   else "nothing to roll back to")
        story = [f"rollback: {line}" for line in done.actions]
    except StepFailed as exc:
        verdict, story = f"the previous revision is not healthy either: {exc.message}", []
    raise StepFailed(f"rollout of {app} to {namespace} failed: {outcome.message}",
                     cause=f"{outcome.reason}; rolled back: {verdict} (the rollback an "
                           "interrupted run of this version had not finished)",
                     evidence=_redact(ctx, [*outcome.evidence, *story]),
                     hint="fix the cause shown in the evidence and deploy again")


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _interrupted_switch(kube: Any, docs: list[mf.Manifest], colors: list[str | None],
                        exists: bool) -> str | None:
    """The Services select both colours (a run killed between two Service switches): the
    colour whose Deployments already run these manifests, where the switch was going."""
    if len({c for c in colors if c}) < 2:
        return None
    return next((c for c in bluegreen.COLORS if _all_unchanged(
        kube, [m for m in bluegreen.colored(docs, c, c) if m.kind != "Service"], exists)), None)


def _all_unchanged(kube: Any, docs: list[mf.Manifest], exists: bool) -> bool:
    return all(c.action == "none" for c in plan_changes(kube, docs, exists))


def _actions(changes: list[Change], prunes: list[tuple[str, str]], exists: bool,
             namespace: str) -> list[str]:
    actions = [] if exists else [f"create namespace {namespace}"]
    actions += [f"{c.action} {c.ref}" for c in changes if c.action != "none"]
    return actions + [f"prune {k}/{n}" for k, n in prunes]


def _apply_and_wait(ctx: Context, log: Any, kube: Any, app: str, namespace: str,
                    changes: list[Change], timeout: float, do_rollback: bool,
                    written: Callable[[], object] | None = None) -> float:
    """Apply in two phases (dependencies and Jobs, then the rest) and wait for each;
    ``written`` is called once every object is written, before the last wait."""
    import time

    started = time.monotonic()
    todo = [c for c in changes if c.action != "none"]
    phases = [[c for c in todo if c.manifest.kind in PHASE_ONE],
              [c for c in todo if c.manifest.kind not in PHASE_ONE]]
    applied: list[Change] = []
    live: dict[tuple[str, str], Any] = {}  # as applied: the waiter's selectors at once
    for i, phase in enumerate(phases):
        generations = {}
        for planned in phase:
            result, change = apply_planned(kube, planned)
            if result is None:
                log.info(f"unchanged {change.ref} (another run wrote it meanwhile)")
                continue
            generations[(change.manifest.kind, change.manifest.name)] = \
                result["metadata"].get("generation", 0)
            live[(change.manifest.kind, change.manifest.name)] = result
            applied.append(change)
            log.info(f"{change.action}d {change.ref}")
        wait_set = _workloads(phase) if i == 0 else _workloads(
            [c for c in changes if c.manifest.kind not in PHASE_ONE])
        if written is not None and i == len(phases) - 1:
            written()
        remaining = max(1.0, timeout - (time.monotonic() - started))
        outcome = wait_for(kube, namespace, wait_set, remaining, log, generations, live)
        if not outcome.ok:
            _fail(ctx, log, kube, app, namespace, applied, outcome, timeout, do_rollback)
    seconds = round(time.monotonic() - started, 3)
    log.info("ready", seconds=seconds)
    return seconds


def _fail(ctx: Context, log: Any, kube: Any, app: str, namespace: str, applied: list[Change],
          outcome: Any, timeout: float, do_rollback: bool) -> None:
    message = f"rollout of {app} to {namespace} failed: {outcome.message}"
    evidence = list(outcome.evidence)
    if not do_rollback:
        raise StepFailed(message, cause=outcome.reason, evidence=_redact(ctx, evidence),
                         hint="rollback is off: fix and re-run, or roll back by hand")
    story, restored = rollback(kube, applied, log)
    if restored:
        back = wait_for(kube, namespace, [(k, n) for k, n, _ in restored], timeout, log,
                        {(k, n): g for k, n, g in restored})
        verdict = ("the previous revision is ready again" if back.ok
                   else f"the previous revision is not healthy either: {back.message}")
        evidence += back.evidence
    elif any("deleted (created" in line for line in story):
        verdict = "first deploy: what it created was deleted"
    else:
        verdict = "nothing to roll back to"
    evidence += [f"rollback: {line}" for line in story]
    raise StepFailed(message, cause=f"{outcome.reason}; rolled back: {verdict}",
                     evidence=_redact(ctx, evidence),
                     hint="fix the cause shown in the evidence and deploy again")


def _prune(kube: Any, namespace: str, prunes: list[tuple[str, str]], log: Any
           ) -> tuple[list[str], list[tuple[str, str]]]:
    """Delete each of ``prunes``: the ones deleted, and the ones that failed (warned)."""
    done, failed = [], []
    for kind, name in prunes:
        try:
            if kube.delete(kind, name, namespace):
                done.append(f"{kind}/{name}")
                log.info("pruned", object=f"{kind}/{name}")
        except LeaseLost:
            raise  # another run owns the app now: stop writing
        except PipelineError as exc:
            log.warning("prune failed", object=f"{kind}/{name}", error=exc.message)
            failed.append((kind, name))
    return done, failed


def _redact(ctx: Context, lines: list[str]) -> list[str]:
    return [ctx.secrets.redact_text(line) for line in lines]
