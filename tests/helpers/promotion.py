"""The promotion world: the example env-state repository with a bare origin, two images
pushed to the real registry and pinned in int-test (the ``promo_world`` fixture), and
readers of what a promotion left on the origin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.cli import run_pipeline
from tests.helpers.envstate import ci_env, pin, state_repo
from tests.helpers.git import git
from tests.helpers.registry import push_image

REV = "1" * 40

World = dict[str, Any]


@pytest.fixture
def promo_world(tmp_path: Path, registry_env: dict[str, str]) -> World:
    """clone, origin, prefix, registry, the ``api`` and ``portal`` digests, tmp."""
    clone, origin, prefix = state_repo(tmp_path)
    registry = registry_env["PIPELINELIB_REGISTRY"]
    api = push_image(registry, f"{prefix}/records-api", "1.0.1", REV, "1.0.1")
    portal = push_image(registry, f"{prefix}/patient-portal", "1.0.1", "2" * 40, "1.0.1")
    pin(clone, "int-test", "records-api", api, "1.0.1")
    pin(clone, "int-test", "patient-portal", portal, "1.0.1")
    return {"clone": clone, "origin": origin, "prefix": prefix, "registry": registry,
            "api": api, "portal": portal, "tmp": tmp_path}


def promote(world: World, user: str | None, *args: str,
            provider: str = "jenkins") -> subprocess.CompletedProcess[str]:
    """`pipeline promote ARGS --no-apply` on the world's origin as ``user``'s CI run (None:
    no CI user at all)."""
    env = ci_env(user, provider) if user is not None else ci_env("", provider="none")
    return run_pipeline("promote", *args, "--repo", str(world["origin"]), "--no-apply",
                        env=env)


def origin_file(world: World, path: str, branch: str = "main") -> str:
    return git(world["origin"], "show", f"{branch}:{path}")


def origin_head(world: World, branch: str = "main") -> str:
    return git(world["origin"], "rev-parse", branch)


def spec_image(world: World, env: str, app: str, branch: str = "main") -> dict[str, Any]:
    data = yaml.safe_load(origin_file(world, f"environments/{env}.yaml", branch))
    image: dict[str, Any] = data["apps"][app]["image"]
    return image


def audit_events(stderr: str) -> list[dict[str, Any]]:
    """The ``audit`` events in a JSON log."""
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "audit":
                events.append(event)
    return events
