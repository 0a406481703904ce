"""Audit every promotion, approval, refusal and swap through the records package."""

from __future__ import annotations

from typing import Any


def audit(ctx: Any, action: str, *, target: str, result: str, reason: str = "",
          **details: Any) -> None:
    """``pipelinelib.records.audit.record`` when present; a structured log line always."""
    details = ctx.secrets.redact(details)
    ctx.log.info("audit", action=action, target=target, result=result, reason=reason,
                 user=ctx.ci.user, **details)
    try:
        from pipelinelib.records.audit import record
    except ImportError:  # the audit sink is not part of this installation yet
        return
    record(ctx, action, target=target, result=result, reason=reason, **details)
