"""The result every step returns: what changed, what it produced, how long it took."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Status(str, enum.Enum):
    """The outcome of one step run."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass
class StepResult:
    """What one step did.

    Attributes:
        step: the step's name (``build``, ``push`` ...).
        status: changed, unchanged or failed.
        summary: one human line, e.g. ``pushed 2 tags``.
        actions: each write done (or, in a dry run, that would be done).
        outputs: values later steps use, e.g. ``{"digest": "sha256:..."}``.
        dry_run: True when nothing was written.
        duration_s: wall time of the step.
        error: the failure's one-line message when status is failed.
        evidence: lines explaining a failure (log tail, events).
    """

    step: str
    status: Status
    summary: str = ""
    actions: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    duration_s: float = 0.0
    error: str | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.status is Status.CHANGED

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    @classmethod
    def of(
        cls,
        step: str,
        actions: list[str],
        *,
        dry_run: bool = False,
        summary: str = "",
        **outputs: Any,
    ) -> StepResult:
        """A result that is ``changed`` when there were actions, else ``unchanged``."""
        status = Status.CHANGED if actions else Status.UNCHANGED
        if not summary:
            summary = "; ".join(actions) if actions else "nothing to do"
        if dry_run and actions:
            summary = f"would: {summary}"
        return cls(step, status, summary, list(actions), dict(outputs), dry_run)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data
