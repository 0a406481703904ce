"""The testbed's pinned tools (testbed/tools/NAME: built or installed once, cached per
version): their exports, and session fixtures for the ones several modules use."""

from __future__ import annotations

import os
import subprocess

import pytest

from pipelinelib.testing.testbed import parse_exports
from tests.helpers.paths import ROOT


def tool_exports(name: str, env: dict[str, str] | None = None,
                 timeout: float = 1800) -> dict[str, str]:
    """Run testbed/tools/NAME (with ``env`` added to the environment); the variables it
    exports. A tool that fails fails the test, with its stderr."""
    out = subprocess.run([str(ROOT / "testbed" / "tools" / name)], capture_output=True,
                         text=True, env={**os.environ, **(env or {})}, check=False,
                         timeout=timeout)
    assert out.returncode == 0, f"testbed/tools/{name}: {out.stderr[-3000:]}"
    return parse_exports(out.stdout)


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The pinned helm, built from the Go module proxy once (testbed/tools/helm); also in
    PIPELINELIB_HELM for the code under test."""
    path = tool_exports("helm")["PIPELINELIB_HELM"]
    os.environ["PIPELINELIB_HELM"] = path
    return path


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium (testbed/tools/lighthouse installs it with Lighthouse)."""
    return tool_exports("lighthouse")["PIPELINELIB_CHROMIUM"]
