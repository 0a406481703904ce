"""The apply step: bring an environment to its spec, changed apps only, by priority.

Apps are grouped by priority (lowest number first); a group's apps run in parallel on a
bounded thread pool (``max_parallel``). Each app goes through the rollout step (apply,
wait, failure detection, prune, roll back) — one code path for manifests and charts.
Fail fast: after a failure no new app starts; running ones finish (or roll back) and every
app's outcome is reported. An environment already matching its spec makes zero writes.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from pipelinelib.context import Context
from pipelinelib.envspec.model import EnvSpec
from pipelinelib.errors import PipelineError, StepFailed
from pipelinelib.result import StepResult
from pipelinelib.step import step
from pipelinelib.steps.plan import compute_plans, render_all


def rollout_app(ctx: Context, env: EnvSpec, app: str, manifests: list[dict[str, Any]],
                plan: dict[str, Any]) -> StepResult:
    """Deploy one app through the rollout step (apply, wait, prune, roll back on failure)."""
    from pipelinelib.steps import rollout

    spec = env.apps.get(app)
    return rollout.rollout(ctx, manifests, app=app, namespace=plan["namespace"],
                           timeout=spec.timeout if spec else 300, prune=True)


@step("apply")
def apply_environment(ctx: Context, env: EnvSpec, only: list[str] | None = None,
                      max_parallel: int | None = None) -> StepResult:
    """Apply the apps of ``env`` whose plan is not empty; see the module docstring."""
    rendered = render_all(env)
    plans = [p.to_dict() for p in compute_plans(ctx, env, rendered)]
    todo = [p for p in plans if p["action"] != "none" and (not only or p["app"] in only)]
    actions = [f"{p['action']} {p['app']}" for p in todo]
    if not todo or ctx.dry_run:
        return StepResult.of("apply", actions, dry_run=ctx.dry_run, applied=[], outcomes={})
    limit = max_parallel or env.max_parallel
    outcomes: dict[str, str] = {}
    failures: list[tuple[str, PipelineError]] = []
    lock = threading.Lock()
    groups: dict[int, list[dict[str, Any]]] = {}
    for p in todo:
        groups.setdefault(p["priority"], []).append(p)
    for priority in sorted(groups):
        if failures:
            for p in groups[priority]:
                outcomes[p["app"]] = "not started"
            continue
        ctx.log.info("applying priority group", priority=priority,
                     apps=[p["app"] for p in groups[priority]], parallel=limit)
        _run_group(ctx, env, groups[priority], rendered, limit, outcomes, failures, lock)
    applied = [a for a, o in outcomes.items() if o in ("changed", "unchanged")]
    if failures:
        app, first = failures[0]
        evidence = [f"{a}: {o}" for a, o in sorted(outcomes.items())]
        raise StepFailed(f"apply of {env.name} failed at {app}: {first.message}",
                         cause=first.cause, hint=first.hint or "see each app's outcome",
                         evidence=evidence + list(getattr(first, "evidence", [])))
    return StepResult.of("apply", actions, applied=applied, outcomes=outcomes)


def _run_group(ctx: Context, env: EnvSpec, group: list[dict[str, Any]],
               rendered: dict[str, list[dict[str, Any]]], limit: int,
               outcomes: dict[str, str], failures: list[tuple[str, PipelineError]],
               lock: threading.Lock) -> None:
    pending = list(group)
    running: dict[Future[StepResult], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(group)))) as pool:
        while pending or running:
            while pending and len(running) < limit and not failures:
                p = pending.pop(0)
                future = pool.submit(rollout_app, ctx, env, p["app"], rendered.get(p["app"], []),
                                     p)
                running[future] = p["app"]
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                app = running.pop(future)
                try:
                    result = future.result()
                    with lock:
                        outcomes[app] = str(result.status)
                except PipelineError as exc:
                    with lock:
                        outcomes[app] = f"failed: {exc.message}"
                        failures.append((app, exc))
                except Exception as exc:
                    with lock:
                        outcomes[app] = f"failed: {type(exc).__name__}"
                        failures.append((app, StepFailed(f"{app}: unexpected "
                                                         f"{type(exc).__name__}",
                                                         cause=str(exc)[:300])))
        for p in pending:
            outcomes[p["app"]] = "not started"
