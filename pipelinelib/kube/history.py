"""A workload's revision history, as its controller keeps it.

Deployments keep one ReplicaSet per pod template (``deployment.kubernetes.io/revision``);
StatefulSets and DaemonSets keep ControllerRevisions (``.revision``, the template in
``.data``). Both copy the workload's annotations, so each revision carries our record:
git revision, image digest, who deployed it and from which build. A template that comes
back (a rollback) reuses its old revision object with the next number, so the highest
number is always the live one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pipelinelib.kube.kinds import WITH_HISTORY as HISTORY_KINDS
from pipelinelib.kube.labels import (
    ANN_CHANGE_CAUSE,
    ANN_DEPLOYED_BY,
    ANN_DIGEST,
    ANN_REVISION,
    DEPLOYMENT_REVISION,
    POD_TEMPLATE_HASH,
)

__all__ = ["DEPLOYMENT_REVISION", "HISTORY_KINDS", "Revision", "history", "live_template"]


@dataclass(frozen=True)
class Revision:
    """One revision of a workload: its number, pod template and the record it carries."""

    kind: str
    workload: str
    number: int
    template: dict[str, Any]
    annotations: dict[str, str]
    created: str = ""

    @property
    def git_revision(self) -> str:
        return self.annotations.get(ANN_REVISION, "")

    @property
    def images(self) -> list[str]:
        spec = self.template.get("spec") or {}
        return [c.get("image", "") for c in spec.get("containers") or []]

    def describe(self) -> str:
        """One line for a history listing."""
        who = self.annotations.get(ANN_DEPLOYED_BY, "?")
        git = self.git_revision[:12] or "-"
        digest = (self.annotations.get(ANN_DIGEST) or ",".join(self.images))[:80]
        cause = self.annotations.get(ANN_CHANGE_CAUSE, "")
        return f"{self.kind.lower()}/{self.workload} #{self.number}  git {git}  by {who}  " \
               f"{self.created}  {digest}" + (f"  ({cause})" if cause else "")


def history(kube: Any, workload: dict[str, Any]) -> list[Revision]:
    """The revisions of a live workload, oldest first."""
    kind, meta = workload["kind"], workload["metadata"]
    uid, namespace = meta["uid"], meta["namespace"]
    owned_kind = "ReplicaSet" if kind == "Deployment" else "ControllerRevision"
    revisions = []
    for item in kube.list(owned_kind, namespace)["items"]:
        item_meta = item["metadata"]
        if not any(ref.get("uid") == uid for ref in item_meta.get("ownerReferences") or []):
            continue
        annotations = dict(item_meta.get("annotations") or {})
        if kind == "Deployment":
            number = int(annotations.get(DEPLOYMENT_REVISION, "0") or 0)
            template = copy.deepcopy(item["spec"]["template"])
            (template.get("metadata") or {}).get("labels", {}).pop(POD_TEMPLATE_HASH, None)
        else:
            number = int(item.get("revision", 0))
            template = copy.deepcopy(((item.get("data") or {}).get("spec") or {})
                                     .get("template") or {})
            template.pop("$patch", None)
        (template.get("metadata") or {}).pop("creationTimestamp", None)
        revisions.append(Revision(kind, meta["name"], number, template, annotations,
                                  item_meta.get("creationTimestamp", "")))
    return sorted(revisions, key=lambda r: r.number)


def live_template(workload: dict[str, Any]) -> dict[str, Any]:
    """The workload's pod template as comparable with a Revision's."""
    template: dict[str, Any] = copy.deepcopy(workload["spec"]["template"])
    (template.get("metadata") or {}).pop("creationTimestamp", None)
    return template
