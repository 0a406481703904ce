"""The protected-namespace guard of the paths that know no environment.

``pipeline rollout -n``, ``rollback`` and ``swap -n`` write to a namespace, not to an
environment with its promotion records: a namespace the cluster administrator labelled
``pipelinelib.dev/protected=true`` takes their writes only for apps this process verified
(``promotion.enforce.enforce``, or ``mark_verified`` by another check). A module of its own,
so that a rollout does not import the promotion machinery it does not run.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from pipelinelib.errors import Refused
from pipelinelib.kube.labels import PROTECTED_LABEL

_verified: set[tuple[str, str]] = set()  # (namespace, app) verified in this process
_verified_lock = threading.Lock()


def mark_verified(namespace: str, app: str) -> None:
    """Let ``guard_namespace`` pass ``app`` in ``namespace``: its change was verified here
    (``enforce``, or ``promotion.rollback``: the target digest was promoted before)."""
    with _verified_lock:
        _verified.add((namespace, app))


def guard_namespace(ctx: Any, kube: Any, namespace: str, app: str, action: str, *,
                    labels: Mapping[str, str] | None = None) -> None:
    """Refuse ``action`` on ``app`` in a namespace labelled protected unless this process
    verified the app's change (``enforce``); audited. Call before the first write.
    ``labels``: the namespace's labels as this run already read them ({} when absent or not
    readable); None reads the Namespace here."""
    if labels is None:
        try:
            ns = kube.get("Namespace", namespace)
        except Refused:
            return  # the deployer may not read namespaces here: RBAC is the guard
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    if labels.get(PROTECTED_LABEL) != "true":
        return
    with _verified_lock:
        if (namespace, app) in _verified:
            return
    from pipelinelib.promotion.audit import audit

    reason = (f"{namespace} is protected ({PROTECTED_LABEL}=true): {action} of {app} goes "
              "through its environment (`pipeline apply`/`swap --env` with a signed, approved "
              "promotion)")
    audit(ctx, action, target=f"{namespace}/{app}", result="refused", reason=reason)
    raise Refused(f"{action} refused: {reason}", field="namespace",
                  hint="promote the digest you want (an earlier one to roll back)")
