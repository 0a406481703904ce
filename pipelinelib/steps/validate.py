"""Validate inputs before anything is written anywhere.

``validate_build``: a build's inputs (env file, names, Dockerfile, git, registry).
``validate_inputs``: the files of ``pipeline validate`` — manifests (kustomize built),
environment specs (charts rendered), policies, budgets, gate configs — each checked as the
command that uses it would check it, every problem reported together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelinelib import buildspec
from pipelinelib.context import Context
from pipelinelib.errors import BadInput
from pipelinelib.result import StepResult
from pipelinelib.step import step


@step("validate")
def validate_build(ctx: Context, options: dict[str, Any], *, push: bool = True) -> StepResult:
    """Load the build spec (env file, names, Dockerfile, git) and the registry login.

    Outputs ``_spec`` for the next steps (removed before reporting). The env file's
    REGISTRY_USER/REGISTRY_PASSWORD, when given, become the context's login to the spec's
    registry (``ctx.registry(host)``).
    """
    spec = buildspec.load(ctx, **options)
    spec.env.register_secrets(ctx.secrets)
    ctx.app = ctx.app or spec.name.container_name
    ctx.revision = spec.revision
    if push:
        if not spec.name.registry:
            raise BadInput(
                "no registry to push to",
                source=spec.env.path,
                field="REGISTRY",
                expected="host[:port], or --no-push",
            )
        # the env file's login, else the run's (PIPELINE_REGISTRY_USER/_PASSWORD)
        user = spec.env.get("REGISTRY_USER") or ctx.credentials.registry_user
        password = spec.env.get("REGISTRY_PASSWORD") or ctx.credentials.registry_password
        ctx.secrets.add(password)
        if bool(user) != bool(password):
            raise BadInput(
                "registry user and password must be given together",
                source=spec.env.path,
                field="REGISTRY_USER/REGISTRY_PASSWORD",
            )
        if user or password:
            ctx.use_registry_credentials(spec.name.registry, user, password)
    return StepResult.of(
        "validate",
        [],
        summary=f"{spec.ref} (revision {spec.revision[:12]})",
        image=str(spec.ref),
        tags=list(spec.all_tags),
        _spec=spec,
    )


# `pipeline validate`: every input file, offline or against a cluster -----------------------

KINDS = ("manifests", "environment", "env-repo", "promotion-policy", "scan-policy", "budget",
         "gate")


def detect(path: Path) -> str:
    """What ``path`` holds, from its layout and first document (``KINDS``)."""
    from pipelinelib import yamlsafe
    from pipelinelib.kube import kustomize

    if path.is_dir():
        if (path / "environments").is_dir():
            return "env-repo"
        return "manifests" if kustomize.kustomization(path) or not (
            path / "gate.yaml").is_file() else "gate"
    docs = yamlsafe.safe_load_all(path)
    first = docs[0] if docs else None
    if not isinstance(first, dict):
        return "manifests"  # the manifest checks say what is wrong with it
    if first.get("kind") == "Environment":
        return "environment"
    if "apiVersion" in first or "kind" in first or len(docs) > 1:
        return "manifests"
    keys = set(first)
    for kind, marks in (("promotion-policy", {"groups", "environments"}),
                        ("scan-policy", {"fail_on", "only_fixable", "ignore",
                                         "unknown_severity"}),
                        ("budget", {"categories", "metrics"}),
                        ("gate", {"marks", "test_reports", "overriders", "openapi"})):
        if keys & marks:
            return kind
    return "manifests"


def _problems_of(error: BadInput) -> list[BadInput]:
    from pipelinelib.envspec.load import SpecInvalid

    if isinstance(error, SpecInvalid):
        return [BadInput(p.message, source=p.source, line=p.line, field=p.field or None,
                         expected=p.expected) for p in error.problems]
    return list(getattr(error, "problems", None) or [error])


def check_manifests(ctx: Context, docs: Any, namespace: str, kube: Any,
                    pins: dict[str, Any] | None = None, app: str | None = None
                    ) -> tuple[int, list[BadInput]]:
    """(objects, problems) of a manifest set: the rollout's checks without a write."""
    from pipelinelib.kube import manifests as mf
    from pipelinelib.kube.images import pin

    problems = [p for p in (mf.check_name(namespace, "namespace", "--namespace"),
                            mf.check_name(app, "app name", "--app") if app else None) if p]
    try:
        loaded = mf.load(docs)
    except BadInput as exc:
        return 0, [*problems, *_problems_of(exc)]
    try:
        pin(loaded, pins or {})
    except BadInput as exc:
        problems.append(exc)
    found = mf.problems(loaded, namespace, kube)
    problems += found
    if kube is not None:  # offline, an unshipped reference may well exist
        from pipelinelib.kube.schema import Schemas

        exists = _namespace_exists(kube, namespace)
        problems += mf.reference_problems(loaded, kube, namespace, exists)
        problems += Schemas(kube).problems(loaded)
    return len(loaded), problems


def _namespace_exists(kube: Any, namespace: str) -> bool:
    from pipelinelib.steps.rollout import namespace_exists

    return namespace_exists(kube, namespace)


def check_environment(ctx: Context, path: Path, root: Path | None, kube: Any
                      ) -> tuple[int, list[BadInput]]:
    """An environment spec: the spec itself, then each app's rendered manifests."""
    from pipelinelib.envspec.load import load_environment
    from pipelinelib.steps.plan import render_all

    env = load_environment(path, root=root)
    rendered = render_all(env)
    count, problems = 0, []
    for name, docs in sorted(rendered.items()):
        app = env.apps[name]
        image = app.image
        if image is not None and not image.digest:  # `pipeline apply` refuses it the same way
            problems.append(BadInput(f"{image.ref} is not pinned by digest",
                                     source=str(path), field=f"apps.{name}.image",
                                     expected="image.digest (pipeline promote writes it)"))
        n, found = check_manifests(ctx, docs, app.namespace, kube, app=name)
        count += n
        problems += [BadInput(f"{path} app {name}: {p.message}") for p in found
                     if not (image is not None and image.ref in p.message
                             and "not pinned" in p.message)]
    return count, problems


@step("validate-inputs")
def validate_inputs(ctx: Context, paths: list[str], *, namespace: str = "default",
                    app: str | None = None, kube: Any = None,
                    pins: dict[str, Any] | None = None) -> StepResult:
    """Validate every file (kind detected): all problems at once, BadInput when any.

    Offline unless ``kube`` is given: then kinds come from the cluster's discovery and fields
    from its OpenAPI schema. Charts are rendered (helm), policies and budgets loaded."""
    from pipelinelib.kube.manifests import Invalid

    problems: list[BadInput] = []
    checked = []
    for text in paths:
        path = Path(text)
        try:
            kind = "manifests" if not path.exists() else detect(path)
            count = 0
            if kind == "manifests":
                count, found = check_manifests(ctx, path, namespace, kube, pins, app)
                problems += found
            elif kind == "environment":
                count, found = check_environment(ctx, path, path.parent.parent, kube)
                problems += found
            elif kind == "env-repo":
                from pipelinelib.envspec.load import list_environments
                from pipelinelib.promotion.policy import POLICY_FILE, load_policy

                for env_name in list_environments(path):
                    try:
                        n, found = check_environment(
                            ctx, path / "environments" / f"{env_name}.yaml", path, kube)
                        count += n
                        problems += found
                    except BadInput as exc:
                        problems += _problems_of(exc)
                if (path / POLICY_FILE).is_file():
                    load_policy(path)
            elif kind == "promotion-policy":
                from pipelinelib.promotion.policy import load_policy

                load_policy(path.parent)
            elif kind == "scan-policy":
                from pipelinelib.scan.policy import load_policy as load_scan_policy

                load_scan_policy(path)
            elif kind == "budget":
                from pipelinelib.perf.lighthouse import load_budget

                load_budget(path)
            elif kind == "gate":
                from pipelinelib.gate.config import load_config

                load_config(path if path.is_dir() else path.parent,
                            None if path.is_dir() else path)
            checked.append(f"{text}: {kind}" + (f", {count} objects" if count else ""))
        except BadInput as exc:
            problems += _problems_of(exc)
    for line in checked:
        ctx.log.info("checked", input=line)
    Invalid.raise_if(problems)
    return StepResult.of("validate-inputs", [], summary=f"{len(paths)} inputs valid",
                         checked=checked, offline=kube is None)
