"""One queue runner at a time: a lease held as a ref on the app repository's origin.

``refs/pipelinelib/queue-lock`` points at a commit whose message names the holder and
the time the lease ends. Taking it is a compare-and-swap push ("must not exist yet", or
"still the expired lease I read"); renewing and releasing push with a lease on the
holder's own commit, so a runner whose lease was taken over notices before its next
write instead of writing beside the new holder. A runner killed while holding it blocks
the next one only until the lease ends (``ttl_s``, renewed between refspecs).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pipelinelib.adapters.git_repo import PushRejected
from pipelinelib.errors import StepFailed
from pipelinelib.queue.workspace import Workspace
from pipelinelib.records import format as fmt

LOCK_REF = "refs/pipelinelib/queue-lock"
LOCAL_REF = "refs/pipelinelib/queue-lock-local"


@dataclass
class QueueLock:
    """The lease; ``acquire`` waits up to ``wait_s`` for a live holder to finish."""

    ws: Workspace
    holder: str
    ttl_s: float = 600.0
    sha: str | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    renewed: float = 0.0

    def _lease_commit(self) -> str:
        until = time.time() + self.ttl_s
        message = fmt.dump({"holder": self.holder, "token": self.token, "until": until,
                            "taken": fmt.utc_now()})
        tree = self.ws.out("hash-object", "-w", "-t", "tree", "/dev/null")  # the empty tree
        return self.ws.out("commit-tree", tree, "-m", f"pipelinelib queue lock\n\n{message}")

    def _read(self) -> tuple[str | None, dict[str, object]]:
        remote = self.ws.repo.ls_remote(LOCK_REF).get(LOCK_REF)
        if remote is None:
            return None, {}
        self.ws.repo.fetch([f"+{LOCK_REF}:{LOCAL_REF}"], prune=False)
        body = self.ws.out("log", "-1", "--format=%b", LOCAL_REF)
        return remote, fmt.load(body)

    def acquire(self, wait_s: float = 0.0, log: Any = None) -> None:
        deadline = time.monotonic() + wait_s
        next_progress = time.monotonic() + 5
        while True:
            current, fields = self._read()
            expired = current is not None and float(str(fields.get("until") or 0)) < time.time()
            if current is None or expired:
                mine = self._lease_commit()
                self.ws.git("update-ref", LOCAL_REF, mine)
                try:
                    self.ws.push([(LOCAL_REF, LOCK_REF, current)])
                except PushRejected:
                    continue  # another runner took it first: re-read
                self.sha, self.renewed = mine, time.monotonic()
                if expired and log is not None:
                    log.warning("took over an expired queue lock",
                                previous_holder=fields.get("holder"))
                return
            if time.monotonic() >= deadline:
                until = time.gmtime(float(str(fields.get("until") or 0)))
                raise StepFailed("another queue runner holds the queue lock",
                                 cause=f"held by {fields.get('holder')} until "
                                       f"{time.strftime('%H:%M:%SZ', until)}",
                                 hint="one runner at a time: this run changed nothing; the "
                                      "next scheduled run continues the queue")
            if log is not None and time.monotonic() >= next_progress:
                log.info("waiting for the queue lock", holder=fields.get("holder"))
                next_progress = time.monotonic() + 5
            time.sleep(0.5)

    def renew(self, force: bool = False) -> None:
        """Extend the lease once a third of it has passed (every call with ``force``);
        StepFailed when another runner took it over meanwhile."""
        if self.sha is None:
            raise StepFailed("the queue lock is not held")
        if not force and time.monotonic() - self.renewed < self.ttl_s / 3:
            return
        mine = self._lease_commit()
        self.ws.git("update-ref", LOCAL_REF, mine)
        try:
            self.ws.push([(LOCAL_REF, LOCK_REF, self.sha)])
        except PushRejected as exc:
            self.sha = None
            raise StepFailed("the queue lock was taken over by another runner",
                             cause="this runner's lease expired",
                             hint="raise --lock-ttl above the longest refspec's pipeline") from exc
        self.sha, self.renewed = mine, time.monotonic()

    def release(self) -> None:
        if self.sha is None:
            return
        try:
            self.ws.git("push", "--quiet", f"--force-with-lease={LOCK_REF}:{self.sha}",
                        "origin", f":{LOCK_REF}")
        finally:
            self.sha = None
