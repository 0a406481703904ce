"""The desired state of one environment, as plain dataclasses (validated on load)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PRIORITY = 0
# Apps of one priority applied at once. Measured (benchmarks/apply_parallel.py, 20 changed
# apps vs 1, testbed): wait-bound (pods ready after 3 s) 4 -> 4.7x, 8 -> 3.2x, 16 -> 2.7x,
# 20 -> 1.7-1.9x; CPU-bound (2 cores, kwok ready at once) 4, 8, 16 and 20 all ~4x, no worse
# at 20. Each waiting rollout holds 3 watches (Deployment, ReplicaSet, Pod): 20 x 3 stays
# within the kube adapter's 64 pooled connections.
DEFAULT_PARALLEL = 20
DEFAULT_TIMEOUT = 300
ROLLING, BLUE_GREEN = "rolling", "blue-green"


@dataclass(frozen=True)
class ImageSpec:
    """Which image an app runs: repository plus tag and/or digest (digest wins)."""

    repository: str
    tag: str | None = None
    digest: str | None = None
    revision: str | None = None
    version: str | None = None

    @property
    def ref(self) -> str:
        """The reference deployed: ``repo@digest`` when pinned, else ``repo:tag``."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"

    @property
    def registry_and_path(self) -> tuple[str, str]:
        """``(registry host, repository path)``; host empty when the name has none."""
        first, _, rest = self.repository.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return first, rest
        return "", self.repository


@dataclass(frozen=True)
class ChartSpec:
    """A Helm chart: name, repository (local path, https URL or oci://) and version."""

    name: str
    repository: str
    version: str

    @property
    def kind(self) -> str:
        """``oci``, ``repo`` (an http(s) chart repository) or ``local``."""
        if self.repository.startswith("oci://"):
            return "oci"
        if self.repository.startswith(("http://", "https://")):
            return "repo"
        return "local"


@dataclass(frozen=True)
class SecretRef:
    """An environment variable read from an existing Secret (never the value itself)."""

    secret: str
    key: str


@dataclass(frozen=True)
class NamespaceSpec:
    """A namespace apps deploy into: protection, labels, annotations, limits and quotas."""

    name: str
    protected: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    limits: list[dict[str, Any]] = field(default_factory=list)
    quotas: dict[str, str] = field(default_factory=dict)


@dataclass
class AppSpec:
    """One app of an environment; see schema/environment.schema.json for each field."""

    name: str
    image: ImageSpec | None
    namespace: str
    manifests: str | None = None
    chart: ChartSpec | None = None
    values: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    ports: list[dict[str, Any]] = field(default_factory=list)
    replicas: int = 1
    resources: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, SecretRef] = field(default_factory=dict)
    dns: list[str] = field(default_factory=list)
    priority: int = DEFAULT_PRIORITY
    protected: bool = False
    timeout: int = DEFAULT_TIMEOUT
    annotations: dict[str, str] = field(default_factory=dict)
    strategy: str = ROLLING
    await_promotion: bool | None = None
    images: dict[str, ImageSpec] = field(default_factory=dict)
    values_files: list[str] = field(default_factory=list)
    set: dict[str, Any] = field(default_factory=dict)
    set_string: dict[str, str] = field(default_factory=dict)
    max_history: int | None = None
    replicas_given: bool = True  # False: a chart's/manifests' own replica count stands
    line: int | None = None

    @property
    def image_ref(self) -> str:
        """The app's own image reference, or "" when only ``images`` (or the chart) name it."""
        return self.image.ref if self.image else ""

    @property
    def blue_green(self) -> bool:
        """True when the app is deployed blue/green (two colours behind its Services)."""
        return self.strategy == BLUE_GREEN

    def fingerprint(self) -> str:
        """A short hash of everything that shapes the deployment (not the line)."""
        data = asdict(self)
        data.pop("line", None)
        for name, default in (("strategy", ROLLING), ("await_promotion", None), ("images", {}),
                              ("values_files", []), ("set", {}), ("set_string", {}),
                              ("max_history", None), ("replicas_given", True)):
            if data.get(name) == default:  # unchanged hashes for specs without them
                data.pop(name)
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()


@dataclass
class EnvSpec:
    """One environment file: settings and apps by name."""

    name: str
    source: str
    apps: dict[str, AppSpec]
    namespaces: list[str] = field(default_factory=list)
    namespace_specs: dict[str, NamespaceSpec] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    env_problems: list[Any] = field(default_factory=list)  # $NAME not set (load.Problem)
    context: str | None = None
    kubeconfig: str | None = None
    branch: str | None = None
    promote_from: list[str] = field(default_factory=list)
    via_branch: str | None = None
    max_parallel: int = DEFAULT_PARALLEL
    await_promotion: bool = False
    root: Path | None = None
    text: str = ""

    def awaits_promotion(self, app: AppSpec) -> bool:
        """Whether apply stops ``app`` (blue/green) with the new colour ready, unswitched."""
        if not app.blue_green:
            return False
        return self.await_promotion if app.await_promotion is None else app.await_promotion

    def protected(self, app: AppSpec | str) -> bool:
        """Whether an app (or a namespace, by name) is protected: its own flag or its
        namespace's (namespace protection wins, as in helmsman)."""
        if isinstance(app, str):
            ns = self.namespace_specs.get(app)
            return bool(ns and ns.protected)
        return app.protected or self.protected(app.namespace)

    def by_priority(self) -> list[tuple[int, list[AppSpec]]]:
        """Apps grouped by priority, lowest number first; names sorted within a group."""
        groups: dict[int, list[AppSpec]] = {}
        for app in sorted(self.apps.values(), key=lambda a: a.name):
            groups.setdefault(app.priority, []).append(app)
        return sorted(groups.items())
