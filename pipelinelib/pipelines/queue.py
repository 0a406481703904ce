"""The queue job's composition: clone, configuration from master, lock, run, report back.

``run_queue`` is what ``pipeline queue`` (and the CI jobs in jenkins/jobs/queue.yaml and
gocd/queue.gocd.yaml) run; the queue itself lives in ``pipelinelib.queue``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipelinelib.context import Context
from pipelinelib.errors import PipelineError, StepFailed
from pipelinelib.result import StepResult
from pipelinelib.step import step


def _register_url_secret(ctx: Context, url: str) -> None:
    password = urlsplit(url).password
    if password:
        ctx.secrets.add(password)


@step("queue")
def run_queue(ctx: Context, *, repo: str, config_path: str | None = None, window: int = 1,
              rebase_only: bool = False, lock_ttl_s: float = 600.0, lock_wait_s: float = 0.0,
              workdir: str | None = None, report_dir: str | None = None,
              after_write: Callable[[str], None] | None = None) -> StepResult:
    """Run the deploy queue once (see ``pipelinelib.queue.runner``)."""
    from pipelinelib.envspec.staterepo import origin_of
    from pipelinelib.queue.config import CONFIG_PATH, load_config, parse_config
    from pipelinelib.queue.lock import QueueLock
    from pipelinelib.queue.runner import QueueRunner, candidates
    from pipelinelib.queue.workspace import Workspace

    url = origin_of(repo)
    _register_url_secret(ctx, url)
    config = load_config(config_path) if config_path else None
    server, server_repo = ctx.git_server(url)
    with tempfile.TemporaryDirectory(prefix="pipelinelib-queue-", dir=workdir) as scratch:
        ws = Workspace.clone(ctx, url, Path(scratch) / "repo")
        ws.refresh()
        if config is None:
            default = _default_branch(ws)
            raw = ws.show(f"refs/remotes/origin/{default}", CONFIG_PATH)
            if raw is None:
                from pipelinelib.errors import BadInput

                raise BadInput("no queue configuration on the default branch",
                               source=f"{default}:{CONFIG_PATH}", field="--config",
                               expected="the app's pipeline stages (docs/queue.md)")
            import yaml

            from pipelinelib import yamlsafe

            try:
                data = yamlsafe.safe_load(raw, f"{default}:{CONFIG_PATH}")
            except yaml.YAMLError as exc:
                from pipelinelib.errors import BadInput

                raise BadInput(f"not valid YAML: {str(exc)[:200]}",
                               source=f"{default}:{CONFIG_PATH}") from exc
            config = parse_config(data, f"{default}:{CONFIG_PATH}")
        reports = Path(report_dir or scratch) / "queue"
        if ctx.dry_run:
            return _plan(ctx, ws, config, candidates)
        lock = QueueLock(ws, holder=ctx.ci.build_url or ctx.ci.user or "pipeline queue",
                         ttl_s=lock_ttl_s)
        lock.acquire(lock_wait_s, ctx.log)
        if after_write is not None:
            after_write("lock")
        runner = QueueRunner(ctx, ws, config, reports=reports, window=window, server=server,
                             server_repo=server_repo, lock=lock, after_write=after_write)
        try:
            if rebase_only:
                runner.rebase_all()
            else:
                runner.run()
        finally:
            lock.release()
    report = runner.report
    actions = report.actions()
    _write_back(ctx, report, config.environment)
    outputs: dict[str, Any] = {"deployed": report.deployed, "failed": report.failed,
                               "broken": report.broken, "rebased": report.rebased,
                               "skipped": report.skipped}
    if report.failed or report.broken:
        problems = ([f"{f['branch']}: Failed Deployment ({f['reason']})" for f in report.failed]
                    + [f"{b['branch']}: broken, conflicts in {b['files']}" for b in report.broken])
        raise StepFailed(f"{len(problems)} refspec(s) did not deploy", cause=problems[0],
                         hint="each is noted (pipeline state get) and has a commit status; "
                              "the rest of the queue went on", evidence=problems + actions)
    return StepResult.of("queue", actions, summary="; ".join(actions) or "queue empty",
                         **outputs)


def _default_branch(ws: Any) -> str:
    head = ws.git("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
    name = head.stdout.strip().removeprefix("refs/remotes/origin/")
    return name or "master"


def _plan(ctx: Context, ws: Any, config: Any, candidates: Any) -> StepResult:
    """--dry-run: the queue in order and what a rebase onto master would do; no writes."""
    master = ws.tip(config.master)
    actions = []
    for cand in candidates(ws, config):
        rebased = ws.rebase(cand.tip, master)
        actions.append(f"deploy {cand.branch} (deployable since {cand.since})" if rebased.ok
                       else f"mark {cand.branch} broken: conflicts in "
                            f"{', '.join(rebased.conflicts)}")
    return StepResult.of("queue", actions, dry_run=True)


def _write_back(ctx: Context, report: Any, environment: str) -> None:
    """One line per refspec into the CI build (Jenkins description / GoCD comment)."""
    lines = report.actions()
    if not lines:
        return
    title = f"queue → {environment}: {len(report.deployed)} deployed"
    if report.failed or report.broken:
        title += f", {len(report.failed)} failed, {len(report.broken)} broken"
    try:
        reporter = ctx.ci_server
        if reporter is not None:
            reporter.annotate(ctx.secrets.redact_text("; ".join(lines)), title=title)
    except PipelineError as exc:  # the queue's work stands; the build just lacks its line
        ctx.log.warning("CI write-back failed", error=ctx.secrets.redact_text(exc.one_line()))
