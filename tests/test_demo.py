"""The README's demo pipeline, end to end on the testbed: every stage in order, every gate bites.

It runs examples/demo/run as `make demo` does (about 7 minutes on the shared testbed, the
release managers' part included), so it needs every component: Docker engine, registry,
Kubernetes, PostgreSQL, OSV-Scanner and Lighthouse. The release managers' part sets up its
own trust root (examples/demo/trust-root): promotions and approvals are signed.
Every `pipeline` command deploys as the least-privilege deployer: the apiserver's audit log
shows the admin only setting up (namespaces, the deployer's RoleBindings, the operations'
Secrets, one hand-made scale) and the deployer writing every workload.
"""

from __future__ import annotations

import os
import re
import subprocess

import psycopg
import pytest

from pipelinelib.promotion import approvals
from pipelinelib.promotion.trust import NS_APPROVAL, NS_PROMOTION, TrustRoot, policy_signers
from tests.helpers.audit_log import DEPLOYER, WRITE_VERBS, AuditLog
from tests.helpers.kube import Kubectl
from tests.helpers.paths import ROOT

# the order: build -> scan -> perf -> gate -> migrate -> rollout -> annotate -> promote
STAGES = ["build:", "build again:", "scan:", "perf:", "gate:", "migrate:", "gate mark 2 again",
          "rollout:", "annotate:", "serve:", "what the gates catch", "release manager:",
          "status page:", "done in "]
# each bad variant, in order, with what the reason must name (the gate that caught it)
CAUGHT = [
    ("scan (", "finding(s) at or above HIGH (first: UNKNOWN DSA-5497-1 [CVE-2023-4863]"),
    ("perf (", "total-byte-weight: "),
    ("gate mark 4 (", "release gate failed: ✗ 4: 2 breaking change(s) in 1.0.0 -> 1.1.0"),
    ("gate mark 5 (", "release gate failed: ✗ 5: GET /api/greeting (getGreeting): audit mapping"),
    ("gate mark 2 (", "release gate failed: ✗ 2: 1 migration(s) pending: V3__drop_path.sql"),
    ("migrate lint (", "V3__drop_path.sql:3 ban-drop-column: visits.path"),
    ("migrate (an applied migration was edited)", "V1__create_visits.sql: applied migration "
                                                  "was edited"),
    ("rollout (the new pods crash-loop", "CrashLoopBackOff"),
]
# what the release managers' part must refuse (seeds 004 and 002), in order, and why
REFUSED = [
    "records-api: dev-dana may not promote into qa",
    "records-api: prod needs a second person's approval (four eyes) and there is none",
    "apply of prod refused: prod/records-api",  # a change pushed into prod by hand
    "records-api: prod needs a second person's approval (four eyes)",  # hot-fix, no approval
    "dev-dana may not swap uro in staging",
]
ADMIN = "pipelinelib-admin"  # the testbed's admin kubeconfig
# what the admin may write in the demo's namespaces: set-up only (and the hand-made scale
# of records-api in qa that `pipeline plan` must then report as drift)
ADMIN_WRITES = {"namespaces", "rolebindings", "secrets", "deployments/scale"}


@pytest.mark.slow
@pytest.mark.timeout(960)  # the demo's own limit is 900 s; under load it takes 7-10 min
def test_demo_runs_every_stage_in_order_and_each_gate_catches_its_bad_variant(
        docker_env, registry_env, kube_env, node_env, postgres_env, tmp_path):
    env = {**os.environ, **docker_env, **registry_env, **kube_env, **node_env, **postgres_env,
           "DEMO_DIR": str(tmp_path), "PIPELINE_LOG_FORMAT": "console"}
    audit = AuditLog(kube_env["PIPELINELIB_KUBE_AUDIT_LOG"])
    out = subprocess.run([str(ROOT / "examples" / "demo" / "run")], env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    text = out.stdout + out.stderr
    try:
        check_the_demo(text, out.returncode, audit, tmp_path)
    finally:  # the demo leaves its namespaces and database for a person to look at
        for stamp in set(re.findall(r"\bhello-demo-(\d+)\b", text)):
            for ns in (f"hello-demo-{stamp}", f"hello-demo-{stamp}-live"):
                Kubectl(kube_env)("delete", "namespace", ns, "--ignore-not-found",
                                  "--wait=false")
            with psycopg.connect(postgres_env["PIPELINELIB_PG_DSN"], autocommit=True) as db:
                db.execute(f'drop database if exists "hello_demo_{stamp}" with (force)')


def check_the_demo(text: str, returncode: int, audit: AuditLog, tmp_path) -> None:
    assert returncode == 0, text[-4000:]
    headers = re.findall(r"== (.*?)\x1b", text)
    positions = [next(i for i, h in enumerate(headers) if h.startswith(stage))
                 for stage in STAGES]
    assert positions == sorted(positions), headers
    caught = [line.removeprefix("caught: ") for line in text.splitlines()
              if line.startswith("caught: ")]
    assert len(caught) == len(CAUGHT), caught
    served = [line for line in text.splitlines() if line.startswith("live colour ")]
    assert len(served) == 2 and all("<title>hello from pipelinelib</title>" in x for x in served)
    assert served[0].endswith("release 1") and served[1].endswith("release 2"), served
    for line, (name, reason) in zip(caught, CAUGHT, strict=True):
        assert line.startswith(name) and reason in line, (name, reason, line)
    reports = tmp_path / "reports"
    for stage in ("scan", "perf", "gate", "migrate", "gate-migrated", "rollout", "annotate"):
        assert (reports / stage / "summary.md").read_text().startswith("# ✅"), stage
    for stage in ("scan", "perf", "gate"):  # a passed gate's checklist is in its summary
        assert f"## ✓ {stage}" in (reports / stage / "summary.md").read_text(), stage
    assert "first deployment to demo: nothing to compare" in (
        reports / "gate" / "summary.md").read_text()
    for stage in ("caught-scan", "caught-perf", "caught-gate-4", "caught-gate-5"):
        assert (reports / stage / "summary.md").read_text().startswith("# ❌"), stage
    failed = re.findall(r" failed: (.*?)(?:; next:|$)", text, re.M)
    at = 0
    for reason in REFUSED:  # in this order, among everything that failed on purpose
        at = next((i for i, f in enumerate(failed[at:], at) if reason in f), None)
        assert at is not None, (reason, failed)
        at += 1
    promote = tmp_path / "promote"
    trust, clone = TrustRoot(promote / "trust"), promote / "env-state"
    assert policy_signers(trust, (trust.directory / "policy.yaml").read_bytes()) == [
        "rm-alice", "rm-bob"]
    # prod's evidence in env-state: promotions signed by the CI key for rm-alice, approvals
    # (the hot-fix's, the whole set's) by rm-bob's own key
    for app in ("records-api", "patient-portal"):
        record = approvals.read_promotion(clone, "prod", app)
        assert record.promoted_by == "rm-alice", record
        assert trust.signer(approvals.signed_bytes(record), record.signature,
                            NS_PROMOTION) == "jenkins"
    for approval in (approvals.read_approval(clone, "prod", "records-api"),
                     approvals.read_set_approval(clone, "prod")):
        assert approval.approved_by == "rm-bob", approval
        assert trust.signer(approvals.signed_bytes(approval), approval.signature,
                            NS_APPROVAL) == "rm-bob"

    namespace = re.search(r"into (hello-demo-\d+) \(as the deployer\)", text).group(1)
    ours = (namespace, f"{namespace}-live", "ehealth-", "uro-")
    writes = [e for e in audit.events() if e.get("verb") in WRITE_VERBS
              and (e.get("objectRef") or {}).get("namespace", "").startswith(ours)]

    def resource(e: dict) -> str:
        ref = e["objectRef"]
        return ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")

    by_admin = sorted({f"{e['verb']} {resource(e)} in {e['objectRef']['namespace']}"
                       for e in writes if e["user"]["username"] == ADMIN
                       and resource(e) not in ADMIN_WRITES})
    assert not by_admin, by_admin
    deployed = {(e["objectRef"]["namespace"], resource(e)) for e in writes
                if e["user"]["username"] == DEPLOYER}
    for ns in (namespace, f"{namespace}-live", "ehealth-prod", "uro-staging"):
        assert (ns, "deployments") in deployed, (ns, sorted(deployed))
    assert (namespace, "leases") in deployed, "the deploy lock is the deployer's too"
