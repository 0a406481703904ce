"""The repository's folders the tests read."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"
EXAMPLE = ROOT / "examples" / "hello"
EXAMPLE_STATE = ROOT / "examples" / "env-state"
GROOVY = TESTS / "groovy"
RBAC_FILE = ROOT / "testbed" / "kubernetes" / "rbac" / "deployer.yaml"
