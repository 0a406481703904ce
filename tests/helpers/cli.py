"""The CLI under test, run as a subprocess (PYTHONPATH puts this tree's code first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_pipeline(*args: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m pipelinelib ARGS` with ``env`` added to the environment."""
    full_env = {**os.environ, "PIPELINE_LOG_FORMAT": "json", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipelinelib", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, check=False)
