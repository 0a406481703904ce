"""The plan step: render every app of an environment and compare it with the cluster.

Observe only: one list call per kind and namespace, no writes. The result's outputs hold
``plans`` (one ``AppPlan`` per app, dicts) and the counts; ``changed`` means changes are
pending (the command maps that to exit 4).
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipelinelib.context import Context
from pipelinelib.envspec.diff import AppPlan, FieldChange, diff_app
from pipelinelib.envspec.live import KINDS, kube_for, list_env_objects
from pipelinelib.envspec.model import AppSpec, EnvSpec
from pipelinelib.envspec.namespaces import plan_namespaces
from pipelinelib.envspec.render import key, render_app
from pipelinelib.helm import hooks
from pipelinelib.kube import manifests as mf
from pipelinelib.kube.labels import APP_LABEL
from pipelinelib.kube.revisions import PRUNE_KINDS, Change, Owned, plan_changes
from pipelinelib.result import StepResult
from pipelinelib.step import step
from pipelinelib.steps.rollout import namespace_exists, plan_validated


def render_all(env: EnvSpec, secrets: Any = None) -> dict[str, list[dict[str, Any]]]:
    """Manifests of every app (charts rendered in parallel: each is a helm process).

    Values a chart reads from the environment (``set: {k: $NAME}``) go into ``secrets``;
    with ``secrets`` given (plan, apply) every such variable must be set. Every app is
    rendered even after one fails: all spec problems are reported at once.
    """
    from pipelinelib.envspec.load import SpecInvalid

    charts = [a for a in env.apps.values() if a.chart is not None]
    rendered: dict[str, list[dict[str, Any]]] = {}
    if env.env_problems and secrets is not None:  # plan/apply deploy them: all must be set
        raise SpecInvalid(env.env_problems)
    problems = []

    def one(app: AppSpec) -> list[dict[str, Any]] | SpecInvalid:
        try:
            return render_app(env, app, secrets)
        except SpecInvalid as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(charts)))) as pool:
        results = list(pool.map(one, charts))
    results += [one(a) for a in env.apps.values() if a.chart is None]
    plain = [a for a in env.apps.values() if a.chart is None]
    for app, docs in zip([*charts, *plain], results, strict=True):
        if isinstance(docs, SpecInvalid):
            problems += docs.problems
        else:
            rendered[app.name] = docs
    if problems:
        raise SpecInvalid(problems)
    return rendered


def compute_plans(ctx: Context, env: EnvSpec,
                  rendered: dict[str, list[dict[str, Any]]],
                  planned: dict[str, list[Change]] | None = None) -> list[AppPlan]:
    """One plan per app (and per live app no longer in the spec), lowest priority first.

    What changes is decided by the rollout's engine (``kube.revisions.plan_changes``: a
    server-side dry run of each object as the rollout would apply it, compared with the live
    one), so plan, apply and ``rollout --dry-run`` agree; see ``envspec.diff``.
    ``planned`` (apply) receives each app's changes, so its rollout does not plan again."""
    for doc in (d for docs in rendered.values() for d in docs):
        ctx.secrets.add_manifest(doc)  # Secrets from charts too: masked in every output
    # every kind the rollout prunes too: an object dropped from the manifests is a delete
    kinds = {d["kind"] for docs in rendered.values() for d in docs} | set(PRUNE_KINDS)
    namespaces = {a.namespace for a in env.apps.values()} | set(env.namespaces)
    kube = kube_for(ctx, env.kubeconfig, env.context)
    live = list_env_objects(ctx, env.name, namespaces, kinds & set(KINDS), env.kubeconfig,
                            env.context)
    by_app: dict[str, list[dict[str, Any]]] = {}
    for obj in live.values():
        if (obj.get("metadata") or {}).get("ownerReferences"):
            continue  # made by a controller (a CronJob's Job): never the app's to prune
        app_name = obj.get("metadata", {}).get("labels", {}).get(APP_LABEL, "")
        by_app.setdefault(app_name, []).append(obj)
    exists: dict[str, bool] = {}
    plans = []
    for app in sorted(env.apps.values(), key=lambda a: (a.priority, a.name)):
        main, app_hooks = hooks.split(rendered[app.name])
        docs = [d for d in main if d["kind"] in KINDS]
        if app.namespace not in exists:  # objects listed there: it exists (no GET)
            exists[app.namespace] = any(k[1] == app.namespace for k in live) or \
                namespace_exists(kube, app.namespace)
        manifests = as_applied(ctx, docs, app.name, app.namespace)
        if app.blue_green:
            plans.append(_blue_green_plan(kube, app, manifests, by_app.get(app.name, []),
                                          exists[app.namespace]))
        else:
            wanted = {key(d) for d in docs}
            orphans = [o for o in by_app.get(app.name, []) if key(o) not in wanted]
            owned = Owned.from_objects(kube, app.name, app.namespace,  # no GET per object
                                       by_app.get(app.name, []), kinds & set(KINDS))
            changes = plan_validated(kube, manifests, exists[app.namespace], owned)
            if planned is not None and exists[app.namespace]:  # apply writes these (dry
                planned[app.name] = changes  # runs done; updates conditional on the lists)
            plans.append(diff_app(app.name, app.namespace, app.priority, app.image_ref,
                                  changes, orphans))
        plans[-1].hooks = hooks.describe(app_hooks)
        if app_hooks:
            _hooks_pending(plans[-1], app, rendered[app.name], live)
    for name in sorted(set(by_app) - set(env.apps) - {""}):
        objs = by_app[name]
        plans.append(AppPlan(name, objs[0]["metadata"].get("namespace", ""), 10**6, "delete",
                             deletes=[f"{o['kind']}/{o['metadata']['name']}" for o in objs],
                             disabled=name in env.disabled))
    return plans


def as_applied(ctx: Context, docs: list[dict[str, Any]], app: str,
               namespace: str) -> list[mf.Manifest]:
    """The app's rendered docs exactly as the rollout step applies them: hashed config
    names (render did that already), ownership labels and record annotations stamped."""
    manifests = [mf.Manifest(copy.deepcopy(d), "<render>", i) for i, d in enumerate(docs)]
    mf.hash_config(manifests)
    mf.stamp(manifests, app, namespace, mf.Record(ctx.revision, ctx.ci.user, ctx.ci.build_url),
             ctx.secrets.redact)
    return mf.order(manifests)


def _hooks_pending(plan: AppPlan, app: AppSpec, docs: list[dict[str, Any]],
                   live: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    """An app whose chart hooks have not run to the end for this spec is pending."""
    marker = live.get(("ConfigMap", app.namespace, hooks.marker_name(app.name)))
    plan.hooks_state = hooks.marker_state(marker)
    reason = hooks.pending_reason(plan.hooks_state, hooks.fingerprint(docs))
    if reason and plan.action == "none":
        plan.action = "update"
        plan.changes.append(FieldChange(f"ConfigMap/{hooks.marker_name(app.name)}", "data",
                                        reason, "hooks run for this spec"))


def _blue_green_plan(kube: Any, app: AppSpec, manifests: list[mf.Manifest],
                     objs: list[dict[str, Any]], exists: bool) -> AppPlan:
    """Compare with the live colour (the one the Services select), as the rollout does
    before it picks a colour. When only the idle colour holds the spec, the plan says so:
    it is ready and awaits ``pipeline swap``."""
    from pipelinelib.kube.bluegreen import COLORS, colored, live_of, other
    from pipelinelib.kube.labels import COLOR_LABEL

    services = [o for o in objs if o["kind"] == "Service"]
    live_color = live_of([((o.get("spec") or {}).get("selector") or {}).get(COLOR_LABEL)
                          for o in services])
    color = live_color or "blue"
    current = colored(manifests, color, color if live_color or not services else None)
    wanted = {(m.kind, m.obj["metadata"]["namespace"], m.name)
              for c in COLORS for m in colored(manifests, c, c)}
    wanted |= {(m.kind, m.obj["metadata"]["namespace"], m.name) for m in manifests}
    orphans = [o for o in objs if key(o) not in wanted]
    plan = diff_app(app.name, app.namespace, app.priority, app.image_ref,
                    plan_validated(kube, current, exists), orphans)
    plan.strategy, plan.live_color = app.strategy, live_color
    if live_color and plan.pending and any(m.kind == "Deployment" for m in manifests):
        idle = colored(manifests, other(live_color), live_color)
        if all(c.action == "none" for c in plan_changes(kube, idle, exists)):
            plan.awaiting = other(live_color)
    return plan


@step("plan")
def plan_environment(ctx: Context, env: EnvSpec,
                     rendered: dict[str, list[dict[str, Any]]] | None = None) -> StepResult:
    """Compare ``env`` with the cluster; ``changed`` when any app would change."""
    rendered = rendered if rendered is not None else render_all(env, ctx.secrets)
    plans = compute_plans(ctx, env, rendered)
    ns_plans = plan_namespaces(kube_for(ctx, env.kubeconfig, env.context), env)
    pending = [p for p in plans if p.pending]
    counts = {a: sum(p.action == a for p in plans) for a in ("create", "update", "delete")}
    drifted = [p.app for p in plans if p.drift]
    awaiting = [p.app for p in plans if p.awaiting]
    actions = [f"{p.action} namespace {p.namespace}" for p in ns_plans if p.pending]
    actions += [f"{p.action} {p.app}" for p in pending]
    summary = (f"{counts['create']} to create, {counts['update']} to change, "
               f"{counts['delete']} to delete, {len(drifted)} drifted"
               if actions else "no changes: the cluster matches the spec")
    return StepResult.of("plan", actions, dry_run=True, summary=summary,
                         environment=env.name, counts=counts, drifted=drifted,
                         awaiting_promotion=awaiting,
                         plans=[ctx.secrets.redact(p.to_dict()) for p in plans],
                         namespaces=[p.to_dict() for p in ns_plans])


