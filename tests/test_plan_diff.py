"""The plan's comparison, field by field: the rollout's engine (a server-side dry run of each
object, compared with the live one) explained as changed fields, drift and deletions.

Objects are put in place as a previous apply leaves them: the rendered manifests,
server-side applied by the ``pipelinelib`` field manager (kubectl as admin); the plan
runs as the least-privilege deployer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pipelinelib.envspec.load import load_environment, parse_environment
from pipelinelib.envspec.render import render_app
from pipelinelib.kube.labels import ANN_SPEC_HASH
from pipelinelib.steps.plan import render_all
from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import stamped
from tests.helpers.kube import Kubectl, deployer_env

TOKEN = "s3cr3t-token-value"
TEXT = """\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: staging
namespaces: [NS]
apps:
  web:
    image: {repository: 127.0.0.1:5001/shop/web, tag: "1.0"}
    replicas: 2
    config: {LOG_LEVEL: info, COLOUR: blue}
    env: {MODE: prod, API_TOKEN: s3cr3t-token-value}
    ports: [{name: http, port: 8080}]
    resources: {memory: 64Mi, cpu: 0.25}
    dns: [web.shop.example]
"""


@pytest.fixture(scope="module")
def kubectl(kube_env) -> Iterator[Kubectl]:
    k = Kubectl(kube_env)
    yield k
    k.cleanup()


@pytest.fixture
def world(kube_env, kubectl, tmp_path):
    """(namespace, write(text), put_in_place(), plan(*extra) -> (exit code, stdout))."""
    ns = kubectl.namespace("pdiff")
    spec = tmp_path / "environments" / "staging.yaml"
    spec.parent.mkdir(parents=True)

    def write(text: str = TEXT) -> None:
        spec.write_text(text.replace("NS", ns))

    def put_in_place() -> None:
        env = load_environment(spec, root=tmp_path)
        docs = [m.obj for app, ds in render_all(env).items()
                for m in stamped(ds, app, env.apps[app].namespace)]
        kubectl("apply", "--server-side", "--field-manager=pipelinelib", "--force-conflicts",
                "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))

    def plan(*extra: str) -> tuple[int, str]:
        out = run_pipeline("plan", "staging", "--repo", str(tmp_path), *extra,
                           env=deployer_env(kube_env))
        assert out.returncode in (0, 4), out.stderr[-3000:]
        return out.returncode, out.stdout

    def plan_json() -> dict:
        return json.loads(plan("--output", "json")[1])["apps"][0]

    write()
    return ns, write, put_in_place, plan, plan_json


def test_a_cluster_matching_the_spec_plans_no_changes_despite_server_defaults(world):
    put_in_place, plan_json = world[2], world[4]
    put_in_place()
    app = plan_json()
    assert app["action"] == "none" and not app["changes"] and not app["drift"]


def test_nothing_live_means_create_every_object(world):
    app = world[4]()
    assert app["action"] == "create"
    config, *rest = sorted(app["creates"])
    assert config.startswith("ConfigMap/web-config-"), "named by content, like the rollout"
    assert rest == ["Deployment/web", "Ingress/web", "Service/web"]


def test_a_spec_change_is_a_change_not_drift(world):
    _, write, put_in_place, _, plan_json = world
    put_in_place()
    write(TEXT.replace("replicas: 2", "replicas: 3").replace('tag: "1.0"', 'tag: "1.1"'))
    app = plan_json()
    fields = {c["field"]: (c["live"], c["desired"], c["drift"]) for c in app["changes"]}
    assert app["action"] == "update" and not app["drift"]
    assert fields["spec.replicas"] == (2, 3, False)
    assert fields["spec.template.spec.containers[web].image"] == (
        "127.0.0.1:5001/shop/web:1.0", "127.0.0.1:5001/shop/web:1.1", False)


def test_a_hand_edit_in_the_cluster_is_reported_as_drift(world, kubectl):
    ns, _, put_in_place, plan, plan_json = world
    put_in_place()
    kubectl("-n", ns, "scale", "deployment", "web", "--replicas=5")
    config = next(i["metadata"]["name"] for i in kubectl.json("-n", ns, "get", "configmaps")[
        "items"] if i["metadata"]["name"].startswith("web-config-"))
    kubectl("-n", ns, "patch", "configmap", config, "--type=merge", "-p",
            '{"data":{"LOG_LEVEL":"debug"}}')
    app = plan_json()
    assert app["drift"] and app["action"] == "update"
    drifted = {(c["object"], c["field"]): (c["live"], c["desired"]) for c in app["changes"]
               if c["drift"]}
    assert drifted[("Deployment/web", "spec.replicas")] == (5, 2)
    assert drifted[(f"ConfigMap/{config}", "data.LOG_LEVEL")] == ("debug", "info")
    text = plan()[1]
    assert "! Deployment/web replicas: 5 -> 2   (drift: changed by hand in the cluster)" in text
    assert "1 drifted" in text


def test_removing_an_env_var_or_config_key_from_the_spec_is_seen(world):
    _, write, put_in_place, _, plan_json = world
    put_in_place()
    write(TEXT.replace("COLOUR: blue", "").replace("MODE: prod, ", "")
          .replace("{LOG_LEVEL: info, }", "{LOG_LEVEL: info}"))
    app = plan_json()
    fields = {c["field"] for c in app["changes"]}
    assert any(c.startswith("ConfigMap/web-config-") for c in app["creates"]), "new config"
    assert "spec.template.spec.containers[web].envFrom[0].configMapRef.name" in fields
    assert "spec.template.spec.containers[web].env[MODE]" in fields


def test_secret_looking_values_are_masked_in_the_plan(world):
    _, write, put_in_place, plan, _ = world
    put_in_place()
    write(TEXT.replace(TOKEN, "n3w-s3cr3t-token"))
    code, text = plan()
    assert code == 4 and "s3cr3t" not in text and "***" in text


def test_objects_no_longer_rendered_are_planned_for_deletion(world, kubectl):
    ns, _, put_in_place, _, plan_json = world
    put_in_place()
    kubectl("apply", "--server-side", "--field-manager=pipelinelib", "-f", "-",
            stdin=json.dumps({
                "apiVersion": "v1", "kind": "Service", "metadata": {
                    "name": "web-old", "namespace": ns, "labels": {
                        "pipelinelib.dev/environment": "staging", "pipelinelib.dev/app": "web",
                        "app.kubernetes.io/managed-by": "pipelinelib"}},
                "spec": {"ports": [{"port": 80}]}}))
    app = plan_json()
    assert app["action"] == "update" and app["deletes"] == ["Service/web-old"]


def test_an_unowned_live_object_without_our_hash_counts_as_drift(world, kubectl):
    ns, _, put_in_place, _, plan_json = world
    put_in_place()
    kubectl("-n", ns, "annotate", "deployment", "web", f"{ANN_SPEC_HASH}-")
    kubectl("-n", ns, "scale", "deployment", "web", "--replicas=1")
    assert plan_json()["drift"]


def test_rendering_is_deterministic():
    env = parse_environment(TEXT.replace("NS", "shop"), "environments/staging.yaml", "staging")
    assert render_app(env, env.apps["web"]) == render_app(env, env.apps["web"])


def test_a_field_changed_by_hand_is_drift_even_when_the_spec_changed_too(world, kubectl):
    ns, write, put_in_place, _, plan_json = world
    put_in_place()
    kubectl("-n", ns, "scale", "deployment", "web", "--replicas=7")
    write(TEXT.replace('tag: "1.0"', 'tag: "2.0"'))
    app = plan_json()
    by_field = {c["field"]: c["drift"] for c in app["changes"] if c["object"] == "Deployment/web"}
    assert by_field["spec.replicas"] is True
    assert by_field["spec.template.spec.containers[web].image"] is False
    assert app["drift"] and app["action"] == "update"
