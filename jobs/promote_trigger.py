#!/usr/bin/env python3
"""Release manager's trigger: start the Jenkins promotion job and follow it to its result.

    python jobs/promote_trigger.py --app web --from staging --to live [--approve]
    python jobs/promote_trigger.py --app web --to live --hotfix --image REPO@sha256:... --reason WHY

Credentials come from the environment: PIPELINELIB_JENKINS_URL, PIPELINELIB_JENKINS_USER and
PIPELINELIB_JENKINS_TOKEN (your own API token). Jenkins records you as the build's cause; the
promotion job takes the identity from there, and only the release-managers group may run it.
The console is streamed here; the exit code is the build's: 0 SUCCESS, 1 failed, 2 refused or
bad input, 3 Jenkins unreachable.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping

from pipelinelib import Context, Job
from pipelinelib.context import Credentials
from pipelinelib.errors import PipelineError
from pipelinelib.log import configure


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None,
         out: Callable[[str], None] | None = None, **client_options: object) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True)
    parser.add_argument("--to", required=True, help="target environment (e.g. live)")
    parser.add_argument("--from", dest="source", help="source environment (e.g. staging)")
    parser.add_argument("--approve", action="store_true",
                        help="only record your four-eyes approval of this promotion")
    parser.add_argument("--hotfix", action="store_true", help="use the hot-fix job")
    parser.add_argument("--image", help="hot-fix: REPOSITORY@sha256:DIGEST")
    parser.add_argument("--reason", help="why (mandatory for --hotfix)")
    parser.add_argument("--job", help="Jenkins job (default release/promote or release/hotfix)")
    parser.add_argument("--queue-timeout", type=float, default=300.0, metavar="S")
    parser.add_argument("--timeout", type=float, default=3600.0, metavar="S")
    parser.add_argument("--report-dir")
    parser.add_argument("--log-format", default="auto", choices=("auto", "console", "json"))
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    out = out or (lambda line: print(line, flush=True))

    from pipelinelib.adapters.jenkins import JenkinsClient
    from pipelinelib.ci.remote import promotion_parameters, run_jenkins_job

    secrets = configure(args.log_format)
    ctx = Context(app=args.app, environment=args.to, dry_run=args.dry_run, secrets=secrets)
    try:
        parameters = promotion_parameters(args.app, args.to, args.source, args.image,
                                          args.reason, hotfix=args.hotfix, approve=args.approve)
        login = Credentials.from_env(env).jenkins
        client = JenkinsClient.login(login.url, login.user, login.token, secrets=secrets,
                                     **client_options)
    except PipelineError as exc:
        print(f"promote_trigger: {secrets.redact_text(exc.one_line())}", file=sys.stderr)
        return exc.exit_code
    job_name = args.job or ("release/hotfix" if args.hotfix else "release/promote")
    with Job("promote-trigger", ctx, report_dir=args.report_dir) as job:
        job.run(run_jenkins_job, ctx, client, job_name, parameters, out,
                queue_timeout_s=args.queue_timeout, build_timeout_s=args.timeout)
    return job.exit_code


if __name__ == "__main__":
    sys.exit(main())
