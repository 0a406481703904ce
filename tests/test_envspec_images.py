"""Multi-workload apps: each container keeps its own image unless the spec names it.

Rendered offline (manifest directories, no cluster): guestbook's three Deployments
(frontend, redis-master, redis-replica) through an environment spec.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelinelib.envspec.load import SpecInvalid, parse_environment
from pipelinelib.envspec.render import render_app
from pipelinelib.kube.labels import ANN_IMAGE
from tests.helpers.paths import FIXTURES

GUESTBOOK = FIXTURES / "envs" / "guestbook"
SRC = "environments/staging.yaml"
FRONTEND = "127.0.0.1:5001/t/gb-frontend"
DIGEST = "sha256:" + "f" * 64
REDIS_DIGEST = "sha256:" + "e" * 64


def env_with(tmp_path: Path, app: str) -> object:
    shutil.copytree(GUESTBOOK, tmp_path / "manifests" / "guestbook")
    text = ("apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: staging\n"
            f"namespaces: [gb]\napps:\n{app}")
    return parse_environment(text, SRC, "staging", tmp_path)


def containers(docs: list[dict]) -> dict[str, dict]:
    """Container by ``Deployment/container`` name."""
    return {f"{d['metadata']['name']}/{c['name']}": c for d in docs if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]}


def test_the_apps_image_runs_only_in_its_own_workload_not_in_redis(tmp_path):
    env = env_with(tmp_path, f"""\
  frontend:
    image: {{repository: {FRONTEND}, tag: v5, digest: "{DIGEST}"}}
    manifests: manifests/guestbook
    replicas: 4
    env: {{MODE: staging}}
""")
    docs = render_app(env, env.apps["frontend"])
    found = containers(docs)
    assert found["frontend/php-redis"]["image"] == f"{FRONTEND}@{DIGEST}"
    assert found["redis-master/master"]["image"] == "registry.k8s.io/redis:e2e"
    assert found["redis-replica/replica"]["image"] == "gcr.io/google_samples/gb-redis-follower:v2"
    assert {"name": "MODE", "value": "staging"} in found["frontend/php-redis"]["env"]
    assert all(e["name"] != "MODE" for e in found["redis-replica/replica"]["env"])
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in docs
                if d["kind"] == "Deployment"}
    assert replicas == {"frontend": 4, "redis-master": 1, "redis-replica": 2}
    records = {d["metadata"]["name"]: d["metadata"]["annotations"][ANN_IMAGE] for d in docs
               if d["kind"] == "Deployment"}
    assert records["redis-master"] == "registry.k8s.io/redis:e2e"


def test_images_by_container_name_pin_every_workload_and_image_is_optional(tmp_path):
    env = env_with(tmp_path, f"""\
  guestbook:
    manifests: manifests/guestbook
    max_history: 3
    images:
      php-redis: {{repository: {FRONTEND}, digest: "{DIGEST}"}}
      master: {{repository: 127.0.0.1:5001/t/redis, tag: "6.0.5", digest: "{REDIS_DIGEST}"}}
""")
    app = env.apps["guestbook"]
    assert app.image is None and app.image_ref == ""
    found = containers(render_app(env, app))
    assert found["frontend/php-redis"]["image"] == f"{FRONTEND}@{DIGEST}"
    assert found["redis-master/master"]["image"] == f"127.0.0.1:5001/t/redis@{REDIS_DIGEST}"
    assert found["redis-replica/replica"]["image"] == "gcr.io/google_samples/gb-redis-follower:v2"
    docs = render_app(env, app)
    assert {d["spec"]["revisionHistoryLimit"] for d in docs if d["kind"] == "Deployment"} == {3}


def test_an_images_entry_naming_no_container_is_an_error_with_the_containers_listed(tmp_path):
    env = env_with(tmp_path, f"""\
  guestbook:
    manifests: manifests/guestbook
    images:
      php_redis_typo: {{repository: {FRONTEND}, digest: "{DIGEST}"}}
""".replace("php_redis_typo", "frontend-php"))
    with pytest.raises(SpecInvalid) as info:
        render_app(env, env.apps["guestbook"])
    text = str(info.value)
    assert "apps.guestbook.images.frontend-php: no container frontend-php" in text
    assert "master, php-redis, replica" in text


def test_a_container_without_any_image_needs_an_images_entry_all_reported_at_once(tmp_path):
    for name in ("redis-master.yaml", "redis-replica.yaml"):
        path = GUESTBOOK / name
        (tmp_path / "unpinned").mkdir(exist_ok=True)
        text = path.read_text()
        text = "\n".join(ln for ln in text.splitlines() if "image:" not in ln)
        (tmp_path / "unpinned" / name).write_text(text)
    shutil.copytree(GUESTBOOK, tmp_path / "manifests" / "guestbook")
    for name in ("redis-master.yaml", "redis-replica.yaml"):
        shutil.copy(tmp_path / "unpinned" / name, tmp_path / "manifests" / "guestbook" / name)
    text = ("apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: staging\n"
            f"namespaces: [gb]\napps:\n  frontend:\n    manifests: manifests/guestbook\n"
            f"    image: {{repository: {FRONTEND}, digest: \"{DIGEST}\"}}\n")
    env = parse_environment(text, SRC, "staging", tmp_path)
    with pytest.raises(SpecInvalid) as info:
        render_app(env, env.apps["frontend"])
    fields = [p.field for p in info.value.problems]
    assert fields == ["apps.frontend.images.master", "apps.frontend.images.replica"]
    assert all(p.source == SRC and p.line == 6 for p in info.value.problems)


def test_the_built_in_deployment_needs_an_image_and_image_with_images_of_the_app_collide():
    head = "apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: staging\napps:\n"
    with pytest.raises(SpecInvalid) as info:
        parse_environment(head + "  web:\n    replicas: 2\n", SRC, "staging")
    assert str(info.value.problems[0]) == (
        f"{SRC}:5 apps.web: an app without manifests or a chart needs its image "
        "(expected image: {repository, tag or digest})")
    clash = (head + "  web:\n    image: {repository: x, tag: '1'}\n"
             "    images: {web: {repository: y, tag: '2'}}\n")
    with pytest.raises(SpecInvalid) as info:
        parse_environment(clash, SRC, "staging")
    assert "apps.web.images.web: container web gets the app's image already" in str(info.value)
    only_images = head + f"  web:\n    images: {{web: {{repository: y, digest: '{DIGEST}'}}}}\n"
    env = parse_environment(only_images, SRC, "staging")
    docs = render_app(env, env.apps["web"])
    assert containers(docs)["web/web"]["image"] == f"y@{DIGEST}"


def test_guestbook_deploys_each_workload_with_its_own_image_reruns_as_a_noop_and_prunes(
        kube_env, tmp_path):
    """On the real control plane, as the least-privilege deployer."""
    import json

    from tests.helpers.cli import run_pipeline
    from tests.helpers.kube import Cluster

    cluster = Cluster(kube_env)
    try:
        ns = cluster.namespace("gb")
        shutil.copytree(GUESTBOOK, tmp_path / "manifests" / "guestbook")
        (tmp_path / "environments").mkdir()
        (tmp_path / "environments" / "staging.yaml").write_text(f"""\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: staging
namespaces: [{ns}]
apps:
  guestbook:
    manifests: manifests/guestbook
    timeout: 60
    images:
      php-redis: {{repository: {FRONTEND}, digest: "{DIGEST}"}}
      master: {{repository: 127.0.0.1:5001/t/redis, digest: "{REDIS_DIGEST}"}}
      replica: {{repository: 127.0.0.1:5001/t/redis-replica, digest: "{REDIS_DIGEST}"}}
""")
        env = cluster.cli_env()
        args = ("--repo", str(tmp_path))
        applied = run_pipeline("apply", "staging", *args, env=env)
        assert applied.returncode == 0, applied.stderr[-3000:]
        live = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
                for d in cluster.json("-n", ns, "get", "deployments")["items"]}
        assert live == {"frontend": f"{FRONTEND}@{DIGEST}",
                        "redis-master": f"127.0.0.1:5001/t/redis@{REDIS_DIGEST}",
                        "redis-replica": f"127.0.0.1:5001/t/redis-replica@{REDIS_DIGEST}"}
        plan = run_pipeline("plan", "staging", *args, "--output", "json", env=env)
        assert plan.returncode == 0, plan.stdout[-3000:]
        before = cluster.versions(ns)
        again = run_pipeline("apply", "staging", *args, env=env)
        assert again.returncode == 0 and cluster.versions(ns) == before, "a no-op writes nothing"
        (tmp_path / "manifests" / "guestbook" / "redis-replica.yaml").unlink()
        stale = run_pipeline("apply", "staging", *args, env=env)
        assert stale.returncode == 2 and "images.replica: no container replica" in stale.stderr
        assert cluster.versions(ns) == before, "a stale images entry changes nothing"
        spec = tmp_path / "environments" / "staging.yaml"
        spec.write_text("".join(ln for ln in spec.read_text().splitlines(keepends=True)
                                if "replica:" not in ln))
        pruned = run_pipeline("apply", "staging", *args, env=env)
        assert pruned.returncode == 0, pruned.stderr[-3000:]
        names = {f"{i['kind']}/{i['metadata']['name']}" for i in cluster.json(
            "-n", ns, "get", "deployments,services")["items"]}
        assert names == {"Deployment/frontend", "Deployment/redis-master", "Service/frontend",
                         "Service/redis-master"}
        assert json.loads(plan.stdout)["apps"][0]["action"] == "none"
    finally:
        cluster.cleanup()
