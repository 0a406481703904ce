"""No-op build (revision already in the registry) vs `docker build` with a warm cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from _timing import best_of, report, run

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5


def _repo(tmp: Path) -> Path:
    app = tmp / "repo" / "hello"
    shutil.copytree(ROOT / "examples" / "hello", app, ignore=shutil.ignore_patterns("build"))
    env_file = app / "release.env"
    env_file.write_text(env_file.read_text().replace(
        "PROJECT_NAMESPACE=hello-example-org", f"PROJECT_NAMESPACE=bench{uuid.uuid4().hex[:8]}"))
    git_env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=app.parent, env=git_env, check=True)
    return app


def main() -> None:
    registry = os.environ["PIPELINELIB_REGISTRY"]
    with tempfile.TemporaryDirectory() as tmp:
        app = _repo(Path(tmp))
        build = [sys.executable, "-m", "pipelinelib", "build", "--app-dir", str(app),
                 "--registry", registry]
        run(build)  # first build publishes
        ours = best_of(RUNS, lambda: run(build))
        docker = shutil.which("docker") or "docker"
        peer_cmd = [docker, "build", "-q", "-t", "bench/warm:latest", str(app)]
        run(peer_cmd)  # warm the cache
        peer = best_of(RUNS, lambda: run(peer_cmd))
        report("no-op build", ours, "docker build (warm cache)", peer, "well under 1 s")


if __name__ == "__main__":
    main()
