"""Entering an environment for a release manager's action on one app (swap, rollback).

One door for both: the env spec is loaded, the app must be in it, the caller must hold the
policy's swap role (default: the promote list), a refusal is audited, and the context is
bound to the environment's own cluster (kubeconfig/context from the spec).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelinelib.errors import BadInput, Refused
from pipelinelib.promotion.audit import audit

if TYPE_CHECKING:
    from pipelinelib.context import Context


@dataclasses.dataclass(frozen=True)
class Entered:
    """What an action in an environment works with once the caller is let in."""

    ctx: Context        # bound to the environment's cluster
    env: Any            # EnvSpec
    spec: Any           # AppSpec of the app
    policy: Any         # Policy
    rules: Any          # the environment's rules in the policy
    target: str         # "env/app", as audit records name it


def enter_environment(ctx: Context, root: Path, env_name: str, app: str, *, action: str,
                      verb: str) -> Entered:
    """Load ``env_name`` from ``root``, check ``app`` and the caller's swap role.

    Raises BadInput (unknown app) or Refused (no privilege: audited under ``action``).
    """
    from pipelinelib.envspec.live import kube_for
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.promotion.policy import identity, load_policy

    target = f"{env_name}/{app}"
    ctx.environment, ctx.app = env_name, app
    env = load_environment(environment_path(root, env_name), root=root)
    spec = env.apps.get(app)
    if spec is None:
        raise BadInput(f"{env_name} has no app {app!r}", source=env.source, field="--app",
                       expected="one of " + ", ".join(sorted(env.apps)))
    policy = load_policy(root)
    rules = policy.env(env_name)
    try:
        user = identity(ctx, rules, env_name)
        if not policy.holds(user, rules.swappers):
            raise Refused(f"{user} may not {verb} {app} in {env_name}", field="identity",
                          hint=f"ask someone in {policy.source} environments.{env_name}."
                          + ("swap" if rules.swap is not None else "promote"))
    except Refused as exc:
        audit(ctx, action, target=target, result="refused", reason=exc.message)
        raise
    if env.kubeconfig or env.context:
        ctx = dataclasses.replace(ctx, adapters={**ctx.adapters, "kube": kube_for(
            ctx, env.kubeconfig, env.context)})
    return Entered(ctx, env, spec, policy, rules, target)
