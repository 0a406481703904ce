"""``pipeline import helmsman FILE...``: a helmsman desired state file as our environment spec."""

from __future__ import annotations

import argparse

from pipelinelib.context import Context

DESCRIPTION = """\
Convert a helmsman desired state file (YAML or TOML; several files are merged in order,
later ones winning, as `helmsman -f a -f b`; a --spec style file's stateFiles are read)
into a pipelinelib environment spec. Namespaces (protection, labels, annotations,
limits, quotas), apps (chart and repository, version, values files, set/setString with
their $ENV references, enabled, priority, protected, timeout, maxHistory) and the kube
context are carried over; every other field is listed as not converted, with the reason,
on stderr and in the spec's header. The result is validated before it is written
(--out FILE, else stdout). Exit 0 converted; 2 bad input (nothing written).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool", choices=("helmsman",), help="the format to import")
    parser.add_argument("files", metavar="FILE", nargs="+",
                        help="helmsman desired state file(s), .yaml/.yml or .toml")
    parser.add_argument("--env", metavar="NAME",
                        help="environment name (default: the file's context)")
    parser.add_argument("--repo", metavar="DIR", help="env-state repository checkout: local "
                        "paths become relative to it, and values files/charts must be in it")
    parser.add_argument("--out", metavar="FILE", help="write the spec here (default stdout)")
    parser.add_argument("--output", choices=("text", "json"), default="text",
                        help="text: the spec (notes on stderr); json: spec and notes")


class _AnyVariable(dict):  # type: ignore[type-arg]
    """An environment in which every $NAME is set: importing checks the form, not the CI's
    environment (apply checks that the variables exist)."""

    def __contains__(self, key: object) -> bool:
        return True


def run(args: argparse.Namespace, ctx: Context) -> int:
    import json
    import sys
    from pathlib import Path

    from pipelinelib.envspec.helmsman import convert
    from pipelinelib.envspec.load import parse_environment
    from pipelinelib.errors import EXIT_OK

    repo = Path(args.repo) if args.repo else None
    conv = convert([Path(f) for f in args.files], args.env, repo)
    text = conv.text()
    source = args.out or f"environments/{conv.name}.yaml"
    parse_environment(text, source, None, repo, environ=_AnyVariable())
    written = args.out if args.out and not ctx.dry_run else ""
    if written:
        Path(written).parent.mkdir(parents=True, exist_ok=True)
        Path(written).write_text(text, encoding="utf-8")
    if args.output == "json":
        json.dump({"environment": conv.name, "sources": conv.sources, "spec": conv.spec,
                   "written": written,
                   "not_converted": [{"field": n.field, "kind": n.kind, "reason": n.reason}
                                     for n in conv.notes]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not written:
        sys.stdout.write(text)
    for note in conv.notes:
        print(f"pipeline import: {note}", file=sys.stderr)
    print(f"pipeline import: environment {conv.name}: {len(conv.spec['apps'])} apps, "
          f"{len(conv.notes)} fields not carried over" + (
              f"; wrote {written}" if written else f"; dry run: {args.out} not written"
              if args.out else ""), file=sys.stderr)
    return EXIT_OK
