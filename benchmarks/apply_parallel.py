"""`pipeline apply` parallelism on the testbed cluster (needs KUBECONFIG and
PIPELINELIB_KUBE_BIN from the testbed): 20 changed apps of one priority against 1 changed
app, at several --max-parallel values (goal: 20 apps <= 1.3x the time of one), and the
writes of the no-op apply that follows each (goal: 0).

    python benchmarks/apply_parallel.py [--runs 3] [--parallel 4,8,20] [--ready-after 3s]

--ready-after makes every new pod become ready only after that long (the testbed's kwok
stage ``pipelinelib.dev/behavior: slow-ready``), like real apps that take a while to start:
then the rollouts are wait-bound instead of CPU-bound.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

APPS = 20


def kubectl(*args: str) -> str:
    binary = str(Path(os.environ["PIPELINELIB_KUBE_BIN"]) / "kubectl")
    return subprocess.run([binary, *args], text=True, check=True, capture_output=True).stdout


READY_AFTER = ""


def write(root: Path, ns: str, versions: list[str]) -> None:
    """An environment of APPS apps of one priority; app i runs ``versions[i]``."""
    (root / "environments").mkdir(parents=True, exist_ok=True)
    lines = ["apiVersion: pipelinelib.dev/v1", "kind: Environment", "name: bench",
             f"namespaces: [{ns}]", "apps:"]
    for i, version in enumerate(versions):
        digest = hashlib.sha256(version.encode()).hexdigest()
        lines += [f"  app-{i:02d}:",
                  f"    image: {{repository: 127.0.0.1:5001/bench/app, tag: \"{version}\", "
                  f"digest: \"sha256:{digest}\"}}",
                  "    config: {LOG_LEVEL: info}", "    ports: [{name: http, port: 8080}]",
                  "    replicas: 1", "    timeout: 120"]
        if READY_AFTER:
            lines.append('    annotations: {"pipelinelib.dev/behavior": "slow-ready", '
                         f'"pipelinelib.dev/ready-after": "{READY_AFTER}"}}')
    (root / "environments" / "bench.yaml").write_text("\n".join(lines) + "\n")


def apply(root: Path, parallel: int | None) -> float:
    extra = ["--max-parallel", str(parallel)] if parallel else []
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pipelinelib", "--log-level", "warning",
                          "apply", "bench", "--repo", str(root), *extra], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"apply failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def resource_versions(ns: str) -> dict[str, str]:
    items = json.loads(kubectl("-n", ns, "get", "deployments,configmaps,services,ingresses",
                               "-o", "json"))["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
            for i in items}


class Bench:
    """One namespace; every change bumps apps to a fresh version (a real rollout each)."""

    def __init__(self, root: Path, ns: str):
        self.root, self.ns, self.counter = root, ns, 0
        self.versions = ["1.0"] * APPS

    def change(self, count: int, parallel: int | None) -> float:
        self.counter += 1
        for i in range(count):
            self.versions[i] = f"2.{self.counter}"
        write(self.root, self.ns, self.versions)
        return apply(self.root, parallel)

    def noop_writes(self, parallel: int | None) -> int:
        before = resource_versions(self.ns)
        apply(self.root, parallel)
        after = resource_versions(self.ns)
        return sum(before.get(k) != v for k, v in after.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="best of N per measurement")
    parser.add_argument("--parallel", default="4,8,20",
                        help="--max-parallel values (0: the default, no flag)")
    parser.add_argument("--ready-after", default="", help="e.g. 3s: pods take that long")
    args = parser.parse_args()
    global READY_AFTER
    READY_AFTER = args.ready_after
    values = [int(v) for v in args.parallel.split(",")]
    from pipelinelib.envspec.model import DEFAULT_PARALLEL

    with tempfile.TemporaryDirectory() as tmp:
        ns = f"bench-par-{uuid.uuid4().hex[:8]}"
        kubectl("create", "namespace", ns)
        bench = Bench(Path(tmp), ns)
        write(bench.root, ns, bench.versions)
        print(f"first apply of {APPS} apps: {apply(bench.root, 20):.1f} s")
        print(f"{'max-parallel':>12}  {'1 app':>7}  {APPS:>2} apps  ratio  no-op writes")
        for parallel in values:
            one = min(bench.change(1, parallel) for _ in range(args.runs))
            many = min(bench.change(APPS, parallel) for _ in range(args.runs))
            writes = bench.noop_writes(parallel)
            ratio = many / one
            label = f"{parallel or DEFAULT_PARALLEL}" + (" (default)" if not parallel else "")
            print(f"{label:>12}  {one:6.2f}s  {many:6.2f}s  {ratio:5.2f}x  {writes}"
                  f"   (goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})")
        kubectl("delete", "namespace", ns, "--wait=false")


if __name__ == "__main__":
    main()
