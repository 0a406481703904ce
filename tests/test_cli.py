"""The `pipeline` command: help, exit codes, one-line errors."""

import subprocess
import sys

import pytest

from pipelinelib.cli import COMMANDS


def pipeline(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pipelinelib", *args], capture_output=True,
                          text=True, env=env, check=False)


def test_help_lists_commands_and_documents_exit_codes():
    out = pipeline("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout
    for line in ("0  success", "1  a step failed", "2  bad input", "3  a required system"):
        assert line in out.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_dry_run(command):
    out = pipeline(command, "--help")
    assert out.returncode == 0, out.stderr
    assert "--dry-run" in out.stdout and "--report-dir" in out.stdout


def test_help_does_not_import_docker_or_kubernetes():
    code = ("import sys; from pipelinelib.cli import build_parser; "
            "build_parser(['build', '--help']); "
            "heavy = ('docker', 'kubernetes', 'git', 'jenkins'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_rollout_help_imports_neither_the_context_nor_structlog():
    code = ("import sys; from pipelinelib.cli import build_parser; "
            "build_parser(['rollout', '--help']); "
            "print(sorted(m for m in ('pipelinelib.context', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_command_logs_through_structlog_without_importing_rich(tmp_path, log_format):
    good = tmp_path / "release.env"
    good.write_text("NAME=web\n")
    code = ("import sys; from pipelinelib.cli import main; "
            f"code = main(['env', {str(good)!r}, '--log-format', {log_format!r}]); "
            "print(code, 'structlog' in sys.modules, 'rich' in sys.modules)")  # no None left
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 True False", out.stdout + out.stderr


def test_structlog_loads_without_asyncio_and_uuid_and_still_uses_them(tmp_path):
    good = tmp_path / "release.env"
    good.write_text("NAME=web\n")
    code = ("import sys; from pipelinelib.cli import main; "
            f"code = main(['env', {str(good)!r}, '--log-format', 'json']); "
            "print(code, 'asyncio' in sys.modules, 'uuid' in sys.modules)\n"
            "import asyncio, structlog\n"
            "async def later(): await structlog.get_logger().ainfo('async', n=1)\n"
            "asyncio.run(later()); print(sys.modules['asyncio'] is asyncio)\n"
            "from structlog.threadlocal import wrap_dict; import warnings\n"
            "warnings.simplefilter('ignore'); print(wrap_dict(dict).__name__[:12])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[-3:] == ["0 False False", "True", "WrappedDict-"], out.stdout + out.stderr
    assert '"n": 1, "event": "async"' in out.stderr  # logged through the real asyncio


def test_unknown_flag_exits_2_with_one_line():
    out = pipeline("build", "--no-such-flag")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "unrecognized arguments: --no-such-flag" in out.stderr


def test_no_command_exits_2():
    assert pipeline().returncode == 2


def test_env_command_reports_bad_file_with_exit_2(tmp_path):
    bad = tmp_path / "release.env"
    bad.write_text("OK=1\nX=$(whoami)\n")
    out = pipeline("env", str(bad))
    assert out.returncode == 2
    assert f"{bad}:2 X: unquoted value" in out.stderr


def test_env_command_masks_secrets(tmp_path):
    good = tmp_path / "release.env"
    good.write_text("NAME=web\nDB_PASSWORD='planted-cli-secret'\n")
    out = pipeline("env", str(good), "--output", "json")
    assert out.returncode == 0 and "planted-cli-secret" not in out.stdout + out.stderr
    assert '"DB_PASSWORD": "***"' in out.stdout
