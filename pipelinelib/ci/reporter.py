"""Write a deployment's outcome into the CI server that runs this job.

Jenkins: the build's description (and display name) via its API; GoCD: the pipeline
instance's comment (GoCD has no per-build description). Which server, which build and which
credentials all come from the environment the CI server sets, plus our API credentials:

    Jenkins  BUILD_URL, JENKINS_URL (or PIPELINELIB_JENKINS_URL),
             PIPELINELIB_JENKINS_USER, PIPELINELIB_JENKINS_TOKEN
    GoCD     GO_PIPELINE_NAME, GO_PIPELINE_COUNTER, GO_SERVER_URL (or PIPELINELIB_GOCD_URL),
             PIPELINELIB_GOCD_TOKEN

Without credentials there is nothing to write with: ``reporter_for`` returns None and the
caller reports that as skipped (a local run, or a CI server not set up for write-back).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

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


class CIReporter(Protocol):
    """Writes one line about this run into the CI server; returns the actions taken."""

    where: str

    def annotate(self, text: str, title: str | None = None) -> list[str]: ...


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


def reporter_for(ctx: Any, env: Mapping[str, str] | None = None) -> CIReporter | None:
    """The reporter for the CI server running this job, or None (local run, no credentials).

    Raises BadInput when the CI server's own variables are malformed.
    """
    env = os.environ if env is None else env
    provider = ctx.ci.provider
    secrets = getattr(ctx, "secrets", None)
    redact = secrets.redact_text if secrets is not None else str
    if provider == "jenkins":
        if not env.get("PIPELINELIB_JENKINS_TOKEN") or not ctx.ci.build_url:
            return None
        from pipelinelib.adapters.jenkins import BuildRef, JenkinsClient

        client = JenkinsClient.from_env(env, secrets=secrets)
        return JenkinsReporter(client, BuildRef.from_url(ctx.ci.build_url), redact)
    if provider == "gocd":
        counter = env.get("GO_PIPELINE_COUNTER", "")
        if not env.get("PIPELINELIB_GOCD_TOKEN") or not counter.isdigit():
            return None
        from pipelinelib.adapters.gocd import GoCDClient

        gocd = GoCDClient.from_env(env, secrets=secrets)
        return GoCDReporter(gocd, env.get("GO_PIPELINE_NAME", ctx.ci.job), int(counter), redact)
    return None
