"""The error tree, and the exit code each error maps to.

::

    PipelineError                 base; message, cause, hint        exit 1
    ├── BadInput                  input is wrong; nothing written   exit 2
    │   └── Refused               not allowed (privileges, policy)  exit 2
    ├── StepFailed                a step could not reach its goal   exit 1
    │   ├── ImmutableTagConflict  tag exists with another digest
    │   └── GateFailed            a release gate said no
    └── Unreachable               a required system did not answer  exit 3

    TransientError                internal: retried, then Unreachable

Every error carries a one-line ``message`` (what happened), an optional ``cause``
(the underlying error, shortened) and ``hint`` (what to do next). Outside errors
(docker, kubernetes, requests, git) are translated at the adapter boundary with
``raise ... from``; steps never see a third-party exception type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_CHANGES_PENDING = 4
EXIT_AWAITING_PROMOTION = 5

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}  success (every step changed or unchanged)
  {EXIT_FAILED}  a step failed (the message says which and why)
  {EXIT_BAD_INPUT}  bad input or usage, or refused; nothing was written
  {EXIT_UNREACHABLE}  a required system (engine, registry, cluster, database) is unreachable
  {EXIT_CHANGES_PENDING}  plan only: changes are pending
  {EXIT_AWAITING_PROMOTION}  blue/green: the new colour is ready and awaits promotion
"""


class PipelineError(Exception):
    """Base of every error pipelinelib raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, cause: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.hint = hint

    def one_line(self) -> str:
        """The message, cause and hint as a single human line."""
        parts = [self.message]
        if self.cause:
            parts.append(f"cause: {self.cause}")
        if self.hint:
            parts.append(f"next: {self.hint}")
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.one_line()


class BadInput(PipelineError):
    """An input (file, field, parameter, reference) is invalid.

    Raised before the first write, so nothing has changed anywhere.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        line: int | None = None,
        expected: str | None = None,
        hint: str | None = None,
    ):
        where = source or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        if field:
            where = f"{where} {field}" if where else field
        text = f"{where}: {message}" if where else message
        if expected:
            text = f"{text} (expected {expected})"
        super().__init__(text, hint=hint)
        self.source, self.field, self.line, self.expected = source, field, line, expected

    @classmethod
    def not_utf8(cls, exc: UnicodeDecodeError, *, source: str, expected: str) -> Self:
        """Input that is not UTF-8 text, naming the first byte that is not."""
        return cls(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                   f"{exc.start}); binary or another encoding", source=source,
                   expected=expected)


class Refused(BadInput):
    """The action is not allowed for this user or by this policy."""


class StepFailed(PipelineError):
    """A step ran and could not reach its goal.

    ``evidence`` holds lines that explain the failure (log tail, events).
    """

    def __init__(
        self,
        message: str,
        *,
        cause: str | None = None,
        hint: str | None = None,
        evidence: list[str] | None = None,
    ):
        super().__init__(message, cause=cause, hint=hint)
        self.evidence = list(evidence or [])


class ImmutableTagConflict(StepFailed):
    """The registry already has this tag pointing at a different digest."""


class GateFailed(StepFailed):
    """A release gate refused the change."""


class Unreachable(PipelineError):
    """A required system did not answer (after retries for transient faults)."""

    exit_code = EXIT_UNREACHABLE


class TransientError(Exception):
    """A fault worth retrying (connection reset, 5xx, 429, conflict).

    Adapters raise it inside retried calls; when retries run out it becomes
    ``Unreachable`` (or the adapter's own ``StepFailed``).
    """

    def __init__(self, message: str, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds the server asked for (Retry-After), if any
