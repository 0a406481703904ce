"""Environment-state repositories for the environment tests: the example env-state repo
with a bare origin, environment files written from parts, the CI variables of a run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.helpers.git import add_origin, git, init_repo
from tests.helpers.paths import EXAMPLE_STATE

if TYPE_CHECKING:
    from tests.helpers.kube import Kubectl

__all__ = ["ci_env", "env_app", "env_file", "hand_edit", "pin",
           "put_in_place", "state_repo", "write_env", "write_staging"]


def state_repo(tmp_path: Path, prefix: str | None = None,
               extra_branches: tuple[str, ...] = ("prod", "sandbox")) -> tuple[Path, Path, str]:
    """A copy of examples/env-state in a git repo with a bare origin; image repositories
    renamed under a unique prefix. Returns (clone, origin, prefix)."""
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    clone = tmp_path / "env-state"
    shutil.copytree(EXAMPLE_STATE, clone)
    for path in (clone / "environments").glob("*.yaml"):
        text = path.read_text()
        text = text.replace("127.0.0.1:5001/ehealth/", f"127.0.0.1:5001/{prefix}/")
        text = text.replace("127.0.0.1:5001/vsekai/", f"127.0.0.1:5001/{prefix}/")
        text = text.replace("namespaces: [", f"namespaces: [{prefix}-")
        path.write_text(text)
    init_repo(clone, "initial environments")
    origin = add_origin(clone, tmp_path / "env-state-origin.git",
                        *[f"main:{b}" for b in extra_branches])
    return clone, origin, prefix


def ci_env(user: str, provider: str = "jenkins", **extra: str) -> dict[str, str]:
    """The variables a CI server sets for a run triggered by ``user``."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("JENKINS_", "BUILD_", "GO_", "JOB_"))}
    if provider == "jenkins":
        base.update(JENKINS_URL="http://jenkins.example/", BUILD_URL=
                    "http://jenkins.example/job/promote/7/", JOB_NAME="promote",
                    BUILD_NUMBER="7", BUILD_USER_ID=user)
    elif provider == "gocd":
        base.update(GO_PIPELINE_NAME="promote", GO_PIPELINE_COUNTER="3",
                    GO_SERVER_URL="https://gocd.example/go", GO_TRIGGER_USER=user)
    base.update(extra)
    return base


def pin(clone: Path, env: str, app: str, digest: str, tag: str | None = None) -> None:
    """Set an app's digest in a spec file and commit + push (like a developer would)."""
    from pipelinelib.envspec import yamlines

    git(clone, "pull", "-q", "--rebase", "origin", "main")
    path = clone / "environments" / f"{env}.yaml"
    text = yamlines.set_value(path.read_text(), ("apps", app, "image", "digest"), digest)
    if tag:
        text = yamlines.set_value(text, ("apps", app, "image", "tag"), tag)
    path.write_text(text)
    git(clone, "commit", "-q", "-am", f"{env}: {app} at {digest[:19]}")
    git(clone, "push", "-q", "origin", "HEAD:main")


def env_file(name: str, namespace: str, repository: str, digest: str, source: str = "") -> str:
    """An Environment with one app ``api`` at ``repository@digest`` (promoted from
    ``source`` when given)."""
    promotion = f"promotion:\n  from: [{source}]\n" if source else ""
    return (f"apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: {name}\n"
            f"namespaces: [{namespace}]\n{promotion}apps:\n  api:\n"
            f"    image:\n      repository: {repository}\n      tag: \"1.0.0\"\n"
            f"      digest: \"{digest}\"\n"
            f"    replicas: 1\n    ports: [{{name: http, port: 8080}}]\n    timeout: 60\n")


def hand_edit(clone: Path, env: str, old: str, new: str, author: str) -> str:
    """``author`` replaces ``old`` by ``new`` in an environment file and pushes it straight
    to main (no promotion); the new commit's short SHA."""
    git(clone, "pull", "-q", "--rebase", "origin", "main")
    path = clone / "environments" / f"{env}.yaml"
    path.write_text(path.read_text().replace(old, new))
    git(clone, "-c", f"user.name={author}", "-c", f"user.email={author}@example.org",
        "commit", "-q", "--author", f"{author} <{author}@example.org>", "-am", "by hand")
    git(clone, "push", "-q", "origin", "HEAD:main")
    return git(clone, "rev-parse", "HEAD")[:12]


def write_env(root: Path, name: str, namespace: str, apps: str, extra: str = "") -> None:
    """environments/NAME.yaml with ``apps`` (``env_app`` texts) in ``namespace``."""
    (root / "environments").mkdir(parents=True, exist_ok=True)
    (root / "environments" / f"{name}.yaml").write_text(
        f"apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: {name}\n"
        f"namespaces: [{namespace}]\n{extra}apps:\n{apps}")


def env_app(name: str, priority: int = 0, replicas: int = 1, behavior: str = "",
            ready_after: str = "", tag: str = "1.0") -> str:
    """One app's entry in an Environment (a made-up digest per name and tag)."""
    digest = "sha256:" + hashlib.sha256(f"{name}:{tag}".encode()).hexdigest()
    text = (f"  {name}:\n    image: {{repository: 127.0.0.1:5001/t/{name}, tag: \"{tag}\", "
            f"digest: \"{digest}\"}}\n"
            f"    replicas: {replicas}\n    priority: {priority}\n"
            f"    config: {{LOG_LEVEL: info}}\n    ports: [{{name: http, port: 8080}}]\n"
            f"    dns: [{name}.example]\n    timeout: 30\n")
    annotations = {}
    if behavior:
        annotations["pipelinelib.dev/behavior"] = behavior
    if ready_after:
        annotations["pipelinelib.dev/ready-after"] = ready_after
    if annotations:
        text += f"    annotations: {json.dumps(annotations)}\n"
    return text


PLAN_PLANTED = "planted-plan-secret-5c1d"


def write_staging(root: Path, ns: str, replicas: int = 2, tag: str = "1.0",
                  apps: str = "web") -> None:
    """environments/staging.yaml with ``apps`` (comma-separated), each with config, a
    planted env value (``PLAN_PLANTED``), a secret reference, a port and DNS."""
    (root / "environments").mkdir(parents=True, exist_ok=True)
    body = "".join(f"""\
  {name}:
    image: {{repository: 127.0.0.1:5001/t/{name}, tag: "{tag}"}}
    replicas: {replicas}
    config: {{LOG_LEVEL: info}}
    env: {{MODE: prod, API_TOKEN: {PLAN_PLANTED}}}
    secrets: {{DATABASE_URL: {{secret: db, key: url}}}}
    ports: [{{name: http, port: 8080}}]
    dns: [{name}.{ns}.example]
    resources: {{memory: 64Mi, cpu: 100m}}
""" for name in apps.split(","))
    (root / "environments" / "staging.yaml").write_text(
        "apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: staging\n"
        f"namespaces: [{ns}]\napps:\n{body}")


def put_in_place(kubectl: Kubectl, root: Path) -> None:
    """Leave the cluster as an apply of the current staging spec would (admin kubectl)."""
    from pipelinelib.envspec.load import load_environment
    from pipelinelib.steps.plan import render_all

    env = load_environment(root / "environments" / "staging.yaml", root=root)
    docs = [m.obj for app, ds in render_all(env).items()
            for m in stamped(ds, app, env.apps[app].namespace)]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": docs}))


def stamped(docs: list[dict[str, Any]], app: str, namespace: str) -> list[Any]:
    """Rendered docs as the rollout step applies them (ownership labels, applied hash)."""
    from pipelinelib.kube import manifests as mf

    manifests = [mf.Manifest(doc, "<render>", i) for i, doc in enumerate(docs)]
    mf.stamp(manifests, app, namespace, mf.Record())
    return manifests
