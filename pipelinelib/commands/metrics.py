"""``pipeline metrics``: DORA metrics (and the deployment history) from git records."""

from __future__ import annotations

import argparse
import json
import sys

from pipelinelib.context import Context

DESCRIPTION = """\
DORA metrics from the deployment records in git alone: deployment tags and the state
notes (refs/notes/pipelinelib-state) as the local clone holds them; --fetch first brings
the newest from origin. The output says when the clone last fetched (how old the data
is). Optionally also the audit JSONL (--audit-file, default PIPELINE_AUDIT_FILE). No
cluster, CI server or network is needed.

  deployment frequency   successful deployments per day in the window
  lead time for changes  commit time -> successful deployment (median, mean; hours)
  change failure rate    failed deployments ("Failed Deployment", or marked broken
                         later) / all deployments
  time to restore        a failure -> the next successful deployment in the same
                         environment (median; hours)

--history prints every deployment in the window (who deployed what, where, when);
`pipeline history` is the same with --history on. --html FILE also writes a
self-contained page (figures, a chart of deployments per day, the history) that a CI
server can publish.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default=".", help="the git clone (default: .)")
    parser.add_argument("--env", default="", help="only this environment (default: all)")
    parser.add_argument("--days", type=float, default=30.0,
                        help="the window: the last N days (default 30)")
    parser.add_argument("--since", help="window start (ISO time; overrides --days)")
    parser.add_argument("--until", help="window end (ISO time; default now)")
    parser.add_argument("--audit-file", help="also read deployments from this audit JSONL")
    parser.add_argument("--history", action="store_true", help="list the deployments too")
    parser.add_argument("--fetch", action="store_true",
                        help="fetch tags and notes from origin first (default: offline)")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("--html", metavar="FILE", help="also write an HTML page with a chart")


def _time(value: str | None, field: str) -> object:
    from pipelinelib.errors import BadInput
    from pipelinelib.records import format as fmt

    parsed = fmt.parse_time(value)
    if parsed is None:
        raise BadInput(f"invalid time {value!r}", field=field,
                       expected="an ISO time, e.g. 2026-11-01T00:00:00Z")
    return parsed


def run(args: argparse.Namespace, ctx: Context) -> int:
    import datetime as dt
    from pathlib import Path

    from pipelinelib.errors import BadInput
    from pipelinelib.records import metrics

    if args.env:
        from pipelinelib.records.format import check_environment

        check_environment(args.env)
    if args.days <= 0:
        raise BadInput("the window must be positive", field="--days", expected="N > 0")
    until = _time(args.until, "--until") if args.until else dt.datetime.now(dt.timezone.utc)
    since = (_time(args.since, "--since") if args.since
             else until - dt.timedelta(days=args.days))  # type: ignore[operator]
    repo = ctx.git(Path(args.repo))
    audit_file = args.audit_file or ctx.credentials.audit.file
    deployments = metrics.collect(repo, audit_file, fetch=args.fetch)
    fetched = metrics.last_fetched(repo)
    age = _age(fetched, dt.datetime.now(dt.timezone.utc))
    result = metrics.compute(deployments, environment=args.env, since=since,  # type: ignore[arg-type]
                             until=until)  # type: ignore[arg-type]
    window = [d for d in deployments if since <= d.time <= until  # type: ignore[operator]
              and (not args.env or d.environment == args.env)]
    if args.html:
        from pipelinelib.records.metrics_html import metrics_html

        page = metrics_html(ctx.secrets.redact(result.to_dict()), window, since, until)  # type: ignore[arg-type]
        Path(args.html).write_text(ctx.secrets.redact_text(page))
    if args.output == "json":
        data = result.to_dict()
        if args.history:
            data["history"] = [d.to_dict() for d in window]
        data["data_as_of"] = fetched.isoformat() if fetched else None
        data["fetched"] = bool(args.fetch)
        json.dump(ctx.secrets.redact(data), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"records: local clone {repo.path}, {age}"
          + ("" if args.fetch else " (run with --fetch for the newest)"))
    print(format_metrics(result))
    if args.history:
        print()
        print(format_history(window))
    return 0


def _age(fetched: object, now: object) -> str:
    """``last fetched 2026-11-02T09:00:00Z (3.5 h ago)`` or ``never fetched``."""
    if fetched is None:
        return "never fetched"
    hours = (now - fetched).total_seconds() / 3600  # type: ignore[operator]
    return f"last fetched {fetched.strftime('%Y-%m-%dT%H:%M:%SZ')} ({hours:.1f} h ago)"  # type: ignore[attr-defined]


def format_metrics(m: object) -> str:
    def num(value: object, unit: str = "") -> str:
        return "n/a" if value is None else f"{value}{unit}"

    d = m.to_dict()  # type: ignore[attr-defined]
    return "\n".join([
        f"DORA metrics for {d['environment']}: {d['since']} .. {d['until']} ({d['days']} days)",
        f"  deployments            {d['deployments']} ({d['successful']} successful, "
        f"{d['failed']} failed)",
        f"  deployment frequency   {d['deployment_frequency_per_day']} per day",
        f"  lead time for changes  median {num(d['lead_time_hours_median'], ' h')}, "
        f"mean {num(d['lead_time_hours_mean'], ' h')}",
        f"  change failure rate    {num(d['change_failure_rate'])}",
        f"  time to restore        median {num(d['time_to_restore_hours_median'], ' h')} "
        f"({len(d['restores'])} restored)",
    ])


def format_history(deployments: list) -> str:  # type: ignore[type-arg]
    lines = [f"{'time':<20} {'env':<12} {'result':<8} {'commit':<12} {'tag':<24} actor"]
    for d in deployments:
        result = "broken" if d.failed_at else d.result
        lines.append(f"{d.time.strftime('%Y-%m-%dT%H:%M:%SZ'):<20} {d.environment:<12} "
                     f"{result:<8} {d.commit[:12]:<12} {d.tag or '-':<24} {d.actor or '-'}")
    return "\n".join(lines)
