"""The apply step: bring an environment to its spec, changed apps only, by priority.

Apps are grouped by priority (lowest number first); a group's apps run in parallel on a
bounded thread pool (``max_parallel``). Each app goes through the rollout step (apply,
wait, failure detection, prune, roll back) — one code path for manifests and charts.
Fail fast: after a failure no new app starts; running ones finish (or roll back) and every
app's outcome is reported. An environment already matching its spec makes zero writes.
Blue/green apps (``strategy: blue-green``) deploy the idle colour; with ``await_promotion``
they stop there, ready, and the result's ``awaiting_promotion`` names them (exit 5).
In a protected environment every changed app must carry a signed promotion (and, under four
eyes, a signed approval) before anything is written (``promotion.enforce``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipelinelib.context import Context
from pipelinelib.envspec.live import kube_for
from pipelinelib.envspec.load import Problem, SpecInvalid
from pipelinelib.envspec.model import EnvSpec
from pipelinelib.envspec.namespaces import apply_namespaces, plan_namespaces
from pipelinelib.envspec.schedule import NOT_STARTED, run_by_priority
from pipelinelib.errors import PipelineError, StepFailed
from pipelinelib.helm import hooks
from pipelinelib.promotion import protect
from pipelinelib.promotion.enforce import enforce
from pipelinelib.result import StepResult
from pipelinelib.step import step
from pipelinelib.steps.plan import compute_plans, render_all


def rollout_app(ctx: Context, env: EnvSpec, app: str, manifests: list[dict[str, Any]],
                plan: dict[str, Any], owned_lists: Any = None) -> StepResult:
    """Deploy one app through the rollout step (apply, wait, prune, roll back on failure);
    an app gone from the spec has its owned objects pruned. ``owned_lists``: the run's
    lists of owned objects (kube.revisions.RunLists), one per namespace and kind."""
    from pipelinelib.steps import rollout

    if env.kubeconfig or env.context:  # the environment's own cluster
        ctx = dataclasses.replace(ctx, adapters={**ctx.adapters, "kube": kube_for(
            ctx, env.kubeconfig, env.context)})
    if plan["action"] == "delete":
        return _remove_app(ctx, app, plan["namespace"])
    spec = env.apps[app]
    rendered, (manifests, app_hooks) = manifests, hooks.split(manifests)
    if app_hooks:  # chart hooks run at their events; a marker makes a re-run finish them
        state = plan.get("hooks_state") or {}
        event = "install" if plan["action"] == "create" or (
            state.get("event") == "install" and state.get("done") != "true") else "upgrade"
        labels = {k: v for k, v in app_hooks[0].obj["metadata"]["labels"].items()
                  if k != hooks.HOOK_OF}
        wanted = hooks.fingerprint(rendered)
        hooks.record(ctx.kube, app, spec.namespace, labels, event, wanted, done=False)
        hooks.run(ctx, app_hooks, f"pre-{event}", spec.namespace, spec.timeout)
    result = rollout.rollout(ctx, manifests, app=app, namespace=spec.namespace,
                             timeout=spec.timeout, prune=True,
                             allowed_namespaces=env.namespaces or None,
                             blue_green=spec.blue_green,
                             await_promotion=env.awaits_promotion(spec),
                             owned_lists=owned_lists)
    if app_hooks:
        hooks.run(ctx, app_hooks, f"post-{event}", spec.namespace, spec.timeout)
        hooks.record(ctx.kube, app, spec.namespace, labels, event, wanted, done=True)
    return result


def _validate_all(ctx: Context, env: EnvSpec, todo: list[dict[str, Any]],
                  rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The rollout step's own checks (pinned images, one namespace, referenced Secrets and
    ConfigMaps exist...) for every app, before the first write: bad input changes nothing."""
    from pipelinelib.kube import manifests as mf
    from pipelinelib.steps.rollout import namespace_exists, prepare

    if env.kubeconfig or env.context:
        ctx = dataclasses.replace(ctx, adapters={**ctx.adapters, "kube": kube_for(
            ctx, env.kubeconfig, env.context)})
    exists: dict[str, bool] = {}  # one Namespace read per namespace, not per app
    for p in todo:
        if p["action"] != "delete":
            spec = env.apps[p["app"]]
            docs = prepare(ctx, rendered[p["app"]], p["app"], spec.namespace,
                           env.namespaces or None)
            if spec.namespace not in exists:
                exists[spec.namespace] = namespace_exists(ctx.kube, spec.namespace)
            mf.check_references(docs, ctx.kube, spec.namespace, exists[spec.namespace])


def _spec_images(app: Any) -> list[tuple[str, Any]]:
    """``(field, ImageSpec)`` for the app's own image and each of its ``images``."""
    found = [("image", app.image)] if app.image is not None else []
    return found + [(f"images.{name}", image) for name, image in sorted(app.images.items())]


def _remove_app(ctx: Context, app: str, namespace: str) -> StepResult:
    """Prune every object the rollout step owns for ``app`` (it left the spec): the kinds its
    record names (every prunable kind without one), then the record itself."""
    from pipelinelib.kube.revisions import prune_candidates, record_name

    kube = ctx.kube
    gone = []
    for kind, name in prune_candidates(kube, app, namespace, set(), ctx.log):
        if kube.delete(kind, name, namespace):
            gone.append(f"delete {kind}/{name}")
    gone += hooks.remove_all(kube, app, namespace)
    kube.delete("ConfigMap", record_name(app), namespace)  # last: a re-run still reads it
    return StepResult.of("remove", gone)


def _clear_dead_locks(kube: Any, unchanged: list[dict[str, Any]], log: Any) -> None:
    """An apply killed after an app's last write left that app's deploy lock; the re-run has
    nothing to write there, so it removes the lock when its holder is known dead."""
    from pipelinelib.kube.labels import MANAGED_BY, MANAGER
    from pipelinelib.kube.lock import DeployLock, lease_name

    leases: dict[str, set[str]] = {}  # one list of our Leases per namespace, not a GET per app
    for plan in unchanged:
        namespace = plan.get("namespace")
        if not namespace:
            continue
        if namespace not in leases:
            listed = kube.list("Lease", namespace, selector=f"{MANAGED_BY}={MANAGER}")
            leases[namespace] = {i["metadata"]["name"] for i in listed.get("items", [])}
        if lease_name(plan["app"]) in leases[namespace]:
            DeployLock.clear_dead(kube, plan["app"], namespace, log)


@step("apply")
def apply_environment(ctx: Context, env: EnvSpec, only: list[str] | None = None,
                      max_parallel: int | None = None, review: Any = None) -> StepResult:
    """Apply the apps of ``env`` whose plan is not empty; see the module docstring.
    ``review``: a merged pull request's ``ReviewApproval`` (an approval source for
    ``enforce``)."""
    kube = kube_for(ctx, env.kubeconfig, env.context)
    writes_before = getattr(kube, "writes", 0)
    rendered = render_all(env, ctx.secrets)
    planned: dict[str, Any] = {}  # each app's changes: its rollout writes them
    plans = {p.app: p.to_dict() for p in compute_plans(ctx, env, rendered, planned)}
    todo = [p for p in plans.values() if p["action"] != "none" and (not only or p["app"] in only)]
    actions = [f"{p['action']} {p['app']}" for p in todo]
    unpinned = [(a, field, image) for p in todo if (a := env.apps.get(p["app"]))
                for field, image in _spec_images(a) if not image.digest]
    if unpinned:
        raise SpecInvalid([Problem(env.source, a.line, f"apps.{a.name}.{field}",
                                   f"{image.ref} is not pinned by digest",
                                   f"{field}.digest (pipeline promote writes it)")
                           for a, field, image in unpinned])
    ns_plans = plan_namespaces(kube, env)
    protect.check(ctx, env, todo, ns_plans)
    if todo:  # a protected environment takes only signed, approved changes
        enforce(ctx, env, [p["app"] for p in todo if p["action"] != "delete"],
                deletes=[p["app"] for p in todo if p["action"] == "delete"], review=review)
        _validate_all(ctx, env, todo, rendered)
    actions = [f"{p.action} namespace {p.namespace}" for p in ns_plans if p.pending] + actions
    if not ctx.dry_run:
        apply_namespaces(kube, ns_plans, ctx.log)
        _clear_dead_locks(kube, [p for p in plans.values() if p["action"] == "none"], ctx.log)
    if not todo or ctx.dry_run:
        return StepResult.of("apply", actions, dry_run=ctx.dry_run, applied=[], outcomes={},
                             writes=getattr(kube, "writes", 0) - writes_before,
                             awaiting_promotion=[],
                             changes={p["app"]: p["objects"] for p in todo})
    limit = max_parallel or env.max_parallel
    ctx.log.info("applying", apps=len(todo), parallel=limit,
                 priorities=sorted({p["priority"] for p in todo}))

    from pipelinelib.kube.revisions import RunLists

    owned_lists = RunLists(kube, ctx.log)  # one list per namespace and kind for every app
    owned_lists.planned = planned  # and the plan's dry runs: not done again per app

    def deploy(app: str) -> StepResult:
        return rollout_app(ctx, env, app, rendered.get(app, []), plans[app], owned_lists)

    outcome = run_by_priority(((p["priority"], p["app"]) for p in todo), deploy, limit)
    outcomes = {name: str(result.status) for name, result in outcome.results.items()}
    for name, error in outcome.failures:
        outcomes[name] = f"failed: {getattr(error, 'message', None) or error}"
    for name in outcome.skipped:
        outcomes[name] = NOT_STARTED
    if outcome.failures:
        app, first = outcome.failures[0]
        if not isinstance(first, PipelineError):
            first = StepFailed(f"{app}: unexpected {type(first).__name__}",
                               cause=ctx.secrets.redact_text(str(first))[:300])
        evidence = [f"{a}: {o}" for a, o in sorted(outcomes.items())]
        raise StepFailed(f"apply of {env.name} failed at {app}: {first.message}",
                         cause=first.cause, hint=first.hint or "see each app's outcome",
                         evidence=evidence + list(getattr(first, "evidence", [])))
    awaiting = sorted(name for name, result in outcome.results.items()
                      if result.outputs.get("awaiting_promotion"))
    for name in awaiting:
        ctx.log.info("awaiting promotion", app=name,
                     color=outcome.results[name].outputs.get("color"),
                     next=f"pipeline swap --env {env.name} --app {name}")
    if awaiting and not any(r.changed for r in outcome.results.values()):
        actions = []  # only apps waiting for a swap: nothing was written
    return StepResult.of("apply", actions, applied=sorted(outcome.results), outcomes=outcomes,
                         writes=getattr(kube, "writes", 0) - writes_before,
                         awaiting_promotion=awaiting)
