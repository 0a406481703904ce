"""Write a deployment's outcome into the CI server that runs this job.

Jenkins: the build's description (and display name) via its API; GoCD: the pipeline
instance's comment (GoCD has no per-build description). Which server, which build and which
credentials all come from the environment the CI server sets, plus our API credentials:

    Jenkins  BUILD_URL, JENKINS_URL (or PIPELINELIB_JENKINS_URL),
             PIPELINELIB_JENKINS_USER, PIPELINELIB_JENKINS_TOKEN
    GoCD     GO_PIPELINE_NAME, GO_PIPELINE_COUNTER, GO_SERVER_URL (or PIPELINELIB_GOCD_URL),
             PIPELINELIB_GOCD_TOKEN

The context builds the reporter once, from the credentials it resolved (``ctx.ci_server``,
typed ``adapters.protocols.CIServer``). Without credentials there is nothing to write with:
``ctx.ci_server`` is None and the caller reports that as skipped (a local run, or a CI server
not set up for write-back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUCCESS_TEXT = "Successfully Deployed"
FAILURE_TEXT = "Failed Deployment"


def outcome_text(success: bool, environment: str = "", detail: str = "") -> str:
    """``Successfully Deployed to live (sha256:...)`` / ``Failed Deployment to live``."""
    text = SUCCESS_TEXT if success else FAILURE_TEXT
    if environment:
        text = f"{text} to {environment}"
    return f"{text} ({detail})" if detail else text


def outcome_title(success: bool, app: str = "", environment: str = "", tag: str = "") -> str:
    """A short build title: ``✓ web → live deployment-0007`` / ``✗ web → live``."""
    where = " → ".join(part for part in (app, environment) if part)
    return " ".join(part for part in ("✓" if success else "✗", where, tag) if part)


@dataclass
class JenkinsReporter:
    """Sets the running build's description (and display name ``#N title``, so the build
    history reads as a deployment log); a no-op when both already say so."""

    client: Any
    build: Any
    redact: Callable[[str], str] = str
    where: str = "jenkins"

    def annotate(self, text: str, title: str | None = None) -> list[str]:
        display = self.redact(f"#{self.build.number} {title}") if title else None
        return self.client.describe_build(self.build, description=self.redact(text),
                                          display_name=display)


@dataclass
class GoCDReporter:
    """Adds ``text`` to the running pipeline instance's comment (once)."""

    client: Any
    pipeline: str
    counter: int
    redact: Callable[[str], str] = str
    where: str = "gocd"

    def annotate(self, text: str, title: str | None = None) -> list[str]:
        """GoCD has no per-run title: ``title`` is not used."""
        return self.client.comment(self.pipeline, self.counter, self.redact(text))
