"""The ✓/✗ checklist the gates print (`pipeline gate`, `scan`, `perf`): one renderer for all.

A check is a line ``SYMBOL TITLE`` (✓ passed, ✗ failed, - not configured, ✓! overridden)
followed by its evidence, indented four spaces. The same lines go to stdout, into the
evidence of a failure (JUnit, summary.md) and, for a passed gate, into summary.md.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

PASSED, FAILED, SKIPPED, OVERRIDDEN = "✓", "✗", "-", "✓!"
INDENT = "    "


def symbol(ok: bool, *, skipped: bool = False, overridden: bool = False) -> str:
    """The check's mark: ✓, ✗, - (not configured) or ✓! (failed but overridden)."""
    if skipped:
        return SKIPPED
    if ok:
        return PASSED
    return OVERRIDDEN if overridden else FAILED


def item(mark: bool | str, title: str, evidence: Iterable[str] = ()) -> list[str]:
    """One check's lines: ``✓ title`` then each evidence line indented.

    ``mark`` is ok (True/False) or a symbol from :func:`symbol`.
    """
    sign = symbol(mark) if isinstance(mark, bool) else mark
    return [f"{sign} {title}", *(f"{INDENT}{line}" for line in evidence)]


def first_failure(lines: Iterable[str]) -> str:
    """The first failed check or evidence line (without its ✗), for a one-line reason."""
    for line in lines:
        text = line.strip()
        if text.startswith(FAILED + " "):
            return text[2:]
    return ""


def show(ctx: Any, heading: str, lines: list[str]) -> None:
    """Print the checklist under ``heading`` on stdout, secrets redacted."""
    if not lines:
        return
    print(ctx.secrets.redact_text("\n".join([heading, *lines])))
    sys.stdout.flush()
