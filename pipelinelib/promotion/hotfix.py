"""Hot-fix records, and whether the fix commit has reached the main branch yet.

A hot-fix promotion writes ``hotfixes/<env>/<app>.yaml`` (reason, fix commit, source
repository, main branch) in its commit. Until the fix commit is contained in the main
branch, promote/apply/status warn. A later regular promotion of the app removes it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from pipelinelib import yamlsafe

HOTFIX_DIR = "hotfixes"


def hotfix_path(env: str, app: str) -> str:
    return f"{HOTFIX_DIR}/{env}/{app}.yaml"


def write_hotfix(root: Path, env: str, app: str, **fields: Any) -> str:
    rel = hotfix_path(env, app)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    fields["at"] = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    path.write_text(yaml.safe_dump(fields, sort_keys=True))
    return rel


def read_hotfixes(root: Path, env: str) -> dict[str, dict[str, Any]]:
    folder = root / HOTFIX_DIR / env
    if not folder.is_dir():
        return {}
    return {p.stem: yamlsafe.safe_load(p, mapping=True) or {}
            for p in sorted(folder.glob("*.yaml"))}


def back_merged(record: dict[str, Any]) -> bool | None:
    """True when the fix commit is in the main branch, False when not, None when unknown."""
    from pipelinelib.adapters.git_repo import GitRepo
    from pipelinelib.errors import PipelineError

    source, commit = record.get("source_repo"), record.get("fix_commit")
    branch = record.get("main_branch") or "main"
    if not source or not commit:
        return None
    try:
        repo = GitRepo.open(source)
        ref = branch
        if repo.remote is not None:  # the clone's origin has the main branch
            repo.fetch([f"+refs/heads/{branch}:refs/remotes/origin/{branch}"], prune=False)
            ref = f"origin/{branch}"
        return repo.is_ancestor(str(commit), ref)
    except (PipelineError, OSError):
        return None


def warnings(root: Path, env: str) -> list[str]:
    """One warning per hot-fix of ``env`` not yet back-merged into its main branch."""
    out = []
    for app, record in read_hotfixes(root, env).items():
        merged = back_merged(record)
        if merged is not True:
            state = "not yet in" if merged is False else "cannot be checked against"
            out.append(f"hot-fix of {app} in {env} (commit {str(record.get('fix_commit'))[:12]})"
                       f" is {state} {record.get('main_branch') or 'main'}: merge it back")
    return out
