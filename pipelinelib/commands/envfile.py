"""``pipeline env FILE``: validate an env file and show its values, secrets masked."""

from __future__ import annotations

import argparse
import json

from pipelinelib.context import Context

DESCRIPTION = """\
Validate an env file (the single file holding an app's variable information and
software versions) and print its values with secrets masked. Exits 2 with the
file and line of the first error.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the env file, e.g. release.env")
    parser.add_argument("--output", choices=("table", "json"), default="table")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.envfile import EnvFile
    from pipelinelib.secrets import MASK

    env = EnvFile.load(args.file)
    shown = {k: (MASK if e.secret else e.value) for k, e in env.entries.items()}
    if args.output == "json":
        print(json.dumps(shown, indent=2))
    else:
        width = max((len(k) for k in shown), default=0)
        for key, value in shown.items():
            print(f"{key.ljust(width)}  {value}")
    return 0
