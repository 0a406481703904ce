"""Kill the pull-request promotion (request, merge, apply, report back) right after each of
its writes, then re-run: it converges, and nothing is duplicated.

Real Gitea, real control plane (least-privilege deployer), the JSONL audit sink. A write is
what a system took: a Gitea API call other than GET, a Kubernetes write answered < 300 (not
a dry run), an audit line appended. The crasher wraps those three seams in the real code and
``os._exit``s (no clean-up, like SIGKILL) right after the k-th. The procedure is two runs as
CI makes them — the requester's (opens the pull request), then, after another release
manager's review, the timer's (merges, applies, reports) — so the kill points of both are
walked in order. After the re-run: one merged promotion pull request, the new image
deployed, one ``success`` status and one comment on the merge commit, one audit event per
kind (promotion request, approval, deployment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.envstate import ci_env
from tests.helpers.pull_request import (
    PullRequestWorld,
    change_master,
    deployed_image,
    drop_world,
    make_pr_world,
    open_pr,
    spec_digest,
)
from tests.helpers.queue import statuses_of

CRASHER = """
import json, os, sys
from pipelinelib.adapters.gitea import GiteaClient
from pipelinelib.adapters.kube import KubeClient
import pipelinelib.records.audit as records_audit

crash_at, journal, count = int(sys.argv[1]), sys.argv[2], [0]
def wrote(what):
    count[0] += 1
    with open(journal, "a") as f:
        f.write(json.dumps(what) + "\\n")
    if count[0] == crash_at:
        os._exit(137)

gitea_json = GiteaClient._json
def _json(self, method, path, **kw):
    out = gitea_json(self, method, path, **kw)
    if method != "GET":
        wrote("gitea " + method + " " + path.split("/", 4)[-1].split("/", 1)[-1])
    return out
GiteaClient._json = _json

kube_raw = KubeClient.raw
def raw(self, method, path, query=None, *args, **kw):
    status, data = kube_raw(self, method, path, query, *args, **kw)
    if method != "GET" and status < 300 and not (query or {}).get("dryRun"):
        wrote("kube " + method + " " + path)
    return status, data
KubeClient.raw = raw

audit_record = records_audit.record
def lines():
    path = os.environ["PIPELINE_AUDIT_FILE"]
    return sum(1 for _ in open(path)) if os.path.exists(path) else 0
def record(ctx, action, **kw):
    before = lines()
    event = audit_record(ctx, action, **kw)
    if lines() > before:
        wrote("audit " + action)
    return event
records_audit.record = record

from pipelinelib.cli import main
sys.exit(main(sys.argv[3:]))
"""


def run(w: PullRequestWorld, user: str, crash_at: int,
        journal: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPELINE_LOG_FORMAT": "json", **w.kube_env,
           **ci_env(user), **w.ci_env(), "PIPELINE_AUDIT_FILE": str(w.audit),  # type: ignore
           "PIPELINE_AUDIT_SPOOL": str(w.audit.parent / "spool")}  # type: ignore
    return subprocess.run([sys.executable, "-c", CRASHER, str(crash_at), str(journal),
                           "promote", "--to", "preprod", "--via-pull-request", "--repo", w.url,
                           "--branch", "master"], env=env, capture_output=True, text=True,
                          check=False, timeout=600)


def review(w: PullRequestWorld) -> None:
    pr = open_pr(w)
    assert pr is not None
    if not any(r.user == "bob" for r in w.client.reviews(w.owner, w.name, pr.number)):
        w.client.as_user("bob").review(w.owner, w.name, pr.number, "APPROVED", "ok",
                                       commit=pr.head_sha)


def fresh(gitea_env, kube_env, base: Path) -> PullRequestWorld:
    base.mkdir(parents=True)
    w = make_pr_world(gitea_env, kube_env, base, prefix="prkill")
    w.audit = base / "audit.jsonl"  # type: ignore[attr-defined]
    change_master(w, "1.1")
    return w


def converged(w: PullRequestWorld) -> None:
    assert open_pr(w) is None
    merged = [pr for pr in w.client.pull_requests(w.owner, w.name, "closed") if pr.merged]
    assert len(merged) == 1, "one promotion pull request"
    image = deployed_image(w)
    digest = spec_digest("1.1")
    assert image is not None and digest in image
    results = statuses_of(w, merged[0].merge_commit, "pipelinelib/preprod")
    assert results.count("success") == 1 and "failure" not in results, results
    comments = w.client.comments(w.owner, w.name, merged[0].number)
    assert sum("Successfully Deployed to preprod" in c["body"] for c in comments) == 1
    events = Counter(json.loads(line)["action"] for line in
                     w.audit.read_text().splitlines())  # type: ignore[attr-defined]
    assert events == Counter(promotion=1, approval=1, deployment=1), events


@pytest.mark.slow
def test_pull_request_promotion_killed_after_any_write_a_rerun_converges(
        gitea_env, kube_env, tmp_path):
    w = fresh(gitea_env, kube_env, tmp_path / "reference")
    try:
        first = run(w, "alice", 0, tmp_path / "reference-a.jsonl")
        assert first.returncode == 0, first.stderr[-3000:]
        review(w)
        second = run(w, "", 0, tmp_path / "reference-b.jsonl")
        assert second.returncode == 0, second.stderr[-3000:]
        converged(w)
        a = (tmp_path / "reference-a.jsonl").read_text().splitlines()
        b = (tmp_path / "reference-b.jsonl").read_text().splitlines()
    finally:
        drop_world(w)
    writes = [json.loads(x) for x in a + b]
    assert any(x.startswith("kube ") for x in writes) and "audit deployment" in writes, writes

    for at in range(1, len(writes) + 1):
        w = fresh(gitea_env, kube_env, tmp_path / f"trial-{at}")
        try:
            journal = tmp_path / f"trial-{at}.jsonl"
            if at <= len(a):
                assert run(w, "alice", at, journal).returncode == 137, f"trial {at}"
                again = run(w, "alice", 0, journal)
                assert again.returncode == 0, (at, writes[at - 1], again.stderr[-3000:])
                review(w)
                rest = run(w, "", 0, journal)
            else:
                assert run(w, "alice", 0, journal).returncode == 0
                review(w)
                assert run(w, "", at - len(a), journal).returncode == 137, f"trial {at}"
                rest = run(w, "", 0, journal)
            assert rest.returncode == 0, (at, writes[at - 1], rest.stderr[-3000:])
            converged(w)
        finally:
            drop_world(w)
