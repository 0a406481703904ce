"""`pipeline status`: table, JSON and a self-contained HTML page from the real cluster, read
as the least-privilege deployer (kubectl, admin, only puts objects in place)."""

from __future__ import annotations

import json

from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import put_in_place, write_staging
from tests.helpers.git import git, hotfix_repo, init_repo
from tests.helpers.kube import deployer_env


def test_status_table_json_and_html(kube_env, kubectl, tmp_path):
    repo = tmp_path / "state"
    ns = kubectl.namespace("st")
    write_staging(repo, ns, replicas=1)
    init_repo(repo, "staging: web 1.0\n\nApp: web\nPromoted-by: rm-alice (jenkins)")
    put_in_place(kubectl, repo)
    kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
    out = run_pipeline("status", "--repo", str(repo), "--output", "json",
                       "--html", str(tmp_path / "status.html"), env=deployer_env(kube_env))
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = json.loads(out.stdout)["apps"]
    assert (row["environment"], row["app"], row["tag"]) == ("staging", "web", "1.0")
    assert row["health"] == "healthy" and row["in_sync"] and not row["drift"]
    assert row["deployed_by"] == "rm-alice (jenkins)"
    kubectl("-n", ns, "scale", "deployment", "web", "--replicas=3")
    table = run_pipeline("status", "--repo", str(repo), env=deployer_env(kube_env))
    assert table.returncode == 0, table.stderr[-3000:]
    header, line = table.stdout.splitlines()
    assert header.split()[:3] == ["environment", "app", "image"]
    assert line.split()[:3] == ["staging", "web", ":1.0"] and line.endswith("drift")
    page = (tmp_path / "status.html").read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert "<link" not in page and "src=" not in page, "self-contained"
    # the matrix page: the cell of web in staging, healthy (scaled: drift), its digest
    assert 'data-environment="staging" data-app="web" data-health="healthy"' in page
    assert 'data-sync="in"' in page


def test_status_shows_a_hotfix_until_it_is_merged_back(kube_env, kubectl, tmp_path):
    app_repo = tmp_path / "app"
    fix = hotfix_repo(app_repo)
    repo = tmp_path / "state"
    ns = kubectl.namespace("hf")
    write_staging(repo, ns, replicas=1)
    (repo / "hotfixes" / "staging").mkdir(parents=True)
    (repo / "hotfixes" / "staging" / "web.yaml").write_text(
        f"fix_commit: {fix}\nsource_repo: {app_repo}\nmain_branch: main\nreason: CVE\n")
    init_repo(repo, "hot-fix")
    out = run_pipeline("status", "--repo", str(repo), env=deployer_env(kube_env))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "hot-fix NOT BACK-MERGED" in out.stdout
    # nothing runs there yet: no made-up image (the spec's tag) in the table
    line = out.stdout.splitlines()[1]
    assert line.split()[2] == "-" and "missing" in line, line
    git(app_repo, "checkout", "-q", "main")
    git(app_repo, "merge", "-q", "hotfix")
    out = run_pipeline("status", "--repo", str(repo), "--output", "json",
                       env=deployer_env(kube_env))
    (row,) = json.loads(out.stdout)["apps"]
    assert row["hotfix"] and row["hotfix_back_merged"] is True
