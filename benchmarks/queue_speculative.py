"""Speculative vs serial deploy queue, 10 refspecs, on the real git server (Gitea).

- Each refspec's check stages are `pipeline env` (a real composition) and a gate that
  waits GATE_S seconds (a test suite / external gate: the case "gates dominate"); the
  deploy stage is a short command. Same refspecs, same server, same run:
  `pipeline queue` (serial, the seed's queue) vs `pipeline queue --speculative 4`.
- goal: speculative <= 0.4x serial with N = 4.

Needs the testbed's PostgreSQL (source /tmp/pipelinelib-testbed.env); starts Gitea itself
through testbed/tools/gitea (cached build). GATE_S (default 3) and REFSPECS (default 10)
can be set in the environment.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from pipelinelib.adapters.git_repo import GitRepo  # noqa: E402
from pipelinelib.records import format as fmt  # noqa: E402
from pipelinelib.records import states  # noqa: E402
from tests.helpers.git import git  # noqa: E402
from tests.helpers.gitea import GiteaWorld  # noqa: E402

GATE_S = float(os.environ.get("GATE_S", "3"))
REFSPECS = int(os.environ.get("REFSPECS", "10"))


def gitea_env() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "testbed" / "tools" / "gitea")], capture_output=True,
                         text=True, check=True)
    return {line[7:].partition("=")[0]: shlex.split(line[7:].partition("=")[2])[0]
            for line in out.stdout.splitlines() if line.startswith("export ")}


def world(env: dict[str, str], tmp: Path) -> GiteaWorld:
    w = GiteaWorld.create(env, tmp, "bench")
    config = {"environment": "live",
              "check": [{"pipeline": ["env", "{workdir}/release.env"]},
                        {"run": ["sleep", str(GATE_S)]}],
              "deploy": [{"run": ["true"]}]}
    (w.clone / ".pipeline").mkdir()
    (w.clone / ".pipeline" / "queue.yaml").write_text(yaml.safe_dump(config))
    (w.clone / "release.env").write_text("APP=bench\n")
    git(w.clone, "add", "-A")
    git(w.clone, "commit", "-q", "-m", "base")
    git(w.clone, "push", "-q", "origin", "master")
    repo = GitRepo.open(w.clone)
    for i in range(REFSPECS):
        git(w.clone, "checkout", "-q", "-B", f"r{i:02d}", "origin/master")
        (w.clone / f"r{i:02d}.txt").write_text(f"{i}\n")
        git(w.clone, "add", "-A")
        git(w.clone, "commit", "-q", "-m", f"r{i:02d}")
        git(w.clone, "push", "-q", "origin", f"r{i:02d}")
        sha = git(w.clone, "rev-parse", "HEAD")
        states.set_state(repo, sha, {"state": "deployable", "time": fmt.utc_now(),
                                     "actor": "bench"})
        time.sleep(1.05)  # ordered "became deployable" times (second resolution)
    return w


def timed_queue(w: GiteaWorld, *args: str) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pipelinelib", "queue", "--repo", w.url, *args],
                         env={**os.environ, **w.ci_env(), "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    tags = git(w.clone, "ls-remote", "origin", "refs/tags/deployment-*").split("\n")
    if len([t for t in tags if t.strip() and not t.endswith("^{}")]) != REFSPECS:
        raise SystemExit(f"expected {REFSPECS} deployments: {tags}")
    return elapsed


def main() -> None:
    env = gitea_env()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, args in (("serial", ()), ("speculative N=4", ("--speculative", "4"))):
            w = world(env, Path(tmp) / label.split()[0])
            try:
                results[label] = timed_queue(w, *args)
            finally:
                w.delete()
    serial, spec = results["serial"], results["speculative N=4"]
    floor = REFSPECS * GATE_S
    print(f"queue of {REFSPECS} refspecs, gate {GATE_S:.0f} s each (serial gate floor "
          f"{floor:.0f} s):")
    print(f"  serial          {serial:6.1f} s")
    print(f"  speculative N=4 {spec:6.1f} s")
    print(f"queue_speculative: speculative {spec * 1000:.0f} ms vs serial {serial * 1000:.0f} ms"
          f" = {spec / serial:.2f}x  (goal: <= 0.40x)")


if __name__ == "__main__":
    main()
