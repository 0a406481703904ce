"""Shared fixtures: the example app in a real git repository, and a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hello"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def hello_repo(tmp_path: Path) -> Path:
    """A copy of examples/hello committed to a fresh git repository; returns the app dir."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo / "hello", ignore=shutil.ignore_patterns("build"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "hello")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    return repo / "hello"


def commit_all(app_dir: Path, message: str) -> str:
    """Commit every change in the app's repository; return the new revision."""
    git(app_dir, "add", "-A")
    git(app_dir, "commit", "-q", "-m", message)
    return git(app_dir, "rev-parse", "HEAD")


def run_pipeline(*args: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m pipelinelib ARGS` with ``env`` added to the environment."""
    full_env = {**os.environ, "PIPELINE_LOG_FORMAT": "json", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipelinelib", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, check=False)
