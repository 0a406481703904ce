"""`pipeline rollout` vs `kubectl apply -f` + `kubectl rollout status` on the same manifests.

Needs the testbed's variables (``testbed/up --only kubernetes``): KUBECONFIG (admin, for
namespaces and kubectl), PIPELINELIB_DEPLOYER_KUBECONFIG (our rollout runs as the
least-privilege deployer), PIPELINELIB_KUBE_BIN (kubectl).

Prints:
- time-to-ready, 1 app, first deploy and an image update: ours / kubectl (goal <= 1.0x);
- 20 apps in parallel (bounded: --parallel, default 20) vs our 1 app (goal <= 1.3x);
- no-op rollout of the 20 apps: wall time (goal < 1 s) and writes (goal 0);
- failure latency: crash-looping pods and image pull failures, ours vs `kubectl rollout
  status` (which waits for the progress deadline, here 20 s).

    python benchmarks/rollout_vs_kubectl.py [--runs 3] [--apps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.manifests.kit import web, write  # noqa: E402


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = str(Path(os.environ["PIPELINELIB_KUBE_BIN"]) / "kubectl")
    return subprocess.run([binary, *args], text=True, check=check, capture_output=True)


def namespace(prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("-n", name, "create", "rolebinding", "pipelinelib-deployer",
            "--clusterrole=pipelinelib-deployer",
            "--serviceaccount=pipelinelib-system:pipelinelib-deployer")
    return name


def ours_cli(path: Path, ns: str, *extra: str) -> tuple[float, int]:
    env = {**os.environ, "KUBECONFIG": os.environ["PIPELINELIB_DEPLOYER_KUBECONFIG"],
           "PIPELINE_LOG_FORMAT": "json"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pipelinelib", "rollout", str(path), "--app",
                          "web", "-n", ns, *extra], env=env, capture_output=True, text=True)
    return time.perf_counter() - start, out.returncode


def theirs(path: Path, ns: str, timeout: str = "120s") -> tuple[float, int]:
    start = time.perf_counter()
    kubectl("-n", ns, "apply", "-f", str(path))
    out = kubectl("-n", ns, "rollout", "status", "deployment/web", f"--timeout={timeout}",
                  check=False)
    return time.perf_counter() - start, out.returncode


def one_kubectl_apply(v1: Path, namespaces: list[str]) -> float:
    """All apps' objects in one `kubectl apply`, then one `kubectl wait` until every
    Deployment is Available: the cheapest way the peer tool can do it."""
    import yaml

    run = uuid.uuid4().hex[:8]
    docs = [dict(d, metadata={**d["metadata"], "namespace": ns,
                              "labels": {**d["metadata"].get("labels", {}), "floor": run}})
            for ns in namespaces for d in yaml.safe_load_all(v1.read_text()) if d]
    path = v1.with_name("floor.yaml")
    path.write_text(yaml.safe_dump_all(docs))
    start = time.perf_counter()
    kubectl("apply", "-f", str(path))
    kubectl("wait", "deployment", "-A", "-l", f"floor={run}", "--for=condition=Available",
            "--timeout=120s")
    return time.perf_counter() - start


def ours_many(apps: int, version: int, namespaces: list[str], parallel: int = 20
              ) -> tuple[float, int]:
    from pipelinelib.adapters.kube import KubeClient
    from pipelinelib.context import CIInfo, Context
    from pipelinelib.log import configure
    from pipelinelib.steps.rollout import rollout

    configure("json", level="warning")
    client = KubeClient.from_kubeconfig(os.environ["PIPELINELIB_DEPLOYER_KUBECONFIG"])
    before = client.writes

    def one(i: int) -> None:
        ctx = Context(app=f"app{i}", ci=CIInfo(user="bench"), adapters={"kube": client})
        rollout(ctx, web(version, replicas=2), app=f"app{i}", namespace=namespaces[i],
                timeout=120)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, range(apps)))
    return time.perf_counter() - start, client.writes - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=20, help="apps rolled out at once")
    args = parser.parse_args()
    created: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            v1, v2 = write(Path(tmp) / "v1.yaml", web(1)), write(Path(tmp) / "v2.yaml", web(2))
            first_o, first_k, upd_o, upd_k = [], [], [], []
            for _ in range(args.runs):
                a, b = namespace("bo"), namespace("bk")
                created += [a, b]
                first_o.append(ours_cli(v1, a)[0])
                first_k.append(theirs(v1, b)[0])
                upd_o.append(ours_cli(v2, a)[0])
                upd_k.append(theirs(v2, b)[0])
            line("1 app, first deploy", first_o, first_k, "<= 1.0x")
            line("1 app, image update", upd_o, upd_k, "<= 1.0x")

            many = [namespace("bm") for _ in range(args.apps)]
            created += many
            solo = namespace("b1")
            created.append(solo)
            one_app, _ = ours_many(1, 1, [solo])
            t, writes = ours_many(args.apps, 1, many, args.parallel)
            print(f"{args.apps} apps in parallel: {t * 1000:.0f} ms vs 1 app {one_app * 1000:.0f}"
                  f" ms = {t / one_app:.2f}x  (goal: <= 1.3x); writes {writes}")
            peers = [namespace("bp") for _ in range(args.apps)]
            created += peers
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.parallel) as pool:
                list(pool.map(lambda ns: theirs(v1, ns), peers))
            k = time.perf_counter() - start
            print(f"  reference: kubectl apply+rollout status, {args.apps} apps, "
                  f"{args.parallel} at a time: {k * 1000:.0f} ms "
                  f"(ours / kubectl = {t / k:.2f}x)")
            batch_ns = [namespace("bf") for _ in range(args.apps)]
            created += batch_ns
            batch = one_kubectl_apply(v1, batch_ns)
            print(f"  reference: {args.apps} apps in one kubectl apply + one kubectl wait: "
                  f"{batch * 1000:.0f} ms = {batch / one_app:.2f}x our one app "
                  f"(ours / kubectl = {t / batch:.2f}x)")
            t, writes = ours_many(args.apps, 1, many, args.parallel)
            print(f"no-op rollout of {args.apps} apps: {t * 1000:.0f} ms, {writes} writes  "
                  f"(goal: < 1000 ms, 0 writes)")

            failures = (("CrashLoopBackOff, pods crash ~0.5 s after start", "crash"),
                        ("ErrImagePull/ImagePullBackOff, ~0.3 s after scheduling", "pull-fail"))
            for n, (label, behavior) in enumerate(failures):
                bad = write(Path(tmp) / f"{behavior}.yaml",
                            web(3 + n, behavior=behavior, progress_deadline=20))
                a, b = namespace("fo"), namespace("fk")
                created += [a, b]
                ours_cli(v1, a)
                theirs(v1, b)
                o, rc_o = ours_cli(bad, a, "--no-rollback")
                k, rc_k = theirs(bad, b, "60s")
                print(f"failure latency ({label}): pipelinelib {o * 1000:.0f} ms (exit {rc_o}) "
                      f"vs kubectl rollout status {k * 1000:.0f} ms (exit {rc_k}) = "
                      f"{o / k:.2f}x  (goal: ours <= 2 s after the pod fails)")
    finally:
        for ns in created:
            kubectl("delete", "namespace", ns, "--wait=false", check=False)


def line(name: str, ours: list[float], peer: list[float], goal: str) -> None:
    o, k = statistics.median(ours), statistics.median(peer)
    print(f"{name}: pipelinelib {o * 1000:.0f} ms vs kubectl apply+rollout status "
          f"{k * 1000:.0f} ms = {o / k:.2f}x (median of {len(ours)}; goal: {goal})")


if __name__ == "__main__":
    main()
