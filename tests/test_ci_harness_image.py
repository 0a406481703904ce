"""The CI agents' tool image (tool-image/, `make image`), built in the testbed engine, runs
`pipeline rollout` and `pipeline migrate` from inside against the testbed (--network host),
as a Jenkins Kubernetes-plugin pod or a GoCD elastic agent would: the deployer's kubeconfig
and the DSN come in as a mounted file and an environment variable, nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pipelinelib.testing.testbed import parse_exports
from tests.helpers.kube import Cluster
from tests.helpers.manifests import web, write
from tests.helpers.paths import ROOT
from tests.helpers.tools import tool_exports


@pytest.fixture(scope="module")
def tool_image(registry_env: dict[str, str], kube_env: dict[str, str]) -> str:
    """Build (or reuse) the image; ~the first build debootstraps Debian (cached)."""
    env = {**os.environ, **registry_env, **kube_env}
    out = subprocess.run([str(ROOT / "tool-image" / "build")], capture_output=True, text=True,
                         env=env, timeout=1800, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    return parse_exports(out.stdout)["PIPELINELIB_TOOL_IMAGE"]


def docker_run(image: str, env: dict[str, str], *args: str, mounts: dict[str, str],
               docker_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    volumes = [a for src, dst in mounts.items() for a in ("-v", f"{src}:{dst}:ro")]
    variables = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    return subprocess.run(["docker", "run", "--rm", "--network", "host", *volumes, *variables,
                           image, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **docker_env}, check=False)


def test_the_image_holds_the_pinned_tools(tool_image: str, registry_env: dict[str, str]
                                          ) -> None:
    out = docker_run(tool_image, {}, "sh", "-c",
                     "pipeline --version; helm version --short; osv-scanner --version | head -1;"
                     " kubectl version --client; squawk --version; id -u",
                     mounts={}, docker_env=registry_env)
    assert out.returncode == 0, out.stderr[-2000:]
    helm = tool_exports("helm")["PIPELINELIB_HELM"]
    helm_version = Path(helm).parents[1].name  # .../helm/<version>/bin/helm
    lines = out.stdout.splitlines()
    assert lines[0].startswith("pipelinelib ")
    assert lines[1].startswith(helm_version), (helm_version, lines)
    assert any("osv-scanner version" in line for line in lines)
    assert any(line.startswith("Client Version: v1.35") for line in lines)
    assert any("squawk" in line for line in lines)
    assert lines[-1] == "1000", "runs as an unprivileged user"
    if (ROOT / "testbed" / "tools" / "oasdiff").exists():  # pinned there (the API-diff work)
        found = docker_run(tool_image, {}, "oasdiff", "--version", mounts={},
                           docker_env=registry_env)
        assert found.returncode == 0 and "oasdiff" in found.stdout, found.stderr


def test_rollout_and_migrate_run_from_inside_the_image_against_the_testbed(
        tool_image: str, cluster: Cluster, postgres_db: str, registry_env: dict[str, str],
        tmp_path: Path) -> None:
    ns = cluster.namespace("img")
    work = tmp_path / "work"
    (work / "migrations").mkdir(parents=True)
    write(work / "k8s" / "web.yaml", web(1, replicas=1))
    (work / "migrations" / "V1__create_visits.sql").write_text(
        "create table visits (id bigint generated always as identity primary key,"
        " path text not null);\n")
    kubeconfig = work / "kubeconfig"  # readable by the image's unprivileged user
    kubeconfig.write_text(Path(cluster.deployer_kubeconfig).read_text())
    for path in (work, work / "k8s", work / "migrations"):
        path.chmod(0o755)
    for path in work.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    mounts = {str(work): "/work"}

    rollout = docker_run(tool_image, {"KUBECONFIG": "/work/kubeconfig"}, "pipeline",
                         "--report-dir", "/tmp/reports", "rollout", "/work/k8s", "--app", "web",
                         "--namespace", ns, mounts=mounts, docker_env=registry_env)
    assert rollout.returncode == 0, rollout.stderr[-3000:]
    deployment = cluster.json("-n", ns, "get", "deployment", "web")
    assert deployment["status"].get("readyReplicas") == 1
    events = [json.loads(line) for line in rollout.stderr.splitlines() if line.startswith("{")]
    assert events, "JSON logs in CI (PIPELINE_LOG_FORMAT=json in the image)"

    migrate = docker_run(tool_image, {"PIPELINE_DB_DSN": postgres_db}, "pipeline",
                         "--report-dir", "/tmp/reports", "migrate", "--dir", "/work/migrations",
                         mounts=mounts, docker_env=registry_env)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    import psycopg

    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("select count(*) from visits").fetchone() == (0,)
    again = docker_run(tool_image, {"PIPELINE_DB_DSN": postgres_db}, "pipeline",
                       "--report-dir", "/tmp/reports", "migrate", "--dir", "/work/migrations",
                       mounts=mounts, docker_env=registry_env)
    assert again.returncode == 0 and '"status": "unchanged"' in again.stderr, again.stderr[-2000:]
