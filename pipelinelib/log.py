"""Structured logging: readable console locally, JSON lines in CI, secrets redacted.

Only entry points (the CLI, job scripts) call ``configure``; library code just
does ``log = structlog.get_logger(__name__)`` and binds context.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import types
from collections.abc import Mapping
from typing import Any, TextIO

from pipelinelib.secrets import Secrets


def load_structlog() -> None:
    """Import structlog without rich and without asyncio, for an entry point to call before
    anything logs.

    structlog imports rich when it is installed (import-linter brings it to dev and CI
    machines) only for its console's exception formatter: ~45 ms of start-up, and a
    traceback that prints local variables, which the secrets processor never sees. JSON
    logs and our plain console lines need neither, so rich stays hidden while structlog
    loads (a plain traceback then) and is importable as usual afterwards.

    structlog also imports asyncio (~20 ms: its event loop machinery) for its async logging
    methods alone, and uuid (~5 ms, with platform) for its deprecated thread-local context,
    neither of which pipelinelib calls: structlog gets stand-ins that import the real
    module on first use (``_OnFirstUse``); everyone else imports them as usual."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    deferred = [name for name in _DEFERRED if name not in sys.modules]
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    for name in deferred:
        sys.modules[name] = _OnFirstUse(name)
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]
        for name in deferred:
            if isinstance(sys.modules.get(name), _OnFirstUse):
                del sys.modules[name]


_DEFERRED = ("asyncio", "uuid")  # imported by structlog for what pipelinelib does not use


class _OnFirstUse(types.ModuleType):
    """A module's stand-in: the first attribute read imports the module and reads it there
    (the module itself then sits in ``sys.modules``; the stand-in only in the importers that
    got it)."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:  # read while structlog still loads
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


class RedactSecrets:
    """structlog processor: masks secret values and secret-looking keys everywhere."""

    def __init__(self, secrets: Secrets):
        self.secrets = secrets

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return self.secrets.redact(event_dict)


def default_format(env: Mapping[str, str] | None = None) -> str:
    """``json`` under CI (``CI=true`` or a Jenkins/GoCD build), else ``console``."""
    seen: Mapping[str, str] = os.environ if env is None else env
    in_ci = (
        seen.get("CI", "").lower() in ("1", "true", "yes")
        or "BUILD_URL" in seen
        or "GO_SERVER_URL" in seen
    )
    return "json" if in_ci else "console"


def configure(
    log_format: str = "auto",
    level: str = "info",
    secrets: Secrets | None = None,
    stream: TextIO | None = None,
) -> Secrets:
    """Configure structlog once for this process and return the secrets it redacts."""
    import structlog

    secrets = secrets if secrets is not None else Secrets()
    fmt = default_format() if log_format == "auto" else log_format
    stream = stream or sys.stderr
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        RedactSecrets(secrets),
    ]
    if fmt == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        colors = stream.isatty() and "NO_COLOR" not in os.environ
        processors.append(structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=28))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    return secrets


def get_logger(name: str | None = None) -> Any:
    """The library's logger (structlog bound logger)."""
    import structlog

    return structlog.get_logger(name)
