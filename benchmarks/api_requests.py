"""Requests the apiserver receives: `pipeline rollout` / `pipeline apply` vs kubectl.

Counted by the apiserver itself (pipelinelib.testing.apiserver.RequestCounter): each side
runs as a ServiceAccount of its own whose FlowSchema makes the apiserver's API Priority and
Fairness metrics count every request it dispatches for it (reads, watches, discovery,
writes); writes are cross-checked in the audit log. Both sides get the deployer's
ClusterRole only. kubectl runs with a discovery cache warmed before the measurement (its
best case; a cold cache adds its discovery requests).

Rows (requests, writes, wall time; ratios ours / kubectl):
- 1 app through the CLI: first deploy, image update, no-op —
  `pipeline rollout FILE` vs `kubectl apply -f FILE` + `kubectl rollout status`;
- 50 apps: `pipeline apply ENV` first and no-op vs one `kubectl apply -f` of the same
  rendered manifests + `kubectl rollout status` of each Deployment.
Goals (issue 13): update <= kubectl + 3 requests; no-op apply of 50 apps <= 1 request per
app; first deploy <= 1.0x kubectl's wall time.

    python benchmarks/api_requests.py [--apps 50] [--runs 1] [--skip-apply]

Before issue 13 (main dfa793f; requests / writes / ms, ours | kubectl):
    1 app, first deploy        33    5   1508 |    12    3    978
    1 app, image update        31    3   4053 |     7    1   1690
    1 app, no-op               18    0   2002 |     6    0   1355
    50 apps, first apply     1718  250  20960 |   551  150  19849
    50 apps, no-op apply       53    0   1853 |   251    0  19483
After (this branch merged with main at b675c87, same machine, load average ~20):
    1 app, first deploy        28    5   2550 |    12    3    865
    1 app, image update        24    3   3012 |     7    1   1695
    1 app, no-op               12    0   2582 |     6    0   1149
    50 apps, first apply     1185  250  15032 |   551  150  29703
    50 apps, no-op apply       11    0   2344 |   251    0  38593
Issue 13, write path (branch writes, 2026-11-28, load average ~8): a record of the app's
owned kinds (prune lists those, not all nine), updates conditional on the listed
resourceVersion (no re-read under the lock), one Namespace read per namespace for an apply,
apply's rollouts writing the plan's changes (no second dry run):
    1 app, first deploy        25    6   1484 |    12    3   1027
    1 app, image update        14    3   2032 |     7    1   1826
    1 app, no-op                6    0   1215 |     6    0    821
    50 apps, first apply      794  300  14509 |   551  150  13407
    50 apps, no-op apply       10    0    796 |   251    0  23428
The update's 14: Namespace read (existence and the protected-namespace guard), 3 lists
(ConfigMap — the record comes with it —, Deployment, Service), 1 dry run, Lease create,
apply, Lease delete = 8; the waiter's list+watch of 3 kinds = 6. A first deploy writes the
record once (+1 write per app); with no record yet it lists every prunable kind, once.
Issue 13, waiter (main d967ebf, 2026-11-28, load average ~8 from a test run alongside):
one streaming watch-list per kind (sendInitialEvents, the initial-events-end bookmark as
"caught up"), the Deployment's ReplicaSets only to judge a doomed-looking pod, no GET for a
workload the caller just read; kubeconfigs with static credentials served without importing
the official client:
    1 app, first deploy        21    6   1288 |    12    3    914
    1 app, image update        10    3   1992 |     7    1   1749
    1 app, no-op                5    0    449 |     6    0    719
    50 apps, first apply      572  300   7782 |   551  150  11717
    50 apps, no-op apply       10    0    483 |   251    0  36021
The update's 10: the write path's 8 and the waiter's watch-lists of the Deployment and its
Pods. First deploy through the CLI measured back to back on a quieter machine (waiter
branch, load 1.4-4, 3 runs each): median 1.09x kubectl's wall time (was 1.41x).
(wall times on the shared 2-core testbed under load; the counts are exact.)
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelinelib.testing.apiserver import Counts, RequestCounter  # noqa: E402

DIGEST = "sha256:" + hashlib.sha256(b"bench").hexdigest()


def app_docs(version: int, name: str = "web") -> list[dict[str, Any]]:
    """ConfigMap + Deployment + Service of one app (image pinned by digest)."""
    labels = {"app": name}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-config"},
         "data": {"GREETING": "hello"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels, "annotations": {
                      "bench/version": str(version)}}, "spec": {"containers": [{
                          "name": name, "image": f"127.0.0.1:5001/bench/{name}@{DIGEST}",
                          "envFrom": [{"configMapRef": {"name": f"{name}-config"}}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]


def dump(path: Path, docs: list[dict[str, Any]]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump_all(docs))
    return path


class Bench:
    def __init__(self, admin: Any, tmp: Path):
        self.admin, self.tmp = admin, tmp
        self.namespaces: list[str] = []
        self.kubectl_bin = str(Path(os.environ["PIPELINELIB_KUBE_BIN"]) / "kubectl")
        self.cache = str(tmp / "kubectl-cache")

    def namespace(self, prefix: str, counter: RequestCounter) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self.namespaces.append(name)
        counter.grant(name)
        return name

    def kubectl(self, counter: RequestCounter, *args: str, check: bool = True) -> None:
        subprocess.run([self.kubectl_bin, "--kubeconfig", counter.kubeconfig, "--cache-dir",
                        self.cache, *args], check=check, capture_output=True, text=True)

    def cleanup(self) -> None:
        for ns in self.namespaces:
            self.admin.delete("Namespace", ns)


def measure(counter: RequestCounter, fn: Any) -> tuple[Counts, float]:
    before = counter.snapshot()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    return counter.since(before), wall


def pipeline(counter: RequestCounter, *args: str) -> None:
    env = {**os.environ, "KUBECONFIG": counter.kubeconfig, "PIPELINE_LOG_FORMAT": "json",
           "PYTHONPATH": str(ROOT)}
    env.pop("PIPELINE_KUBECONFIG", None)
    out = subprocess.run([sys.executable, "-m", "pipelinelib", "--log-level", "warning", *args],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"pipeline {' '.join(args)} failed (exit {out.returncode}):\n"
                 f"{out.stderr[-3000:]}")


def row(label: str, ours: tuple[Counts, float], theirs: tuple[Counts, float],
        goal: str = "") -> None:
    (o, ot), (k, kt) = ours, theirs
    ratio = o.requests / k.requests if k.requests else float("inf")
    print(f"{label:<28} {o.requests:>5} {o.writes:>4} {ot * 1000:>7.0f} | {k.requests:>5} "
          f"{k.writes:>4} {kt * 1000:>7.0f} | {ratio:>5.2f}x {ot / kt if kt else 0:>5.2f}x  "
          f"{goal}")


def header() -> None:
    print(f"{'':<28} {'pipelinelib':^18} | {'kubectl':^18} | ratio ours/kubectl")
    print(f"{'scenario':<28} {'req':>5} {'wr':>4} {'ms':>7} | {'req':>5} {'wr':>4} {'ms':>7} |"
          f" {'req':>6} {'time':>6}")


def one_app(bench: Bench, ours: RequestCounter, theirs: RequestCounter, runs: int) -> None:
    v1 = dump(bench.tmp / "v1.yaml", app_docs(1))
    v2 = dump(bench.tmp / "v2.yaml", app_docs(2))
    warm = bench.namespace("rq-warm", theirs)  # kubectl's discovery cache
    bench.kubectl(theirs, "-n", warm, "apply", "-f", str(v1))
    for _ in range(runs):
        a, b = bench.namespace("rq-o", ours), bench.namespace("rq-k", theirs)

        def ours_run(path: Path, ns: str = a) -> None:
            pipeline(ours, "rollout", str(path), "--app", "web", "-n", ns)

        def kubectl_run(path: Path, ns: str = b) -> None:
            bench.kubectl(theirs, "-n", ns, "apply", "-f", str(path))
            bench.kubectl(theirs, "-n", ns, "rollout", "status", "deployment/web",
                          "--timeout=120s")

        for label, path, goal in (("1 app, first deploy", v1, "goal: time <= 1.0x"),
                                  ("1 app, image update", v2, "goal: req <= kubectl + 3"),
                                  ("1 app, no-op", v2, "")):
            o = measure(ours, lambda p=path: ours_run(p))
            k = measure(theirs, lambda p=path: kubectl_run(p))
            met = ""
            if "kubectl + 3" in goal:
                met = " met" if o[0].requests <= k[0].requests + 3 else " NOT met"
            elif "1.0x" in goal:
                met = " met" if o[1] <= k[1] else " NOT met"
            row(label, o, k, goal + met)


def env_spec(root: Path, ns: str, apps: int) -> None:
    (root / "environments").mkdir(parents=True, exist_ok=True)
    lines = ["apiVersion: pipelinelib.dev/v1", "kind: Environment", "name: bench",
             f"namespaces: [{ns}]", "max_parallel: 20", "apps:"]
    for i in range(apps):
        lines += [f"  app-{i:03d}:",
                  f"    image: {{repository: 127.0.0.1:5001/bench/app, tag: \"1.0\", "
                  f"digest: \"{DIGEST}\"}}",
                  "    config: {LOG_LEVEL: info}", "    ports: [{name: http, port: 8080}]",
                  "    timeout: 120"]
    (root / "environments" / "bench.yaml").write_text("\n".join(lines) + "\n")


def many_apps(bench: Bench, ours: RequestCounter, theirs: RequestCounter, apps: int) -> None:
    from pipelinelib.envspec.load import load_environment
    from pipelinelib.steps.plan import render_all

    a, b = bench.namespace("rq-ao", ours), bench.namespace("rq-ak", theirs)
    repo = bench.tmp / "repo"
    env_spec(repo, a, apps)
    env = load_environment(str(repo / "environments" / "bench.yaml"), root=str(repo))
    docs = [dict(d, metadata={**d["metadata"], "namespace": b})
            for ds in render_all(env).values() for d in ds]
    path = dump(bench.tmp / "apps.yaml", docs)
    deployments = [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"]

    def kubectl_run() -> None:
        bench.kubectl(theirs, "apply", "-f", str(path))
        for name in deployments:
            bench.kubectl(theirs, "-n", b, "rollout", "status", f"deployment/{name}",
                          "--timeout=120s")

    def ours_run() -> None:
        pipeline(ours, "apply", "bench", "--repo", str(repo))

    first = measure(ours, ours_run), measure(theirs, kubectl_run)
    row(f"{apps} apps, first apply", *first)
    o, k = measure(ours, ours_run), measure(theirs, kubectl_run)
    per_app = o[0].requests / apps
    row(f"{apps} apps, no-op apply", o, k,
        f"goal: <= 1 req/app ({per_app:.2f}:{' met' if per_app <= 1 else ' NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--skip-apply", action="store_true", help="only the one-app rows")
    args = parser.parse_args()
    from pipelinelib.adapters.kube import KubeClient

    admin = KubeClient.from_kubeconfig(os.environ["KUBECONFIG"])
    with tempfile.TemporaryDirectory() as tmp, RequestCounter(admin) as ours, \
            RequestCounter(admin) as theirs:
        bench = Bench(admin, Path(tmp))
        try:
            header()
            one_app(bench, ours, theirs, args.runs)
            if not args.skip_apply:
                many_apps(bench, ours, theirs, args.apps)
        finally:
            bench.cleanup()
    print(json.dumps({"counted_by": "apiserver APF metrics (requests), audit log (writes)"}))


if __name__ == "__main__":
    main()
