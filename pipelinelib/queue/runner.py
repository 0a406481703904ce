"""The deploy queue of seed 003: deployable refspecs, rebased, run through the app's
pipeline and landed on master one by one, in the order they became deployable.

For each round (``window`` = 1 is the seed's serial queue; N > 1 is the speculative queue,
as Zuul's gate runs it):

1. take the next ``window`` deployable refspecs; rebase the first onto master and each
   next one onto the one ahead of it (a conflict with master -> ``broken``: note, commit
   status naming the conflicting files, CI write-back; a conflict with a refspec ahead
   waits for the next round);
2. run every candidate's ``check`` stages in parallel (build, scan, gate);
3. strictly in order: a candidate whose checks failed gets "Failed Deployment" and goes
   back to ``development``, and the ones behind it (built on top of it) are dropped from
   this round and re-based in the next; a passing one has its rebased branch pushed with
   a lease, runs the ``deploy`` stages (migrate, rollout) and, on success, is recorded by
   ONE atomic push: master -> the rebased commit (lease on the old master), tag
   ``deployment-NNNN`` (must not exist) and the note ``deployed`` / "Successfully
   Deployed" (lease on the notes ref). So master never moves without its deployment
   record, and a deployed refspec is never queued (nor deployed) again.

Afterwards every remaining ``deployable`` and ``staged`` refspec is rebased onto the new
master and pushed with a lease (continual rebasing): a branch a developer pushed to
meanwhile is skipped ("moved; next round"), never overwritten.

Crash safety: every write is a compare-and-swap push; rebases are deterministic; a re-run
after a kill at any point finds either the old state (and redoes the idempotent work) or
the new one (and moves on). Commit statuses on the git server are re-posted by a re-run
when missing (``complete_statuses``).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib.adapters.git_repo import PushRejected
from pipelinelib.errors import StepFailed, Unreachable
from pipelinelib.queue.config import QueueConfig
from pipelinelib.queue.stages import StagesOutcome, run_stages
from pipelinelib.queue.workspace import Workspace
from pipelinelib.records import format as fmt
from pipelinelib.records import states, tags

STATUS_CONTEXT = "pipelinelib/queue"
QUEUED_STATES = ("deployable",)
REBASED_STATES = ("deployable", "staged")
MAX_ROUNDS = 200


@dataclass
class Candidate:
    """A refspec in the queue: its branch, its tip on origin, its state and since when."""

    branch: str
    tip: str
    state: str
    since: str
    commit: str = ""  # the tip rebased onto its base
    base: str = ""


@dataclass
class QueueReport:
    """What one run did, per refspec."""

    deployed: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    broken: list[dict[str, str]] = field(default_factory=list)
    rebased: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)

    def actions(self) -> list[str]:
        return ([f"deployed {d['branch']} {d['commit'][:12]} {d['tag']}" for d in self.deployed]
                + [f"failed {d['branch']}: {d['reason']}" for d in self.failed]
                + [f"broken {d['branch']}: conflicts in {d['files']}" for d in self.broken]
                + [f"rebased {d['branch']} onto {d['onto'][:12]}" for d in self.rebased])


def became(note: states.Note) -> str:
    """When the refspec entered its current state (rebases keep the state and the time)."""
    history = note.history
    since = ""
    for i, entry in enumerate(history):
        if entry.get("state") == note.state and (i == 0 or history[i - 1].get("state")
                                                 != note.state):
            since = str(entry.get("time") or "")
    return since


def candidates(ws: Workspace, config: QueueConfig,
               wanted: tuple[str, ...] = QUEUED_STATES) -> list[Candidate]:
    """Refspecs (branches other than ``config.branches``) whose tip is in a ``wanted``
    state, in the order they entered it (then by branch name)."""
    notes = states.read_all(ws.repo)
    found = []
    for branch, tip in ws.branches().items():
        if branch in config.branches:
            continue
        note = notes.get(tip)
        if note is not None and note.state in wanted:
            found.append(Candidate(branch, tip, note.state, became(note)))
    return sorted(found, key=lambda c: (c.since, c.branch))


class QueueRunner:
    """Runs the queue on one workspace; see the module docstring."""

    def __init__(self, ctx: Any, ws: Workspace, config: QueueConfig, *, reports: Path,
                 window: int = 1, server: Any = None, server_repo: tuple[str, str] | None = None,
                 lock: Any = None, after_write: Callable[[str], None] | None = None):
        self.ctx, self.ws, self.config = ctx, ws, config
        self.reports, self.window = reports, max(1, window)
        self.server, self.server_repo = server, server_repo
        self.lock, self.after_write = lock, after_write
        self.report = QueueReport()
        self.log = ctx.log.bind(queue=config.environment)

    # -- entry points -------------------------------------------------------------------------
    def run(self) -> QueueReport:
        """Deploy what is queued, then rebase what is left; see the module docstring."""
        self.ws.refresh()
        self._master()  # validates that the default branch exists before any write
        self.complete_statuses()
        if self.window > 1:
            self._pipelined()
            self.rebase_all()
            return self.report
        for _ in range(MAX_ROUNDS):
            self.ws.refresh()
            queue = candidates(self.ws, self.config)
            if not queue:
                break
            self.log.info("queue", length=len(queue), next=[c.branch for c in queue[:5]])
            if not self._round(queue[:self.window]):
                break
            if self.lock is not None:
                self.lock.renew()
        self.rebase_all()
        return self.report

    def rebase_all(self) -> None:
        """Continual rebasing: every deployable and staged refspec onto master."""
        self.ws.refresh()
        master = self._master()
        for cand in candidates(self.ws, self.config, REBASED_STATES):
            rebased = self.ws.rebase(cand.tip, master)
            if not rebased.ok:
                self._broken(cand, rebased.conflicts)
            elif rebased.changed:
                self._push_rebased(cand, rebased.commit, master)

    # -- one round ----------------------------------------------------------------------------
    def _round(self, window: list[Candidate]) -> int:
        """Resolve what it can of ``window``; returns how many refspecs left the queue."""
        master = self._master()
        resolved = 0
        items: list[Candidate] = []
        base = master
        for cand in window:
            rebased = self.ws.rebase(cand.tip, base)
            if not rebased.ok:
                if base == master:
                    self._broken(cand, rebased.conflicts)
                    resolved += 1
                    continue
                break  # conflicts with a refspec ahead of it: re-based once those land
            cand.commit, cand.base = rebased.commit, base
            items.append(cand)
            base = rebased.commit
        if not items:
            return resolved
        checks = self._run_checks(items)
        for cand, check in zip(items, checks, strict=True):
            if check.unreachable:
                raise Unreachable(f"a system did not answer in {cand.branch}'s {check.stage} "
                                  "stage", cause="; ".join(check.tail[-3:]),
                                  hint="the queue stopped with every refspec in place; re-run")
            if not check.ok:
                self._failed(cand, cand.tip, check)
                return resolved + 1  # the ones behind were built on top of it
            if self._master() != cand.base:
                self.log.warning("master moved during the round", branch=cand.branch)
                return resolved
            if not self._push_rebased(cand, cand.commit, cand.base):
                return resolved  # the developer pushed meanwhile: next round
            deployed = self._run("deploy", cand)
            if deployed.unreachable:
                raise Unreachable(f"a system did not answer in {cand.branch}'s "
                                  f"{deployed.stage} stage", cause="; ".join(deployed.tail[-3:]),
                                  hint="the refspec stays deployable; re-run")
            if not deployed.ok:
                self._failed(cand, cand.commit, deployed)
                return resolved + 1
            if not self._record(cand):
                return resolved
            resolved += 1
        return resolved

    # -- the speculative queue: a sliding window, as Zuul's gate pipeline -----------------------
    def _pipelined(self) -> None:
        """Keep up to ``window`` refspecs checking, each on top of the one ahead of it; land
        the head as soon as its checks pass; a failure ejects the head and every check behind
        it (they were built on top of it) is redone on the new master."""
        chain: list[tuple[Candidate, Path, concurrent.futures.Future[StagesOutcome]]] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.window) as pool:
            try:
                for _ in range(MAX_ROUNDS * self.window):
                    self._fill(chain, pool)
                    if not chain:
                        return
                    cand, work, future = chain[0]
                    check = future.result()
                    self.ws.remove_worktree(work)
                    chain.pop(0)
                    if check.unreachable:
                        raise Unreachable(f"a system did not answer in {cand.branch}'s "
                                          f"{check.stage} stage", cause="; ".join(check.tail[-3:]),
                                          hint="every refspec keeps its place; re-run")
                    landed = False
                    if check.ok and self._master() == cand.base and \
                            self._push_rebased(cand, cand.commit, cand.base):
                        deployed = self._run("deploy", cand)
                        if deployed.unreachable:
                            raise Unreachable(f"a system did not answer in {cand.branch}'s "
                                              f"{deployed.stage} stage",
                                              cause="; ".join(deployed.tail[-3:]),
                                              hint="the refspec stays deployable; re-run")
                        if not deployed.ok:
                            self._failed(cand, cand.commit, deployed)
                        else:
                            landed = self._record(cand)
                    elif not check.ok:
                        self._failed(cand, cand.tip, check)
                    if not landed:  # everything behind was built on top of it: redo
                        self._drain(chain)
                    if self.lock is not None:
                        self.lock.renew()
            finally:
                self._drain(chain)

    def _fill(self, chain: list[Any], pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Start checks for the next queued refspecs until ``window`` are in flight."""
        if len(chain) >= self.window:
            return
        self.ws.refresh()
        master = self._master()
        busy = {c.branch for c, _, _ in chain}
        queue = [c for c in candidates(self.ws, self.config) if c.branch not in busy]
        if chain or queue:
            self.log.info("queue", in_flight=[c.branch for c, _, _ in chain],
                          next=[c.branch for c in queue[:5]])
        for cand in queue:
            if len(chain) >= self.window:
                break
            base = chain[-1][0].commit if chain else master
            rebased = self.ws.rebase(cand.tip, base)
            if not rebased.ok:
                if base == master:
                    self._broken(cand, rebased.conflicts)
                    continue
                break  # conflicts with a refspec ahead: wait until that one landed
            cand.commit, cand.base = rebased.commit, base
            work = self.ws.worktree(f"check-{cand.commit[:12]}", cand.commit)
            chain.append((cand, work, pool.submit(self._check_in, cand, work)))

    def _check_in(self, cand: Candidate, work: Path) -> StagesOutcome:
        return run_stages(self.config.check, workdir=work, commit=cand.commit,
                          branch=cand.branch,
                          reports=self.reports / cand.branch.replace("/", "_") / "check",
                          redact=self.ctx.secrets.redact_text, log=self.log)

    def _drain(self, chain: list[Any]) -> None:
        """Drop the checks in flight (waiting for them: their processes share the clone)."""
        for _, work, future in chain:
            future.result()
            self.ws.remove_worktree(work)
        chain.clear()

    def _run_checks(self, items: list[Candidate]) -> list[StagesOutcome]:
        if len(items) == 1:
            return [self._run("check", items[0])]
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(items)) as pool:
            worktrees = [self.ws.worktree(f"check-{c.commit[:12]}", c.commit) for c in items]
            futures = [pool.submit(self._run, "check", c, w) for c, w in zip(items, worktrees,
                                                                          strict=True)]
            return [f.result() for f in futures]

    def _run(self, phase: str, cand: Candidate, workdir: Path | None = None) -> StagesOutcome:
        stages = self.config.check if phase == "check" else self.config.deploy
        if not stages:
            return StagesOutcome(True)
        work = workdir or self.ws.worktree(f"{phase}-{cand.commit[:12]}", cand.commit)
        try:
            return run_stages(stages, workdir=work, commit=cand.commit, branch=cand.branch,
                              reports=self.reports / cand.branch.replace("/", "_") / phase,
                              redact=self.ctx.secrets.redact_text, log=self.log)
        finally:
            self.ws.remove_worktree(work)

    # -- writes -------------------------------------------------------------------------------
    def _wrote(self, what: str) -> None:
        self.report.writes.append(what)
        if self.after_write is not None:
            self.after_write(what)

    def _push_rebased(self, cand: Candidate, commit: str, onto: str) -> bool:
        """Move the refspec's branch to its rebased commit (its note carried over), with a
        lease on the tip we read; False when the developer pushed meanwhile."""
        if commit == cand.tip:
            return True
        for attempt in range(1, states.MAX_ATTEMPTS + 1):
            remote_notes = states.fetch_notes(self.ws.repo)
            entry = fmt.clean({"state": cand.state, "environment": self.config.environment,
                               "time": fmt.utc_now(), "actor": self._actor(),
                               "build_url": self.ctx.ci.build_url,
                               "reason": f"rebased onto {onto[:12]} (was {cand.tip[:12]})"},
                              self.ctx.secrets)
            self.ws.stage_note(commit, self.ws.note_text(commit, entry, carry_from=cand.tip))
            try:
                self.ws.push([(commit, f"refs/heads/{cand.branch}", cand.tip),
                              (states.NOTES_REF, states.NOTES_REF, remote_notes)])
            except PushRejected:
                self.ws.reset_notes(remote_notes)
                now = self.ws.repo.ls_remote(f"refs/heads/{cand.branch}").get(
                    f"refs/heads/{cand.branch}")
                if now != cand.tip:
                    self.log.warning("refspec moved meanwhile: not rebased, next round",
                                     branch=cand.branch, was=cand.tip[:12],
                                     now=(now or "deleted")[:12])
                    self.report.skipped.append({"branch": cand.branch, "why": "pushed meanwhile"})
                    return False
                fmt.backoff(attempt)  # only the notes moved: re-read and retry
                continue
            self._wrote(f"rebase {cand.branch}")
            self.report.rebased.append({"branch": cand.branch, "commit": commit, "onto": onto})
            self.log.info("rebased", branch=cand.branch, onto=onto[:12], commit=commit[:12])
            cand.tip = commit
            return True
        raise StepFailed(f"could not push the rebased {cand.branch}",
                         cause="the notes ref kept moving", hint="re-run")

    def _record(self, cand: Candidate) -> bool:
        """The deployment record, in one atomic push: master, tag, note. False when master
        moved under the deployment (someone pushed to it directly)."""
        environment = self.config.environment
        did = tags.deployment_id(cand.commit, environment, "queue")
        for attempt in range(1, tags.MAX_ATTEMPTS + 1):
            self.ws.refresh()
            remote_notes = self.ws.repo.ref_sha(fmt.NOTES_TRACKING_REF)
            master = self._master()
            existing = [t for t in tags.read_tags(self.ws.repo) if t.deployment_id == did]
            if existing and self.ws.repo.is_ancestor(cand.commit, master):
                self._deployed(cand, existing[0].name)  # a re-run: recorded already
                return True
            if master != cand.base:
                self.log.warning("master moved during the deployment: not recorded",
                                 branch=cand.branch, expected=cand.base[:12], now=master[:12])
                self.report.skipped.append({"branch": cand.branch, "why": "master moved"})
                return False
            number = max((n for t in tags.read_tags(self.ws.repo)
                          if (n := t.number(tags.tag_prefix(None))) is not None), default=0) + 1
            name = f"{tags.tag_prefix(None)}{number:04d}"
            fields = fmt.clean({"deployment_id": did, "environment": environment,
                                "commit": cand.commit, "digest": "", "actor": self._actor(),
                                "build_url": self.ctx.ci.build_url, "time": fmt.utc_now(),
                                "result": "success"}, self.ctx.secrets)
            self.ws.repo.create_tag(name, cand.commit, tags.tag_message(name, fields))
            entry = {**fields, "state": "deployed", "tag": name,
                     "annotation": fmt.ANNOTATIONS["success"],
                     "reason": f"deploy queue: {cand.branch} landed on {self.config.master}"}
            self.ws.stage_note(cand.commit, self.ws.note_text(cand.commit, entry))
            ref = f"refs/tags/{name}"
            try:
                self.ws.push([(cand.commit, f"refs/heads/{self.config.master}", cand.base),
                              (ref, ref, None),
                              (states.NOTES_REF, states.NOTES_REF, remote_notes)])
            except PushRejected:
                self.ws.repo.delete_local_ref(ref)
                self.ws.reset_notes(remote_notes)
                fmt.backoff(attempt)
                continue
            self._wrote(f"deploy {cand.branch} {name}")
            self._deployed(cand, name)
            return True
        raise StepFailed(f"could not record the deployment of {cand.branch}",
                         cause="other writers kept moving the tags or notes first",
                         hint="re-run; the deployment is recognised and recorded")

    def _deployed(self, cand: Candidate, tag: str) -> None:
        text = f"{fmt.ANNOTATIONS['success']} to {self.config.environment} ({tag})"
        self.report.deployed.append({"branch": cand.branch, "commit": cand.commit, "tag": tag})
        self.log.info("deployed", branch=cand.branch, commit=cand.commit[:12], tag=tag)
        self._status(cand.commit, "success", text)
        self._audit("deployment", cand.branch, "success", revision=cand.commit, tag=tag)

    def _failed(self, cand: Candidate, commit: str, outcome: StagesOutcome) -> None:
        """"Failed Deployment", and the refspec goes back to ``development``: its developer
        fixes it and marks it deployable again (docs/queue.md explains the choice)."""
        reason = outcome.reason()
        entry = fmt.clean({"state": "development", "environment": self.config.environment,
                           "time": fmt.utc_now(), "actor": self._actor(),
                           "build_url": self.ctx.ci.build_url,
                           "annotation": fmt.ANNOTATIONS["failure"],
                           "reason": f"deploy queue: {reason}"}, self.ctx.secrets)
        outcome_ = states.set_state(self.ws.repo, commit, entry)
        if outcome_.changed:
            self._wrote(f"fail {cand.branch}")
        self.report.failed.append({"branch": cand.branch, "commit": commit, "reason": reason})
        self.log.error("failed deployment", branch=cand.branch, commit=commit[:12],
                       reason=reason, evidence=list(outcome.tail[-5:]))
        self._status(commit, "failure", f"{fmt.ANNOTATIONS['failure']}: {reason}")
        self._audit("deployment", cand.branch, "failure", revision=commit, reason_=reason)

    def _broken(self, cand: Candidate, files: tuple[str, ...]) -> None:
        listed = ", ".join(files)
        entry = fmt.clean({"state": "broken", "environment": self.config.environment,
                           "time": fmt.utc_now(), "actor": self._actor(),
                           "build_url": self.ctx.ci.build_url,
                           "reason": f"cannot be rebased cleanly on {self.config.master}: "
                                     f"conflicts in {listed}"}, self.ctx.secrets)
        outcome = states.set_state(self.ws.repo, cand.tip, entry)
        if outcome.changed:
            self._wrote(f"broken {cand.branch}")
        self.report.broken.append({"branch": cand.branch, "commit": cand.tip, "files": listed})
        self.log.error("refspec broken: rebase conflict", branch=cand.branch,
                       commit=cand.tip[:12], author=self.ws.author(cand.tip), files=list(files))
        self._status(cand.tip, "failure", f"broken: conflicts with {self.config.master} in "
                     f"{listed}")
        self._audit("state", cand.branch, "broken", revision=cand.tip, reason_=listed)

    # -- channels beside git --------------------------------------------------------------------
    def _status(self, commit: str, state: str, description: str) -> None:
        """The commit status the author sees on the git server (skipped when none)."""
        if self.server is None or self.server_repo is None:
            return
        owner, name = self.server_repo
        description = self.ctx.secrets.redact_text(description)
        have = self.server.statuses(owner, name, commit).get(STATUS_CONTEXT)
        if have is not None and have.state == state and have.description == description[:255]:
            return
        self.server.set_status(owner, name, commit, context=STATUS_CONTEXT, state=state,
                               description=description, target_url=self.ctx.ci.build_url)
        self._wrote(f"status {commit[:12]} {state}")

    def complete_statuses(self, recent: int = 20) -> None:
        """A re-run completes the git-server channel of deployments a kill interrupted."""
        if self.server is None:
            return
        prefix = tags.tag_prefix(None)
        mine = sorted((t for t in tags.read_tags(self.ws.repo)
                       if t.environment == self.config.environment
                       and t.number(prefix) is not None), key=lambda t: t.number(prefix) or 0)
        for tag in mine[-recent:]:
            self._status(tag.commit, "success", f"{fmt.ANNOTATIONS['success']} to "
                         f"{self.config.environment} ({tag.name})")

    def _audit(self, action: str, target: str, result: str, *, revision: str,
               reason_: str = "", tag: str = "") -> None:
        from pipelinelib.records.audit import record

        record(self.ctx, action, target=target, result=result, reason=reason_,
               to=self.config.environment, revision=revision, tag=tag, via="deploy queue")

    # -- helpers --------------------------------------------------------------------------------
    def _master(self) -> str:
        sha = self.ws.tip(self.config.master)
        if sha is None:
            from pipelinelib.errors import BadInput

            raise BadInput(f"the repository has no branch {self.config.master!r}",
                           field="branches", source=self.config.source,
                           expected="the default branch first")
        return sha

    def _actor(self) -> str:
        return self.ctx.ci.user or "pipelinelib-queue"


