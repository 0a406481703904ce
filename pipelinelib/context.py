"""The shared context a step receives: who, what, where, and the adapters to reach systems.

Steps take everything from here: no hidden globals. Adapters are created lazily
(``ctx.docker`` imports docker-py on first use) so a job only pays for what it
touches, and a test swaps one real component for another by passing its own.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from pipelinelib.secrets import Secrets, clean_url


@dataclass(frozen=True)
class CIInfo:
    """Who triggered this run and where it runs, as the CI server says it.

    Identity comes from the CI server's environment (never from a free
    parameter): Jenkins ``BUILD_USER_ID`` (build-user-vars plugin), GoCD
    ``GO_TRIGGER_USER``; locally the OS user, marked ``provider="local"``.
    """

    provider: str = "local"
    user: str = ""
    build_url: str = ""
    build_number: str = ""
    job: str = ""
    revision: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CIInfo:
        env = os.environ if env is None else env
        if "JENKINS_URL" in env or ("BUILD_URL" in env and "JOB_NAME" in env):
            return cls(
                provider="jenkins",
                user=env.get("BUILD_USER_ID", ""),
                # credentials in the URL (user:password@, ?token=) never go further than here:
                # records, commits, tags, notes, reports all carry the cleaned URL
                build_url=clean_url(env.get("BUILD_URL", "")),
                build_number=env.get("BUILD_NUMBER", ""),
                job=env.get("JOB_NAME", ""),
                revision=env.get("GIT_COMMIT", ""),
            )
        if "GO_PIPELINE_NAME" in env:
            revision = next((v for k, v in sorted(env.items()) if k.startswith("GO_REVISION")), "")
            server = env.get("GO_SERVER_URL", "").rstrip("/")
            name, counter = env.get("GO_PIPELINE_NAME", ""), env.get("GO_PIPELINE_COUNTER", "")
            url = clean_url(f"{server}/pipelines/value_stream_map/{name}/{counter}"
                            if server else "")
            return cls(
                provider="gocd",
                user=env.get("GO_TRIGGER_USER", ""),
                build_url=url,
                build_number=env.get("GO_PIPELINE_LABEL", counter),
                job=name,
                revision=revision,
            )
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(provider="local", user=user)


AdapterFactory = Callable[["Context"], Any]


@dataclass
class Context:
    """Everything a step needs to know and reach.

    Attributes:
        app: the application being built or deployed.
        environment: the target environment (``sandbox``, ``staging`` ...), if any.
        revision: the git revision (full SHA) being built or deployed.
        ci: the CI server's view of this run.
        dry_run: when True steps observe and plan, and write nothing.
        secrets: values that must never be shown; every output is redacted with it.
        adapters: adapter instances or factories by name (``docker``, ``kube`` ...).
    """

    app: str = ""
    environment: str = ""
    revision: str = ""
    ci: CIInfo = field(default_factory=CIInfo.from_env)
    dry_run: bool = False
    secrets: Secrets = field(default_factory=Secrets)
    adapters: dict[str, Any] = field(default_factory=dict)

    def adapter(self, name: str) -> Any:
        """The adapter ``name``, created on first use from its factory."""
        value = self.adapters.get(name)
        if value is None:
            factory = DEFAULT_FACTORIES.get(name)
            if factory is None:
                raise KeyError(f"no adapter named {name!r}")
            value = factory(self)
        elif callable(value) and getattr(value, "__adapter_factory__", False):
            value = value(self)
        self.adapters[name] = value
        return value

    @property
    def docker(self) -> Any:
        """The Docker engine adapter (``pipelinelib.adapters.docker_engine.DockerEngine``)."""
        return self.adapter("docker")

    @property
    def kube(self) -> Any:
        """The Kubernetes adapter (``pipelinelib.adapters.kube.KubeClient``)."""
        return self.adapter("kube")

    @property
    def log(self) -> Any:
        """A logger bound with this context's app, environment and revision."""
        bound = {k: v for k, v in (("app", self.app), ("env", self.environment)) if v}
        if self.revision:
            bound["rev"] = self.revision[:12]
        return structlog.get_logger("pipelinelib").bind(**bound)


def adapter_factory(fn: AdapterFactory) -> AdapterFactory:
    """Mark a callable stored in ``Context.adapters`` as a lazy factory."""
    fn.__adapter_factory__ = True  # type: ignore[attr-defined]
    return fn


def _docker_from_env(ctx: Context) -> Any:
    from pipelinelib.adapters.docker_engine import DockerEngine

    return DockerEngine.from_env()


def _kube_from_env(ctx: Context) -> Any:
    from pipelinelib.adapters.kube import KubeClient

    return KubeClient.from_env()


DEFAULT_FACTORIES: dict[str, AdapterFactory] = {
    "docker": _docker_from_env,
    "kube": _kube_from_env,
}
