"""The release jobs' parameters, generated from the env-state repository so they cannot drift.

Jenkins Job Builder reads every YAML file of jenkins/jobs/; the parameter definitions the
release jobs use (``release-*-parameters``) live in jenkins/jobs/release-parameters.yaml,
written by this module from an env-state checkout:

  APP          every app of every environment (sorted)
  FROM_ENV     environments something is promoted from, in promotion order
  TO_ENV       environments promoted into (``promotion.from``), in promotion order
  ENVIRONMENT  (swap) environments with a blue/green app
  TO_ENV       (hot-fix) environments whose policy names who may hot-fix
  ENVIRONMENT  (rollback) every environment, in promotion order

    python -m pipelinelib.ci.release_jobs ENV_STATE > jenkins/jobs/release-parameters.yaml
    python -m pipelinelib.ci.release_jobs ENV_STATE --check jenkins/jobs/release-parameters.yaml
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

HEADER = """\
# GENERATED from the env-state repository ({source}) by
#   python -m pipelinelib.ci.release_jobs {source} > jenkins/jobs/release-parameters.yaml
# Do not edit: change the environments (or policy.yaml) and generate again; the tests fail
# when this file and the environments disagree. Environments are in promotion order.
"""


@dataclass(frozen=True)
class ReleaseFacts:
    """What the release jobs offer, read from one env-state checkout."""

    apps: list[str]
    order: list[str]
    sources: list[str]
    targets: list[str]
    swappable: list[str]
    hotfixable: list[str]


def read_facts(root: str | Path) -> ReleaseFacts:
    """Load every environment (and the policy) of the checkout at ``root``."""
    from pipelinelib.envspec.load import environment_path, list_environments, load_environment
    from pipelinelib.envspec.order import promotion_order
    from pipelinelib.promotion.policy import load_policy

    envs = {name: load_environment(environment_path(root, name), root=root)
            for name in list_environments(root)}
    order = promotion_order({n: e.promote_from for n, e in envs.items()},
                            {n: list(e.apps) for n, e in envs.items()})
    used_as_source = {s for e in envs.values() for s in e.promote_from}
    policy = load_policy(root)
    return ReleaseFacts(
        apps=sorted({a for e in envs.values() for a in e.apps}),
        order=order,
        sources=[n for n in order if n in used_as_source],
        targets=[n for n in order if envs[n].promote_from],
        swappable=[n for n in order if any(a.blue_green for a in envs[n].apps.values())],
        hotfixable=[n for n in order if policy.env(n).hotfix],
    )


def _choice(name: str, choices: list[str], description: str) -> dict[str, object]:
    return {"choice": {"name": name, "choices": choices, "description": description}}


def parameters_yaml(facts: ReleaseFacts, source: str) -> str:
    """The JJB ``parameter`` definitions the release jobs reference."""
    definitions = [
        {"parameter": {"name": "release-app", "parameters": [
            _choice("APP", facts.apps, "The app (every app of the env-state repository).")]}},
        {"parameter": {"name": "release-promote-parameters", "parameters": [
            "release-app",
            _choice("FROM_ENV", facts.sources, "Where the image digest is taken from."),
            _choice("TO_ENV", facts.targets, "The environment to promote into (its "
                    "promotion.from must name FROM_ENV)."),
            {"bool": {"name": "APPROVE_ONLY", "default": False,
                      "description": "Only record my four-eyes approval of this promotion; "
                                     "someone else promotes."}}]}},
        {"parameter": {"name": "release-swap-parameters", "parameters": [
            "release-app",
            _choice("ENVIRONMENT", facts.swappable,
                    "The environment whose blue/green app to swap (its spec names the "
                    "namespace and cluster; the policy's swap role is checked)."),
            _choice("COLOUR", ["toggle", "blue", "green"],
                    "The colour that should serve live (toggle = the one serving staging "
                    "now).")]}},
        {"parameter": {"name": "release-rollback-parameters", "parameters": [
            "release-app",
            _choice("ENVIRONMENT", facts.order,
                    "The environment to roll back in (its spec names the namespace and "
                    "cluster; the policy is checked)."),
            {"validating-string": {
                "name": "TO_GIT_REVISION", "default": "", "regex": "^([0-9a-f]{{7,40}})?$",
                "msg": "Empty (the revision before the live one) or a git commit SHA.",
                "description": "Roll back to the workload revision built from this commit "
                               "(empty: the one before the live revision)."}}]}},
        {"parameter": {"name": "release-hotfix-parameters", "parameters": [
            "release-app",
            _choice("TO_ENV", facts.hotfixable, "The environment to hot-fix (policy.yaml "
                    "names who may)."),
            {"validating-string": {
                "name": "IMAGE", "default": "",
                "regex": "^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{{64}}$",
                "msg": "The exact image, REPOSITORY@sha256:DIGEST (64 hex digits).",
                "description": "The hot-fix build's image, pinned by digest."}},
            {"validating-string": {
                "name": "REASON", "default": "", "regex": r".*\S.{{9,}}",
                "msg": "A hot-fix needs a reason (at least 10 characters); it is recorded "
                       "and audited.",
                "description": "Why this cannot wait for the normal promotion (recorded in "
                               "the audit trail)."}}]}},
    ]
    body = yaml.safe_dump(definitions, sort_keys=False, width=96, default_flow_style=False)
    return HEADER.format(source=source) + "\n" + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_state", help="an env-state checkout (environments/, policy.yaml)")
    parser.add_argument("--check", metavar="FILE",
                        help="exit 1 when FILE differs from what would be generated")
    args = parser.parse_args(argv)
    from pipelinelib.errors import PipelineError

    try:
        text = parameters_yaml(read_facts(args.env_state), args.env_state)
    except PipelineError as exc:
        print(f"release_jobs: {exc.one_line()}", file=sys.stderr)
        return 2
    if args.check:
        current = Path(args.check).read_text() if Path(args.check).exists() else ""
        if current != text:
            print(f"{args.check} is out of date: generate it again from {args.env_state}",
                  file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
