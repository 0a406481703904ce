"""The plan step: render every app of an environment and compare it with the cluster.

Observe only: one list call per kind and namespace, no writes. The result's outputs hold
``plans`` (one ``AppPlan`` per app, dicts) and the counts; ``changed`` means changes are
pending (the command maps that to exit 4).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipelinelib.context import Context
from pipelinelib.envspec.diff import AppPlan, diff_app
from pipelinelib.envspec.live import KINDS, list_env_objects
from pipelinelib.envspec.model import AppSpec, EnvSpec
from pipelinelib.envspec.render import LABEL_APP, key, render_app
from pipelinelib.result import StepResult
from pipelinelib.step import step


def render_all(env: EnvSpec) -> dict[str, list[dict[str, Any]]]:
    """Manifests of every app (charts rendered in parallel: each is a helm process)."""
    charts = [a for a in env.apps.values() if a.chart is not None]
    rendered: dict[str, list[dict[str, Any]]] = {}
    if charts:
        with ThreadPoolExecutor(max_workers=min(8, len(charts))) as pool:
            docs_list = pool.map(lambda a: render_app(env, a), charts)
            for app, docs in zip(charts, docs_list, strict=False):
                rendered[app.name] = docs
    for app in env.apps.values():
        if app.chart is None:
            rendered[app.name] = render_app(env, app)
    return rendered


def compute_plans(ctx: Context, env: EnvSpec,
                  rendered: dict[str, list[dict[str, Any]]]) -> list[AppPlan]:
    """One plan per app (and per live app no longer in the spec), lowest priority first."""
    kinds = {d["kind"] for docs in rendered.values() for d in docs} | {"Deployment"}
    namespaces = {a.namespace for a in env.apps.values()} | set(env.namespaces)
    live = list_env_objects(ctx, env.name, namespaces, kinds & set(KINDS), env.kubeconfig,
                            env.context)
    by_app: dict[str, list[dict[str, Any]]] = {}
    for obj in live.values():
        app_name = obj.get("metadata", {}).get("labels", {}).get(LABEL_APP, "")
        by_app.setdefault(app_name, []).append(obj)
    plans = []
    for app in sorted(env.apps.values(), key=lambda a: (a.priority, a.name)):
        docs = [d for d in rendered[app.name] if d["kind"] in KINDS]
        wanted = {key(d) for d in docs}
        orphans = [o for o in by_app.get(app.name, []) if key(o) not in wanted]
        plans.append(diff_app(app.name, app.namespace, app.priority, app.image.ref, docs, live,
                              orphans))
    for name in sorted(set(by_app) - set(env.apps) - {""}):
        objs = by_app[name]
        plans.append(AppPlan(name, objs[0]["metadata"].get("namespace", ""), 10**6, "delete",
                             deletes=[f"{o['kind']}/{o['metadata']['name']}" for o in objs]))
    return plans


@step("plan")
def plan_environment(ctx: Context, env: EnvSpec,
                     rendered: dict[str, list[dict[str, Any]]] | None = None) -> StepResult:
    """Compare ``env`` with the cluster; ``changed`` when any app would change."""
    rendered = rendered if rendered is not None else render_all(env)
    plans = compute_plans(ctx, env, rendered)
    pending = [p for p in plans if p.pending]
    counts = {a: sum(p.action == a for p in plans) for a in ("create", "update", "delete")}
    drifted = [p.app for p in plans if p.drift]
    actions = [f"{p.action} {p.app}" for p in pending]
    summary = (f"{counts['create']} to create, {counts['update']} to change, "
               f"{counts['delete']} to delete, {len(drifted)} drifted"
               if pending else "no changes: the cluster matches the spec")
    return StepResult.of("plan", actions, dry_run=True, summary=summary,
                         environment=env.name, counts=counts, drifted=drifted,
                         plans=[ctx.secrets.redact(p.to_dict()) for p in plans])


def app_of(env: EnvSpec, name: str) -> AppSpec | None:
    return env.apps.get(name)
