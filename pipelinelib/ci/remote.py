"""Run a Jenkins job from outside Jenkins as a step: trigger, follow, stream, result.

Used by ``jobs/promote_trigger.py``: a release manager triggers the parameterized promotion
job with their own API token, so Jenkins records them as the build's cause and the job takes
its identity from there (never from a parameter).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pipelinelib.errors import BadInput, StepFailed
from pipelinelib.result import StepResult
from pipelinelib.step import step

if TYPE_CHECKING:
    from pipelinelib.context import Context

_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")


def promotion_parameters(app: str, to: str, source: str | None = None,
                         image: str | None = None, reason: str | None = None,
                         hotfix: bool = False, approve: bool = False) -> dict[str, str]:
    """The release jobs' parameters (jenkins/jobs/release-jobs.yaml), validated.

    Promotion: APP, FROM_ENV, TO_ENV, APPROVE_ONLY. Hot-fix: APP, TO_ENV, IMAGE, REASON.
    """
    for field, value in (("--app", app), ("--to", to), ("--from", source)):
        if value is not None and not _NAME.match(value):
            raise BadInput(f"{value!r} is not a valid name", field=field,
                           expected="lower-case letters, digits, '.', '_' or '-'")
    if not hotfix:
        if image or reason:
            raise BadInput("--image and --reason belong to a hot-fix", field="--hotfix",
                           expected="--hotfix with --image and --reason, or neither")
        return {"APP": app, "FROM_ENV": source or "", "TO_ENV": to,
                "APPROVE_ONLY": "true" if approve else "false"}
    if approve:
        raise BadInput("a hot-fix has no four-eyes approval step", field="--approve",
                       expected="--approve without --hotfix")
    if not image or not _IMAGE.match(image):
        raise BadInput(f"{image!r} is not an image pinned by digest", field="--image",
                       expected="REPOSITORY@sha256:<64 hex digits>")
    reason = (reason or "").strip()
    if not reason:
        raise BadInput("a hot-fix needs a reason", field="--reason",
                       expected="why this cannot wait for the normal promotion")
    return {"APP": app, "TO_ENV": to, "IMAGE": image, "REASON": reason}


@step("jenkins-job")
def run_jenkins_job(ctx: Context, client: Any, job: str, parameters: Mapping[str, str],
                    out: Callable[[str], None], queue_timeout_s: float = 300.0,
                    build_timeout_s: float = 3600.0, poll_s: float = 1.0) -> StepResult:
    """Trigger ``job`` with ``parameters`` on Jenkins, stream its console, fail unless SUCCESS."""
    action = f"trigger Jenkins job {job} ({', '.join(f'{k}={v}' for k, v in parameters.items())})"
    if ctx.dry_run:
        return StepResult.of("jenkins-job", [action], dry_run=True)
    outcome = client.run(job, parameters, out, queue_timeout_s=queue_timeout_s,
                         build_timeout_s=build_timeout_s, poll_s=poll_s)
    if not outcome.ok:
        raise StepFailed(
            f"{job} #{outcome.ref.number} ended {outcome.result}",
            hint=f"see {outcome.ref.url or 'the build in Jenkins'}",
            evidence=outcome.console_tail,
        )
    return StepResult.of("jenkins-job", [action],
                         summary=f"{job} #{outcome.ref.number} SUCCESS",
                         build_url=outcome.ref.url, build_number=outcome.ref.number,
                         result=outcome.result)
