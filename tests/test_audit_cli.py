"""`pipeline audit record|show|flush|template` end to end (a JSONL file, a spool)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.cli import run_pipeline


def test_record_show_flush_and_template(tmp_path: Path) -> None:
    env = {"PIPELINE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool"),
           "JENKINS_URL": "https://ci.example.org/", "JOB_NAME": "swap",
           "BUILD_URL": "https://ci.example.org/job/swap/3/", "BUILD_USER_ID": "rita"}
    out = run_pipeline("audit", "record", "swap", "--target", "hello", "--result", "success",
                       "--env", "live", "--from", "blue", "--to", "green", env=env)
    assert out.returncode == 0, out.stderr
    out = run_pipeline("audit", "record", "override", "--target", "gate", "--result",
                       "overridden", "--reason", "hot-fix approved by cto", "--env", "live",
                       env=env)
    assert out.returncode == 0, out.stderr
    shown = json.loads(run_pipeline("audit", "show", "--action", "swap", "--output", "json",
                                    env=env).stdout)
    assert [(e["from"], e["to"], e["user"], e["provider"]) for e in shown] == [
        ("blue", "green", "rita", "jenkins")]
    table = run_pipeline("audit", "show", "--env", "live", env=env).stdout.splitlines()
    assert len(table) == 2 and "override" in table[1] and "hot-fix approved" in table[1]

    # a sink that is down: the record still succeeds, warns, and the event waits in the spool
    down = {**env, "PIPELINE_AUDIT_URL": "http://127.0.0.1:9/"}
    out = run_pipeline("audit", "record", "refusal", "--target", "hello", "--result",
                       "refused", env=down)
    assert out.returncode == 0, out.stderr
    assert "WARNING" in out.stdout and "spooled" in out.stdout
    assert len(list((tmp_path / "spool").glob("*/*.json"))) == 1
    flushed = run_pipeline("audit", "flush", env=down)
    assert flushed.returncode == 0 and "still spooled: 1" in flushed.stdout

    template = json.loads(run_pipeline("audit", "template", "--index", "ops-audit").stdout)
    assert template["index_patterns"] == ["ops-audit*"]
    bad = run_pipeline("audit", "show", env={"PIPELINE_AUDIT_FILE": ""})
    assert bad.returncode == 2 and "PIPELINE_AUDIT_FILE" in bad.stderr
