"""The rollback step: return an app to an earlier revision, or its Services to the old colour.

Reads like the procedure a person follows after a bad release:

1. Find the app's workloads (Deployments, StatefulSets, DaemonSets it owns) and, for each,
   the revision history its controller keeps (kube.history).
2. Choose the target: ``to_revision`` N, ``to_git_revision`` SHA (the revision our record
   says was built from it), or by default the revision before the live one.
3. Blue/green apps roll back by switching every Service to the colour that was live before
   the last rollout (it still runs), refused when that colour is not healthy.
4. Under the app's deploy lock, apply each target template (field manager pipelinelib),
   record why on the workload, wait with watches, audit.

Idempotent: a workload already on its target is ``unchanged``. A default rollback marks
the workload (``pipelinelib.dev/rolled-back-from``; the next rollout clears it), so a
re-run after success — or after being killed halfway — never rolls forward again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelinelib.context import Context
from pipelinelib.errors import BadInput, StepFailed
from pipelinelib.kube import bluegreen, kinds
from pipelinelib.kube.history import Revision, history, live_template
from pipelinelib.kube.labels import (
    ANN_BUILD_URL,
    ANN_CHANGE_CAUSE,
    ANN_DEPLOYED_BY,
    ANN_DIGEST,
    ANN_REVISION,
    COLOR_LABEL,
    MANAGER,
    owner_selector,
)
from pipelinelib.kube.labels import ANN_ROLLED_BACK_FROM as ROLLED_BACK_FROM
from pipelinelib.kube.lock import DeployLock
from pipelinelib.kube.revisions import restore_body
from pipelinelib.kube.wait import wait_for
from pipelinelib.promotion.guard import guard_namespace
from pipelinelib.result import StepResult
from pipelinelib.step import step


@dataclass(frozen=True)
class Target:
    """Where one workload goes: its live object and the revision to restore."""

    workload: dict[str, Any]
    current: Revision | None
    revision: Revision

    @property
    def ref(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}"


def workloads(kube: Any, app: str, namespace: str) -> list[dict[str, Any]]:
    """The app's live Deployments, StatefulSets and DaemonSets (kind set on each)."""
    found = []
    for kind in kinds.WITH_HISTORY:
        for item in kube.list(kind, namespace, selector=owner_selector(app))["items"]:
            item["kind"], item["apiVersion"] = kind, "apps/v1"
            found.append(item)
    return found


def revision_history(ctx: Context, *, app: str, namespace: str) -> list[Revision]:
    """Every revision of every workload of ``app``, for ``pipeline rollback --list``."""
    return [r for w in workloads(ctx.kube, app, namespace) for r in history(ctx.kube, w)]


def choose(kube: Any, workload: dict[str, Any], to_revision: int | None,
           to_git_revision: str | None) -> Target | None:
    """The target revision of one workload (None: it is already where it should be)."""
    revisions = history(kube, workload)
    ref = f"{workload['kind']}/{workload['metadata']['name']}"
    live = live_template(workload)
    current = next((r for r in reversed(revisions) if r.template == live), None)
    if to_revision is not None:
        matches = [r for r in revisions if r.number == to_revision]
        wanted = f"revision {to_revision}"
    elif to_git_revision:
        matches = [r for r in revisions if r.git_revision.startswith(to_git_revision)]
        wanted = f"revision built from git {to_git_revision}"
    else:
        if ROLLED_BACK_FROM in (workload["metadata"].get("annotations") or {}):
            return None  # rolled back already; the next rollout clears the mark
        newest = current.number if current else (revisions[-1].number if revisions else 0)
        matches = [r for r in revisions if r.number < newest and r.template != live]
        wanted = "earlier revision"
    if not matches:
        known = ", ".join(f"#{r.number} (git {r.git_revision[:12] or '-'})" for r in revisions)
        raise BadInput(f"{ref} has no {wanted}", field="--to-revision" if to_revision
                       else "--to-git-revision" if to_git_revision else "APP",
                       expected=f"one of its revisions: {known or 'none kept'}")
    target = matches[-1]
    if target.template == live:
        return None
    return Target(workload, current, target)


def restore(ctx: Context, target: Target) -> dict[str, Any]:
    """The apply body that puts ``target.revision``'s template back, with the record."""
    body = restore_body(target.workload)
    body["spec"]["template"] = target.revision.template
    old, new = target.current, target.revision
    ann = body["metadata"]["annotations"]
    for key in (ANN_REVISION, ANN_DIGEST):
        if new.annotations.get(key):
            ann[key] = new.annotations[key]
        else:
            ann.pop(key, None)
    who = ctx.ci.user or "unknown"
    cause = (f"pipelinelib rollback to #{new.number} (git {new.git_revision[:12] or '-'}) "
             f"by {who}" + (f" ({ctx.ci.build_url})" if ctx.ci.build_url else ""))
    ann.update({ANN_CHANGE_CAUSE: cause, ANN_DEPLOYED_BY: who,
                ROLLED_BACK_FROM: f"#{old.number} git {old.git_revision[:12] or '-'}"
                if old else "unknown"})
    if ctx.ci.build_url:
        ann[ANN_BUILD_URL] = ctx.ci.build_url
    else:
        ann.pop(ANN_BUILD_URL, None)
    body["metadata"]["annotations"] = ctx.secrets.redact(ann)
    return body


def rollback_color(kube: Any, app: str, namespace: str, live: str,
                   to_git_revision: str | None) -> str:
    """The colour a blue/green app goes back to: the one rolled out before the live one."""
    if to_git_revision:
        for color in bluegreen.COLORS:
            selector = f"{owner_selector(app)},{COLOR_LABEL}={color}"
            items = kube.list("Deployment", namespace, selector=selector)["items"]
            if items and all((d["metadata"].get("annotations") or {}).get(ANN_REVISION, "")
                             .startswith(to_git_revision) for d in items):
                return color
        raise BadInput(f"no colour of {app} runs git {to_git_revision}",
                       field="--to-git-revision", expected="the git revision of blue or green")
    other = bluegreen.other(live)
    # the idle colour applied after the live one awaits its switch, or a rollback already
    # left it: nothing to go back to. Otherwise the idle colour served before (also when the
    # two were applied within one second: managedFields times have whole seconds)
    if last_applied(kube, app, namespace, other) > last_applied(kube, app, namespace, live) \
            or bluegreen.rolled_back_from(kube, app, namespace) == other:
        return live
    return other


def last_applied(kube: Any, app: str, namespace: str, color: str) -> str:
    """When our rollout last changed ``color``'s Deployments (managedFields time)."""
    selector = f"{owner_selector(app)},{COLOR_LABEL}={color}"
    return max((entry.get("time") or ""
                for d in kube.list("Deployment", namespace, selector=selector)["items"]
                for entry in d["metadata"].get("managedFields") or []
                if entry.get("manager") == MANAGER and entry.get("operation") == "Apply"),
               default="")


@step("rollback")
def rollback(ctx: Context, *, app: str, namespace: str, to_revision: int | None = None,
             to_git_revision: str | None = None, timeout: float = 300,
             lock_timeout: float = 300, lock_ttl: int = 30,
             vet: Callable[[str, list[str]], None] | None = None) -> StepResult:
    """Roll ``app`` in ``namespace`` back; see the module doc. ``vet(what, images)`` is
    called for every target before anything is written (it raises to refuse it)."""
    from pipelinelib.promotion.audit import audit

    kube, log = ctx.kube, ctx.log.bind(app=app, namespace=namespace)
    live = bluegreen.live_color(kube, app, namespace)
    if live:
        if to_revision is not None:
            raise BadInput("a blue/green app rolls back by colour", field="--to-revision",
                           expected="--to-git-revision SHA, or no target (the other colour)")
        target_color = rollback_color(kube, app, namespace, live, to_git_revision)
        if target_color == live:
            DeployLock.clear_dead(kube, app, namespace, log)  # a killed run's lock goes too
            return StepResult.of("rollback", [], live_color=live)
        bluegreen.ensure_swappable(kube, app, namespace, target_color)
        if vet is not None:
            selector = f"{owner_selector(app)},{COLOR_LABEL}={target_color}"
            vet(f"the {target_color} colour", sorted({
                c.get("image", "") for d in kube.list("Deployment", namespace,
                                                      selector=selector)["items"]
                for c in d["spec"]["template"]["spec"].get("containers") or []}))
        actions = bluegreen.switch(kube, app, namespace, target_color, dry_run=True)
        if ctx.dry_run:
            return StepResult.of("rollback", actions, dry_run=True, live_color=live)
        guard_namespace(ctx, kube, namespace, app, "rollback")
        with DeployLock(kube, app, namespace, DeployLock.holder_of(ctx.ci), ttl_s=lock_ttl,
                        wait_s=lock_timeout, log=log) as lock:
            bluegreen.switch(lock.fenced(kube), app, namespace, target_color,
                             rollback_from=live)
        audit(ctx, "rollback", target=f"{namespace}/{app}", result="success",
              reason=f"switched services from {live} to {target_color}")
        return StepResult.of("rollback", actions, live_color=target_color, previous=live)

    found = workloads(kube, app, namespace)
    if not found:
        raise BadInput(f"{app} has no workloads in {namespace}", field="APP",
                       expected="an app deployed with `pipeline rollout`")
    targets = [t for w in found if (t := choose(kube, w, to_revision, to_git_revision))]
    actions = [f"roll back {t.ref} from #{t.current.number if t.current else '?'} to "
               f"#{t.revision.number} (git {t.revision.git_revision[:12] or '-'})"
               for t in targets]
    for line in actions:
        log.info(line)
    if vet is not None:
        for t in targets:
            vet(f"{t.ref} revision #{t.revision.number} "
                f"(git {t.revision.git_revision[:12] or '-'})", t.revision.images)
    refs = [(w["kind"], w["metadata"]["name"]) for w in found]
    if ctx.dry_run:
        return StepResult.of("rollback", actions, dry_run=True)
    generations = {}
    if not targets:  # on target already: a killed run's lock goes too
        DeployLock.clear_dead(kube, app, namespace, log)
    if targets:
        guard_namespace(ctx, kube, namespace, app, "rollback")
        with DeployLock(kube, app, namespace, DeployLock.holder_of(ctx.ci), ttl_s=lock_ttl,
                        wait_s=lock_timeout, log=log) as lock:
            fenced = lock.fenced(kube)  # stops before a write once the Lease is lost
            for t in targets:
                applied = fenced.apply(restore(ctx, t))
                generations[(t.workload["kind"], t.workload["metadata"]["name"])] = \
                    applied["metadata"].get("generation", 0)
    outcome = wait_for(kube, namespace, refs, timeout, log, generations)
    if not outcome.ok:
        raise StepFailed(f"rollback of {app} in {namespace} did not become ready: "
                         f"{outcome.message}", cause=outcome.reason,
                         evidence=[ctx.secrets.redact_text(x) for x in outcome.evidence],
                         hint="the earlier revision is unhealthy too: pick another with "
                              "--to-revision (see --list)")
    if targets:
        audit(ctx, "rollback", target=f"{namespace}/{app}", result="success",
              reason="; ".join(actions))
    return StepResult.of("rollback", actions,
                         revisions={t.ref: t.revision.number for t in targets})
