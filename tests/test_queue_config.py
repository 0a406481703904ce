"""The queue's configuration is validated before anything is contacted or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelinelib.errors import BadInput
from pipelinelib.queue.config import parse_config
from tests.helpers.cli import run_pipeline


def test_every_problem_of_a_bad_configuration_is_reported_at_once() -> None:
    with pytest.raises(BadInput) as caught:
        parse_config({"environment": "Live!", "extra": 1,
                      "check": [{"pipeline": ["queue"]}, {"run": "make test"},
                                {"pipeline": ["gate", "{nope}"]}],
                      "deploy": [{"shell": ["x"]}]})
    message = caught.value.message
    assert message.startswith(".pipeline/queue.yaml: 6 problem(s): ")
    for expected in ("unknown keys ['extra']", "environment: 'Live!'",
                     "check[0].pipeline: 'queue' is not a stage command",
                     "check[1].run: expected a non-empty list of arguments (never a shell string)",
                     "check[2].pipeline: unknown placeholder(s) ['nope']",
                     "deploy[0]: expected one key"):
        assert expected in message


def test_a_good_configuration_renders_its_placeholders() -> None:
    config = parse_config({"environment": "live", "check": [
        {"pipeline": ["build", "--app-dir", "{workdir}"]}],
        "deploy": [{"run": ["./deploy.sh", "{short}", "{{literal}}"]}]})
    assert config.master == "master"
    assert config.check[0].pipeline and config.check[0].name == "build"
    rendered = config.deploy[0].render({"workdir": "/w", "commit": "a" * 40, "short": "aaaaaaa",
                                        "branch": "b", "reports": "/r"})
    assert rendered == ["./deploy.sh", "aaaaaaa", "{literal}"]


def test_the_cli_refuses_bad_input_before_contacting_the_repository(tmp_path: Path) -> None:
    bad = tmp_path / "queue.yaml"
    bad.write_text("environment: live\ncheck: nope\n")
    out = run_pipeline("queue", "--repo", "http://127.0.0.1:9/none.git", "--config", str(bad))
    assert out.returncode == 2 and "check: expected a list of stages" in out.stderr
    assert "Traceback" not in out.stderr
    out = run_pipeline("queue", "--repo", "x", "--speculative", "0", "--lock-ttl", "1")
    assert out.returncode == 2
    assert "--speculative: expected 1..16" in out.stderr and "--lock-ttl" in out.stderr
