"""Protected namespaces (``namespaces: {prod: {protected: true}}``), as helmsman protects them.

- Nothing in a protected namespace is ever deleted by apply: an app that left the spec (or
  is ``enabled: false``) there is refused; remove the protection first, in its own commit.
- Any other change there (an app created or updated, the namespace's labels, limits or
  quotas) needs the CI user to hold the environment's ``promote`` role in ``policy.yaml``
  (``pipelinelib.promotion.policy``: the same identity and groups as promotions).

Checked before the first write; a refusal exits 2, changes nothing and is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelinelib.envspec.model import EnvSpec
from pipelinelib.errors import Refused


def check(ctx: Any, env: EnvSpec, todo: list[dict[str, Any]],
          namespace_plans: Sequence[Any] = ()) -> None:
    """Refuse deletes in protected namespaces, and changes there by a user without the
    environment's promote role. ``todo``: the app plans (dicts) apply would carry out."""
    from pipelinelib.promotion.audit import audit

    touched = [(p["app"], p["namespace"], p["action"]) for p in todo
               if env.protected(p["namespace"])]
    touched += [(f"namespace {n.namespace}", n.namespace, n.action) for n in namespace_plans
                if n.pending and env.protected(n.namespace)]
    if not touched:
        return
    target = f"{env.name}/" + ",".join(sorted({t[1] for t in touched}))
    deletes = [t for t in touched if t[2] == "delete"]
    if deletes:
        what = ", ".join(f"{app} (namespace {ns})" for app, ns, _ in deletes)
        reason = f"apply never deletes in a protected namespace: {what}"
        audit(ctx, "apply", target=target, result="refused", reason=reason)
        raise Refused(reason, field="namespaces.protected",
                      hint="set protected: false on the namespace first (its own reviewed "
                           "commit), or put the app back in the spec")
    from pipelinelib.promotion.policy import identity, load_policy

    try:
        policy = load_policy(env.root or ".")
        rules = policy.env(env.name)
        user = identity(ctx, rules, env.name)
    except Refused as exc:
        audit(ctx, "apply", target=target, result="refused", reason=exc.message)
        raise
    if not policy.holds(user, rules.promote):
        reason = (f"{user} may not change protected namespace(s) of {env.name} "
                  f"({', '.join(sorted({t[1] for t in touched}))})")
        audit(ctx, "apply", target=target, result="refused", reason=reason)
        raise Refused(reason, field="identity",
                      hint=f"policy.yaml: environments.{env.name}.promote names who may")
    audit(ctx, "apply", target=target, result="allowed",
          reason=f"{user} holds the promote role of {env.name}",
          changes=[f"{t[2]} {t[0]}" for t in touched])
