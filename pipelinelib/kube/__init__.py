"""Kubernetes deployment pieces used by the rollout step.

``kinds``: the one table of kinds (order, workload, hashed, prunable, history, scope,
health rule); ``labels``: every label and annotation we write or read; ``manifests``: load,
validate, order, label and hash; ``health``: per-kind success and failure rules; ``wait``:
the watch-driven waiter (rollout, rollback, migration Job, helm hooks); ``lock``: the
deploy Lease; ``revisions``: diff, rollback and prune; ``bluegreen``: colours and the
Service swap.
"""

# Compatibility: these names live in ``pipelinelib.kube.labels``; import them from there.
from pipelinelib.kube.labels import (
    ANN_APPLIED,
    ANN_BUILD_URL,
    ANN_CHANGE_CAUSE,
    ANN_DEPLOYED_BY,
    ANN_DIGEST,
    ANN_REVISION,
    APP_LABEL,
    BEHAVIOR,
    COLOR_LABEL,
    CONFIG_NAME_LABEL,
    MANAGED_BY,
    MANAGER,
    RECORD_ANNOTATIONS,
    owner_selector,
)

__all__ = ["ANN_APPLIED", "ANN_BUILD_URL", "ANN_CHANGE_CAUSE", "ANN_DEPLOYED_BY", "ANN_DIGEST",
           "ANN_REVISION", "APP_LABEL", "BEHAVIOR", "COLOR_LABEL", "CONFIG_NAME_LABEL",
           "MANAGED_BY", "MANAGER", "RECORD_ANNOTATIONS", "owner_selector"]
