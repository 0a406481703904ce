"""``pipeline audit``: record, show, flush the audit trail; print the index template."""

from __future__ import annotations

import argparse
import json
import sys

from pipelinelib.context import Context

DESCRIPTION = """\
The audit trail: one event per deployment, promotion, refusal, override and swap
(who, what, where, from -> to, digest, result, reason), written to every sink the
environment configures:

  PIPELINE_AUDIT_FILE=PATH       a JSONL file (one event per line, locked appends)
  PIPELINE_AUDIT_URL=URL         Elasticsearch/OpenSearch (or ZincSearch .../es): _bulk
  PIPELINE_AUDIT_INDEX=NAME      the index (default pipeline-audit); the index template
                                 NAME-template is PUT before the first write
  PIPELINE_AUDIT_USER/_PASSWORD  basic auth, or PIPELINE_AUDIT_API_KEY
  PIPELINE_AUDIT_SPOOL=DIR       where events wait while a sink is down

Actions:
  record   write one event (for job scripts: e.g. a manual override)
  flush    deliver spooled events now (every record also does this first)
  show     print the events of the JSONL file (filters: --action, --env, --since)
  template print the index template JSON (to install it by hand)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rec = sub.add_parser("record", help="record one event")
    rec.add_argument("event", help="deployment | promotion | refusal | override | swap | ...")
    rec.add_argument("--target", required=True, help="what the event is about (app, commit)")
    rec.add_argument("--result", required=True,
                     help="success | failure | refused | overridden | pending")
    rec.add_argument("--reason", default="")
    rec.add_argument("--app", default="")
    rec.add_argument("--env", default="")
    rec.add_argument("--revision", default="")
    rec.add_argument("--digest", default="")
    rec.add_argument("--from", dest="from_", default="", help="from (environment, colour)")
    rec.add_argument("--to", default="", help="to (environment, colour)")
    sub.add_parser("flush", help="deliver spooled events now")
    show = sub.add_parser("show", help="print events from PIPELINE_AUDIT_FILE (or --file)")
    show.add_argument("--file", help="the JSONL file (default PIPELINE_AUDIT_FILE)")
    show.add_argument("--action", dest="event", help="only this action")
    show.add_argument("--env", help="only this environment")
    show.add_argument("--since", help="only events at or after this ISO time")
    show.add_argument("--output", choices=("text", "json"), default="text")
    tpl = sub.add_parser("template", help="print the index template")
    tpl.add_argument("--index", help="the index (default PIPELINE_AUDIT_INDEX or pipeline-audit)")


def run(args: argparse.Namespace, ctx: Context) -> int:

    from pipelinelib.errors import EXIT_OK, BadInput
    from pipelinelib.records import audit

    if args.action == "template":
        index = args.index or ctx.credentials.audit.index or audit.DEFAULT_INDEX
        json.dump(audit.index_template(index), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if args.action == "show":
        path = args.file or ctx.credentials.audit.file
        if not path:
            raise BadInput("no audit file", field="--file",
                           expected="--file or PIPELINE_AUDIT_FILE")
        events = [e for e in audit.read_jsonl(path)
                  if (not args.event or e.get("action") == args.event)
                  and (not args.env or e.get("environment") == args.env)
                  and (not args.since or str(e.get("@timestamp", "")) >= args.since)]
        if args.output == "json":
            json.dump(events, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            for e in events:
                print(f"{e.get('@timestamp', '')}  {e.get('action', ''):<10} "
                      f"{e.get('result', ''):<10} {e.get('user', '') or '-':<14} "
                      f"{e.get('environment', '') or '-':<10} {e.get('target', '')}"
                      + (f"  {e['reason']}" if e.get("reason") else ""))
        return EXIT_OK
    from pipelinelib.job import Job
    from pipelinelib.result import StepResult
    from pipelinelib.step import step

    @step("audit-flush")
    def flush_step(ctx: Context) -> StepResult:
        sinks = ctx.audit_sinks
        spool = audit.Spool(ctx.audit_spool)
        pending = spool.count()
        if ctx.dry_run or not pending:
            return StepResult.of("audit-flush", [f"deliver {pending} spooled event(s)"]
                                 if pending else [], dry_run=ctx.dry_run)
        report = audit.flush(sinks, spool)
        actions = [f"delivered {n} event(s) to {name}" for name, n in report.delivered.items()]
        summary = "; ".join(actions) or "nothing delivered"
        if report.remaining:
            summary += "; WARNING: still spooled: " + ", ".join(
                f"{n} for {name}" for name, n in report.remaining.items())
        return StepResult.of("audit-flush", actions, summary=summary,
                             remaining=report.remaining, errors=report.errors)

    @step("audit-record")
    def record_step(ctx: Context) -> StepResult:
        if ctx.dry_run:
            return StepResult.of("audit-record", [f"record {args.event}"], dry_run=True)
        event = audit.record(ctx, args.event, target=args.target, result=args.result,
                             reason=args.reason, digest=args.digest, from_=args.from_,
                             to=args.to)
        summary = event.summary() + ("; WARNING: " + "; ".join(event.warnings)
                                     if event.warnings else "")
        return StepResult.of("audit-record", [event.summary()], summary=summary, id=event.id)

    with Job(f"audit-{args.action}", ctx, args.report_dir) as job:
        if args.action == "flush":
            print(job.run(flush_step, ctx).summary)
        else:
            ctx.app, ctx.environment, ctx.revision = args.app, args.env, args.revision
            print(job.run(record_step, ctx).summary)
    return job.exit_code
