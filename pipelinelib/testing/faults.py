"""Faults between the library and the systems it calls, for tests: Toxiproxy and real ones.

``Toxiproxy`` runs a private ``toxiproxy-server`` (built by ``testbed/tools/toxiproxy``) on a
free loopback port; ``Toxiproxy.proxy(name, upstream)`` puts a TCP proxy in front of one
system (apiserver, registry, PostgreSQL, audit sink) on another free loopback port, and
``Proxy.toxic(...)`` adds a toxic (latency, bandwidth, reset_peer, timeout, slicer,
limit_data) through Toxiproxy's REST API. Every session has its own server, so parallel
test runs never see each other's toxics.

The endpoint helpers rewrite one system's address to go through a proxy:
``kubeconfig_via`` (the apiserver's certificate names 127.0.0.1, so TLS still verifies),
``dsn_via`` (PostgreSQL), ``url_via`` (registry, audit sink).

Fixtures (import them into a conftest.py): ``toxiproxy`` (session) and ``fault_proxy``
(a factory; the proxies it makes are deleted after the test).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import yaml

from pipelinelib.testing.testbed import TestbedError, scripts_dir

# Toxiproxy's API answers a toxic's removal only once the proxy's links have taken it out:
# with a bandwidth toxic holding a large body that took over 5 s on a loaded machine
API_TIMEOUT_S = 60

TOXIC_TYPES = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
               "limit_data")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tool_binary(tool: str, variable: str) -> str:
    """The binary a ``testbed/tools/<tool>`` script builds (once; cached per version)."""
    if os.environ.get(variable) and os.access(os.environ[variable], os.X_OK):
        return os.environ[variable]
    out = subprocess.run([str(scripts_dir() / "tools" / tool)], capture_output=True, text=True,
                         timeout=1800, check=False)
    if out.returncode != 0:
        raise TestbedError(f"testbed/tools/{tool} failed: {out.stderr[-2000:]}")
    for line in out.stdout.splitlines():
        if line.startswith(f"export {variable}="):
            return line.split("=", 1)[1].strip("'\"")
    raise TestbedError(f"testbed/tools/{tool} printed no {variable}")


@dataclass
class Proxy:
    """One Toxiproxy proxy: clients connect to ``listen`` and reach ``upstream``."""

    api: str
    name: str
    listen: str
    upstream: str

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def add(self, kind: str, *, stream: str = "downstream", toxicity: float = 1.0,
            name: str | None = None, **attributes: int) -> str:
        """Add a toxic; returns its name. ``attributes`` as Toxiproxy documents them."""
        if kind not in TOXIC_TYPES:
            raise ValueError(f"unknown toxic {kind!r} (one of {', '.join(TOXIC_TYPES)})")
        name = name or f"{kind}_{stream}_{uuid.uuid4().hex[:6]}"
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity,
                "attributes": attributes}
        reply = requests.post(f"{self.api}/proxies/{self.name}/toxics", json=body,
                              timeout=API_TIMEOUT_S)
        reply.raise_for_status()
        return name

    def remove(self, toxic: str) -> None:
        requests.delete(f"{self.api}/proxies/{self.name}/toxics/{toxic}",
                        timeout=API_TIMEOUT_S).raise_for_status()

    def toxics(self) -> list[dict[str, Any]]:
        reply = requests.get(f"{self.api}/proxies/{self.name}/toxics", timeout=API_TIMEOUT_S)
        reply.raise_for_status()
        return list(reply.json())

    def clear(self) -> None:
        """Remove every toxic and enable the proxy again."""
        for toxic in self.toxics():
            self.remove(toxic["name"])
        self.set_enabled(True)

    def set_enabled(self, enabled: bool) -> None:
        """Disabled: listening stops and open connections are closed (the system is 'down')."""
        requests.post(f"{self.api}/proxies/{self.name}", json={"enabled": enabled},
                      timeout=API_TIMEOUT_S).raise_for_status()

    @contextlib.contextmanager
    def toxic(self, kind: str, **kwargs: Any) -> Iterator[str]:
        """``with proxy.toxic("latency", latency=300): ...``"""
        name = self.add(kind, **kwargs)
        try:
            yield name
        finally:
            with contextlib.suppress(requests.RequestException):
                self.remove(name)


class Toxiproxy:
    """A private ``toxiproxy-server`` on a free loopback port."""

    def __init__(self, binary: str, workdir: Path):
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Toxiproxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "toxiproxy.log", "ab") as logfile:
            self.proc = subprocess.Popen(
                [self.binary, "-host", "127.0.0.1", "-port", str(self.port)],
                stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.api}/version", timeout=1).ok:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "toxiproxy.log").read_text(errors="replace")[-2000:]
                raise TestbedError(f"toxiproxy-server did not answer on {self.api}: {log}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def proxy(self, name: str, upstream: str) -> Proxy:
        """A new proxy to ``upstream`` (``host:port``) on a free loopback port."""
        body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": True}
        reply = requests.post(f"{self.api}/proxies", json=body, timeout=API_TIMEOUT_S)
        reply.raise_for_status()
        data = reply.json()
        return Proxy(self.api, data["name"], data["listen"], data["upstream"])

    def delete(self, proxy: Proxy) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.delete(f"{self.api}/proxies/{proxy.name}", timeout=API_TIMEOUT_S)


# -- endpoints through a proxy ------------------------------------------------------------------

def host_port(url: str) -> str:
    """``https://127.0.0.1:26443/x`` -> ``127.0.0.1:26443``."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    default = {"https": 443, "http": 80, "postgresql": 5432, "postgres": 5432}.get(
        parts.scheme, 80)
    return f"{parts.hostname}:{parts.port or default}"


def url_via(url: str, proxy: Proxy) -> str:
    """``url`` with its host and port replaced by the proxy's (user info kept)."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    out = urlunsplit(parts._replace(netloc=f"{userinfo}{proxy.listen}"))
    return out if "//" in url else out[2:]


def dsn_via(dsn: str, proxy: Proxy) -> str:
    """A PostgreSQL URL DSN through the proxy."""
    return url_via(dsn, proxy)


def kube_server(kubeconfig: str | os.PathLike[str]) -> str:
    """The apiserver URL of the kubeconfig's current context."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c["context"] for c in doc["contexts"] if c["name"] == doc["current-context"])
    return next(c["cluster"]["server"] for c in doc["clusters"]
                if c["name"] == context["cluster"])


def kubeconfig_via(kubeconfig: str | os.PathLike[str], proxy: Proxy, dest: Path) -> Path:
    """A copy of ``kubeconfig`` whose clusters point at the proxy (TLS still verified)."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in doc["clusters"]:
        cluster["cluster"]["server"] = url_via(cluster["cluster"]["server"], proxy)
    dest.write_text(yaml.safe_dump(doc))
    dest.chmod(0o600)
    return dest


# -- pytest fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxiproxy]:
    """A private Toxiproxy server for this test session (one per xdist worker)."""
    server = Toxiproxy(tool_binary("toxiproxy", "PIPELINELIB_TOXIPROXY"),
                       tmp_path_factory.mktemp("toxiproxy")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_proxy(toxiproxy: Toxiproxy) -> Iterator[Callable[[str, str], Proxy]]:
    """``fault_proxy("apiserver", "127.0.0.1:26443")``: a proxy for this test only."""
    made: list[Proxy] = []

    def make(system: str, upstream: str) -> Proxy:
        proxy = toxiproxy.proxy(f"{system}-{uuid.uuid4().hex[:8]}", upstream)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        toxiproxy.delete(proxy)


# -- the scenario table ---------------------------------------------------------------------------

def report_path() -> Path:
    """Where scenarios are recorded: $PIPELINELIB_FAULTS_REPORT or reports/faults.jsonl."""
    default = Path(__file__).resolve().parents[2] / "reports" / "faults.jsonl"
    return Path(os.environ.get("PIPELINELIB_FAULTS_REPORT") or default)


@dataclass
class Scenario:
    """One row of docs/reliability.md: step x fault -> outcome, retries, time, re-run."""

    step: str
    fault: str
    system: str
    outcome: str = ""          # e.g. "exit 3: the Kubernetes API ... did not answer"
    retries: int = 0           # "retrying after transient fault" lines in the faulted run
    seconds: float = 0.0       # time to the clear failure (or to success)
    rerun: str = ""            # "converged", "unchanged", ...
    lost: int = 0              # objects/tags/notes/rows/events lost or duplicated
    stuck_locks: int = 0
    passed: bool = False

    def write(self) -> None:
        import fcntl
        import json

        path = report_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(json.dumps(self.__dict__, sort_keys=True) + "\n")


def count_retries(stderr: str) -> int:
    """Retries the library logged (JSON or console log lines)."""
    return stderr.count("retrying after transient fault")


@pytest.fixture
def scenario() -> Iterator[Callable[..., Scenario]]:
    """``s = scenario("rollout", "reset_peer mid-stream", "kubernetes")``; fill it in and set
    ``s.passed = True`` after the last assertion; every row is recorded when the test ends."""
    made: list[Scenario] = []

    def make(step: str, fault: str, system: str) -> Scenario:
        made.append(Scenario(step, fault, system))
        return made[-1]

    yield make
    for row in made:
        row.write()


def clear_reason(stderr: str) -> str:
    """The one-line failure a run ended with (the JSON log's last failure event, or the
    last console line)."""
    import json

    for line in reversed(stderr.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            return line.strip()[:240]
        if isinstance(doc, dict) and ("failed" in str(doc.get("event", ""))
                                      or doc.get("level") == "error"):
            return str(doc.get("event", ""))[:240]
    return ""


# -- server-side faults on private instances (never the shared testbed's) ------------------------

class PrivateRegistry:
    """A registry (Debian ``docker-registry``, distribution 2.8) of our own on a free loopback
    port, with its access log on, run as ``nobody`` so that making its storage read-only
    (``read_only(True)``) really makes pushes fail with 5xx — root would ignore the mode bits.
    ``restart()`` stops and starts it (a registry restarted mid-push)."""

    def __init__(self, workdir: Path, binary: str = "docker-registry"):
        self.workdir, self.binary = workdir, binary
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.data = workdir / "data"
        self.log = workdir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRegistry:
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(yaml.safe_dump({
            "version": 0.1, "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.data)},
                        "delete": {"enabled": True}},
            "http": {"addr": self.addr, "secret": "pipelinelib-faults"}}))
        cmd = [self.binary, "serve", str(config)]
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "65534:65534", str(self.workdir)], check=True)
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        with open(self.log, "ab") as logfile:
            self.proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://{self.addr}/v2/", timeout=1).status_code == 200:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise TestbedError(f"private registry did not answer on {self.addr}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    def restart(self) -> None:
        self.stop()
        self.start()

    def read_only(self, on: bool) -> None:
        """Storage read-only (``on``) or writable again."""
        mode = "a-w" if on else "u+w"
        subprocess.run(["chmod", "-R", mode, str(self.data)], check=True)


@pytest.fixture
def private_registry() -> Iterator[PrivateRegistry]:
    """A registry of this test's own, for faults the shared one must not suffer (in its own
    directory under the system temp dir: pytest's is private to root, and it runs as nobody).
    """
    import shutil
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="pipelinelib-registry-"))
    registry = PrivateRegistry(workdir)
    try:
        yield registry.start()
    finally:
        registry.stop()
        registry.read_only(False)
        shutil.rmtree(workdir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of our own (``testbed/postgres/up`` in another state directory,
    on another port), logging every statement with its duration after it ran
    (``log_min_duration_statement=0``, ``log_line_prefix='%a|%d|'``) for the kill harness,
    and restartable (a server restarted mid-migration) without touching the shared one."""

    def __init__(self, state: Path):
        self.state = state
        self.env: dict[str, str] = {}

    @property
    def dsn(self) -> str:
        return self.env["PIPELINELIB_PG_DSN"]

    @property
    def log(self) -> Path:
        return self.state / "postgres" / "postgres.log"

    def start(self) -> PrivatePostgres:
        from pipelinelib.testing.testbed import parse_exports

        env = {**os.environ, "PIPELINELIB_PG_PORT_WANTED": str(free_port())}
        out = subprocess.run([str(scripts_dir() / "postgres" / "up"), str(self.state)],
                             capture_output=True, text=True, env=env, timeout=300, check=False)
        if out.returncode != 0:
            raise TestbedError(f"private postgres did not start: {out.stderr[-2000:]}")
        self.env = parse_exports(out.stdout)
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("alter system set log_min_duration_statement = 0")
            conn.execute("alter system set log_line_prefix = '%a|%d|'")
            conn.execute("select pg_reload_conf()")
        return self

    def _pg_ctl(self, *args: str) -> None:
        data = self.state / "postgres" / "data"
        pid = int((data / "postmaster.pid").read_text().split()[0])
        binary = Path(os.readlink(f"/proc/{pid}/exe")).parent / "pg_ctl"
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*run_as, str(binary), "-D", str(data), "-m", "fast", "-w", "-t", "60",
                        *args], check=True, capture_output=True, timeout=120)

    def restart(self) -> None:
        """Stop (fast: sessions are ended, open transactions rolled back) and start again."""
        self._pg_ctl("restart", "-l", str(self.log))

    def stop(self) -> None:
        subprocess.run([str(scripts_dir() / "postgres" / "down"), str(self.state)],
                       capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this session's own, for destructive faults (restarts)."""
    import shutil
    import tempfile

    state = Path(tempfile.mkdtemp(prefix="pipelinelib-pg-"))
    server = PrivatePostgres(state)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
