"""Annotate a deployment "Successfully Deployed" or "Failed Deployment" everywhere it shows.

Channels, in order (each one is attempted even when an earlier one failed, so a failure
annotation is never lost to an unrelated outage):

1. git tag ``deployment-NNNN`` on the commit (success only), pushed to origin;
2. git note state ``deployed`` (success) or ``broken`` (failure) with the annotation,
   environment, digest, time, actor, build URL, deployment id and tag;
3. Kubernetes workload annotations (``pipelinelib.dev/deployment-status`` ...), when a
   workload is given;
4. the CI server (Jenkins build description, GoCD comment) via ``pipelinelib.ci.reporter``
   when the job runs there with write-back credentials;
5. the audit trail (``pipelinelib.records.audit.record``; a sink outage spools the event and
   shows as a warning, not a failure).

Register it with ``job.always(annotate_deployment, ctx, ...)`` so it also runs after a
failed step: it then receives ``job_failed=True`` and writes the failure annotation.
Each channel observes its own state and writes only what it lacks, so a run killed between
two channels (note pushed, audit not yet written) is completed by a re-run; the audit event's
id is derived from the deployment id and result, so it is written exactly once. A re-run of a
complete annotation (same commit, environment and CI build) writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelinelib.context import Context
from pipelinelib.errors import BadInput, PipelineError, StepFailed
from pipelinelib.kube import kinds
from pipelinelib.kube.labels import PREFIX
from pipelinelib.result import StepResult
from pipelinelib.step import step

ANNOTATION_PREFIX = PREFIX
# the workloads of the kinds table, and the ReplicaSet a Deployment rolls out
WORKLOAD_KINDS = {k.lower(): k for k in (*kinds.WORKLOADS, "ReplicaSet")}


def workload_from_report(report_dir: str | Path, app: str, namespace: str = "",
                         required: bool = True) -> tuple[str, str]:
    """``(workload, namespace)`` a ``rollout`` or ``swap`` run deployed, from its report
    directory's summary.json: ``deployment/APP-COLOUR`` for blue/green (the colour rolled
    out; for a swap the colour now live), else ``deployment/APP``. When the run left no such
    step (it failed early) and ``required`` is false: ``("", namespace)``."""
    import json

    path = Path(report_dir) / "summary.json"
    if not app:
        raise BadInput("--workload-from needs the app", field="--app", expected="the app name")
    try:
        steps = json.loads(path.read_text(encoding="utf-8")).get("steps") or []
    except (OSError, ValueError, AttributeError) as exc:
        if not required:
            return "", namespace
        raise BadInput(f"no readable report: {exc}", source=str(path), field="--workload-from",
                       expected="the report directory of a `pipeline rollout` or `swap` run"
                       ) from exc
    found = [s.get("outputs") or {} for s in steps
             if isinstance(s, dict) and s.get("step") in ("rollout", "swap")]
    outputs = next((o for o in reversed(found) if o.get("namespace")), None)
    if outputs is None:
        if not required:
            return "", namespace
        raise BadInput("the report names no rollout or swap", source=str(path),
                       field="--workload-from",
                       expected="the report directory of a `pipeline rollout` or `swap` run")
    color = outputs.get("color") if "color" in outputs else outputs.get("live_color")
    name = f"{app}-{color}" if color else app
    return f"deployment/{name}", namespace or str(outputs["namespace"])


def parse_workload(text: str) -> tuple[str, str]:
    """``deployment/hello`` -> (``Deployment``, ``hello``); BadInput otherwise."""
    kind, sep, name = (text or "").partition("/")
    if not sep or kind.lower() not in WORKLOAD_KINDS or not name or "/" in name:
        raise BadInput(f"invalid workload {text!r}", field="--workload",
                       expected=f"KIND/NAME with KIND one of {', '.join(WORKLOAD_KINDS)}")
    return WORKLOAD_KINDS[kind.lower()], name


def workload_annotations(fields: Mapping[str, Any], text: str) -> dict[str, str]:
    """The annotations written on the workload (values already cleaned)."""
    values = {"deployment-status": text, "deployment-tag": fields.get("tag", ""),
              "deployment-id": fields.get("deployment_id", ""),
              "deployed-revision": fields.get("commit", ""),
              "deployed-digest": fields.get("digest", ""),
              "deployed-at": fields.get("time", ""), "deployed-by": fields.get("actor", ""),
              "build-url": fields.get("build_url", "")}
    return {ANNOTATION_PREFIX + k: str(v) for k, v in values.items() if v}


def audit_event_id(deployment_id: str, result: str) -> str:
    """The audit event id of one deployment's annotation (the same on every re-run)."""
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"pipelinelib:annotate:{deployment_id}:{result}").hex


def _build_identity(ctx: Context, digest: str) -> str:
    ci = ctx.ci
    if ci.build_url:
        return ci.build_url
    if ci.job and ci.build_number:
        return f"{ci.job}#{ci.build_number}"
    return digest


@step("annotate")
def annotate_deployment(ctx: Context, *, repo: str | os.PathLike[str] = ".", digest: str = "",
                        workload: str = "", namespace: str = "", result: str | None = None,
                        job_failed: bool = False, per_environment: bool = False,
                        reason: str = "", tag_failures: bool = False) -> StepResult:
    """Write the deployment's outcome to git, Kubernetes, the CI server and the audit trail.

    ``result`` is ``success`` or ``failure``; when omitted it follows ``job_failed``.
    """
    from pipelinelib.records import format as fmt
    from pipelinelib.records import states, tags

    # -- validate everything before the first write ---------------------------------------
    if result is None:
        result = "failure" if job_failed else "success"
    if result not in fmt.RESULTS:
        raise BadInput(f"invalid result {result!r}", field="--result",
                       expected=" | ".join(fmt.RESULTS))
    environment = fmt.check_environment(ctx.environment)
    fmt.check_digest(digest)
    kind, name = parse_workload(workload) if workload else ("", "")
    if workload and not namespace:
        raise BadInput("a workload needs its namespace", field="--namespace",
                       expected="the workload's namespace")
    git_repo = ctx.git(Path(repo))
    commit = git_repo.resolve(ctx.revision or "HEAD", "--revision")
    success = result == "success"
    text = fmt.ANNOTATIONS[result]
    build = _build_identity(ctx, digest)
    fields = fmt.clean({
        "deployment_id": tags.deployment_id(commit, environment, build),
        "environment": environment, "commit": commit, "digest": digest,
        "actor": ctx.ci.user or "unknown", "build_url": ctx.ci.build_url,
        "time": fmt.utc_now(), "result": result,
    }, ctx.secrets)

    actions: list[str] = []
    failures: list[str] = []
    notes: list[str] = []

    def attempt(channel: str, fn: Any) -> Any:
        try:
            return fn()
        except PipelineError as exc:
            failures.append(f"{channel}: {ctx.secrets.redact_text(exc.one_line())}")
            ctx.log.error("annotation failed", channel=channel,
                          error=ctx.secrets.redact_text(exc.one_line()))
            return None

    # 1. deployment tag ------------------------------------------------------------------
    if success or tag_failures:
        outcome = attempt("tag", lambda: tags.ensure_deployment_tag(
            git_repo, fields, per_environment=per_environment, dry_run=ctx.dry_run))
        if outcome is not None:
            fields["tag"] = outcome.name
            if outcome.changed:
                actions.append(f"tag {commit[:12]} {outcome.name}")
    # 2. state note ----------------------------------------------------------------------
    entry = {**fields, "state": "deployed" if success else "broken", "annotation": text,
             "reason": ctx.secrets.redact_text(reason)}
    noted = attempt("note", lambda: states.set_state(git_repo, commit, entry,
                                                      dry_run=ctx.dry_run))
    if noted is not None and noted.changed:
        actions.append(f"note {commit[:12]} state {noted.before} -> {noted.after} ({text})")
    # 3. Kubernetes workload ------------------------------------------------------------
    if workload:
        wanted = workload_annotations(fields, f"{text}" + (f" ({environment})"))
        changed = attempt("kubernetes", lambda: _annotate_workload(
            ctx, kind, name, namespace, wanted))
        if changed:
            actions.append(f"annotate {kind.lower()}/{name} in {namespace}: {text}")
    else:
        notes.append("no workload given: Kubernetes annotation skipped")
    # 4. CI server (observed: a build that already says so is not written again) -------------
    if not ctx.dry_run:
        ci_actions = attempt("ci", lambda: _annotate_ci(ctx, success, environment,
                                                         fields.get("tag", "")))
        if ci_actions is None and not any(f.startswith("ci:") for f in failures):
            notes.append("CI server: no write-back configured (local run or no API token)")
        elif ci_actions:
            actions.extend(ci_actions)
    else:
        actions.append(f"CI server: {text}")
    # 5. audit trail (one event per deployment and result, whatever the number of runs) ------
    warnings: list[str] = []
    event_id = audit_event_id(fields["deployment_id"], result)
    if not ctx.dry_run:
        from pipelinelib.records.audit import record

        event = record(ctx, "deployment", target=ctx.app or name or commit[:12], result=result,
                       reason=reason or ("; ".join(failures) if failures else ""),
                       digest=digest, to=environment, tag=fields.get("tag", ""), revision=commit,
                       deployment_id=fields["deployment_id"], workload=workload,
                       namespace=namespace, event_id=event_id)
        if event.delivered or event.spooled:
            actions.append(event.summary().split(";")[0])
        warnings.extend(event.warnings)
    else:
        actions.append(f"audit deployment {result}")
    if not actions and not failures:
        notes.append("this deployment is already annotated: nothing written")

    if failures:
        raise StepFailed(f"annotating the deployment failed in {len(failures)} place(s)",
                         cause=failures[0], evidence=failures + warnings,
                         hint="the other annotations were written; re-run to complete")
    summary = "; ".join(actions) if actions else "; ".join(notes) or "nothing to do"
    if warnings:
        summary += "; WARNING: " + "; ".join(warnings)
        for warning in warnings:
            ctx.log.warning("annotation degraded", detail=warning)
    return StepResult.of("annotate", actions, dry_run=ctx.dry_run, summary=summary,
                         annotation=text, result=result, commit=commit,
                         tag=fields.get("tag", ""), deployment_id=fields["deployment_id"],
                         state=entry["state"], audit_event=event_id, warnings=warnings,
                         notes=notes)


def _annotate_workload(ctx: Context, kind: str, name: str, namespace: str,
                       wanted: dict[str, str]) -> bool:
    """Merge ``wanted`` into the workload's metadata annotations; False when already there."""
    wanted = {k: ctx.secrets.redact_text(v) for k, v in wanted.items()}
    current = ctx.kube.get(kind, name, namespace)
    if current is None:
        raise StepFailed(f"{kind.lower()}/{name} not found in namespace {namespace}",
                         hint="annotate the workload the rollout deployed (--workload)")
    have = (current.get("metadata") or {}).get("annotations") or {}
    if all(have.get(k) == v for k, v in wanted.items()):
        return False
    if not ctx.dry_run:
        stale = {k: None for k in have if k.startswith(ANNOTATION_PREFIX + "deploy")
                 and k not in wanted}
        ctx.kube.patch(kind, name, namespace, {"metadata": {"annotations": {**stale, **wanted}}})
    return True


def _annotate_ci(ctx: Context, success: bool, environment: str,
                 tag: str) -> list[str] | None:
    """Write the outcome into the CI server's build: the actions taken ([] when the build
    already says so), None when there is no write-back."""
    from pipelinelib.ci.reporter import outcome_text, outcome_title

    reporter = ctx.ci_server
    if reporter is None:
        return None
    text = outcome_text(success, environment, tag)
    done = reporter.annotate(text, title=outcome_title(success, ctx.app, environment, tag))
    return [f"{reporter.where}: {text}"] if done else []
