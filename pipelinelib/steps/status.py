"""The status step: environments x apps — digest, revision, version, who/when, health, drift."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelinelib.adapters.protocols import CommitRecord
from pipelinelib.context import Context
from pipelinelib.envspec.model import EnvSpec, ImageSpec
from pipelinelib.envspec.staterepo import EnvStateRepo
from pipelinelib.kube.labels import (
    ANN_DEPLOYED_DIGEST,
    ANN_REVISION,
    ANN_VERSION,
    APP_LABEL,
    COLOR_LABEL,
)
from pipelinelib.promotion.hotfix import back_merged, read_hotfixes
from pipelinelib.result import StepResult
from pipelinelib.step import step
from pipelinelib.steps.plan import compute_plans, render_all


def _health(deployment: dict[str, Any] | None) -> str:
    if deployment is None:
        return "missing"
    want = deployment.get("spec", {}).get("replicas", 1)
    st = deployment.get("status", {})
    ready, updated = st.get("readyReplicas", 0) or 0, st.get("updatedReplicas", 0) or 0
    if want == 0:
        return "scaled to 0"
    if ready >= want and updated >= want:
        return "healthy"
    return f"degraded ({ready}/{want} ready)"


def _who(commits: Sequence[CommitRecord], app: str) -> dict[str, str]:
    """Who changed ``app`` last: the newest commit naming it (``App:`` trailer), else the
    newest commit of the environment file."""
    if not commits:
        return {}
    chosen = next((c for c in commits if f"App: {app}\n" in c.message), commits[0])
    by = next((ln.split(":", 1)[1].strip() for ln in chosen.message.splitlines()
               if ln.startswith("Promoted-by:")), chosen.author_name)
    return {"by": by, "when": chosen.committed_iso, "commit": chosen.sha[:12]}


def env_status(ctx: Context, env: EnvSpec, state: EnvStateRepo | None) -> list[dict[str, Any]]:
    """One row per app of ``env``."""
    from pipelinelib.envspec.live import list_env_objects

    plans = {p.app: p for p in compute_plans(ctx, env, render_all(env))}
    namespaces = {a.namespace for a in env.apps.values()}
    live = list_env_objects(ctx, env.name, namespaces, ["Deployment", "StatefulSet"],
                            env.kubeconfig, env.context)
    workloads: dict[str, dict[str, Any]] = {}
    for live_obj in live.values():  # blue/green: the colour the Services select
        labels = live_obj["metadata"].get("labels", {})
        plan = plans.get(labels.get(APP_LABEL, ""))
        color = labels.get(COLOR_LABEL)
        if color is None or plan is None or plan.live_color in (None, color):
            workloads[labels.get(APP_LABEL, "")] = live_obj
    hotfixes = read_hotfixes(state.root, env.name) if state else {}
    commits = state.log(f"environments/{env.name}.yaml", max_count=200) if state else []
    rows = []
    for name, app in sorted(env.apps.items()):
        workload = workloads.get(name)
        ann = (workload or {}).get("metadata", {}).get("annotations", {})
        plan = plans.get(name)
        fix = hotfixes.get(name)
        merged = back_merged(fix) if fix else None
        image = app.image or ImageSpec(repository="")  # a chart that names its own images
        containers = ((workload or {}).get("spec", {}).get("template", {}).get("spec", {})
                      .get("containers") or [{}])
        running = str(containers[0].get("image") or "")
        rows.append({
            "environment": env.name, "app": name, "namespace": app.namespace,
            "deployed": workload is not None,
            "live_digest": running.split("@", 1)[1] if "@" in running else
            ann.get(ANN_DEPLOYED_DIGEST, ""),
            "image": image.repository, "digest": image.digest or "",
            "tag": image.tag or "",
            "revision": ann.get(ANN_REVISION, image.revision or ""),
            "version": ann.get(ANN_VERSION, image.version or ""),
            "health": _health(workload),
            "in_sync": plan is not None and not plan.pending,
            "drift": bool(plan and plan.drift),
            "hotfix": bool(fix), "hotfix_back_merged": merged,
            "live_color": plan.live_color if plan else None,
            "awaiting_promotion": plan.awaiting if plan else None,
            **{f"deployed_{k}": v for k, v in _who(commits, name).items()},
        })
    return rows


@step("status")
def status(ctx: Context, envs: list[EnvSpec], state: EnvStateRepo | None) -> StepResult:
    """Rows for every app of every environment; observes only."""
    rows = []
    for env in envs:
        rows += env_status(ctx, env, state)
    return StepResult.of("status", [], summary=f"{len(rows)} apps in {len(envs)} environments",
                         rows=rows)
