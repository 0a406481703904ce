"""`pipeline gate`: the release checklist on a real git repository and the testbed PostgreSQL."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from pipelinelib.attest import read_attestation
from pipelinelib.context import Context
from tests.helpers.cli import run_pipeline
from tests.helpers.git import add_origin, commit_all, init_repo
from tests.helpers.paths import ROOT

FIX = ROOT / "tests" / "fixtures"


@pytest.fixture
def db(postgres_db: str) -> str:
    """A fresh database (the plugin's ``postgres_db``); its DSN."""
    return postgres_db


@pytest.fixture
def app(tmp_path: Path) -> tuple[Path, str]:
    """An app at v1 (deployed revision returned), working tree ready for the next release."""
    app = tmp_path / "repo" / "svc"
    (app / "build" / "test-results").mkdir(parents=True)
    shutil.copy(FIX / "gate" / "gate.yaml", app)
    shutil.copy(FIX / "gate" / "audit-mapping.yaml", app)
    shutil.copy(FIX / "openapi" / "v1.yaml", app / "openapi.yaml")
    shutil.copytree(FIX / "migrations" / "app", app / "migrations")
    deployed = init_repo(app.parent, "release 1.4.0")
    shutil.copy(FIX / "gate" / "junit-pass.xml", app / "build" / "test-results" / "junit.xml")
    return app, deployed


def release(app: Path, openapi: str, version: str, mapping_update: dict | None = None) -> None:
    doc = yaml.safe_load((FIX / "openapi" / openapi).read_text())
    doc["info"]["version"] = version
    (app / "openapi.yaml").write_text(yaml.safe_dump(doc))
    if mapping_update:
        mapping = yaml.safe_load((app / "audit-mapping.yaml").read_text())
        mapping.update(mapping_update)
        (app / "audit-mapping.yaml").write_text(yaml.safe_dump(mapping))
    commit_all(app, f"release {version}")


def gate(app: Path, deployed: str, tmp_path: Path, *args: str, env: dict | None = None):
    out = run_pipeline("--report-dir", str(tmp_path / "report"), "gate", "--app-dir", str(app),
                       "--deployed-rev", deployed, *args, env=env)
    return out, (tmp_path / "report" / "junit.xml").read_text()


def migrate(dsn: str, app: Path):
    out = run_pipeline("migrate", "--dir", str(app / "migrations"),
                       env={"PIPELINE_DB_DSN": dsn})
    assert out.returncode == 0, out.stderr[-2000:]


UPDATED_MAPPINGS = {
    "listUsers": {"index": "audit-users-list-v2", "fields": {"limit": "integer",
                                                             "tenant": "keyword"}},
    "createUser": {"index": "audit-users-create-v2",
                   "fields": {"name": "keyword", "email": "keyword", "age": "integer"}},
    "getUser": {"index": "audit-users-get-v2", "fields": {"id": "keyword"}},
}


def test_breaking_changes_in_a_minor_release_fail_marks_4_and_5_with_evidence(app, db,
                                                                              tmp_path):
    app_dir, deployed = app
    migrate(db, app_dir)
    release(app_dir, "v2-breaking.yaml", "1.5.0")
    out, junit = gate(app_dir, deployed, tmp_path, "--database-dsn", db)
    assert out.returncode == 1, out.stderr[-3000:]
    text = out.stdout
    assert "✓ 1. built and tested" in text and "3 tests, 0 failures, 0 errors, 1 skipped" in text
    assert "✓ 2. migrations occur before the deployment" in text
    assert "✓ 3. old and new versions can co-exist" in text
    assert "✗ 4. breaking interface changes only in a major release" in text
    assert "version 1.4.0 -> 1.5.0" in text and "need version 2.0.0 or later" in text
    assert "BREAKING api-removed-without-deprecation: DELETE /users/{id}" in text
    assert "✗ 5. audit index mapping updated for every broken call" in text
    assert "✗ POST /users (createUser): audit mapping 'createUser' unchanged" in text
    # the failure names each failed mark and why, in one line
    assert "<failure" in junit
    assert "release gate failed: ✗ 4: 12 breaking change(s) in 1.4.0" in junit
    assert "needs 2.0.0; ✗ 5: GET /users (listUsers): audit mapping 'listUsers' unchanged" in junit
    assert db.rsplit("@", 1)[0] not in out.stdout + out.stderr + junit, "the DSN is a secret"


def test_a_major_release_with_updated_audit_mappings_passes_and_is_recorded(
        app, db, registry_env, tmp_path):
    app_dir, deployed = app
    migrate(db, app_dir)
    release(app_dir, "v2-breaking.yaml", "2.0.0", UPDATED_MAPPINGS)
    repo = f"{registry_env['PIPELINELIB_REGISTRY']}/pipelinelib-gate/g{uuid.uuid4().hex[:10]}"
    digest = "sha256:" + uuid.uuid4().hex * 2
    args = ("--database-dsn", db, "--image", repo, "--digest", digest)
    out, _ = gate(app_dir, deployed, tmp_path, *args, env=registry_env)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "✓ 4." in out.stdout and "version 1.4.0 -> 2.0.0 (major)" in out.stdout
    assert "✓ GET /users (listUsers): audit mapping 'listUsers' updated" in out.stdout
    assert "✓ DELETE /users/{id} (deleteUser): removed" in out.stdout
    recorded = read_attestation(Context(), repo, digest, "gate")
    assert recorded["passed"] is True and [m["ok"] for m in recorded["marks"]] == [True] * 5
    again, _ = gate(app_dir, deployed, tmp_path / "again", *args, env=registry_env)
    summary = json.loads((tmp_path / "again" / "report" / "summary.json").read_text())
    assert again.returncode == 0 and summary["steps"][-1]["status"] == "unchanged"


def test_pending_migrations_fail_mark_2_until_migrate_ran(app, db, tmp_path):
    app_dir, deployed = app
    release(app_dir, "v2-compatible.yaml", "1.5.0")
    out, _ = gate(app_dir, deployed, tmp_path, "--database-dsn", db)
    assert out.returncode == 1
    assert "✗ 2. migrations occur before the deployment" in out.stdout
    assert "4 migration(s) pending: V1__create_users.sql" in out.stdout
    # the pipeline's gate stage runs before its migrate stage: pending is expected there ...
    out, _ = gate(app_dir, deployed, tmp_path / "early", "--database-dsn", db, "--migrate-next")
    assert out.returncode == 0, out.stdout
    assert "4 migration(s) to apply next: V1__create_users.sql" in out.stdout
    # ... and mark 2 alone, right before the rollout, refuses while anything is pending
    out, _ = gate(app_dir, deployed, tmp_path / "late", "--database-dsn", db, "--marks", "2")
    assert out.returncode == 1 and "✗ 2." in out.stdout
    assert "- 4. breaking interface changes only in a major release (not configured)" \
        in out.stdout, "only mark 2 was checked"
    migrate(db, app_dir)
    out, _ = gate(app_dir, deployed, tmp_path / "after", "--database-dsn", db)
    assert out.returncode == 0, out.stdout
    assert "✓ 2." in out.stdout and "✓ 4." in out.stdout and "0 breaking change(s)" in out.stdout
    out, _ = gate(app_dir, deployed, tmp_path / "bad", "--marks", "2,9")
    assert out.returncode == 2 and "--marks" in out.stderr


def test_failed_tests_and_an_unstable_build_fail_mark_1(app, db, tmp_path):
    app_dir, deployed = app
    migrate(db, app_dir)
    shutil.copy(FIX / "gate" / "junit-fail.xml", app_dir / "build" / "test-results" / "j.xml")
    out, _ = gate(app_dir, deployed, tmp_path, "--database-dsn", db, "--build-result",
                  "unstable")
    assert out.returncode == 1
    assert "✗ 1. built and tested" in out.stdout
    assert "failed: users.creates a user" in out.stdout
    assert "build result: UNSTABLE (the build must be stable)" in out.stdout


def test_override_needs_a_privileged_ci_user_and_a_reason_and_is_audited(app, db, tmp_path):
    app_dir, deployed = app
    migrate(db, app_dir)
    release(app_dir, "v2-breaking.yaml", "1.5.0")
    audit_file = tmp_path / "audit.jsonl"
    ci = {"JENKINS_URL": "http://jenkins.example/", "BUILD_URL": "http://jenkins.example/1/",
          "JOB_NAME": "svc", "PIPELINE_AUDIT_FILE": str(audit_file),
          "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}
    args = ("--database-dsn", db, "--override", "4,5")
    reason = "hotfix for INC-42; clients migrated out of band"
    out, _ = gate(app_dir, deployed, tmp_path / "a", *args, "--reason", reason,
                  env={**ci, "BUILD_USER_ID": "dev"})
    assert out.returncode == 2 and "dev may not override the release gate" in out.stderr
    out, _ = gate(app_dir, deployed, tmp_path / "b", *args,
                  env={**ci, "BUILD_USER_ID": "release-manager"})
    assert out.returncode == 2 and "an override needs a reason" in out.stderr
    assert not audit_file.exists()
    out, _ = gate(app_dir, deployed, tmp_path / "c", *args, "--reason", reason,
                  env={**ci, "BUILD_USER_ID": "release-manager"})
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert f"✓! 4. breaking interface changes only in a major release (OVERRIDDEN: {reason})" \
        in out.stdout
    event = json.loads(audit_file.read_text().splitlines()[-1])
    assert event["action"] == "gate-override" and event["reason"] == reason
    assert event["user"] == "release-manager"


def test_gate_config_with_an_unknown_key_is_bad_input(app, tmp_path):
    app_dir, deployed = app
    (app_dir / "gate.yaml").write_text("marks: [1]\nskip_tests: true\n")
    out, _ = gate(app_dir, deployed, tmp_path)
    assert out.returncode == 2 and "gate.yaml:2: unknown key 'skip_tests'" in out.stderr


@pytest.mark.parametrize(("text", "where", "expected"), [
    ("openapi: 3.0.3\ninfo: {title: svc, version: 1.5.0\npaths: {}\n", "openapi.yaml:",
     "not valid YAML"),
    ("swagger: '2.0'\ninfo: {title: svc, version: 1.5.0}\npaths: {}\n", "openapi.yaml openapi:",
     "OpenAPI 3 document"),
    ("openapi: 3.0.3\ninfo: {title: svc, version: 1.5.0}\npaths:\n  /users: [get]\n",
     "openapi.yaml paths./users:", "a mapping of operations"),
    ("openapi: 3.0.3\ninfo: {title: svc, version: 1.5.0}\npaths:\n  /users:\n    get:\n"
     "      responses:\n        '200':\n          description: ok\n          content:\n"
     "            application/json:\n              schema: {$ref: '#/components/schemas/X'}\n",
     "openapi.yaml", "oasdiff cannot read the document"),
])
def test_a_malformed_interface_spec_is_bad_input_naming_file_and_field(app, tmp_path, text,
                                                                       where, expected):
    app_dir, deployed = app
    (app_dir / "gate.yaml").write_text("marks: [4]\nopenapi: openapi.yaml\n")
    (app_dir / "openapi.yaml").write_text(text)
    commit_all(app_dir, "a broken spec")
    out, _ = gate(app_dir, deployed, tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr[-2000:]
    assert where in out.stderr and expected in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr


def test_a_removed_parameter_warns_in_mark_4_unless_the_project_makes_it_breaking(
        app, tmp_path):
    app_dir, deployed = app
    doc = yaml.safe_load((FIX / "openapi" / "v1.yaml").read_text())
    params = doc["paths"]["/users"]["get"]["parameters"]
    doc["paths"]["/users"]["get"]["parameters"] = [p for p in params if p.get("name") != "limit"]
    doc["info"]["version"] = "1.4.1"
    (app_dir / "openapi.yaml").write_text(yaml.safe_dump(doc))
    (app_dir / "gate.yaml").write_text("marks: [4]\nopenapi: openapi.yaml\n")
    commit_all(app_dir, "release 1.4.1")
    out, _ = gate(app_dir, deployed, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "WARN request-parameter-removed: GET /users:" in out.stdout
    (app_dir / "gate.yaml").write_text("marks: [4]\nopenapi: openapi.yaml\n"
                                       "openapi_levels: {request-parameter-removed: err}\n")
    commit_all(app_dir, "our policy: a removed parameter breaks")
    out, _ = gate(app_dir, deployed, tmp_path / "strict")
    assert out.returncode == 1 and "BREAKING request-parameter-removed" in out.stdout


def test_environment_reads_the_deployed_release_from_our_records(app, db, tmp_path):
    app_dir, deployed = app
    add_origin(app_dir, tmp_path / "origin.git")
    migrate(db, app_dir)
    release(app_dir, "v2-breaking.yaml", "1.5.0")

    def gate_env(env: str, report: str):
        return run_pipeline("--report-dir", str(tmp_path / report), "gate", "--app-dir",
                            str(app_dir), "--environment", env, "--database-dsn", db)

    out = gate_env("staging", "first")
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "✓ 4. breaking interface changes only in a major release" in out.stdout
    assert "first deployment to staging: nothing to compare" in out.stdout

    annotated = run_pipeline("annotate", "--env", "staging", "--result", "success",
                             "--revision", deployed, "--repo", str(app_dir), "--app", "svc",
                             env={"BUILD_USER_ID": "rita"})
    assert annotated.returncode == 0, annotated.stderr[-2000:]
    out = gate_env("staging", "second")
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    assert f"deployed in staging: {deployed[:12]} (deployment-0001)" in out.stdout
    assert "✗ 4. breaking interface changes only in a major release" in out.stdout
    assert "BREAKING api-removed-without-deprecation: DELETE /users/{id}" in out.stdout
    out = gate_env("live", "live")
    assert out.returncode == 0 and "first deployment to live" in out.stdout


def test_mark_3_lints_only_the_migrations_this_release_will_run(tmp_path, db):
    app_dir = tmp_path / "repo" / "svc"
    migrations = app_dir / "migrations"
    migrations.mkdir(parents=True)
    shutil.copy(FIX / "migrations" / "destructive" / "V1__create_users.sql", migrations)
    (app_dir / "gate.yaml").write_text("marks: [2, 3]\nmigrations: migrations\n")
    init_repo(app_dir.parent, "users table")

    def run_migrate(*extra: str) -> None:
        done = run_pipeline("migrate", "--dir", str(migrations), *extra,
                            env={"PIPELINE_DB_DSN": db})
        assert done.returncode == 0, done.stderr[-2000:]

    run_migrate()
    shutil.copy(FIX / "migrations" / "destructive" / "V2__contract.sql", migrations)
    commit_all(app_dir, "contract phase")
    gate_args = ("gate", "--app-dir", str(app_dir), "--database-dsn", db)
    out = run_pipeline(*gate_args)
    assert out.returncode == 1, out.stdout
    assert "✗ 3. old and new versions can co-exist" in out.stdout, out.stdout
    assert "1 pending migration(s) linted" not in out.stdout, "findings come first"
    assert "V2__contract.sql" in out.stdout and "drop" in out.stdout.lower(), out.stdout
    run_migrate("--no-lint")  # the contract phase ran (a person decided so, long ago)
    out = run_pipeline(*gate_args)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "✓ 3. old and new versions can co-exist" in out.stdout
    assert "no pending migrations to lint" in out.stdout, "history is not today's risk"


def test_a_contract_migration_passes_mark_3_only_when_no_older_version_runs_anywhere(tmp_path):
    app_dir = tmp_path / "repo" / "svc"
    (app_dir / "migrations").mkdir(parents=True)
    shutil.copy(FIX / "migrations" / "destructive" / "V1__create_users.sql",
                app_dir / "migrations")
    (app_dir / "gate.yaml").write_text("marks: [3]\nmigrations: migrations\n")
    (app_dir / "app.txt").write_text("reads users.legacy\n")
    old = init_repo(app_dir.parent, "release 1: reads users.legacy")
    add_origin(app_dir, tmp_path / "origin.git")
    (app_dir / "app.txt").write_text("no longer reads users.legacy\n")
    expand = commit_all(app_dir, "release 2: stops reading users.legacy")
    (app_dir / "migrations" / "V2__drop_legacy.sql").write_text(
        "-- pipelinelib:contract reason: release 2 stopped reading users.legacy\n"
        "alter table users drop column legacy;\n")
    commit_all(app_dir, "release 3: contract phase")

    def deployed(env: str, rev: str) -> None:
        out = run_pipeline("annotate", "--env", env, "--result", "success", "--revision", rev,
                           "--repo", str(app_dir), "--app", "svc")
        assert out.returncode == 0, out.stderr[-2000:]

    def mark_3():
        return run_pipeline("gate", "--app-dir", str(app_dir), env={"PIPELINE_DB_DSN": ""})

    out = mark_3()
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "✓ contract phase V2__drop_legacy.sql: the app is deployed nowhere yet" in out.stdout
    deployed("live", old)
    deployed("staging", expand)
    out = mark_3()
    assert out.returncode == 1, out.stdout
    assert (f"✗ contract phase V2__drop_legacy.sql: an app version older than {expand[:12]} "
            f"(the release before it) still runs: live runs {old[:12]} (deployment-0001)"
            ) in out.stdout, out.stdout
    assert "every migration linted (no target database" in out.stdout
    deployed("live", expand)
    out = mark_3()
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert (f"✓ contract phase V2__drop_legacy.sql: every environment runs {expand[:12]} or "
            "newer: live, staging") in out.stdout
