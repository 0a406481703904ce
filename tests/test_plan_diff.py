"""The plan's comparison: desired manifests against live objects as the API server returns them."""

from __future__ import annotations

import copy

from pipelinelib.envspec.diff import diff_app
from pipelinelib.envspec.load import parse_environment
from pipelinelib.envspec.render import ANN_HASH, key, render_app
from pipelinelib.envspec.show import format_plan

TEXT = """\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: staging
namespaces: [shop]
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


def rendered(text: str = TEXT):
    env = parse_environment(text, "environments/staging.yaml", "staging")
    return env, render_app(env, env.apps["web"])


def as_live(docs):
    """What the API server would hand back after applying ``docs``: defaults and status."""
    live = {}
    for doc in docs:
        obj = copy.deepcopy(doc)
        obj["metadata"].update(uid="u-1", resourceVersion="7", generation=1)
        if obj["kind"] == "Deployment":
            obj["spec"]["strategy"] = {"type": "RollingUpdate"}
            pod = obj["spec"]["template"]["spec"]
            pod["restartPolicy"] = "Always"
            pod["containers"][0]["imagePullPolicy"] = "IfNotPresent"
            obj["status"] = {"readyReplicas": 2}
        if obj["kind"] == "Service":
            obj["spec"]["clusterIP"] = "10.0.0.9"
        live[key(obj)] = obj
    return live


def plan_of(docs, live, orphans=()):
    return diff_app("web", "shop", 0, "img", docs, live, list(orphans))


def test_a_cluster_matching_the_spec_plans_no_changes_despite_server_defaults():
    _, docs = rendered()
    plan = plan_of(docs, as_live(docs))
    assert plan.action == "none" and not plan.changes and not plan.drift


def test_nothing_live_means_create_every_object():
    _, docs = rendered()
    plan = plan_of(docs, {})
    assert plan.action == "create"
    config, *rest = sorted(plan.creates)
    assert config.startswith("ConfigMap/web-config-"), "named by content, like the rollout"
    assert rest == ["Deployment/web", "Ingress/web", "Service/web"]


def test_a_spec_change_is_a_change_not_drift():
    _, old = rendered()
    _, new = rendered(TEXT.replace("replicas: 2", "replicas: 3").replace('tag: "1.0"',
                                                                         'tag: "1.1"'))
    plan = plan_of(new, as_live(old))
    fields = {c.field: (c.live, c.desired, c.drift) for c in plan.changes}
    assert plan.action == "update" and not plan.drift
    assert fields["spec.replicas"] == (2, 3, False)
    assert fields["spec.template.spec.containers[web].image"] == (
        "127.0.0.1:5001/shop/web:1.0", "127.0.0.1:5001/shop/web:1.1", False)


def test_a_hand_edit_in_the_cluster_is_reported_as_drift():
    _, docs = rendered()
    live = as_live(docs)
    live[("Deployment", "shop", "web")]["spec"]["replicas"] = 5
    config = next(k for k in live if k[0] == "ConfigMap")
    live[config]["data"]["LOG_LEVEL"] = "debug"
    plan = plan_of(docs, live)
    assert plan.drift and plan.action == "update"
    drifted = {(c.obj, c.field): (c.live, c.desired) for c in plan.changes if c.drift}
    assert drifted[("Deployment/web", "spec.replicas")] == (5, 2)
    assert drifted[(f"ConfigMap/{config[2]}", "data.LOG_LEVEL")] == ("debug", "info")
    text = format_plan("staging", [plan.to_dict()])
    assert "! Deployment/web replicas: 5 -> 2   (drift: changed by hand in the cluster)" in text
    assert "1 drifted" in text


def test_removing_an_env_var_or_config_key_from_the_spec_is_seen():
    _, old = rendered()
    _, new = rendered(TEXT.replace("COLOUR: blue", "").replace("MODE: prod, ", "")
                      .replace("{LOG_LEVEL: info, }", "{LOG_LEVEL: info}"))
    plan = plan_of(new, as_live(old))
    fields = {c.field for c in plan.changes}
    assert any(c.startswith("ConfigMap/web-config-") for c in plan.creates), "new config"
    assert "spec.template.spec.containers[web].envFrom[0].configMapRef.name" in fields
    assert "spec.template.spec.containers[web].env[MODE]" in fields


def test_secret_looking_values_are_masked_in_the_plan():
    _, old = rendered()
    _, new = rendered(TEXT.replace("s3cr3t-token-value", "n3w-s3cr3t-token"))
    plan = plan_of(new, as_live(old))
    text = format_plan("staging", [plan.to_dict()])
    assert "s3cr3t" not in text and "***" in text


def test_objects_no_longer_rendered_are_planned_for_deletion():
    _, docs = rendered()
    live = as_live(docs)
    orphan = {"kind": "Service", "metadata": {"name": "web-old", "namespace": "shop"}}
    plan = plan_of(docs, live, [orphan])
    assert plan.action == "update" and plan.deletes == ["Service/web-old"]


def test_an_unowned_live_object_without_our_hash_counts_as_drift():
    _, docs = rendered()
    live = as_live(docs)
    deployment = live[("Deployment", "shop", "web")]
    del deployment["metadata"]["annotations"][ANN_HASH]
    deployment["spec"]["replicas"] = 1
    plan = plan_of(docs, live)
    assert plan.drift


def test_rendering_is_deterministic():
    assert rendered()[1] == rendered()[1]


def test_a_field_changed_by_hand_is_drift_even_when_the_spec_changed_too():
    _, docs = rendered()
    live = as_live(docs)
    deploy = next(o for o in live.values() if o["kind"] == "Deployment")
    deploy["spec"]["replicas"] = 7
    hash_field = {"f:metadata": {"f:annotations": {f"f:{ANN_HASH}": {}}}}
    deploy["metadata"]["managedFields"] = [
        {"manager": "pipelinelib", "operation": "Apply", "fieldsV1": {
            **hash_field, "f:spec": {"f:template": {"f:spec": {"f:containers": {
                'k:{"name":"web"}': {"f:image": {}}}}}}}},
        {"manager": "kubectl", "operation": "Update", "subresource": "scale",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}},
    ]
    _, changed = rendered(TEXT.replace('tag: "1.0"', 'tag: "2.0"'))
    plan = plan_of(changed, live)
    by_field = {c.field: c.drift for c in plan.changes if c.obj == "Deployment/web"}
    assert by_field["spec.replicas"] is True
    assert by_field["spec.template.spec.containers[web].image"] is False
    assert plan.drift and plan.action == "update"
