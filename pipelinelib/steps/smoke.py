"""Smoke-test a freshly built image (seed 000: "built and tested") before it is pushed.

Runs the image on the local engine, probes its HTTP endpoint (host network) or
runs a check command (no network), and always removes the container.
"""

from __future__ import annotations

import socket
import time
import uuid

from pipelinelib.buildspec import SmokeProbe
from pipelinelib.context import Context
from pipelinelib.errors import StepFailed, Unreachable
from pipelinelib.result import StepResult
from pipelinelib.step import step

LABEL = "io.pipelinelib.smoke"
PROGRESS_EVERY_S = 2.0


@step("smoke")
def smoke_test(ctx: Context, image: str, probe: SmokeProbe) -> StepResult:
    """Run ``image`` and check it answers; raise ``StepFailed`` with its log tail if not."""
    if not probe.enabled:
        return StepResult.of("smoke", [], summary="no smoke probe configured")
    checks = []
    if probe.http_port is not None:
        checks.append(f"GET http://127.0.0.1:{probe.http_port}{probe.http_path}")
    if probe.command:
        checks.append(f"run {' '.join(probe.command)}")
    if ctx.dry_run:
        return StepResult.of("smoke", [], dry_run=True, summary=f"would check: {'; '.join(checks)}")
    passed = []
    if probe.http_port is not None:
        passed.append(_http_probe(ctx, image, probe))
    if probe.command:
        passed.append(_command_probe(ctx, image, probe))
    return StepResult.of("smoke", [], summary="passed: " + "; ".join(passed))


def _http_probe(ctx: Context, image: str, probe: SmokeProbe) -> str:
    port = probe.http_port
    assert port is not None
    if _port_answers(port):
        raise StepFailed(
            f"port {port} is already in use on this agent",
            hint="free the port or change SMOKE_HTTP_PORT; a probe would hit the wrong server",
        )
    url = f"http://127.0.0.1:{port}{probe.http_path}"
    container = ctx.engine.run_detached(
        image, None, network_mode="host", labels={LABEL: uuid.uuid4().hex}
    )
    log = ctx.log.bind(image=image, url=url)
    try:
        deadline = time.monotonic() + probe.timeout_s
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                status = ctx.http.status(url, timeout=2)
                if 200 <= status < 300:
                    return f"GET {probe.http_path} -> {status}"
                last = f"HTTP {status}"
            except Unreachable as exc:
                last = exc.message
            state = ctx.engine.container_state(container)
            if not state.get("Running"):
                raise StepFailed(
                    f"container exited with code {state.get('ExitCode')} before answering",
                    evidence=ctx.engine.logs_tail(container),
                )
            if time.monotonic() >= next_progress:
                log.info("waiting for the container to answer", last=last)
                next_progress += PROGRESS_EVERY_S
            time.sleep(0.1)
        raise StepFailed(
            f"{url} did not answer 2xx within {probe.timeout_s:.0f}s (last: {last})",
            evidence=ctx.engine.logs_tail(container),
        )
    finally:
        ctx.engine.remove_container(container)


def _command_probe(ctx: Context, image: str, probe: SmokeProbe) -> str:
    container = ctx.engine.run_detached(
        image, probe.command, network_mode="none", labels={LABEL: uuid.uuid4().hex}
    )
    try:
        code = ctx.engine.wait(container, timeout=probe.timeout_s)
        if code != 0:
            raise StepFailed(
                f"smoke command {' '.join(probe.command)!r} exited {code}",
                evidence=ctx.engine.logs_tail(container),
            )
        return f"{' '.join(probe.command)} -> exit 0"
    finally:
        ctx.engine.remove_container(container)


def _port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
