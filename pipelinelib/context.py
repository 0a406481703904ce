"""The shared context a step receives: who, what, where, and the adapters to reach systems.

Steps take everything from here: no hidden globals. Credentials and the kubeconfig are
resolved once, from the environment, into ``Context.credentials``. Adapters are created
lazily (``ctx.engine`` imports docker-py on first use) so a job only pays for what it
touches, and a test swaps one real component for another by passing its own in
``Context.adapters``. Every adapter is typed by its Protocol
(``pipelinelib.adapters.protocols``); no step constructs one or takes one as a parameter.
Each adapter is built here, into its Protocol's type, so the type check proves that every
adapter satisfies its seam (a method renamed in an adapter or added to a Protocol fails
``make lint`` here, not in a step at run time).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import structlog

from pipelinelib.secrets import Secrets, clean_url

if TYPE_CHECKING:
    from pipelinelib.adapters.gitea import GiteaClient
    from pipelinelib.adapters.protocols import (
        AuditSink,
        CIServer,
        ClairScanner,
        Database,
        Engine,
        GitRepository,
        Helm,
        Http,
        Kube,
        Lighthouse,
        OsvScanner,
        Registry,
    )


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
    counter: str = ""  # GoCD: the pipeline instance's counter (GO_PIPELINE_COUNTER)

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
                counter=counter,
            )
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(provider="local", user=user)


@dataclass(frozen=True)
class Login:
    """A server's URL and our login there: an API token, or a user and password."""

    url: str | None = None
    user: str | None = None
    token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def default_audit_spool(env: Mapping[str, str]) -> str:
    """``$XDG_STATE_HOME/pipelinelib/audit-spool`` (``~/.local/state`` without it)."""
    state = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "pipelinelib", "audit-spool")


@dataclass(frozen=True)
class AuditSettings:
    """Where audit events go (``pipelinelib.records.audit`` lists the variables).

    ``url`` never carries credentials: user and password given in it are moved to
    ``user``/``password``. ``spool`` is where events wait while a sink is down.
    """

    file: str | None = None
    url: str | None = None
    index: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    spool: str = field(default_factory=lambda: default_audit_spool(os.environ))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuditSettings:
        url = env.get("PIPELINE_AUDIT_URL") or None
        user = env.get("PIPELINE_AUDIT_USER", "")
        password = env.get("PIPELINE_AUDIT_PASSWORD", "")
        if url:
            from urllib.parse import unquote, urlsplit

            parts = urlsplit(url)
            if parts.password:  # credentials in the URL: use them, never show them
                user = user or unquote(parts.username or "")
                password = password or unquote(parts.password)
                url = clean_url(url)
        return cls(file=env.get("PIPELINE_AUDIT_FILE") or None, url=url,
                   index=env.get("PIPELINE_AUDIT_INDEX", ""), user=user, password=password,
                   api_key=env.get("PIPELINE_AUDIT_API_KEY", ""),
                   spool=env.get("PIPELINE_AUDIT_SPOOL") or default_audit_spool(env))


@dataclass(frozen=True)
class Credentials:
    """Where the clusters, registries, CI server and audit sinks are and how to log in to
    them, read once per run.

    ``PIPELINE_KUBECONFIG`` (else ``KUBECONFIG``) and ``PIPELINE_KUBE_CONTEXT``; without a
    kubeconfig inside a pod (``KUBERNETES_SERVICE_HOST``) the in-cluster service account.
    ``PIPELINE_REGISTRY_USER``/``_PASSWORD`` for every registry; a build's env file may give
    other ones for its own registry (``Context.use_registry_credentials``).
    The CI servers: ``PIPELINELIB_JENKINS_URL`` (else Jenkins' ``JENKINS_URL``),
    ``PIPELINELIB_JENKINS_USER``, ``PIPELINELIB_JENKINS_TOKEN``; ``PIPELINELIB_GOCD_URL``
    (else the agent's ``GO_SERVER_URL``), ``PIPELINELIB_GOCD_TOKEN``. The git server
    (pull requests, commit statuses): ``PIPELINELIB_GITEA_URL``, ``PIPELINELIB_GITEA_TOKEN``
    (or ``_USER`` and ``_PASSWORD``). The audit sinks: ``PIPELINE_AUDIT_*``
    (``AuditSettings``). The signing keys (paths): ``PIPELINE_SIGNING_KEY`` (an SSH key:
    promotion and approval records), ``PIPELINE_ATTEST_KEY`` and its
    ``PIPELINE_ATTEST_KEY_PASSWORD`` (a PEM key: attestations and image signatures).
    """

    kubeconfig: str | None = None
    kube_context: str | None = None
    in_cluster: bool = False
    registry_user: str | None = None
    registry_password: str | None = field(default=None, repr=False)
    jenkins: Login = field(default_factory=Login)
    gocd: Login = field(default_factory=Login)
    gitea: Login = field(default_factory=Login)
    audit: AuditSettings = field(default_factory=AuditSettings)
    signing_key: str | None = None
    attest_key: str | None = None
    attest_key_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if env is None else env
        kubeconfig = env.get("PIPELINE_KUBECONFIG") or env.get("KUBECONFIG") or None
        return cls(
            kubeconfig=kubeconfig,
            kube_context=env.get("PIPELINE_KUBE_CONTEXT") or None,
            in_cluster=not kubeconfig and bool(env.get("KUBERNETES_SERVICE_HOST")),
            registry_user=env.get("PIPELINE_REGISTRY_USER") or None,
            registry_password=env.get("PIPELINE_REGISTRY_PASSWORD") or None,
            jenkins=Login(url=env.get("PIPELINELIB_JENKINS_URL") or env.get("JENKINS_URL")
                          or None, user=env.get("PIPELINELIB_JENKINS_USER") or None,
                          token=env.get("PIPELINELIB_JENKINS_TOKEN") or None),
            gocd=Login(url=env.get("PIPELINELIB_GOCD_URL") or env.get("GO_SERVER_URL")
                       or None, token=env.get("PIPELINELIB_GOCD_TOKEN") or None),
            gitea=Login(url=env.get("PIPELINELIB_GITEA_URL") or None,
                        user=env.get("PIPELINELIB_GITEA_USER") or None,
                        token=env.get("PIPELINELIB_GITEA_TOKEN") or None,
                        password=env.get("PIPELINELIB_GITEA_PASSWORD") or None),
            audit=AuditSettings.from_env(env),
            signing_key=env.get("PIPELINE_SIGNING_KEY") or None,
            attest_key=env.get("PIPELINE_ATTEST_KEY") or None,
            attest_key_password=env.get("PIPELINE_ATTEST_KEY_PASSWORD") or None,
        )

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Every password and token here (the context marks them secret)."""
        return (self.registry_password, self.jenkins.token, self.gocd.token,
                self.gitea.token, self.gitea.password, self.audit.password, self.audit.api_key,
                self.attest_key_password)


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
        adapters: adapter instances or factories by name (``docker``, ``kube`` ...); a test
            puts its own here. ``registry`` may be a client or a callable ``host -> client``.
        credentials: kubeconfig and registry logins, resolved once from the environment.
    """

    app: str = ""
    environment: str = ""
    revision: str = ""
    ci: CIInfo = field(default_factory=CIInfo.from_env)
    dry_run: bool = False
    secrets: Secrets = field(default_factory=Secrets)
    adapters: dict[str, Any] = field(default_factory=dict)
    credentials: Credentials = field(default_factory=Credentials.from_env)
    _registry_logins: dict[str, tuple[str | None, str | None]] = field(
        default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.secrets.add(*self.credentials.secrets)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **fields: Any) -> Context:
        """A context for the environment ``env`` (the CI server's variables and the
        credentials) instead of this process's: who runs, and where everything is."""
        return cls(ci=CIInfo.from_env(env), credentials=Credentials.from_env(env), **fields)

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

    # the systems ------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The container engine (``pipelinelib.adapters.docker_engine.DockerEngine``)."""
        engine: Engine = self.adapter("docker")
        return engine

    @property
    def docker(self) -> Engine:
        """The container engine (same as ``engine``)."""
        return self.engine

    @property
    def kube(self) -> Kube:
        """The run's cluster (``pipelinelib.adapters.kube.KubeClient``) from ``credentials``."""
        kube: Kube = self.adapter("kube")
        return kube

    def kube_for(self, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """The cluster an environment names (its own kubeconfig or context), else ``kube``.

        One client per (kubeconfig, context) for the whole run.
        """
        if not (kubeconfig or context):
            return self.kube
        name = f"kube:{kubeconfig or ''}#{context or ''}"
        client: Kube | None = self.adapters.get(name)
        if client is None:
            from pipelinelib.adapters.kube import KubeClient

            client = self.adapters[name] = KubeClient.from_kubeconfig(
                kubeconfig or self.credentials.kubeconfig, context)
        return client

    def use_kube(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        """Make ``kube`` the cluster of ``--kubeconfig``/``--context`` (when either is given)."""
        if kubeconfig or context:
            self.adapters["kube"] = self.kube_for(kubeconfig, context)

    def use_registry_credentials(self, host: str, user: str | None,
                                 password: str | None) -> None:
        """Log in to ``host`` as ``user`` (a build's env file) instead of the run's login."""
        self.secrets.add(password)
        self._registry_logins[host] = (user, password)
        self.adapters.pop(f"registry:{host}", None)

    def registry(self, host: str) -> Registry:
        """The registry at ``host`` (``pipelinelib.adapters.registry.RegistryClient``),
        logged in with the run's credentials; one client per host."""
        given = self.adapters.get("registry")
        if given is not None:
            if hasattr(given, "manifest_digest"):
                client: Registry = given
                return client
            client = given(host)
            return client
        name = f"registry:{host}"
        cached: Registry | None = self.adapters.get(name)
        if cached is None:
            from pipelinelib.adapters.registry import RegistryClient

            user, password = self._registry_logins.get(
                host, (self.credentials.registry_user, self.credentials.registry_password))
            cached = self.adapters[name] = RegistryClient(host, user, password)
        return cached

    def git(self, path: str | os.PathLike[str] = ".",
            remote: str | None = "origin") -> GitRepository:
        """The git repository at ``path`` (``pipelinelib.adapters.git_repo.GitRepo``)."""
        from pipelinelib.adapters.git_repo import GitRepo

        return GitRepo.open(path, remote)

    def database(self, dsn: str, *, application_name: str = "",
                 connect_timeout: int = 10) -> AbstractContextManager[Database]:
        """A PostgreSQL session (``with ctx.database(dsn) as db:``); the DSN's password is
        a secret from here on."""
        from pipelinelib.adapters.postgres import Postgres

        return Postgres.connect(dsn, secrets=self.secrets, application_name=application_name,
                                connect_timeout=connect_timeout)

    def git_server(self, url: str) -> tuple[GiteaClient | None, tuple[str, str] | None]:
        """The git server hosting the repository at ``url`` (the Gitea of
        ``credentials.gitea``) and its ``(owner, repo)``; ``(None, None)`` when the
        repository lives elsewhere."""
        from pipelinelib.adapters.gitea import GiteaClient, repository_on

        login = self.credentials.gitea
        where = repository_on(login.url, url) if login.url else None
        if where is None:
            return None, None
        return GiteaClient.login(login.url, login.user, login.token, login.password), where

    @property
    def ci_server(self) -> CIServer | None:
        """The CI server running this job, to talk back to (None: local run, no token)."""
        if "ci_server" not in self.adapters:
            self.adapters["ci_server"] = DEFAULT_FACTORIES["ci_server"](self)
        server: CIServer | None = self.adapters["ci_server"]
        return server

    @property
    def audit_sinks(self) -> list[AuditSink]:
        """Where audit events go (``credentials.audit``: a JSONL file, a search index)."""
        sinks: list[AuditSink] = self.adapter("audit")
        return sinks

    @property
    def audit_spool(self) -> Path:
        """Where audit events wait while their sink is down (``credentials.audit.spool``)."""
        return Path(self.credentials.audit.spool)

    @property
    def helm(self) -> Helm:
        """The ``helm`` tool (``pipelinelib.adapters.helm.HelmTool``)."""
        helm: Helm = self.adapter("helm")
        return helm

    @property
    def lighthouse(self) -> Lighthouse:
        """Lighthouse in headless Chromium (``pipelinelib.adapters.lighthouse.LighthouseTool``)."""
        lighthouse: Lighthouse = self.adapter("lighthouse")
        return lighthouse

    @property
    def http(self) -> Http:
        """Plain HTTP probes (``pipelinelib.adapters.http.HttpProbe``)."""
        http: Http = self.adapter("http")
        return http

    @overload
    def scanner(self, name: Literal["osv-scanner"], *, binary: str | None = None
                ) -> OsvScanner: ...

    @overload
    def scanner(self, name: Literal["clair"], *, indexer: str,
                matcher: str | None = None) -> ClairScanner: ...

    def scanner(self, name: str, *, binary: str | None = None, indexer: str = "",
                matcher: str | None = None) -> OsvScanner | ClairScanner:
        """A vulnerability scanner: ``osv-scanner`` (its binary: ``binary``,
        ``$PIPELINELIB_OSV_SCANNER`` or PATH) or ``clair`` (indexer/matcher URLs)."""
        given = self.adapters.get(f"scanner:{name}")
        if given is not None:
            scanner: OsvScanner | ClairScanner = given
            return scanner
        if name == "osv-scanner":
            from pipelinelib.adapters.osv_scanner import OsvScannerTool

            osv: OsvScanner = OsvScannerTool(binary)
            return osv
        if name == "clair":
            from pipelinelib.adapters.clair import ClairClient

            clair: ClairScanner = ClairClient(indexer, matcher)
            return clair
        raise KeyError(f"no scanner named {name!r}")

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


def _docker_from_env(ctx: Context) -> Engine:
    from pipelinelib.adapters.docker_engine import DockerEngine

    return DockerEngine.from_env()


def _kube_from_credentials(ctx: Context) -> Kube:
    from pipelinelib.adapters.kube import KubeClient

    cred = ctx.credentials
    if cred.in_cluster:
        return KubeClient.in_cluster()
    return KubeClient.from_kubeconfig(cred.kubeconfig, cred.kube_context)


def _ci_server(ctx: Context) -> CIServer | None:
    """The CI server running this job, to write back to: Jenkins (the build at
    ``ci.build_url``) or GoCD (the pipeline instance ``ci.job``/``ci.counter``); None
    without our API token there (a local run, a server not set up for write-back)."""
    ci, cred, redact = ctx.ci, ctx.credentials, ctx.secrets.redact_text
    if ci.provider == "jenkins" and cred.jenkins.token and ci.build_url:
        from pipelinelib.adapters.jenkins import BuildRef, JenkinsClient
        from pipelinelib.ci.reporter import JenkinsReporter

        client = JenkinsClient.login(cred.jenkins.url, cred.jenkins.user, cred.jenkins.token,
                                     secrets=ctx.secrets)
        return JenkinsReporter(client, BuildRef.from_url(ci.build_url), redact)
    if ci.provider == "gocd" and cred.gocd.token and ci.counter.isdigit():
        from pipelinelib.adapters.gocd import GoCDClient
        from pipelinelib.ci.reporter import GoCDReporter

        gocd = GoCDClient.login(cred.gocd.url, cred.gocd.token, secrets=ctx.secrets)
        return GoCDReporter(gocd, ci.job, int(ci.counter), redact)
    return None


def _audit_sinks(ctx: Context) -> list[AuditSink]:
    from pipelinelib.records.audit import sinks_for

    return sinks_for(ctx.credentials.audit)


def _helm(ctx: Context) -> Helm:
    from pipelinelib.adapters.helm import HelmTool

    return HelmTool()


def _http(ctx: Context) -> Http:
    from pipelinelib.adapters.http import HttpProbe

    return HttpProbe()


def _lighthouse(ctx: Context) -> Lighthouse:
    from pipelinelib.adapters.lighthouse import LighthouseTool

    return LighthouseTool()


DEFAULT_FACTORIES: dict[str, AdapterFactory] = {
    "docker": _docker_from_env,
    "kube": _kube_from_credentials,
    "ci_server": _ci_server,
    "audit": _audit_sinks,
    "helm": _helm,
    "http": _http,
    "lighthouse": _lighthouse,
}
