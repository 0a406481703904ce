"""Promotion through a pull request (seed 004): ``master`` -> ``prod`` for preprod.

"Going onwards to preproduction happens by making a pull-request to the prod branch from
the master branch. When the pull-request is approved all updates in the desired state
specification for preprod is rolled on the preprod environment."

The job that runs the three steps is ``pipelinelib.pipelines.promote.promote_via_pull_request``.
One run of ``pipeline promote --to preprod --via-pull-request`` (by a person, or by CI on
a timer: every run moves the procedure on as far as it can, and repeats nothing):

1. **request** — opens the pull request ``master -> prod`` (the requester needs the
   ``promote`` privilege for the environment) or updates its description: every app,
   digest and spec change of the environment between the two branches;
2. **approve** — the reviews are the four-eyes and privilege rules
   (``promotion.review_approval``): a valid approval by someone else with the privilege,
   on exactly the head commit; with one, the pull request is merged at that head;
3. **apply** — the newest merged pull request whose merge commit has no result yet: its
   reviews are judged again (a merge by hand without a valid approval is refused: commit
   status ``failure``, a comment, an audit event, exit 2 — nothing is applied); otherwise
   the environment is applied from the prod branch and the result is posted as the commit
   status ``pipelinelib/<env>`` on the merge commit and as a pull-request comment.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from pipelinelib.context import Context
from pipelinelib.errors import PipelineError, Refused
from pipelinelib.result import StepResult
from pipelinelib.step import step

MARKER = "pipelinelib:promotion"
_MARKER_RE = re.compile(r"<!-- pipelinelib:promotion env=(\S+) requester=(\S*) head=(\S+) -->")


def status_context(env: str) -> str:
    return f"pipelinelib/{env}"


# -- what changes --------------------------------------------------------------------------
def describe_changes(old: Any, new: Any) -> list[str]:
    """One line per app whose spec differs between ``old`` (prod) and ``new`` (master)."""
    lines = []
    old_apps = old.apps if old is not None else {}
    for name in sorted(set(old_apps) | set(new.apps)):
        before, after = old_apps.get(name), new.apps.get(name)
        if before is None:
            lines.append(f"- **{name}**: added, image `{_image(after)}`")
            continue
        if after is None:
            lines.append(f"- **{name}**: removed (was `{_image(before)}`)")
            continue
        parts = []
        if _image(before) != _image(after):
            parts.append(f"image `{_image(before)}` → `{_image(after)}`")
        a, b = asdict(before), asdict(after)
        changed = sorted(k for k in a if k not in ("image", "line", "name") and a[k] != b[k])
        if changed:
            parts.append("spec: " + ", ".join(f"{k} `{_short(a[k])}` → `{_short(b[k])}`"
                                              for k in changed))
        if parts:
            lines.append(f"- **{name}**: " + "; ".join(parts))
    return lines


def _image(app: Any) -> str:
    image = app.image
    ref = f"{image.repository}:{image.tag}" if image.tag else image.repository
    return f"{ref}@{image.digest}" if image.digest else ref


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def render_body(env: str, requester: str, head: str, changes: list[str], files: list[str],
                base: str, branch: str) -> str:
    listed = "\n".join(changes) or "- no app changes (files only)"
    touched = "\n".join(f"- `{f}`" for f in files) or "- none"
    return (f"Promotion of **{env}**: `{branch}` → `{base}` at `{head[:12]}`.\n\n"
            f"When this pull request is approved by someone allowed to approve {env} "
            f"(policy.yaml on `{base}`) other than the requester, it is merged and {env} is "
            f"applied from `{base}`; the result comes back here and as the commit status "
            f"`{status_context(env)}`.\n\n"
            f"### Apps\n{listed}\n\n### Files changed\n{touched}\n\n"
            f"Requested by: {requester or 'unknown'}\n\n"
            f"<!-- {MARKER} env={env} requester={requester} head={head} -->\n")


def parse_marker(body: str) -> dict[str, str]:
    match = _MARKER_RE.search(body or "")
    return dict(zip(("env", "requester", "head"), match.groups(), strict=True)) if match else {}


# -- steps ---------------------------------------------------------------------------------
@step("pull-request")
def request(ctx: Context, pr_ctx: PullRequestPromotion) -> StepResult:
    """Open (or update) the promotion pull request ``branch -> base``."""
    from pipelinelib.promotion.audit import audit
    from pipelinelib.promotion.policy import identity

    p = pr_ctx
    pr = p.client.find_pull_request(p.owner, p.name, p.branch, p.base)
    if p.head == p.base_head or not p.files:
        summary = f"{p.base} already has everything of {p.branch} for {p.env}"
        return StepResult.of("pull-request", [], summary=summary,
                             number=pr.number if pr else None)
    requester = parse_marker(pr.body).get("requester", "") if pr else ""
    if pr is None:
        rules = p.policy.env(p.env)
        try:
            requester = identity(ctx, rules, p.env)
            if not p.policy.holds(requester, rules.promote):
                raise Refused(f"{requester} may not promote into {p.env}",
                              field="identity", expected="a user policy.yaml allows to promote "
                              f"into {p.env}")
        except Refused as exc:
            if not ctx.dry_run:
                audit(ctx, "refusal", target=p.env, result="refused", reason=exc.message,
                      via="pull-request")
            raise
    body = render_body(p.env, requester, p.head, p.changes, p.files, p.base, p.branch)
    title = f"Promote {p.env}: {p.branch} → {p.base} ({len(p.changes)} app change(s))"
    if pr is not None and pr.body == body and pr.title == title:
        return StepResult.of("pull-request", [], summary=f"#{pr.number} is up to date",
                             number=pr.number, url=pr.url)
    if ctx.dry_run:
        verb = "open" if pr is None else f"update #{pr.number}"
        return StepResult.of("pull-request", [f"{verb} pull request {p.branch} -> {p.base}"],
                             dry_run=True)
    if pr is None:  # audited first (once per head): a kill after the open loses nothing
        audit(ctx, "promotion", target=p.env, result="pending", via="pull-request",
              revision=p.head, requester=requester,
              event_id=f"promotion-request-{p.owner}/{p.name}-{p.base}-{p.head}")
        pr = p.client.open_pull_request(p.owner, p.name, head=p.branch, base=p.base,
                                        title=title, body=body)
        action = f"opened pull request #{pr.number} {p.branch} -> {p.base}"
    else:
        pr = p.client.edit_pull_request(p.owner, p.name, pr.number, title=title, body=body)
        action = f"updated pull request #{pr.number} to {p.head[:12]}"
    return StepResult.of("pull-request", [action], number=pr.number, url=pr.url,
                         changes=p.changes)


@step("pull-request-merge")
def merge_when_approved(ctx: Context, pr_ctx: PullRequestPromotion) -> StepResult:
    """Merge the open promotion pull request when its reviews approve it."""
    from pipelinelib.promotion.review_approval import judge_reviews

    p = pr_ctx
    pr = p.client.find_pull_request(p.owner, p.name, p.branch, p.base)
    if pr is None:
        return StepResult.of("pull-request-merge", [], summary="no open pull request")
    requester = parse_marker(pr.body).get("requester", "")
    verdict = judge_reviews(p.policy, p.env, p.client.reviews(p.owner, p.name, pr.number),
                            head=pr.head_sha, requester=requester, author=pr.author)
    if not verdict.ok:
        ctx.log.info("waiting for approval", pull_request=pr.number, why=verdict.explain())
        return StepResult.of("pull-request-merge", [], number=pr.number,
                             summary=f"#{pr.number} waits: {verdict.explain()}",
                             verdict=verdict.explain())
    if ctx.dry_run:
        return StepResult.of("pull-request-merge", [f"merge #{pr.number}"], dry_run=True)
    p.client.merge(p.owner, p.name, pr.number, head_sha=pr.head_sha,
                   message=f"Promote {p.env}: {verdict.explain()}")
    _audit_approval(ctx, p, pr.number, pr.head_sha, verdict)
    return StepResult.of("pull-request-merge", [f"merged #{pr.number} ({verdict.explain()})"],
                         number=pr.number, approved_by=list(verdict.approved_by))


@step("pull-request-apply")
def apply_merged(ctx: Context, pr_ctx: PullRequestPromotion) -> StepResult:
    """Apply the environment for the newest merged promotion pull request not yet applied,
    and post the result as a commit status and a comment."""
    from pipelinelib.envspec.load import environment_path, load_environment
    from pipelinelib.promotion.review_approval import ReviewApproval, judge_reviews
    from pipelinelib.steps.apply import apply_environment

    p = pr_ctx
    merged = [pr for pr in p.client.pull_requests(p.owner, p.name, "closed")
              if pr.merged and pr.head == p.branch and pr.base == p.base
              and parse_marker(pr.body).get("env") == p.env]
    if not merged:
        return StepResult.of("pull-request-apply", [], summary="no merged promotion")
    pr = max(merged, key=lambda x: x.number)
    sha, context = pr.merge_commit, status_context(p.env)
    done = p.client.statuses(p.owner, p.name, sha).get(context)
    if done is not None and done.state in ("success", "failure", "error"):
        return StepResult.of("pull-request-apply", [], number=pr.number,
                             summary=f"#{pr.number} already applied: {done.state}")
    requester = parse_marker(pr.body).get("requester", "")
    verdict = judge_reviews(p.policy, p.env, p.client.reviews(p.owner, p.name, pr.number),
                            head=pr.head_sha, requester=requester, author=pr.author)
    if ctx.dry_run:
        return StepResult.of("pull-request-apply", [f"apply {p.env} for #{pr.number}"],
                             dry_run=True, verdict=verdict.explain())
    if not verdict.ok:
        why = (f"not deployed: #{pr.number} was merged without a valid approval "
               f"({verdict.explain()})")
        _report(ctx, p, pr.number, sha, "failure", why, "refusal", result="refused",
                reason=why)
        raise Refused(why, field="reviews", expected=f"an approval by someone allowed to "
                      f"approve {p.env}, other than the requester, on the merged head")
    _audit_approval(ctx, p, pr.number, pr.head_sha, verdict)  # if killed before, at merge
    p.client.set_status(p.owner, p.name, sha, context=context, state="pending",
                        description=f"applying {p.env}", target_url=ctx.ci.build_url)
    p.base_repo.refresh()
    env = load_environment(environment_path(p.base_repo.root, p.env), root=p.base_repo.root)
    review = ReviewApproval(verdict, p.client.url, f"{p.owner}/{p.name}#{pr.number}", sha)
    try:  # under four eyes, enforce counts the review where the policy trusts this server
        result = apply_environment(ctx, env, review=review)
    except PipelineError as exc:
        text = f"{p.env} apply failed: {ctx.secrets.redact_text(exc.message)}"
        _report(ctx, p, pr.number, sha, "failure", text, "deployment", result="failure",
                reason=exc.message, approved_by=",".join(verdict.approved_by))
        raise
    applied = ", ".join(result.outputs.get("applied") or []) or "nothing to change"
    text = f"Successfully Deployed to {p.env} ({applied}); {verdict.explain()}"
    _report(ctx, p, pr.number, sha, "success", text, "deployment", result="success",
            approved_by=",".join(verdict.approved_by), source="pull-request-review")
    return StepResult.of("pull-request-apply", [*result.actions, f"status {context} success"],
                         number=pr.number, applied=result.outputs.get("applied") or [],
                         merge_commit=sha)


def _report(ctx: Context, p: PullRequestPromotion, number: int, sha: str, state: str,
            text: str, action: str, **audited: Any) -> None:
    """Comment, audit event, commit status — in this order, each once per merge commit and
    result: the status is what tells a re-run the result was reported, so the other two
    are written before it and recognise themselves (comment marker, audit ``event_id``)."""
    from pipelinelib.promotion.audit import audit

    marker = f"<!-- pipelinelib:applied {sha} {state} -->"
    if not any(marker in c["body"] for c in p.client.comments(p.owner, p.name, number)):
        p.client.comment(p.owner, p.name, number, f"{text}\n\n{marker}")
    audit(ctx, action, target=p.env, pull_request=number, revision=sha,
          event_id=f"{action}-{p.owner}/{p.name}#{number}-{sha}-{state}", **audited)
    p.client.set_status(p.owner, p.name, sha, context=status_context(p.env), state=state,
                        description=text)


def _audit_approval(ctx: Context, p: PullRequestPromotion, number: int, head: str,
                    verdict: Any) -> None:
    """The approval by review, once per pull request and head (at the merge, or at the
    apply when the run that merged was killed before it could say so)."""
    from pipelinelib.promotion.audit import audit

    audit(ctx, "approval", target=p.env, result="success", pull_request=number, revision=head,
          approved_by=",".join(verdict.approved_by), source="pull-request-review",
          event_id=f"approval-{p.owner}/{p.name}#{number}-{head}")


# -- what the three steps share ----------------------------------------------------------
@dataclass
class PullRequestPromotion:
    """Everything the three steps share: server, repository, branches, specs, policy.
    Built by ``pipelinelib.pipelines.promote.promote_via_pull_request``."""

    client: Any  # the git server (adapters.gitea.GiteaClient)
    owner: str
    name: str
    branch: str  # the head branch (master)
    base: str  # the branch the environment rolls out from (prod)
    env: str
    head: str
    base_head: str
    files: list[str]
    changes: list[str]
    policy: Any  # promotion.policy.Policy of the base branch
    base_repo: Any  # envspec.staterepo.EnvStateRepo on the base branch
