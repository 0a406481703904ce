"""Blue/green through the environment spec on the real control plane: strategy, plan,
apply awaiting promotion (exit 5), and `pipeline swap --env` with the policy's swap role."""

from __future__ import annotations

import json
from pathlib import Path

from pipelinelib.errors import EXIT_AWAITING_PROMOTION, EXIT_CHANGES_PENDING
from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env, env_app
from tests.helpers.kube import Kubectl, deployer_env

COLOR = "pipelinelib.dev/color"
POLICY = """\
groups:
  release-managers: [rm-alice]
environments:
  staging: {promote: ["*"], swap: ["group:release-managers"]}
"""


def write_spec(root: Path, ns: str, tag: str, await_promotion: bool = True,
               strategy: str = "blue-green", extra_apps: str = "",
               context: str = "pipelinelib-testbed") -> None:
    (root / "environments").mkdir(parents=True, exist_ok=True)
    (root / "policy.yaml").write_text(POLICY)
    body = env_app("web", replicas=2, tag=tag) + f"    strategy: {strategy}\n"
    (root / "environments" / "staging.yaml").write_text(
        "apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: staging\n"
        f"namespaces: [{ns}]\ncluster: {{context: {context}}}\n"
        f"await_promotion: {str(await_promotion).lower()}\n"
        f"apps:\n{body}{extra_apps}")


def pipeline(kube_env, *args: str, user: str | None = None):
    env = {**(ci_env(user) if user else {}), **deployer_env(kube_env)}
    return run_pipeline(*args, env=env)


def selector(kubectl: Kubectl, ns: str) -> str:
    return kubectl.json("-n", ns, "get", "svc", "web")["spec"]["selector"][COLOR]


def image(kubectl: Kubectl, ns: str, name: str) -> str:
    d = kubectl.json("-n", ns, "get", "deploy", name)
    return d["spec"]["template"]["spec"]["containers"][0]["image"]


def plan_json(kube_env, root: Path) -> tuple[int, dict]:
    out = pipeline(kube_env, "plan", "staging", "--repo", str(root), "--output", "json")
    assert out.returncode in (0, 4), out.stderr[-3000:]
    return out.returncode, json.loads(out.stdout)


def test_blue_green_from_the_spec_awaits_promotion_then_swap_by_environment(
        kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("bgenv")
    write_spec(tmp_path, ns, "1.0")
    code, plan = plan_json(kube_env, tmp_path)
    web = plan["apps"][0]
    assert code == EXIT_CHANGES_PENDING and web["strategy"] == "blue-green"
    assert "Deployment/web-blue" in web["creates"] and web["live_color"] is None
    first = pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]  # nothing live yet: blue goes live
    assert selector(kubectl, ns) == "blue"
    v1 = image(kubectl, ns, "web-blue")
    assert plan_json(kube_env, tmp_path)[0] == 0, "blue/green in sync plans no changes"

    write_spec(tmp_path, ns, "2.0")
    code, plan = plan_json(kube_env, tmp_path)
    assert code == EXIT_CHANGES_PENDING and plan["apps"][0]["live_color"] == "blue"
    out = pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert out.returncode == EXIT_AWAITING_PROMOTION, out.stderr[-3000:]
    assert "pipeline swap --env staging --app web" in out.stderr
    assert selector(kubectl, ns) == "blue", "the Services still select the old colour"
    green = kubectl.json("-n", ns, "get", "deploy", "web-green")
    assert green["status"]["readyReplicas"] == 2 and image(kubectl, ns, "web-green") != v1
    code, plan = plan_json(kube_env, tmp_path)
    assert code == EXIT_CHANGES_PENDING and plan["apps"][0]["awaiting_promotion"] == "green"
    assert plan["awaiting_promotion"] == ["web"]
    status = pipeline(kube_env, "status", "staging", "--repo", str(tmp_path), "--output", "json")
    row = json.loads(status.stdout)["apps"][0]
    assert (row["live_color"], row["awaiting_promotion"]) == ("blue", "green"), status.stderr
    text = pipeline(kube_env, "plan", "staging", "--repo", str(tmp_path)).stdout
    assert "green already runs this spec" in text and "live colour blue" in text
    before = kubectl.versions(ns)
    again = pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert again.returncode == EXIT_AWAITING_PROMOTION and kubectl.versions(ns) == before

    swap = ("swap", "--env", "staging", "--app", "web", "--repo", str(tmp_path))
    refused = pipeline(kube_env, *swap, user="dev-dana")
    assert refused.returncode == 2 and "dev-dana may not swap web in staging" in refused.stderr
    assert '"result": "refused"' in refused.stderr and kubectl.versions(ns) == before
    done = pipeline(kube_env, *swap, user="rm-alice")
    assert done.returncode == 0, done.stderr[-3000:]
    assert selector(kubectl, ns) == "green" and image(kubectl, ns, "web-blue") == v1
    assert '"action": "swap"' in done.stderr and '"result": "done"' in done.stderr
    assert plan_json(kube_env, tmp_path)[0] == 0, "after the swap the live colour has the spec"
    after = kubectl.versions(ns)
    assert pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path)).returncode == 0
    assert kubectl.versions(ns) == after, "a no-op apply of a swapped app writes nothing"


def test_without_await_promotion_apply_switches_when_the_new_colour_is_ready(
        kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("bgsw")
    write_spec(tmp_path, ns, "1.0", await_promotion=False)
    assert pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path)).returncode == 0
    write_spec(tmp_path, ns, "2.0", await_promotion=False)
    out = pipeline(kube_env, "apply", "staging", "--repo", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert selector(kubectl, ns) == "green" and "web-blue" in kubectl(
        "-n", ns, "get", "deploy", "-o", "name"), "the old colour stays for swap-back"


def test_swap_by_environment_refuses_a_rolling_app_and_a_local_run(kube_env, kubectl, tmp_path):
    ns = kubectl.namespace("bgno")
    write_spec(tmp_path, ns, "1.0", await_promotion=False, strategy="rolling")
    out = pipeline(kube_env, "swap", "--env", "staging", "--app", "web", "--repo",
                   str(tmp_path), user="rm-alice")
    assert out.returncode == 2 and "apps.web.strategy" in out.stderr
    write_spec(tmp_path, ns, "1.0")
    local = run_pipeline("swap", "--env", "staging", "--app", "web", "--repo", str(tmp_path),
                         env={**kube_env, "BUILD_USER_ID": "rm-alice"})
    assert local.returncode == 2 and "must run on the CI server" in local.stderr
    write_spec(tmp_path, ns, "1.0", context="no-such-context")
    other = pipeline(kube_env, "swap", "--env", "staging", "--app", "web", "--repo",
                     str(tmp_path), user="rm-alice")
    assert other.returncode == 3 and "context no-such-context" in other.stderr, \
        "the cluster comes from the environment spec"


def test_the_spec_rejects_await_promotion_on_a_rolling_app_with_its_line(tmp_path):
    write_spec(tmp_path, "bad", "1.0", strategy="rolling")
    spec = tmp_path / "environments" / "staging.yaml"
    spec.write_text(spec.read_text().replace("    strategy: rolling\n",
                                             "    strategy: rolling\n    await_promotion: true\n"))
    line = spec.read_text().splitlines().index("    await_promotion: true") + 1
    out = run_pipeline("plan", "staging", "--repo", str(tmp_path))
    assert out.returncode == 2
    assert f"staging.yaml:{line} apps.web.await_promotion: await_promotion applies to " \
           "blue/green apps only" in out.stderr
    bad = spec.read_text().replace("strategy: rolling", "strategy: canary")
    spec.write_text(bad)
    out = run_pipeline("plan", "staging", "--repo", str(tmp_path))
    assert out.returncode == 2 and "expected one of rolling, blue-green" in out.stderr
