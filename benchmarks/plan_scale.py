"""`pipeline plan` of generated environments: 50 / 500 / 5000 apps (goal: 500 apps < 2 s,
< 200 MB). Needs KUBECONFIG (the testbed's kubernetes component).

Each size is planned twice: against an empty namespace (everything to create) and once the
objects a rollout would leave are live (set up with `kubectl apply --server-side`; no
changes: the realistic case). Wall time and peak RSS of the whole `pipeline plan` process
are printed, the growth ratio, and `kubectl diff --server-side` of the same objects as a
peer. Apps have 0 replicas so the benchmark measures the plan, not kwok's pods.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = [int(s) for s in os.environ.get("PLAN_SIZES", "50,500,5000").split(",")]


def generate(root: Path, name: str, namespace: str, apps: int) -> None:
    """An environment of ``apps`` built-in Deployments with config, env and ports."""
    (root / "environments").mkdir(parents=True, exist_ok=True)
    lines = ["apiVersion: pipelinelib.dev/v1", "kind: Environment", f"name: {name}",
             f"namespaces: [{namespace}]", "apps:"]
    for i in range(apps):
        lines += [f"  app-{i:05d}:",
                  f"    image: {{repository: 127.0.0.1:5001/bench/app-{i % 50}, tag: \"1.{i}\", "
                  f"digest: \"sha256:{i:064x}\"}}",
                  "    replicas: 0", f"    priority: {i % 5}",
                  f"    config: {{LOG_LEVEL: info, SHARD: \"{i}\"}}",
                  "    env: {MODE: bench}", "    ports: [{name: http, port: 8080}]",
                  "    resources: {memory: 64Mi, cpu: 50m}"]
    (root / "environments" / f"{name}.yaml").write_text("\n".join(lines) + "\n")


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS MB of the child, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def kubectl(*args: str, stdin: str | None = None) -> None:
    binary = str(Path(os.environ.get("PIPELINELIB_KUBE_BIN", "")) / "kubectl")
    subprocess.run([binary, *args], input=stdin, text=True, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rendered(root: Path) -> Path:
    """The manifests a rollout would leave live, as one kubectl List file."""
    import json

    out = root / "live.json"
    code = ("import json,sys;from pipelinelib.envspec.load import load_environment;"
            "from pipelinelib.steps.plan import render_all;"
            f"e=load_environment('{root}/environments/bench.yaml', root='{root}');"
            "print(json.dumps({'apiVersion':'v1','kind':'List','items':"
            "[d for ds in render_all(e).values() for d in ds]}))")
    out.write_text(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout)
    json.loads(out.read_text())
    return out


def main() -> None:
    if not os.environ.get("KUBECONFIG"):
        sys.exit("plan_scale: set KUBECONFIG (eval \"$(testbed/up --only kubernetes)\")")
    pipeline = [sys.executable, "-m", "pipelinelib", "--log-level", "warning"]
    kubectl_bin = str(Path(os.environ.get("PIPELINELIB_KUBE_BIN", "")) / "kubectl")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            ns = f"bench-{uuid.uuid4().hex[:8]}"
            kubectl("create", "namespace", ns)
            root = Path(tmp) / f"s{size}"
            generate(root, "bench", ns, size)
            plan = [*pipeline, "plan", "bench", "--repo", str(root), "--output", "json"]
            empty = timed(plan)
            live = rendered(root)
            kubectl("apply", "--server-side", "--field-manager", "pipelinelib", "-f", str(live))
            noop = timed(plan)
            peer = timed([kubectl_bin, "diff", "--server-side", "--field-manager",
                          "pipelinelib", "-f", str(live)])
            results[size] = {"create_plan": empty, "noop_plan": noop, "kubectl_diff": peer}
            print(f"plan {size:5d} apps: {empty[0]:.2f} s / {empty[1]:.0f} MB (all to create, "
                  f"exit {empty[2]}); {noop[0]:.2f} s / {noop[1]:.0f} MB (no changes, exit "
                  f"{noop[2]}); kubectl diff of the same objects {peer[0]:.2f} s "
                  f"(= {noop[0] / peer[0]:.2f}x)")
            kubectl("delete", "namespace", ns, "--wait=false")
    base = SIZES[0]
    for size in SIZES[1:]:
        ratio = results[size]["noop_plan"][0] / results[base]["noop_plan"][0]
        print(f"growth {base} -> {size} apps: x{size / base:.0f} apps, x{ratio:.1f} time")
    if 500 in results:
        seconds, mb, _ = results[500]["noop_plan"]
        print(f"goal 500 apps < 2 s and < 200 MB: {seconds:.2f} s, {mb:.0f} MB -> "
              f"{'met' if seconds < 2 and mb < 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
