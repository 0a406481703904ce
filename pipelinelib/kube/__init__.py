"""Kubernetes deployment pieces used by the rollout step.

``manifests``: load, validate, order, label and hash; ``health``: per-kind success and
failure rules; ``wait``: the watch-driven waiter; ``lock``: the deploy Lease;
``revisions``: diff, rollback and prune; ``bluegreen``: colours and the Service swap.
"""

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "pipelinelib"
APP_LABEL = "pipelinelib.dev/app"
COLOR_LABEL = "pipelinelib.dev/color"
CONFIG_NAME_LABEL = "pipelinelib.dev/config-name"
BEHAVIOR = "pipelinelib.dev/behavior"

ANN_REVISION = "pipelinelib.dev/revision"
ANN_DIGEST = "pipelinelib.dev/digest"
ANN_DEPLOYED_BY = "pipelinelib.dev/deployed-by"
ANN_BUILD_URL = "pipelinelib.dev/build-url"
ANN_CHANGE_CAUSE = "kubernetes.io/change-cause"
RECORD_ANNOTATIONS = (ANN_REVISION, ANN_DIGEST, ANN_DEPLOYED_BY, ANN_BUILD_URL, ANN_CHANGE_CAUSE)
# A hash of the manifest as applied (record annotations and Secret values left out): a live
# object that carries the same hash and holds every field of the manifest needs no dry run.
ANN_APPLIED = "pipelinelib.dev/applied-hash"


def owner_selector(app: str) -> str:
    """The label selector of every object this app's rollouts own."""
    return f"{MANAGED_BY}={MANAGER},{APP_LABEL}={app}"
