"""The one home of the labels and annotations pipelinelib puts on Kubernetes objects.

Labels select (ownership, colour, environment); annotations record (who deployed what,
from which build, which spec). Keys under ``pipelinelib.dev/`` are ours; the others are
Kubernetes' own well-known keys we read or write.

Not here: OCI image labels and Docker container labels (``io.pipelinelib.*``: the image
name, the env file's public values, the smoke-test container marker). They label images
and containers, not Kubernetes objects, follow the OCI reverse-DNS convention, and live
with the code that writes them (buildspec.py, envfile.py, steps/smoke.py).
"""

from __future__ import annotations

PREFIX = "pipelinelib.dev/"

# --- labels -----------------------------------------------------------------------------
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "pipelinelib"  # the value of MANAGED_BY on everything we own
APP_LABEL = "pipelinelib.dev/app"
ENV_LABEL = "pipelinelib.dev/environment"
COLOR_LABEL = "pipelinelib.dev/color"
CONFIG_NAME_LABEL = "pipelinelib.dev/config-name"  # a hashed ConfigMap's/Secret's base name
HOOK_OF = "pipelinelib.dev/hook-of"  # a helm hook object: run at its event, never pruned
PURPOSE_LABEL = "pipelinelib.dev/purpose"  # e.g. "migrate" on the migration Job
PROTECTED_LABEL = "pipelinelib.dev/protected"  # on a Namespace: writes need the policy
BEHAVIOR = "pipelinelib.dev/behavior"

# --- annotations: the deploy record -----------------------------------------------------
ANN_REVISION = "pipelinelib.dev/revision"  # git revision
ANN_DIGEST = "pipelinelib.dev/digest"
ANN_DEPLOYED_BY = "pipelinelib.dev/deployed-by"
ANN_BUILD_URL = "pipelinelib.dev/build-url"
ANN_CHANGE_CAUSE = "kubernetes.io/change-cause"
RECORD_ANNOTATIONS = (ANN_REVISION, ANN_DIGEST, ANN_DEPLOYED_BY, ANN_BUILD_URL, ANN_CHANGE_CAUSE)
# A hash of the manifest as applied (record annotations and Secret values left out): a live
# object that carries the same hash and holds every field of the manifest needs no dry run.
ANN_APPLIED = "pipelinelib.dev/applied-hash"
# `pipeline annotate` writes PREFIX + deployment-status, deployment-tag, deployment-id,
# deployed-revision, deployed-digest, deployed-at, deployed-by (steps/annotate.py)
ANN_DEPLOYED_DIGEST = "pipelinelib.dev/deployed-digest"

# --- annotations: environment specs, config hashing, rollback, blue/green, lock ---------
ANN_SPEC_HASH = "pipelinelib.dev/spec-hash"
ANN_IMAGE = "pipelinelib.dev/image"
ANN_VERSION = "pipelinelib.dev/version"
ANN_CONFIG_HASH = "pipelinelib.dev/config-hash"
ANN_HASH = "pipelinelib.dev/hash"  # "false" on a ConfigMap/Secret: keep its name
ANN_ROLLED_BACK_FROM = "pipelinelib.dev/rolled-back-from"
ANN_BLUE_GREEN = "pipelinelib.dev/blue-green"
ANN_LOCK_HOLDER = "pipelinelib.dev/holder"
ANN_LOCK_PROCESS = "pipelinelib.dev/holder-process"  # boot id/pid namespace/pid/start ticks

# --- Kubernetes' own keys we read ------------------------------------------------------
DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
JOB_NAME = "job-name"  # on a Job's pods (batch/v1 also sets batch.kubernetes.io/job-name)
CONTROLLER_REVISION_HASH = "controller-revision-hash"
POD_TEMPLATE_HASH = "pod-template-hash"


def owner_selector(app: str) -> str:
    """The label selector of every object this app's rollouts own."""
    return f"{MANAGED_BY}={MANAGER},{APP_LABEL}={app}"
