"""The ``pipeline`` command: one subcommand per job or step.

Start-up is kept fast: ``pipeline --help`` imports no step, and
``pipeline <command> --help`` imports only that command's argument module.
docker-py, kubernetes and friends load when a step first needs them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from pipelinelib.errors import EXIT_BAD_INPUT, EXIT_CODES_HELP, PipelineError

# name -> (module under pipelinelib.commands, one-line help). Order is the help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "env": ("envfile", "validate an env file and show its (redacted) values"),
    "build": ("build", "build, tag, push and smoke-test an app's image (idempotent)"),
    "scan": ("scan", "scan an image for vulnerabilities and apply the severity policy"),
    "perf": ("perf", "check Lighthouse performance budgets"),
    "gate": ("gate", "the release checklist: every mark checked, with evidence"),
    "migrate": ("migrate", "apply database migrations before the rollout"),
    "validate": ("validate", "check manifests, env specs, charts and policies; writes nothing"),
    "rollout": ("rollout", "apply manifests, wait for health, roll back on failure"),
    "rollback": ("rollback", "return an app to an earlier revision (or blue/green colour)"),
    "swap": ("swap", "blue/green: swap which colour serves (staging <-> live)"),
    "plan": ("plan", "show what `apply` would change in an environment"),
    "apply": ("apply", "bring an environment to its desired-state spec"),
    "promote": ("promote", "promote an app's image digest from one environment to the next"),
    "branch-deploy": ("branch_deploy", "deploy a built branch's image to that branch's "
                      "environment"),
    "autoroll": ("autoroll", "apply the environments a commit to the env-state repo touched"),
    "status": ("status", "what is deployed where"),
    "state": ("state", "read or set a commit's git-note state"),
    "queue": ("queue", "deploy the deployable refspecs in order; rebase the rest onto master"),
    "annotate": ("annotate", "record a deployment: tag, git note, audit, CI server"),
    "audit": ("audit", "query or flush the audit trail"),
    "metrics": ("metrics", "DORA metrics from the deployment records"),
    "history": ("history", "who deployed what, where and when (git records alone)"),
    "import": ("import_helmsman", "convert a helmsman desired state file into an environment spec"),
}

DESCRIPTION = """\
Idempotent deployment steps for CI job scripts. Each command observes the
actual state, acts only on the difference, and reports changed/unchanged.
Run `pipeline COMMAND --help` for a command's options.
"""

ENV_DEFAULTS = """\
environment:
  PIPELINE_LOG_FORMAT, PIPELINE_REPORT_DIR, PIPELINE_DRY_RUN=1 set the global
  options' defaults (handy in Jenkins withEnv / GoCD environment_variables).
  CI=true selects JSON logs when --log-format is auto.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    env = os.environ
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default=default(env.get("PIPELINE_LOG_FORMAT", "auto")),
        help="console for people, json lines for CI (auto: json when CI=true)",
    )
    group.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=default("info"),
        help="least severe level to log (default info)",
    )
    group.add_argument(
        "--report-dir",
        metavar="DIR",
        default=default(env.get("PIPELINE_REPORT_DIR") or None),
        help="write junit.xml, summary.json and summary.md here",
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        default=default(env.get("PIPELINE_DRY_RUN", "") in ("1", "true", "yes")),
        help="observe and plan, print what would change, write nothing",
    )


def _selected_command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def _command_module(module_name: str) -> Any:
    """Import one command's module; structlog first, without rich (``log.load_structlog``)."""
    from pipelinelib.log import load_structlog

    load_structlog()
    return importlib.import_module(f"pipelinelib.commands.{module_name}")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The full parser; only the selected command's module is imported. With a command
    selected the others are left out (each subparser costs argparse's message lookups:
    ~5 ms for the 22 that would go unused); without one, all are listed for the help."""
    parser = _Parser(
        prog="pipeline",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP + ENV_DEFAULTS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from pipelinelib import __version__

    parser.add_argument("--version", action="version", version=f"pipelinelib {__version__}")
    _add_global_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    selected = _selected_command(argv)
    for name, (module_name, summary) in COMMANDS.items():
        if name != selected:
            if selected is None:
                subparsers.add_parser(name, help=summary)
            continue
        module = _command_module(module_name)
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=module.DESCRIPTION,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        _add_global_options(sub, suppress=True)
        sub.set_defaults(_module=module)
    return parser


def command_parser(name: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``pipeline NAME`` (its options, their environment defaults and the
    global options) as a stand-alone parser: a job script in jobs/ that runs the same
    command parses with this, so its options are never declared twice."""
    module = _command_module(COMMANDS[name][0])
    parser = _Parser(prog=prog or f"pipeline {name}", description=module.DESCRIPTION,
                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    _add_global_options(parser, suppress=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipeline`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    return _run(args._module, args, f"pipeline {args.command}")


def run_job(name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of a job script in jobs/: ``pipeline NAME``'s own parser (same options,
    same environment defaults), its pipeline, its exit code."""
    module = _command_module(COMMANDS[name][0])
    args = command_parser(name, prog=prog).parse_args(
        list(sys.argv[1:] if argv is None else argv))
    args.command = name
    return _run(module, args, prog or f"pipeline {name}")


def _run(module: Any, args: argparse.Namespace, label: str) -> int:
    from pipelinelib.context import Context
    from pipelinelib.log import configure

    secrets = configure(args.log_format, args.log_level)
    ctx = Context(dry_run=args.dry_run, secrets=secrets)
    try:
        return int(module.run(args, ctx) or 0)
    except PipelineError as exc:  # raised before a job started (e.g. bad parameters)
        print(f"{label}: {secrets.redact_text(exc.one_line())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The ``pipeline`` console script (and ``python -m pipelinelib``): ``main()``, then exit
    without the interpreter's teardown, which costs 1-3 s on a loaded machine once the
    Kubernetes watches and their modules are loaded (benchmarks/rollout_exit.py). Exit
    handlers still run and output is flushed; with a non-daemon thread still alive the
    interpreter exits as usual (it joins that thread)."""
    code = main()
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        raise SystemExit(code)
    import atexit
    import contextlib

    atexit._run_exitfuncs()  # logging.shutdown, coverage, temporary directories...
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)
