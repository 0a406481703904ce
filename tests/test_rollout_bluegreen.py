"""Blue/green on the real control plane: deploy the idle colour, await promotion, swap."""

from __future__ import annotations

import itertools
import threading

from pipelinelib.adapters.kube import KubeClient
from pipelinelib.errors import EXIT_AWAITING_PROMOTION
from tests.helpers.cli import run_pipeline
from tests.helpers.kube import Cluster
from tests.helpers.manifests import image, web, write


def selector_color(cluster: Cluster, ns: str) -> str:
    return cluster.json("-n", ns, "get", "svc", "web")["spec"]["selector"]["pipelinelib.dev/color"]


def image_of(cluster: Cluster, ns: str, name: str) -> str:
    d = cluster.json("-n", ns, "get", "deploy", name)
    return d["spec"]["template"]["spec"]["containers"][0]["image"]


def test_blue_green_awaits_promotion_then_swaps_and_swaps_back(cluster, tmp_path):
    ns, env = cluster.namespace("bg"), cluster.cli_env()
    v1, v2 = write(tmp_path / "v1.yaml", web(1)), write(tmp_path / "v2.yaml", web(2))
    base = ["--app", "web", "-n", ns, "--blue-green"]
    out = run_pipeline("rollout", str(v1), *base, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert selector_color(cluster, ns) == "blue" and image_of(cluster, ns, "web-blue") == image(1)

    out = run_pipeline("rollout", str(v2), *base, "--await-promotion", env=env)
    assert out.returncode == EXIT_AWAITING_PROMOTION, out.stderr[-2000:]
    assert image_of(cluster, ns, "web-green") == image(2)
    assert cluster.json("-n", ns, "get", "deploy", "web-green")["status"]["readyReplicas"] == 2
    assert selector_color(cluster, ns) == "blue", "no switch before promotion"
    before = cluster.versions(ns)
    out = run_pipeline("rollout", str(v2), *base, "--await-promotion", env=env)
    assert out.returncode == EXIT_AWAITING_PROMOTION and cluster.versions(ns) == before

    out = run_pipeline("swap", "--app", "web", "-n", ns, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert selector_color(cluster, ns) == "green"
    assert image_of(cluster, ns, "web-blue") == image(1), "the old colour stays for swap-back"
    before = cluster.versions(ns)
    out = run_pipeline("swap", "--app", "web", "-n", ns, "--to", "green", env=env)
    assert out.returncode == 0 and '"status": "unchanged"' in out.stderr
    assert cluster.versions(ns) == before
    out = run_pipeline("rollout", str(v2), *base, env=env)
    assert out.returncode == 0 and cluster.versions(ns) == before, "v2 is live: unchanged"

    out = run_pipeline("swap", "--app", "web", "-n", ns, env=env)
    assert out.returncode == 0 and selector_color(cluster, ns) == "blue"


def test_swap_refuses_an_unhealthy_colour(cluster, tmp_path):
    ns, env = cluster.namespace("bg"), cluster.cli_env()
    out = run_pipeline("rollout", str(write(tmp_path / "v1.yaml", web(1))), "--app", "web",
                       "-n", ns, "--blue-green", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    cluster.kubectl("-n", ns, "scale", "deploy", "web-blue", "--replicas=0")
    out = run_pipeline("swap", "--app", "web", "-n", ns, "--to", "green", env=env)
    assert out.returncode == 2 and "not healthy" in out.stderr, out.stderr[-2000:]
    assert selector_color(cluster, ns) == "blue"


class ReadyEndpoints(threading.Thread):
    """Samples, until stopped (and once more then), how many ready endpoints the Service
    ``web`` has (``samples``) and which colour its selector names (``colors``, "" for none)."""

    def __init__(self, cluster: Cluster, namespace: str):
        super().__init__(daemon=True)
        self.kube = KubeClient.from_kubeconfig(cluster.kube_env["KUBECONFIG"])
        self.namespace, self.stop = namespace, threading.Event()
        self.samples: list[int] = []
        self.colors: list[str] = []

    def sample(self) -> None:
        service = self.kube.get("Service", "web", self.namespace) or {}
        slices = self.kube.list("EndpointSlice", self.namespace,
                                selector="kubernetes.io/service-name=web")["items"]
        self.colors.append(((service.get("spec") or {}).get("selector") or {})
                           .get("pipelinelib.dev/color", ""))
        self.samples.append(sum(1 for s in slices for e in s.get("endpoints") or []
                                if (e.get("conditions") or {}).get("ready")))

    def run(self) -> None:
        while not self.stop.wait(0.05):
            self.sample()

    def __enter__(self) -> ReadyEndpoints:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()
        self.sample()  # after the rollout: the selector it left


def test_an_app_that_goes_blue_green_loses_its_plain_deployment_after_success(cluster, tmp_path):
    ns, env = cluster.namespace("bg"), cluster.cli_env()
    v1 = write(tmp_path / "v1.yaml", web(1))
    v2 = write(tmp_path / "v2.yaml", web(2, behavior="slow-ready", ready_after="3s"))
    out = run_pipeline("rollout", str(v1), "--app", "web", "-n", ns, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    with ReadyEndpoints(cluster, ns) as endpoints:
        out = run_pipeline("rollout", str(v2), "--app", "web", "-n", ns, "--blue-green", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    serving = endpoints.samples[next(i for i, n in enumerate(endpoints.samples) if n):]
    # seen serving before the switch (the rolling Deployment's pods) and after it (blue's),
    # never below 2 ready endpoints in between, however many samples a busy machine took
    switched = [color for color, _ in itertools.groupby(endpoints.colors)]
    assert switched == ["", "blue"], endpoints.colors
    assert min(serving) >= 2, \
        f"the Service kept ready endpoints while blue became ready: {endpoints.samples}"
    names = sorted(d["metadata"]["name"]
                   for d in cluster.json("-n", ns, "get", "deploy")["items"])
    assert names == ["web-blue"], "the rolling Deployment is pruned once blue serves"
    assert selector_color(cluster, ns) == "blue" and image_of(cluster, ns, "web-blue") == image(2)
    out = run_pipeline("rollout", str(write(tmp_path / "v3.yaml", web(3))), "--app", "web",
                       "-n", ns, "--blue-green", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    names = sorted(d["metadata"]["name"]
                   for d in cluster.json("-n", ns, "get", "deploy")["items"])
    assert names == ["web-blue", "web-green"], "the other colour stays for swap-back"
