"""Kill a command right after its k-th write, as the systems it writes to saw it.

A ``KillHarness`` runs a command once and records its N writes from the systems' own
records (``WriteSource``s): the apiserver's audit log (``KubeAuditWrites``), a git origin's
ref updates (``GitRefWrites``, a ``reference-transaction`` hook in the bare origin), a
file the command appends to (``AppendWrites``: the audit JSONL), a registry's access log
(``RegistryWrites``), a PostgreSQL log (``PostgresWrites``) and the requests a CI server's
loopback stand-in answered (``RecordedWrites``: the CI write-back). Then, for k = 1..N, it starts
the command again in a fresh world and SIGKILLs it as soon as the k-th write shows up, not
after a sleep. ``Trial.landed`` is the number of writes the killed run really made, read
back from the same sources after it died, so a test can assert the kill landed where it was
aimed (and the harness retries a trial whose kill came late).

Detection has to beat the command's next write: put the command's connection through a
Toxiproxy ``latency`` toxic (the server records the write before it answers, the answer then
waits in the proxy); for git, let the hook hold the push for a moment after the ref is
committed (``GitRefWrites(hold_s=...)``); for a file the command appends to and fsyncs,
hold each ``fsync`` for a moment after it returned (``AppendWrites(hold_s=...)``: the
command runs under ``strace --inject=fsync:delay_exit``). Without a hold, a last write that
is followed only by the command's exit can finish before a loaded machine schedules the
poller. The kill goes to the command's whole process group, as a CI server's abort does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Write:
    """One write as the system recorded it."""

    system: str
    what: str
    at: float = field(default=0.0, compare=False)


class WriteSource(Protocol):
    """Where writes are read from: ``mark()`` forgets the past, ``poll()`` returns new ones."""

    system: str

    def mark(self) -> None: ...

    def poll(self) -> list[Write]: ...


class _Tail:
    """New complete lines of a growing (and possibly rotated) file."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.offset = 0
        self.partial = b""

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.partial = b""

    def lines(self) -> list[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:  # rotated
            self.offset, self.partial = 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete if line.strip()]


class KubeAuditWrites:
    """Writes in the apiserver's JSON audit log: a write verb answered < 400, not a dry run,
    in one of ``namespaces``, by ``user`` (when given). ``skip_renewals``: leave out the
    deploy lock's renewals (``update`` of a Lease) — heartbeats whose number depends on how
    long the step runs, so write k of one run would be another write in the next."""

    system = "kubernetes"

    def __init__(self, audit_log: str | os.PathLike[str], namespaces: Sequence[str],
                 user: str | None = None, skip_renewals: bool = False):
        self.tail = _Tail(audit_log)
        self.namespaces = set(namespaces)
        self.user = user
        self.skip_renewals = skip_renewals

    def mark(self) -> None:
        self.tail.mark()

    def poll(self) -> list[Write]:
        writes = []
        for line in self.tail.lines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ref = event.get("objectRef") or {}
            if (event.get("stage") != "ResponseComplete" or event.get("verb") not in WRITE_VERBS
                    or ref.get("namespace") not in self.namespaces
                    or "dryRun=" in event.get("requestURI", "")
                    or (event.get("responseStatus") or {}).get("code", 500) >= 400
                    or (self.user and (event.get("user") or {}).get("username") != self.user)
                    or (self.skip_renewals and event["verb"] == "update"
                        and ref.get("resource") == "leases")):
                continue
            what = f"{event['verb']} {ref.get('resource')}/{ref.get('name', '')}"
            writes.append(Write(self.system, what, time.monotonic()))
        return writes


HOOK = """#!/bin/sh
# pipelinelib kill harness: log every committed ref update, then hold the push briefly
# so the pushing process can be killed before it learns the push succeeded.
[ "$1" = committed ] || exit 0
while read -r old new ref; do echo "$ref $new" >> "{log}"; done
sleep {hold}
"""


class GitRefWrites:
    """Ref updates in a bare origin, from a ``reference-transaction`` hook it installs."""

    system = "git"

    def __init__(self, origin: str | os.PathLike[str], hold_s: float = 0.3):
        self.origin = Path(origin)
        self.log = self.origin / "pipelinelib-ref-writes.log"
        hook = self.origin / "hooks" / "reference-transaction"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(HOOK.replace("{log}", str(self.log)).replace("{hold}", f"{hold_s}"))
        hook.chmod(0o755)
        self.tail = _Tail(self.log)

    def mark(self) -> None:
        self.tail.mark()

    def poll(self) -> list[Write]:
        # HEAD follows the branch it names in the same transaction: not a write of its own
        return [Write(self.system, line.split()[0], time.monotonic())
                for line in self.tail.lines() if line.split()[0] != "HEAD"]


class AppendWrites:
    """Each new line of a file is one write (the JSONL audit sink, which fsyncs each
    append). ``hold_s``: how long each ``fsync`` is held after it returned (see the module
    doc)."""

    def __init__(self, path: str | os.PathLike[str], system: str = "audit",
                 hold_s: float = 0.3):
        self.system = system
        self.tail = _Tail(path)
        self.hold_fsync_s = hold_s

    def mark(self) -> None:
        self.tail.mark()

    def poll(self) -> list[Write]:
        out = []
        for line in self.tail.lines():
            try:
                what = str(json.loads(line).get("action", "line"))
            except ValueError:
                what = "line"
            out.append(Write(self.system, what, time.monotonic()))
        return out


class RecordedWrites:
    """Writes a loopback stand-in for a server that cannot run here recorded (the Jenkins
    build API, the GoCD server API of tests/): ``read()`` returns every write it answered
    so far, in order, as ``METHOD path`` strings."""

    def __init__(self, system: str, read: Callable[[], Sequence[str]]):
        self.system, self.read = system, read
        self.seen = 0

    def mark(self) -> None:
        self.seen = len(self.read())

    def poll(self) -> list[Write]:
        items = list(self.read())
        new, self.seen = items[self.seen:], len(items)
        return [Write(self.system, what, time.monotonic()) for what in new]


_REGISTRY_REQUEST = re.compile(r'"(PUT|POST|PATCH|DELETE) (/v2/\S+) HTTP/[\d.]+" (\d{3})')


class RegistryWrites:
    """Writes in a distribution registry's access log (``log.accesslog`` on): PUT/POST/PATCH/
    DELETE answered < 400. A blob upload is POST + PATCH(es) + PUT; the manifest is a PUT."""

    system = "registry"

    def __init__(self, log: str | os.PathLike[str]):
        self.tail = _Tail(log)

    def mark(self) -> None:
        self.tail.mark()

    def poll(self) -> list[Write]:
        out = []
        for line in self.tail.lines():
            match = _REGISTRY_REQUEST.search(line)
            if match and int(match.group(3)) < 400:
                path = re.sub(r"/uploads/[^?\s]+", "/uploads/…", match.group(2).split("?")[0])
                out.append(Write(self.system, f"{match.group(1)} {path}", time.monotonic()))
        return out


class PostgresWrites:
    """Committed transactions in a PostgreSQL log written with ``log_min_duration_statement=0``
    and ``log_line_prefix='%a|%d|'``: each COMMIT (and each autocommit write statement) of
    ``application`` in ``database``."""

    system = "postgres"
    WRITE = re.compile(r"statement: (commit|insert|update|delete|create|alter|drop)\b", re.I)

    def __init__(self, log: str | os.PathLike[str], database: str, application: str = ""):
        self.tail = _Tail(log)
        self.database, self.application = database, application

    def mark(self) -> None:
        self.tail.mark()

    def poll(self) -> list[Write]:
        out = []
        for line in self.tail.lines():
            app, _, rest = line.partition("|")
            db, _, rest = rest.partition("|")
            if db != self.database or (self.application and not app.startswith(self.application)):
                continue
            match = self.WRITE.search(rest)
            if match and "duration:" in rest:
                out.append(Write(self.system, match.group(1).lower(), time.monotonic()))
        return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command and every process it started (its session's group)."""
    with contextlib.suppress(ProcessLookupError):  # the group exited before the kill
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Trial:
    """One killed run: aimed after write ``k``, ``landed`` writes really made before death."""

    k: int
    landed: int
    writes: list[Write]
    killed: bool
    seconds: float
    stderr_tail: str = ""


class KillHarness:
    """Record a command's writes, then kill it right after each one (see the module doc)."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], sources: Sequence[WriteSource],
                 cwd: str | os.PathLike[str] | None = None, poll_s: float = 0.005,
                 timeout_s: float = 180.0, settle_s: float = 1.0):
        self.cmd, self.env, self.sources, self.cwd = list(cmd), env, list(sources), cwd
        self.poll_s, self.timeout_s, self.settle_s = poll_s, timeout_s, settle_s

    def _poll(self) -> list[Write]:
        return [w for source in self.sources for w in source.poll()]

    def _held(self) -> list[str]:
        """The command, run under strace when a source asks for its fsyncs to be held."""
        hold = max((getattr(source, "hold_fsync_s", 0.0) for source in self.sources),
                   default=0.0)
        if not hold:
            return self.cmd
        return ["strace", "-f", "--seccomp-bpf", "-qq", "-o", "/dev/null", "-e", "trace=fsync",
                "-e", f"inject=fsync:delay_exit={int(hold * 1_000_000)}", *self.cmd]

    def _settle(self, writes: list[Write]) -> list[Write]:
        """Read what the sources still report for a moment (buffered log lines)."""
        deadline = time.monotonic() + self.settle_s
        while time.monotonic() < deadline:
            writes.extend(self._poll())
            time.sleep(0.05)
        return sorted(writes, key=lambda w: w.at)

    def record(self) -> tuple[subprocess.CompletedProcess[str], list[Write]]:
        """Run the command to completion; its output and every write it made, in order."""
        for source in self.sources:
            source.mark()
        proc = subprocess.run(self.cmd, env=self.env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=self.timeout_s, check=False)
        return proc, self._settle(self._poll())

    def kill_after(self, k: int, when: Callable[[list[Write]], bool] | None = None) -> Trial:
        """Start the command and SIGKILL it as soon as its k-th write is recorded (or, with
        ``when``, as soon as ``when(writes so far)`` is true)."""
        for source in self.sources:
            source.mark()
        started = time.monotonic()
        import tempfile

        errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed below, after the kill)
        proc = subprocess.Popen(self._held(), env=self.env, cwd=self.cwd,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errors, start_new_session=True)
        writes: list[Write] = []
        killed = False
        try:
            while proc.poll() is None:
                writes.extend(self._poll())
                if (when(writes) if when else len(writes) >= k):
                    _kill_group(proc)
                    killed = True
                    break
                if time.monotonic() - started > self.timeout_s:
                    _kill_group(proc)
                    break
                time.sleep(self.poll_s)
        finally:
            proc.wait(30)
        writes = self._settle(writes)
        errors.seek(0)
        tail = errors.read()[-3000:].decode("utf-8", "replace")
        errors.close()
        return Trial(k, len(writes), writes, killed, time.monotonic() - started, tail)

    def kill_at_every_write(self, n: int, fresh_world: Callable[[int], Any],
                            check: Callable[[int, Trial], Any], attempts: int = 3,
                            points: Sequence[int] | None = None) -> list[Trial]:
        """For k = 1..n (or the given ``points``): ``fresh_world(k)``, kill after write k
        (retried when the kill landed late), then ``check(k, trial)`` (re-run and
        convergence). Returns the trials."""
        trials = []
        for k in points or range(1, n + 1):
            for attempt in range(attempts):
                fresh_world(k)
                trial = self.kill_after(k)
                if (trial.killed and trial.landed == k) or attempt == attempts - 1:
                    break
            check(k, trial)
            trials.append(trial)
        return trials
