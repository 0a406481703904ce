"""The README's demo pipeline, end to end on the testbed: every stage in order, every gate bites."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STAGES = ["build:", "build again:", "scan:", "perf:", "gate:", "migrate:", "gate mark 2 again",
          "rollout:", "annotate:", "what the gates catch", "release manager:", "done:"]
CAUGHT = ["scan (", "perf (", "gate marks 4 and 5", "gate mark 2 (", "migrate lint (",
          "migrate (an applied migration was edited)", "rollout (the new pods crash-loop"]


@pytest.mark.slow
def test_demo_runs_every_stage_in_order_and_each_gate_catches_its_bad_variant(
        docker_env, registry_env, kube_env, postgres_env, tmp_path):
    env = {**os.environ, **docker_env, **registry_env, **kube_env, **postgres_env,
           "DEMO_DIR": str(tmp_path), "PIPELINE_LOG_FORMAT": "console"}
    out = subprocess.run([str(ROOT / "examples" / "demo" / "run")], env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    headers = [h for h in re.findall(r"== (.*?)\x1b", text)]
    positions = [next(i for i, h in enumerate(headers) if h.startswith(stage))
                 for stage in STAGES]
    assert positions == sorted(positions), headers
    caught = [line for line in text.splitlines() if line.startswith("caught: ")]
    assert [next(i for i, c in enumerate(CAUGHT) if line[len("caught: "):].startswith(c))
            for line in caught] == list(range(len(CAUGHT))), caught
    assert "mark(s) 4, 5 not checked" in caught[2] and "drop-column" in caught[4]
    reports = tmp_path / "reports"
    for stage in ("scan", "perf", "gate", "migrate", "gate-migrated", "rollout", "annotate"):
        assert (reports / stage / "summary.md").read_text().startswith("# ✅"), stage
    assert "## ✓ gate" in (reports / "gate" / "summary.md").read_text()
