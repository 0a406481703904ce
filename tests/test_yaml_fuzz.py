"""Hypothesis: hostile YAML fed to every loader is exit-2 bad input, in bounded memory.

Hostile: alias bombs (width x levels), deep nesting, Python and unknown tags, binary and
non-UTF-8 bytes, too many documents, an oversized document, and non-mapping documents.
Every loader pipelinelib has is called on it in-process (memory measured with tracemalloc);
then the commands that write (rollout, apply) and those that only read (plan, validate)
get the same files as the deployer, and the apiserver's audit log must show no write.
"""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelinelib import yamlsafe
from pipelinelib.envspec import yamlines
from pipelinelib.errors import BadInput
from tests.helpers.audit_log import AuditLog
from tests.helpers.cli import run_pipeline

MAX_PEAK = 64 * 1024 * 1024  # bytes any loader may allocate on hostile input


def bomb(levels: int, width: int) -> str:
    lines = ["a: &l0 [" + ",".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def expanded(levels: int, width: int) -> int:
    """Nodes the bomb's aliases add (what yamlsafe counts)."""
    size, added = width + 1, 0
    for _ in range(1, levels):
        added += width * size
        size = 1 + width * size
    return added


hostile = st.one_of(
    st.builds(lambda lv, w: ("alias", bomb(lv, w).encode(), expanded(lv, w) > 100_000),
              st.integers(3, 14), st.integers(3, 40)),
    st.builds(lambda d, open_, close: ("depth", (open_ * d + close * d).encode(), d > 100),
              st.integers(90, 20_000), st.just("["), st.just("]")),
    st.builds(lambda d: ("depth", ("a:\n" + "".join(f"{' ' * i}k{i}:\n" for i in range(1, d))
                                   + " " * d + "v\n").encode(), d > 100),
              st.integers(95, 400)),
    st.builds(lambda tag: ("tag", f"key: {tag} x\n".encode(), True),
              st.sampled_from(["!!python/object/apply:os.system", "!!python/name:os.system",
                               "!custom", "!<tag:evil.example,2026:x>",
                               "!!python/object:subprocess.Popen"])),
    st.builds(lambda data: ("binary", b"\xff" + data, True), st.binary(max_size=2048)),
    st.builds(lambda n: ("documents", b"a: 1\n" + b"---\n" * n, n >= 5000),
              st.integers(4990, 20_000)),
    st.builds(lambda n: ("size", b"a: " + b"x" * n + b"\n", n > 4 * 1024 * 1024),
              st.integers(4 * 1024 * 1024 - 16, 6 * 1024 * 1024)),
    st.builds(lambda text: ("not-a-mapping", text.encode(), False),
              st.sampled_from(["just a string\n", "- a\n- list\n", "42\n", "null\n"])),
)


def _env_spec(root: Path, data: bytes) -> Any:
    from pipelinelib.envspec.load import load_environment

    return load_environment(_put(root / "environments" / "qa.yaml", data), root=root)


def _put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _loaders() -> dict[str, Callable[[Path, bytes], Any]]:
    from pipelinelib.adapters.helm import chart_version
    from pipelinelib.envspec.helmsman import read_dsf
    from pipelinelib.gate.config import load_config, read_structured
    from pipelinelib.kube import manifests as mf
    from pipelinelib.perf.lighthouse import load_budget
    from pipelinelib.promotion.approvals import (
        approval_path,
        promotion_path,
        read_approval,
        read_promotion,
    )
    from pipelinelib.promotion.hotfix import read_hotfixes
    from pipelinelib.promotion.policy import load_policy
    from pipelinelib.queue.config import load_config as load_queue_config
    from pipelinelib.records import format as record_format
    from pipelinelib.scan.policy import load_policy as load_scan_policy

    return {
        "manifests": lambda root, data: mf.load(_put(root / "app.yaml", data)),
        "manifest directory": lambda root, data: mf.load(_put(root / "k8s" / "a.yaml",
                                                               data).parent),
        "environment spec": _env_spec,
        "promotion policy": lambda root, data: load_policy(_put(root / "policy.yaml",
                                                                data).parent),
        "scan policy": lambda root, data: load_scan_policy(_put(root / "scan.yaml", data)),
        "performance budget": lambda root, data: load_budget(_put(root / "budget.yaml", data)),
        "gate config": lambda root, data: load_config(root, _put(root / "gate.yaml", data)),
        "gate structured input": lambda root, data: read_structured(
            yamlsafe.read(data, "openapi.yaml")[0], "openapi.yaml"),
        "approval": lambda root, data: read_approval(
            _put(root / approval_path("qa", "web"), data).parents[2], "qa", "web"),
        "promotion record": lambda root, data: read_promotion(
            _put(root / promotion_path("qa", "web"), data).parents[2], "qa", "web"),
        "queue config": lambda root, data: load_queue_config(_put(root / "queue.yaml", data)),
        "helmsman file": lambda root, data: read_dsf(_put(root / "dsf.yaml", data)),
        "hotfixes": lambda root, data: read_hotfixes(
            _put(root / "hotfixes" / "qa" / "h.yaml", data).parents[2], "qa"),
        "helm Chart.yaml": lambda root, data: chart_version(_put(root / "Chart.yaml",
                                                                 data).parent),
        "record": lambda root, data: record_format.load(yamlsafe.read(data)[0]),
        "yamlines": lambda root, data: yamlines.load(yamlsafe.read(data)[0]),
    }


LOADERS = _loaders()


@pytest.mark.parametrize("loader", sorted(LOADERS))
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(case=hostile)
def test_every_loader_refuses_hostile_yaml_as_bad_input_in_bounded_memory(
        tmp_path_factory, loader, case):
    kind, data, must_refuse = case
    root = tmp_path_factory.mktemp("fuzz")
    tracemalloc.start()
    try:
        LOADERS[loader](root, data)
        outcome: Any = "loaded"
    except (BadInput, yamlines.YamlError) as exc:
        outcome = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MAX_PEAK + len(data) * 4, f"{loader} on {kind}: peak {peak} bytes"
    if must_refuse and loader not in ("record",):  # a record falls back to key: value lines
        assert outcome != "loaded", f"{loader} accepted hostile {kind}"
    if isinstance(outcome, BadInput):
        assert outcome.exit_code == 2


COMMANDS = ["rollout", "apply", "plan", "validate"]


@settings(max_examples=16, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(case=hostile.filter(lambda c: c[2]), command=st.sampled_from(COMMANDS))
def test_commands_exit_2_on_hostile_yaml_and_write_nothing(
        cluster, kube_env, tmp_path_factory, case, command):
    kind, data, _ = case
    ns = f"fz-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("cli")
    audit = AuditLog(kube_env["PIPELINELIB_KUBE_AUDIT_LOG"])
    env = cluster.cli_env()
    if command == "rollout":
        args = ["rollout", str(_put(root / "app.yaml", data)), "--app", "web", "-n", ns]
    elif command == "validate":
        args = ["validate", str(_put(root / "app.yaml", data)), "-n", ns]
    else:
        _put(root / "environments" / f"{ns}.yaml", data)
        args = [command, ns, "--repo", str(root)]
    out = run_pipeline(*args, env=env)
    assert out.returncode == 2, (command, kind, out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    assert audit.writes(ns) == [], "nothing written"
