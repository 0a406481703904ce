"""A real Elasticsearch-compatible audit sink: ZincSearch (testbed/tools/zincsearch builds it
from the Go module proxy), and the audit context whose secret must never reach it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from pipelinelib.context import CIInfo, Context, Credentials
from tests.helpers.wait import wait_until

AUDIT_PLANTED = "planted-s3cret-9431"
ZINC_USER, ZINC_PASSWORD = "admin", "Zinc-" + AUDIT_PLANTED


def audit_ctx(env: Mapping[str, str]) -> Context:
    """release-rita's Jenkins run deploying hello to live, with the audit sinks and spool
    ``env`` names (``PIPELINE_AUDIT_*``); ``AUDIT_PLANTED`` is a secret."""
    ctx = Context(app="hello", environment="live", revision="c0ffee" * 6 + "abcd",
                  ci=CIInfo(provider="jenkins", user="release-rita",
                            build_url="https://bot:tok3n-xyz@ci.example.org/job/deploy/42/",
                            build_number="42", job="deploy"),
                  credentials=Credentials.from_env(env))
    ctx.secrets.add(AUDIT_PLANTED)
    return ctx


class Zinc:
    """ZincSearch on a fixed free loopback port, telemetry off; can be stopped and restarted."""

    def __init__(self, binary: str, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.binary, self.workdir = binary, workdir
        self.url = f"http://127.0.0.1:{self.port}/es"
        self.proc: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _healthy(self) -> bool:
        try:
            if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        assert self.running(), (self.workdir / "zinc.log").read_text()[-2000:]
        return False

    def start(self) -> None:
        env = {**os.environ, "ZINC_SERVER_ADDRESS": "127.0.0.1",
               "ZINC_SERVER_PORT": str(self.port), "ZINC_DATA_PATH": str(self.workdir / "data"),
               "ZINC_FIRST_ADMIN_USER": ZINC_USER, "ZINC_FIRST_ADMIN_PASSWORD": ZINC_PASSWORD,
               "ZINC_TELEMETRY": "false", "ZINC_SENTRY": "false", "ZINC_PROFILER": "false",
               "ZINC_SWAGGER_ENABLE": "false", "GIN_MODE": "release"}
        with open(self.workdir / "zinc.log", "ab") as logfile:
            self.proc = subprocess.Popen([self.binary], cwd=self.workdir, env=env,
                                         stdout=logfile, stderr=subprocess.STDOUT)
        wait_until(self._healthy, 30, "zincsearch to answer /healthz")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


def zinc_search(url: str, index: str, expect: int,
                query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The documents in ``index`` matching ``query`` (all by default) once ``expect`` of
    them are searchable (ZincSearch makes new documents searchable within about a second),
    then once more after a pause so a late duplicate would show; what is there after 10 s
    otherwise (the caller's assertion names the difference)."""

    def search() -> list[dict[str, Any]]:
        reply = requests.post(f"{url}/{index}/_search", auth=(ZINC_USER, ZINC_PASSWORD),
                              json={"query": query or {"match_all": {}}, "size": 1000},
                              timeout=5)
        return [h["_source"] for h in reply.json().get("hits", {}).get("hits", [])] \
            if reply.ok else []

    try:
        wait_until(lambda: len(search()) >= expect, 10, f"{expect} document(s) in {index}",
                   ignoring=(requests.RequestException,))
    except AssertionError:
        return search()
    time.sleep(0.5)  # the pause IS the check: a duplicate arriving late would show now
    return search()
