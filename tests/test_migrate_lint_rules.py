"""Every squawk rule: one violating and one safe migration, with the phase rules applied.

The migrations are in tests/fixtures/migrations/squawk-rules (each names the squawk docs and
test file it follows); squawk-cli itself lints them, in the expand phase (the default) and
in the contract phase (the file marked ``-- pipelinelib:contract``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelinelib.migrate.lint import BLOCK, OPT_IN, PHASE_RULES, lint_migrations
from tests.helpers.paths import FIXTURES

RULES_DIR = FIXTURES / "migrations" / "squawk-rules"
SQUAWK_RULES = sorted(p.name.removesuffix(".violating.sql")
                      for p in RULES_DIR.glob("*.violating.sql"))
PG_VERSION = {"prefer-repack": "19"}  # squawk checks it for PostgreSQL 19 (REPACK) only


def migration(tmp_path: Path, rule: str, kind: str, contract: bool = False) -> Path:
    d = tmp_path / f"{kind}-{'contract' if contract else 'expand'}"
    d.mkdir()
    sql = (RULES_DIR / f"{rule}.{kind}.sql").read_text()
    if contract:
        sql = "-- pipelinelib:contract reason: release 41 runs nowhere any more\n" + sql
    (d / "V2__change.sql").write_text(sql)
    return d


def test_every_rule_squawk_has_a_case_and_a_phase_rule():
    assert set(SQUAWK_RULES) == set(PHASE_RULES) - {"syntax-error"}
    assert set(OPT_IN) <= set(SQUAWK_RULES)


@pytest.mark.parametrize("rule", SQUAWK_RULES)
def test_squawk_rule_violating_and_safe_migration_under_the_phase_rules(tmp_path, rule):
    expand, contract, _ = PHASE_RULES[rule]
    pg = PG_VERSION.get(rule)
    found = [f for f in lint_migrations(migration(tmp_path, rule, "violating"), pg_version=pg)
             if f.rule == rule]
    assert found, f"squawk did not report {rule} on its violating case"
    assert all(f.blocks == (expand == BLOCK) for f in found), [f.one_line() for f in found]
    assert all(f.phase == "expand" and f.line > 2 for f in found)
    assert all(f.file.endswith("V2__change.sql") for f in found)

    in_contract = [f for f in lint_migrations(migration(tmp_path, rule, "violating", True),
                                              pg_version=pg) if f.rule == rule]
    assert in_contract and all(f.blocks == (contract == BLOCK) for f in in_contract)
    assert all(f.phase == "contract" for f in in_contract)
    assert all(f.contract == (expand == BLOCK and contract != BLOCK) for f in in_contract)

    safe = lint_migrations(migration(tmp_path, rule, "safe"), pg_version=pg)
    assert not [f for f in safe if f.rule == rule], [f.one_line() for f in safe]
