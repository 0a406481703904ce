"""`pipeline status`: table, JSON and a self-contained HTML page from the real cluster."""

from __future__ import annotations

import json

from tests.conftest import git, run_pipeline
from tests.fixtures.envs.kube import Kubectl
from tests.test_plan import put_in_place, write


def test_status_table_json_and_html(kube_env, tmp_path):
    kubectl = Kubectl(kube_env)
    repo = tmp_path / "state"
    ns = kubectl.namespace("st")
    write(repo, ns, replicas=1)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "staging: web 1.0\n\nApp: web\nPromoted-by: rm-alice (jenkins)")
    put_in_place(kubectl, repo)
    kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
    out = run_pipeline("status", "--repo", str(repo), "--output", "json",
                       "--html", str(tmp_path / "status.html"), env=kube_env)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = json.loads(out.stdout)["apps"]
    assert (row["environment"], row["app"], row["tag"]) == ("staging", "web", "1.0")
    assert row["health"] == "healthy" and row["in_sync"] and not row["drift"]
    assert row["deployed_by"] == "rm-alice (jenkins)"
    kubectl("-n", ns, "scale", "deployment", "web", "--replicas=3")
    table = run_pipeline("status", "--repo", str(repo), env=kube_env)
    assert table.returncode == 0, table.stderr[-3000:]
    header, line = table.stdout.splitlines()
    assert header.split()[:3] == ["environment", "app", "image"]
    assert line.split()[:3] == ["staging", "web", ":1.0"] and line.endswith("drift")
    page = (tmp_path / "status.html").read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert "<link" not in page and "src=" not in page, "self-contained"
    assert "<td>staging</td><td>web</td>" in page
