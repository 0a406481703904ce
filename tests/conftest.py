"""Fixtures every test module may use. The shared code lives in tests/helpers/; the modules
listed in ``pytest_plugins`` hold the fixtures shared across test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

# the helpers' asserts report like the tests' own (registered before the first import)
pytest.register_assert_rewrite("tests.helpers")

from tests.helpers.git import hello_repo_at  # noqa: E402

pytest_plugins = [
    "tests.helpers.kube",
    "tests.helpers.tools",
    "tests.helpers.gitea",
    "tests.helpers.pull_request",
    "tests.helpers.promotion",
    "tests.helpers.trust",
    "tests.helpers.realnode",
]


@pytest.fixture
def hello_repo(tmp_path: Path) -> Path:
    """A copy of examples/hello committed to a fresh git repository; returns the app dir."""
    return hello_repo_at(tmp_path)
