"""Start-up: `pipeline --help`, `build --help`, `rollout --help` vs `python -c pass`
(budget < 300 ms), and the imports on the way to a rollout's first request.

The rollout rows (with the testbed's deployer kubeconfig in PIPELINELIB_DEPLOYER_KUBECONFIG
or KUBECONFIG): importing the rollout command and step, and building the Kubernetes client
from the kubeconfig — through urllib3 alone (`adapters/kube_http.py`, what `pipeline`
does for a token or client-certificate kubeconfig) and through the official `kubernetes`
loader (what it did before, and still does for exec plugins and the like), each as a fresh
interpreter, minus `python -c pass`; best of 7.

    python benchmarks/startup.py

Measured 2026-11-28 (shared 2-core testbed, see the report of issue 13): the official
loader costs ~250 ms more than the lean client on every run that reaches a cluster.
"import the rollout command and step", with bytecode, best of 7 at load 7: 100 ms on
29b2303, 62 ms after structlog's asyncio and uuid were deferred (log.load_structlog) and
the rollout stopped importing the promotion machinery (promotion.guard), the report
writers, difflib and uuid.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from _timing import best_of, report, run

RUNS = 7
ROOT = Path(__file__).resolve().parents[1]
ROLLOUT = ("from pipelinelib.log import load_structlog; load_structlog(); "  # as the CLI
           "import pipelinelib.commands.rollout, pipelinelib.steps.rollout")
# both after the adapter's own imports (and the YAML loader the lean client reads with)
ADAPTER = ("import sys; from pipelinelib.log import load_structlog; load_structlog(); "
           "from pipelinelib.adapters.kube import KubeClient; import pipelinelib.yamlsafe; ")
LEAN = ADAPTER + ("KubeClient.from_kubeconfig(sys.argv[1]); "
                  "assert 'kubernetes' not in sys.modules")
OFFICIAL = ADAPTER + ("from kubernetes import client, config; c = client.Configuration(); "
                      "config.load_kube_config(config_file=sys.argv[1], client_configuration=c); "
                      "client.ApiClient(c)")


def main() -> None:
    python = best_of(RUNS, lambda: run([sys.executable, "-c", "pass"]))
    pipeline = shutil.which("pipeline") or "pipeline"
    for args in (["--help"], ["build", "--help"], ["rollout", "--help"]):
        ours = best_of(RUNS, lambda a=args: run([pipeline, *a]))
        report(f"pipeline {' '.join(args)}", ours, "python -c pass", python, "< 300 ms")
    kubeconfig = os.environ.get("PIPELINELIB_DEPLOYER_KUBECONFIG") or os.environ.get(
        "KUBECONFIG")
    env = {"PYTHONPATH": str(ROOT)}
    steps = best_of(RUNS, lambda: run([sys.executable, "-c", ROLLOUT], env))
    print(f"import the rollout command and step: {(steps - python) * 1000:.0f} ms "
          "(python -c pass subtracted)")
    if not kubeconfig:
        print("(no kubeconfig: set KUBECONFIG for the client rows)")
        return
    lean = best_of(RUNS, lambda: run([sys.executable, "-c", LEAN, kubeconfig], env))
    official = best_of(RUNS, lambda: run([sys.executable, "-c", OFFICIAL, kubeconfig], env))
    adapter = best_of(RUNS, lambda: run([sys.executable, "-c", ADAPTER + "pass"], env))
    report("Kubernetes client from a kubeconfig (its imports included, the adapter's not)",
           lean - adapter, "the official loader", official - adapter)


if __name__ == "__main__":
    main()
