"""`pipeline apply` budgets (needs KUBECONFIG and PIPELINELIB_KUBE_BIN from the testbed):

- no-op apply of 50 apps: < 1 s and 0 writes (resourceVersions unchanged);
- 20 changed apps of one priority: <= 1.3x the time of 1 changed app (parallel apply);
- peer: `kubectl apply -f` of the same 50 apps' manifests (no-op, server-side diff).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _timing import best_of, report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def kubectl(*args: str, stdin: str | None = None) -> str:
    binary = str(Path(os.environ["PIPELINELIB_KUBE_BIN"]) / "kubectl")
    return subprocess.run([binary, *args], input=stdin, text=True, check=True,
                          capture_output=True).stdout


def write(root: Path, ns: str, apps: int, tag: str, changed: int = 0) -> None:
    (root / "environments").mkdir(parents=True, exist_ok=True)
    lines = ["apiVersion: pipelinelib.dev/v1", "kind: Environment", "name: bench",
             f"namespaces: [{ns}]", "max_parallel: 20", "apps:"]
    for i in range(apps):
        version = tag if i < changed else "1.0"
        lines += [f"  app-{i:03d}:",
                  f"    image: {{repository: 127.0.0.1:5001/bench/app, tag: \"{version}\", "
                  f"digest: \"sha256:{hashlib.sha256(version.encode()).hexdigest()}\"}}",
                  "    config: {LOG_LEVEL: info}", "    ports: [{name: http, port: 8080}]",
                  "    timeout: 60"]
    (root / "environments" / "bench.yaml").write_text("\n".join(lines) + "\n")


def apply(root: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pipelinelib", "--log-level", "warning",
                          "apply", "bench", "--repo", str(root)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"apply failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def versions(ns: str) -> dict[str, str]:
    items = json.loads(kubectl("-n", ns, "get", "deployments,configmaps,services", "-o",
                               "json"))["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
            for i in items}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ns = f"bench-{uuid.uuid4().hex[:8]}"
        kubectl("create", "namespace", ns)
        write(root, ns, 50, "1.0")
        first = apply(root)
        print(f"first apply of 50 apps: {first:.1f} s")
        before = versions(ns)
        noop = best_of(3, lambda: apply(root))
        writes = sum(before[k] != v for k, v in versions(ns).items())
        print(f"no-op apply of 50 apps: {noop:.2f} s, {writes} writes "
              f"(goal < 1 s, 0 writes: {'met' if noop < 1 and writes == 0 else 'NOT met'})")
        manifests = subprocess.run(
            [sys.executable, "-c", "import json,sys;from pipelinelib.envspec.load import "
             "load_environment;from pipelinelib.steps.plan import render_all;"
             f"e=load_environment('{root}/environments/bench.yaml', root='{root}');"
             "print(json.dumps({'apiVersion':'v1','kind':'List','items':"
             "[d for ds in render_all(e).values() for d in ds]}))"],
            capture_output=True, text=True, check=True).stdout
        peer = best_of(3, lambda: kubectl("apply", "-f", "-", stdin=manifests))
        report("no-op apply, 50 apps", noop, "kubectl apply -f (50 apps)", peer)

        one = apply_changed(root, ns, 1, "2.0")
        twenty = apply_changed(root, ns, 20, "3.0")
        ratio = twenty / one
        print(f"changed apps of one priority: 1 app {one:.2f} s, 20 apps {twenty:.2f} s = "
              f"{ratio:.2f}x (goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})")
        kubectl("delete", "namespace", ns, "--wait=false")


def apply_changed(root: Path, ns: str, count: int, tag: str) -> float:
    write(root, ns, 50, tag, changed=count)
    return apply(root)


if __name__ == "__main__":
    main()
