"""Secrets masked by kind, everywhere: one planted value per input, grepped in every output.

Inputs: a Helm chart's Secret (``data``), a manifests directory's Secret (``stringData`` and
``data``; later changed by hand, so a diff shows it), a DSN in the app's config, the
registry password, the CI server's BUILD_URL with ``user:password@``. Outputs: stdout and
stderr (console and JSON logs) of plan, apply --dry-run, rollout --dry-run and apply,
their JUnit XML, summary.json and summary.md, the audit records, and the labels and
annotations of every object the deploy wrote (as the deployer; kubectl only reads).
A Secret's own data is the one place the value belongs.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import yaml

from pipelinelib.secrets import MASK, Secrets, clean_url
from tests.helpers.cli import run_pipeline
from tests.helpers.git import git, init_repo
from tests.helpers.paths import FIXTURES

PLANTED = {
    "chart": "chart-secret-6b1d0e",
    "chart-new": "chart-secret-rotated-93aa",
    "string-data": "manifest-string-data-4c2f",
    "data": "manifest-data-b64-77e1",
    "dsn": "dsn-password-a51c",
    "registry": "registry-password-0f9b",
    "build-url": "build-url-password-d2e8",
}


def _forms(value: str) -> list[str]:
    return [value, base64.b64encode(value.encode()).decode()]


def test_one_masking_function_folds_urls_and_masks_secrets_by_kind():
    secrets = Secrets()
    assert clean_url("https://u:pw-1234@ci.example/job/1/?token=abcd&x=1") == \
        "https://ci.example/job/1/?token=***&x=1"
    assert secrets.redact_text("see postgres://app:pw-1234@db:5432/x now") == \
        "see postgres://db:5432/x now"
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "data": {"url": "aGVsbG8td29ybGQ="},
              "stringData": {"k": "v-1234"}}
    assert secrets.redact(secret)["data"] == {"url": MASK}
    assert secrets.redact(secret)["stringData"] == {"k": MASK}
    secrets.add_manifest(secret)
    assert secrets.redact_text("was hello-world, base64 aGVsbG8td29ybGQ=") == \
        f"was {MASK}, base64 {MASK}"


def _chart(root: Path, value: str) -> None:
    chart = root / "charts" / "portal"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: portal\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(f"url: {value}\n")
    (chart / "templates" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: portal-creds}\n"
        "data: {url: {{ .Values.url | b64enc | quote }}}\n")
    (chart / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: portal}\nspec:\n"
        "  replicas: 1\n  selector: {matchLabels: {app: portal}}\n  template:\n"
        "    metadata: {labels: {app: portal}}\n    spec:\n      containers:\n"
        "      - name: portal\n        image: example/portal:1\n"
        "        envFrom: [{secretRef: {name: portal-creds}}]\n")


def _env(root: Path, namespace: str) -> None:
    digest = "sha256:" + "c" * 64
    raw = root / "manifests" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "secret.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "raw-creds"},
        "stringData": {"token": PLANTED["string-data"]},
        "data": {"other": base64.b64encode(PLANTED["data"].encode()).decode()}}))
    (raw / "deployment.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "raw"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "raw"}}, "template": {
            "metadata": {"labels": {"app": "raw"}}, "spec": {"containers": [{
                "name": "raw", "image": f"127.0.0.1:5001/sec/raw@{digest}",
                "envFrom": [{"secretRef": {"name": "raw-creds"}}]}]}}}}))
    (root / "environments").mkdir(parents=True, exist_ok=True)
    (root / "environments" / "staging.yaml").write_text(f"""\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: staging
namespaces: [{namespace}]
apps:
  api:
    image: {{repository: 127.0.0.1:5001/sec/api, tag: "1.0", digest: "{digest}"}}
    replicas: 1
    config: {{DATABASE_URL: "postgres://app:{PLANTED['dsn']}@db.example:5432/records"}}
    ports: [{{name: http, port: 8080}}]
    timeout: 60
  portal:
    image: {{repository: 127.0.0.1:5001/sec/portal, tag: "1.0", digest: "{digest}"}}
    chart: {{name: portal, repository: charts/portal, version: 0.1.0}}
    replicas: 1
    timeout: 60
  raw:
    image: {{repository: 127.0.0.1:5001/sec/raw, tag: "1.0", digest: "{digest}"}}
    manifests: manifests/raw
    replicas: 1
    timeout: 60
""")


def test_a_planted_secret_in_every_input_appears_in_no_output(cluster, tmp_path):
    ns = cluster.namespace("sec")
    root = tmp_path / "env-state"
    _chart(root, PLANTED["chart"])
    _env(root, ns)
    init_repo(root, "staging")
    audit_log = tmp_path / "audit.jsonl"
    env = {**cluster.cli_env(),
           "BUILD_URL": f"https://ci-bot:{PLANTED['build-url']}@ci.example/job/web/9/",
           "PIPELINE_REGISTRY_USER": "ci-bot", "PIPELINE_REGISTRY_PASSWORD": PLANTED["registry"],
           "PIPELINE_AUDIT_FILE": str(audit_log)}
    outputs: dict[str, str] = {}

    def run(name: str, *args: str, ok: tuple[int, ...] = (0,)) -> None:
        report = tmp_path / f"report-{name}"
        out = run_pipeline("--report-dir", str(report), *args, env=env)
        assert out.returncode in ok, f"{name}: {out.stderr[-3000:]}"
        outputs[f"{name}: stdout"], outputs[f"{name}: stderr"] = out.stdout, out.stderr
        for path in sorted(report.glob("*")) if report.is_dir() else []:
            outputs[f"{name}: {path.name}"] = path.read_text()
        console = run_pipeline(*args, env={**env, "PIPELINE_LOG_FORMAT": "console"})
        outputs[f"{name}: console"] = console.stdout + console.stderr

    for step in ("first", "rotated"):
        run(f"plan-{step}", "plan", "staging", "--repo", str(root), ok=(0, 4))
        run(f"plan-json-{step}", "plan", "staging", "--repo", str(root), "--output", "json",
            ok=(0, 4))
        run(f"dry-run-{step}", "--dry-run", "apply", "staging", "--repo", str(root))
        run(f"rollout-dry-run-{step}", "--dry-run", "rollout", str(root / "manifests" / "raw"),
            "--app", "raw", "-n", ns)
        run(f"apply-{step}", "apply", "staging", "--repo", str(root))
        if step == "first":  # someone changes the chart's Secret by hand: data.url drifts
            name = next(o["metadata"]["name"] for o in cluster.json(
                "-n", ns, "get", "secret")["items"] if o["metadata"]["name"].startswith(
                "portal-creds"))
            cluster.kubectl("-n", ns, "patch", "secret", name, "--type=merge", "-p", json.dumps(
                {"data": {"url": base64.b64encode(PLANTED["chart-new"].encode()).decode()}}))
            raw = next(o["metadata"]["name"] for o in cluster.json(
                "-n", ns, "get", "secret")["items"] if o["metadata"]["name"].startswith(
                "raw-creds"))
            cluster.kubectl("-n", ns, "patch", "secret", raw, "--type=merge", "-p", json.dumps(
                {"stringData": {"token": PLANTED["chart-new"]}}))

    # a refusal is audited (who, commit, build URL): protect staging with no trust root
    (root / "policy.yaml").write_text("environments:\n  staging: {promote: ['*'], "
                                      "protected: true}\n")
    git(root, "add", "policy.yaml")
    git(root, "commit", "-q", "-m", "protect staging")
    _chart(root, PLANTED["chart-new"])
    git(root, "commit", "-q", "-am", "rotate the portal secret")
    run("refused", "apply", "staging", "--repo", str(root), ok=(2,))
    assert "staging/portal at commit" in outputs["refused: stderr"]

    diff = outputs["rollout-dry-run-rotated: stderr"]
    assert "update Secret/raw-creds" in diff, "the drifted Secret is shown, its values masked"
    outputs["audit log"] = audit_log.read_text()
    assert "ci.example/job/web/9/" in outputs["audit log"], "the audit names the build"
    live = cluster.json("-n", ns, "get", "deploy,svc,cm,secret,rs")["items"]
    for obj in live:
        meta = obj["metadata"]
        outputs[f"{obj['kind']}/{meta['name']} labels+annotations"] = json.dumps(
            [meta.get("labels"), meta.get("annotations")])
        template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
        outputs[f"{obj['kind']}/{meta['name']} pod template"] = json.dumps(template)
    secrets_live = {o["metadata"]["name"].rsplit("-", 1)[0]: o for o in live
                    if o["kind"] == "Secret" and "creds" in o["metadata"]["name"]}
    assert secrets_live, "the Secrets were deployed (their data is where the values belong)"

    leaks = [f"{what} shows the {name} value"
             for what, text in outputs.items()
             for name, value in PLANTED.items() for form in _forms(value) if form in text]
    assert not leaks, "\n".join(leaks)
    assert len(outputs) > 30, sorted(outputs)


BUILD_PLANTED = {
    "env-file": "env-file-secret-5e0a",
    "build-url": "build-url-password-71c4",
    "registry": "registry-password-c93d",
    "dsn": "gate-dsn-password-a2f7",
}


def test_build_scan_and_annotate_show_no_planted_secret(hello_repo, registry_env, tmp_path):
    """An env-file secret (``# secret`` in release.env), the registry password, a database
    password in the gate's DSN and the BUILD_URL's password, planted; grepped in
    stdout/stderr, JUnit, summaries, the audit file, the image's labels and history, and
    the git tag and note annotate writes."""
    import uuid

    from pipelinelib.adapters.docker_engine import DockerEngine

    env_file = hello_repo / "release.env"
    env_file.write_text(env_file.read_text().replace(
        "PROJECT_NAMESPACE=hello-example-org", f"PROJECT_NAMESPACE=s{uuid.uuid4().hex[:10]}")
        + f"DB_PASSWORD='{BUILD_PLANTED['env-file']}'  # secret\n")
    git(hello_repo, "commit", "-q", "-am", "plant")
    git(hello_repo, "push", "-q", "origin", "main")
    audit_log = tmp_path / "audit.jsonl"
    env = {**registry_env, "JENKINS_URL": "https://ci.example/", "JOB_NAME": "web",
           "BUILD_NUMBER": "9", "BUILD_USER_ID": "rm-bob",
           "BUILD_URL": f"https://ci-bot:{BUILD_PLANTED['build-url']}@ci.example/job/web/9/",
           "PIPELINE_REGISTRY_USER": "ci-bot",
           "PIPELINE_REGISTRY_PASSWORD": BUILD_PLANTED["registry"],
           "PIPELINE_AUDIT_FILE": str(audit_log),
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}
    outputs: dict[str, str] = {}

    def run(name: str, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        report = tmp_path / f"report-{name}"
        out = run_pipeline("--report-dir", str(report), *args, env=env, cwd=hello_repo)
        assert out.returncode in ok, f"{name}: {out.stderr[-3000:]}"
        outputs[f"{name}: stdout"], outputs[f"{name}: stderr"] = out.stdout, out.stderr
        for path in sorted(report.glob("*")) if report.is_dir() else []:
            outputs[f"{name}: {path.name}"] = path.read_text()
        return out.stderr

    run("build", "build", "--app-dir", str(hello_repo))
    summary = json.loads(outputs["build: summary.json"])
    pushed = next(s for s in summary["steps"] if (s.get("outputs") or {}).get("digest"))
    digest = pushed["outputs"]["digest"]
    image = next(v for k, v in pushed["outputs"].items()
                 if k in ("image", "reference", "repository") and isinstance(v, str))
    repository = image.split("@")[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    engine = DockerEngine.from_env(registry_env["DOCKER_HOST"])
    name = image if "@" in image or ":" in image.rsplit("/", 1)[-1] else f"{image}@{digest}"
    outputs["image labels"] = json.dumps(engine.inspect_image(name)["Config"]["Labels"])
    outputs["image history"] = json.dumps(engine.api.history(name))

    fix = FIXTURES / "scan"
    run("scan", "scan", "--report", str(fix / "trivy.json"), "--fail-on", "critical",
        ok=(0, 1))
    # the gate against the testbed's PostgreSQL with a wrong (planted) password: it fails
    # (exit 2) and says so without the password
    port = os.environ.get("PIPELINELIB_PG_PORT", "55432")
    run("gate", "gate", "--app-dir", str(hello_repo), "--build-result", "SUCCESS",
        "--marks", "1,2", "--database-dsn",
        f"postgresql://pipeline:{BUILD_PLANTED['dsn']}@127.0.0.1:{port}/postgres",
        "--image", repository, "--digest", digest,
        ok=(0, 1, 2, 3))
    assert "refused the login" in outputs["gate: stderr"], outputs["gate: stderr"][-2000:]
    run("annotate", "annotate", "--env", "staging", "--result", "success", "--app", "hello",
        "--digest", digest)
    origin = hello_repo.parent.parent / "origin.git"
    outputs["git tags"] = git(origin, "for-each-ref", "--format=%(refname) %(contents)",
                              "refs/tags")
    note_refs = git(origin, "for-each-ref", "--format=%(refname)", "refs/notes").split()
    assert note_refs, "annotate wrote its note"
    outputs["git notes"] = "\n".join(git(origin, "log", "-p", ref) for ref in note_refs)
    assert json.loads(outputs["image labels"]), "the image carries our labels"
    assert "refs/tags/deployment-" in outputs["git tags"], outputs["git tags"]
    outputs["audit log"] = audit_log.read_text() if audit_log.exists() else ""
    assert "ci.example/job/web/9/" in outputs["audit log"], "the audit names the build"

    leaks = [f"{what} shows the {key} value"
             for what, text in outputs.items()
             for key, value in BUILD_PLANTED.items() for form in _forms(value) if form in text]
    assert not leaks, "\n".join(leaks)
    assert len(outputs) > 12, sorted(outputs)


def test_promote_shows_no_planted_secret(tmp_path, registry_env):
    """The BUILD_URL's password and the registry password, planted in a promotion (with an
    approval): grepped in stdout/stderr, JUnit, summaries, the audit file, and everything the
    promotion wrote to the env-state repository (commits, records, approvals)."""
    from tests.helpers.envstate import ci_env, env_file
    from tests.helpers.git import write_repo
    from tests.helpers.registry import push_image

    planted = {"build-url": "promote-build-url-pw-3b8e", "registry": "promote-registry-pw-e41a"}
    registry = registry_env["PIPELINELIB_REGISTRY"]
    prefix = f"secp{tmp_path.name[-6:]}".lower().replace("_", "")
    repository = f"{registry}/{prefix}/api"
    v1 = push_image(registry, f"{prefix}/api", "1.0.0", "1" * 40)
    v2 = push_image(registry, f"{prefix}/api", "2.0.0", "2" * 40)
    policy = ("groups: {release-managers: [rm-alice, rm-bob]}\nenvironments:\n"
              "  staging: {promote: ['*'], require_ci: false}\n"
              "  prod: {promote: ['group:release-managers'], approve: "
              "['group:release-managers'], four_eyes: true}\n")
    _, origin = write_repo(tmp_path, {
        "environments/staging.yaml": env_file("staging", "s-ns", repository, v2),
        "environments/prod.yaml": env_file("prod", "p-ns", repository, v1, "staging"),
        "policy.yaml": policy}, origin=True)
    audit_log = tmp_path / "audit.jsonl"
    outputs: dict[str, str] = {}
    base = ["promote", "api", "--from", "staging", "--to", "prod", "--repo", str(origin),
            "--no-apply"]
    for user, extra in (("rm-bob", ["--approve"]), ("rm-alice", [])):
        report = tmp_path / f"report-{user}"
        env = {**ci_env(user, BUILD_URL=f"https://ci-bot:{planted['build-url']}@ci.example/"
                        "job/promote/7/"), **registry_env,
               "PIPELINE_REGISTRY_USER": "ci-bot",
               "PIPELINE_REGISTRY_PASSWORD": planted["registry"],
               "PIPELINE_AUDIT_FILE": str(audit_log)}
        out = run_pipeline("--report-dir", str(report), *base, *extra, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        outputs[f"{user}: stdout"], outputs[f"{user}: stderr"] = out.stdout, out.stderr
        for path in sorted(report.glob("*")):
            outputs[f"{user}: {path.name}"] = path.read_text()
    outputs["env-state history"] = git(origin, "log", "--all", "-p", "--format=%H %an%n%B")
    assert "promotions/prod/api.yaml" in outputs["env-state history"]
    assert "approvals/prod/api.yaml" in outputs["env-state history"]
    outputs["audit log"] = audit_log.read_text()
    assert "ci.example/job/promote/7/" in outputs["audit log"], "the audit names the build"
    leaks = [f"{what} shows the {key} value"
             for what, text in outputs.items()
             for key, value in planted.items() for form in _forms(value) if form in text]
    assert not leaks, "\n".join(leaks)
