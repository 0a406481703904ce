"""One git runner and the repository builders the tests share (real git, bare origins)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.helpers.paths import EXAMPLE


def _env(author: str, email: str | None) -> dict[str, str]:
    email = email or ("t@example.org" if author == "Test" else f"{author}@example.org")
    return {**os.environ, "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": email,
            "GIT_TERMINAL_PROMPT": "0"}


def run_git(cwd: Path, *args: str, author: str = "Test",
            email: str | None = None) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` in ``cwd`` as ``author``, whatever its exit code."""
    return subprocess.run(["git", *args], cwd=cwd, env=_env(author, email),
                          capture_output=True, text=True, check=False)


def git(cwd: Path, *args: str, author: str = "Test", email: str | None = None) -> str:
    """``git ARGS`` in ``cwd`` as ``author``; its output, stripped. A failure fails the test,
    naming the command and git's message."""
    proc = run_git(cwd, *args, author=author, email=email)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def git_ok(cwd: Path, *args: str) -> bool:
    """Whether ``git ARGS`` exits 0 (``merge-base --is-ancestor`` and friends)."""
    return run_git(cwd, *args).returncode == 0


def commit_all(repo: Path, message: str) -> str:
    """Commit every change in ``repo``'s work tree; return the new revision."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def init_repo(path: Path, message: str = "initial", branch: str = "main") -> str:
    """Make ``path`` (already holding files) a repository with one commit of all of them."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    return commit_all(path, message)


def add_origin(clone: Path, origin: Path, *refspecs: str, branch: str = "main") -> Path:
    """A bare ``origin`` for ``clone``, pushed ``branch`` (and ``refspecs``) to."""
    git(origin.parent, "init", "-q", "--bare", "-b", branch, str(origin))
    git(clone, "remote", "add", "origin", str(origin))
    git(clone, "push", "-q", "origin", branch, *refspecs)
    return origin


def write_repo(base: Path, files: dict[str, str], origin: bool = False,
               name: str = "env-state", message: str = "environments"
               ) -> tuple[Path, Path | None]:
    """``files`` (path -> text) committed to ``base/name``; with ``origin`` a bare origin
    ``base/name.git`` too. Returns (clone, origin or None)."""
    clone = base / name
    for rel, text in files.items():
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text(text)
    init_repo(clone, message)
    if not origin:
        return clone, None
    return clone, add_origin(clone, base / f"{name}.git")


def copy_hello(dest: Path, **release_env: str) -> Path:
    """examples/hello (without build output) copied to ``dest``, with the release.env
    variables given replaced (``APP_VERSION="1.0.1"``); returns ``dest``.

    Each copy serves on its own free port (HTTP_PORT, SMOKE_HTTP_PORT): the build's smoke
    test runs the image on the host network, where other xdist workers and the demo build
    at the same time (the example's 18080 was shared); pass HTTP_PORT=... to pin one."""
    from pipelinelib.testing.faults import free_port

    port = str(free_port())
    release_env = {"HTTP_PORT": port, "SMOKE_HTTP_PORT": port, **release_env}
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("build"))
    env_file = dest / "release.env"
    text = env_file.read_text()
    for name, value in release_env.items():
        text, found = re.subn(rf"(?m)^{name}=.*$", f"{name}={value}", text)
        assert found == 1, f"examples/hello/release.env has no {name}"
    env_file.write_text(text)
    return dest


def hello_repo_at(base: Path) -> Path:
    """A copy of examples/hello committed to ``base/repo`` with a bare origin; the app dir."""
    repo = base / "repo"
    copy_hello(repo / "hello")
    init_repo(repo, "hello")
    add_origin(repo, base / "origin.git")
    return repo / "hello"


def hotfix_repo(path: Path, branch: str = "hotfix", message: str = "fix") -> str:
    """An app repository at ``path``: one commit on main, and ``branch`` off it with one
    more (``message``) that main does not have; returns that fix commit."""
    path.mkdir(parents=True)
    (path / "app.txt").write_text("v1\n")
    init_repo(path, "v1")
    git(path, "checkout", "-q", "-b", branch)
    (path / "app.txt").write_text("v1 fixed\n")
    return commit_all(path, message)


def make_origin(tmp_path: Path, commits: int = 3) -> tuple[Path, list[str]]:
    """A bare origin with ``commits`` commits on main; returns it and the commit SHAs."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    shas = []
    for i in range(commits):
        (seed / "f.txt").write_text(f"{i}\n")
        git(seed, "add", "f.txt")
        git(seed, "commit", "-q", "-m", f"change {i}")
        shas.append(git(seed, "rev-parse", "HEAD"))
    git(seed, "push", "-q", str(origin), "main")
    return origin, shas


def clone(tmp_path: Path, origin: Path, name: str) -> Path:
    """A clone of ``origin`` at ``tmp_path/name`` whose commits are by ``name``."""
    path = tmp_path / name
    git(tmp_path, "clone", "-q", str(origin), str(path))
    git(path, "config", "user.name", name)
    git(path, "config", "user.email", f"{name}@example.org")
    return path
