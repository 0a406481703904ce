"""Docker engine adapter (docker-py's low-level ``APIClient``).

Streams build and push output as progress lines, detects errors that the engine
reports *inside* a 200 stream, and translates docker-py errors into ours.
Credentials are passed per call (``auth_config``); ``~/.docker/config.json`` is
never read or written.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import requests

from pipelinelib.errors import StepFailed, TransientError, Unreachable
from pipelinelib.retry import is_transient_text, transient_retry

LineSink = Callable[[str], None]
TAIL = 20


class BuildFailed(StepFailed):
    """``docker build`` failed; ``evidence`` holds the last lines of its output."""


class PushFailed(StepFailed):
    """``docker push`` failed (often reported inside a 200 response stream)."""


@dataclass
class PushOutcome:
    """What a push did: the digest the engine printed and how many layers it uploaded."""

    digest: str = ""
    layers_pushed: int = 0
    layers_existing: int = 0
    log: list[str] = field(default_factory=list)


class DockerEngine:
    """A connection to one Docker engine."""

    def __init__(self, client: docker.APIClient):
        self.api = client

    @classmethod
    def from_env(cls, base_url: str | None = None, timeout: int = 300) -> DockerEngine:
        """Connect to ``base_url`` (default ``$DOCKER_HOST``) and check it answers."""
        url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            client = docker.APIClient(base_url=url, version="auto", timeout=timeout)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise Unreachable(
                f"docker engine at {url} is unreachable",
                cause=str(exc)[:200],
                hint="start it (testbed/up) or set DOCKER_HOST",
            ) from exc
        return cls(client)

    # -- images ------------------------------------------------------------------------------
    def build(
        self,
        context_dir: str,
        dockerfile: str,
        *,
        tag: str | None = None,
        buildargs: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        network_mode: str | None = None,
        on_line: LineSink | None = None,
    ) -> str:
        """Build an image and return its id; output lines go to ``on_line`` as they come."""
        tail: collections.deque[str] = collections.deque(maxlen=TAIL)
        image_id = ""
        stream = self._translate(
            lambda: self.api.build(
                path=context_dir,
                dockerfile=dockerfile,
                tag=tag,
                buildargs=buildargs or {},
                labels=labels or {},
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                network_mode=network_mode,
            )
        )
        for chunk in self._iterate(stream, "build"):
            if "error" in chunk or "errorDetail" in chunk:
                message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error", "")
                raise BuildFailed(
                    "docker build failed",
                    cause=message.strip()[:300],
                    hint="fix the Dockerfile or the build context",
                    evidence=[*tail, message.strip()],
                )
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            text = chunk.get("stream", "").rstrip()
            for line in text.splitlines():
                if line.strip():
                    tail.append(line)
                    if on_line:
                        on_line(line)
        if not image_id:
            raise BuildFailed("docker build ended without an image id", evidence=list(tail))
        return image_id

    def inspect_image(self, reference: str) -> dict[str, Any] | None:
        """The image's inspect data, or None when the engine does not have it."""
        try:
            api: Any = self.api  # docker-py's inspect_image is untyped
            found: dict[str, Any] = self._translate(lambda: api.inspect_image(reference))
            return found
        except docker.errors.ImageNotFound:
            return None

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self._translate(lambda: self.api.tag(image_id, repository, tag, force=True))

    def remove_image(self, reference: str) -> None:
        with contextlib.suppress(docker.errors.ImageNotFound):
            self._translate(lambda: self.api.remove_image(reference, force=True, noprune=False))

    def save(self, reference: str, path: str) -> None:
        """Write ``docker save`` of ``reference`` to ``path`` (for scanners)."""
        data = self._translate(lambda: self.api.get_image(reference))
        with open(path, "wb") as out:
            for chunk in data:
                out.write(chunk)

    def push(
        self,
        repository: str,
        tag: str,
        auth_config: dict[str, str] | None = None,
        on_line: LineSink | None = None,
        on_retry: LineSink | None = None,
    ) -> PushOutcome:
        """Push ``repository:tag``; errors inside the stream raise ``PushFailed``.

        The engine retries a failed layer upload itself (five times, 5 to 20 s apart) and
        says only "Retrying in N seconds": ``on_retry(layer)`` is called the first time, so
        the caller can ask the registry why and stop a push that cannot succeed (raise)."""
        outcome = PushOutcome()
        stream = self._translate(
            lambda: self.api.push(
                repository, tag=tag, stream=True, decode=True, auth_config=auth_config
            )
        )
        for chunk in self._iterate(stream, "push"):
            if "error" in chunk or "errorDetail" in chunk:
                message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error", "")
                if is_transient_text(message):  # the engine already retried each upload
                    raise Unreachable(
                        f"the registry did not take the push of {repository}:{tag}",
                        cause=message.strip()[:300],
                        hint="the registry failed or went away mid-push; re-running is safe",
                    )
                raise PushFailed(
                    f"push of {repository}:{tag} failed",
                    cause=message.strip()[:300],
                    hint=_push_hint(message),
                    evidence=outcome.log[-TAIL:],
                )
            status = chunk.get("status", "")
            if on_retry and status.startswith("Retrying in"):
                retrying, on_retry = on_retry, None
                retrying(chunk.get("id", ""))
            if status == "Pushed":
                outcome.layers_pushed += 1
            elif status == "Layer already exists":
                outcome.layers_existing += 1
            if "aux" in chunk and chunk["aux"].get("Digest"):
                outcome.digest = chunk["aux"]["Digest"]
            if (status and "progressDetail" not in chunk) or status in (
                "Pushed",
                "Layer already exists",
            ):
                line = f"{chunk.get('id', '')} {status}".strip()
                outcome.log.append(line)
                if on_line:
                    on_line(line)
        return outcome

    # -- containers (smoke tests) --------------------------------------------------------------
    def run_detached(
        self,
        image: str,
        command: list[str] | None,
        *,
        network_mode: str,
        labels: dict[str, str],
        environment: dict[str, str] | None = None,
    ) -> str:
        """Create and start a container; return its id (the caller must ``remove_container``)."""
        host_config = self.api.create_host_config(network_mode=network_mode)
        container = self._translate(
            lambda: self.api.create_container(
                image,
                command=command,
                labels=labels,
                host_config=host_config,
                environment=environment or {},
            )
        )
        container_id = str(container["Id"])
        try:
            self._translate(lambda: self.api.start(container_id))
        except Exception:
            self.remove_container(container_id)
            raise
        return container_id

    def container_state(self, container_id: str) -> dict[str, Any]:
        state: dict[str, Any] = self._translate(
            lambda: self.api.inspect_container(container_id))["State"]
        return state

    def wait(self, container_id: str, timeout: float) -> int:
        seconds = max(1, math.ceil(timeout))  # docker-py takes whole seconds
        result = self._translate(lambda: self.api.wait(container_id, timeout=seconds))
        return int(result.get("StatusCode", -1))

    def logs_tail(self, container_id: str, lines: int = TAIL) -> list[str]:
        raw = self._translate(lambda: self.api.logs(container_id, tail=lines))
        return [str(line) for line in raw.decode("utf-8", "replace").splitlines()]

    def remove_container(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container_id, force=True, v=True)

    def containers_with_label(self, label: str) -> list[str]:
        found = self._translate(lambda: self.api.containers(all=True, filters={"label": label}))
        return [c["Id"] for c in found]

    # -- error translation ---------------------------------------------------------------------
    def _translate(self, call: Callable[[], Any]) -> Any:
        try:
            return _retried(call)
        except docker.errors.NotFound:
            raise
        except (TransientError, requests.exceptions.ConnectionError) as exc:
            raise Unreachable(
                "docker engine is unreachable or failing",
                cause=str(exc)[:200],
                hint="check DOCKER_HOST and that the engine runs",
            ) from exc
        except docker.errors.APIError as exc:
            raise StepFailed(
                f"docker engine refused the request ({exc.status_code})",
                cause=str(exc.explanation or exc)[:300],
            ) from exc
        except docker.errors.DockerException as exc:
            raise StepFailed("docker request failed", cause=str(exc)[:300]) from exc

    def _iterate(self, stream: Iterator[dict[str, Any]], what: str) -> Iterator[dict[str, Any]]:
        try:
            yield from stream
        except requests.exceptions.RequestException as exc:
            raise Unreachable(
                f"docker engine connection lost during {what}", cause=str(exc)[:200]
            ) from exc


@transient_retry(attempts=3, max_delay_s=15)
def _retried(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except docker.errors.APIError as exc:
        if (
            exc.status_code is not None
            and exc.status_code >= 500
            and not isinstance(exc, docker.errors.NotFound)
        ):
            raise TransientError(str(exc.explanation or exc)[:200], exc.status_code) from exc
        raise


def _push_hint(message: str) -> str:
    lowered = message.lower()
    if "auth" in lowered or "denied" in lowered or "unauthorized" in lowered:
        return "check REGISTRY_USER / REGISTRY_PASSWORD and the repository's push permission"
    if "connection refused" in lowered or "no such host" in lowered:
        return "check that the registry is running and its address"
    return "read the push log above; re-running is safe"
