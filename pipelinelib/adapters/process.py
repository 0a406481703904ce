"""External programs (kustomize, git plumbing, a queue's stage commands): argument lists only.

The one place outside the tool-specific adapters that starts a process. Never a shell
string. A program that cannot start raises ``CannotRun``; one that outlives ``timeout``
raises ``TimedOut`` (killed first); a non-zero exit is the caller's to judge, with the
captured output, so no ``subprocess`` type leaves this module.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload


class CannotRun(Exception):
    """The program could not be started (not found, not executable)."""


class TimedOut(Exception):
    """The program ran longer than its timeout and was killed."""

    def __init__(self, argv: Sequence[str], timeout: float):
        super().__init__(f"{argv[0]} did not finish within {timeout:.0f}s")
        self.timeout = timeout


@dataclass(frozen=True)
class Finished:
    """A finished program: exit code and captured output (``str`` or ``bytes``)."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class FinishedBytes:
    """A finished program whose output was captured as bytes."""

    returncode: int
    stdout: bytes
    stderr: bytes


@overload
def run(argv: Sequence[str], *, cwd: str | Path | None = ..., env: Mapping[str, str] | None = ...,
        timeout: float | None = ..., text: Literal[True] = ...) -> Finished: ...


@overload
def run(argv: Sequence[str], *, cwd: str | Path | None = ..., env: Mapping[str, str] | None = ...,
        timeout: float | None = ..., text: Literal[False]) -> FinishedBytes: ...


def run(argv: Sequence[str], *, cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None, timeout: float | None = None,
        text: bool = True) -> Finished | FinishedBytes:
    """Run ``argv`` and capture its output."""
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=None if env is None else dict(env),
                              capture_output=True, text=text, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TimedOut(argv, timeout or 0) from exc
    except OSError as exc:
        raise CannotRun(f"cannot run {argv[0]}: {exc}") from exc
    if text:
        return Finished(proc.returncode, proc.stdout or "", proc.stderr or "")
    return FinishedBytes(proc.returncode, proc.stdout or b"", proc.stderr or b"")
