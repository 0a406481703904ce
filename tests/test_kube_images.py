"""Pinning manifest images to a build's digests (pipelinelib.kube.images)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelinelib.errors import BadInput
from pipelinelib.kube import images
from pipelinelib.kube import manifests as mf

DIGEST = "sha256:" + "ab" * 32
PINNED = f"127.0.0.1:5001/littleman-co/hello-web@{DIGEST}"


def workloads() -> list[mf.Manifest]:
    pod = {"initContainers": [{"name": "migrate", "image": "littleman-co/hello-web:latest"}],
           "containers": [{"name": "web", "image": "littleman-co/hello-web"},
                          {"name": "proxy", "image": "docker.io/library/nginx:1.27"}]}
    return mf.load([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello"},
         "spec": {"template": {"spec": pod}}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report"},
         "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
             {"name": "report", "image": "registry.example:5000/littleman-co/hello-web:7"}]}}}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"}},
    ])


def containers(docs: list[mf.Manifest]) -> dict[str, str]:
    return {f"{m.name}/{c['name']}": c["image"] for m in docs
            for group in images.CONTAINER_GROUPS
            for c in (mf.pod_spec(m.obj) or {}).get(group) or []}


def test_a_pin_keyed_by_repository_pins_every_container_of_that_repository() -> None:
    docs = workloads()
    changed = images.pin(docs, images.parse_pins([PINNED]))
    assert containers(docs) == {"hello/migrate": PINNED, "hello/web": PINNED,
                                "hello/proxy": "docker.io/library/nginx:1.27",
                                "report/report": PINNED}
    assert len(changed) == 3 and all(line.endswith(f"-> {PINNED}") for line in changed)
    assert images.pin(docs, images.parse_pins([PINNED])) == []  # already pinned: no change


def test_an_explicit_name_matches_the_full_name_too() -> None:
    docs = workloads()
    other = f"127.0.0.1:5001/littleman-co/report@{DIGEST}"
    images.pin(docs, images.parse_pins([f"registry.example:5000/littleman-co/hello-web={other}"]))
    assert containers(docs)["report/report"] == other
    assert containers(docs)["hello/web"] == "littleman-co/hello-web"


@pytest.mark.parametrize(("value", "says"), [
    ("127.0.0.1:5001/littleman-co/hello-web:1.0", "not pinned by digest"),
    ("littleman-co/hello-web=127.0.0.1:5001/Bad_Repo@" + DIGEST, "invalid repository name"),
    ("127.0.0.1:5001/littleman-co/hello-web@sha256:123", "invalid digest"),
])
def test_bad_pins_are_refused_with_the_reason(value: str, says: str) -> None:
    with pytest.raises(BadInput) as caught:
        images.parse_pins([value])
    assert says in str(caught.value) and caught.value.exit_code == 2


def test_two_digests_for_one_image_are_refused() -> None:
    with pytest.raises(BadInput, match="pinned twice"):
        images.parse_pins([PINNED, PINNED.replace("ab" * 32, "cd" * 32)])


def test_a_pin_that_matches_nothing_is_refused_before_anything_changes() -> None:
    docs = workloads()
    before = containers(docs)
    typo = f"127.0.0.1:5001/littleman-co/helo-web@{DIGEST}"
    with pytest.raises(BadInput) as caught:
        images.pin(docs, images.parse_pins([PINNED, typo]))
    assert "littleman-co/helo-web" in str(caught.value)
    assert "littleman-co/hello-web" in str(caught.value)  # the example names a real image
    assert containers(docs) == before


def test_pins_come_from_a_build_report(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"steps": [
        {"name": "validate", "outputs": {"image": "littleman-co/hello-web:abc1234"}},
        {"name": "build", "outputs": {}},
        {"name": "push", "outputs": {"digest": DIGEST, "image": PINNED}}]}))
    assert images.pins_from_build(tmp_path) == {"littleman-co/hello-web": images.imageref.parse(
        PINNED)}


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"steps": [{"outputs": {}}]})])
def test_an_unreadable_build_report_is_bad_input(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "summary.json").write_text(content)
    with pytest.raises(BadInput) as caught:
        images.pins_from_build(tmp_path)
    assert str(tmp_path / "summary.json") in str(caught.value)
