"""The audit trail: one event per deployment, promotion, refusal, override and swap.

``record(ctx, action, target=..., result=..., reason=..., **details)`` builds an
``AuditEvent`` (who: CI user and provider, build URL; what: action, target, result,
reason; where: app, environment, revision; from -> to, digest and any other details),
redacts secrets, and writes it to every sink of the context (``ctx.audit_sinks``, which
the context builds once from these variables, read into ``Credentials.audit``):

==========================  ==========================================================
PIPELINE_AUDIT_FILE         append one JSON line per event to this file (locked append)
PIPELINE_AUDIT_URL          Elasticsearch/OpenSearch base URL; events go to ``_bulk``
PIPELINE_AUDIT_INDEX        the index (default ``pipeline-audit``); an index template
                            ``<index>-template`` for ``<index>*`` is PUT once per process
PIPELINE_AUDIT_USER/        basic auth for the URL sink, or
PIPELINE_AUDIT_PASSWORD
PIPELINE_AUDIT_API_KEY      ``Authorization: ApiKey <key>`` (all three are added to
                            ``ctx.secrets``)
PIPELINE_AUDIT_SPOOL        spool directory (default ``~/.local/state/pipelinelib/
                            audit-spool``)
==========================  ==========================================================

An event that must be written once per occurrence (a deployment's annotation, re-run after
a kill) passes ``event_id=`` derived from what it records: a sink that already holds that id
is not written again (the JSONL file is read, the bulk index is keyed by ``_id``, the spool
keeps one file per id), so a killed-and-re-run step completes its audit write exactly once.

A sink that fails (outage, 5xx, disk error) does not lose the event: it is written to the
spool directory (one file per event and sink) and delivered first on the next ``record``
or by ``pipeline audit flush``. The bulk sink indexes with ``_id`` = event id, so a retry
never duplicates an event. ``AuditEvent.warnings`` says what degraded; callers report it
as a warning and a summary line, the step itself still succeeds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from pipelinelib.secrets import Secrets, clean_url

if TYPE_CHECKING:
    from pipelinelib.adapters.protocols import AuditSink
    from pipelinelib.context import AuditSettings, Context

RESULTS = ("success", "failure", "refused", "overridden", "pending")
DEFAULT_INDEX = "pipeline-audit"
TOP_LEVEL_DETAILS = ("digest", "from", "to", "revision", "deployment_id", "tag", "state")
TIMEOUT_S = 5.0

log = structlog.get_logger("pipelinelib.audit")


def utc_now_ms() -> str:
    """Now as RFC 3339 UTC with milliseconds (``2026-11-23T00:40:00.123Z``)."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass
class AuditEvent:
    """One audit event; ``to_dict`` is what every sink stores (already redacted)."""

    action: str
    target: str
    result: str
    reason: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: str = field(default_factory=utc_now_ms)
    user: str = ""
    provider: str = ""
    build_url: str = ""
    job: str = ""
    app: str = ""
    environment: str = ""
    revision: str = ""
    digest: str = ""
    from_: str = ""
    to: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # Not stored: where the event went, and what degraded.
    delivered: list[str] = field(default_factory=list, compare=False)
    present: list[str] = field(default_factory=list, compare=False)
    spooled: list[str] = field(default_factory=list, compare=False)
    warnings: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@timestamp": self.time, "id": self.id, "action": self.action,
            "target": self.target, "result": self.result, "reason": self.reason,
            "user": self.user, "provider": self.provider, "build_url": self.build_url,
            "job": self.job, "app": self.app, "environment": self.environment,
            "revision": self.revision, "digest": self.digest, "from": self.from_, "to": self.to,
        }
        if self.details:
            doc["details"] = self.details
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> AuditEvent:
        keys = {"id", "action", "target", "result", "reason", "user", "provider", "build_url",
                "job", "app", "environment", "revision", "digest", "to"}
        kwargs = {k: doc[k] for k in keys if k in doc}
        return cls(time=doc.get("@timestamp", ""), from_=doc.get("from", ""),
                   details=dict(doc.get("details") or {}), **kwargs)

    @property
    def degraded(self) -> bool:
        return bool(self.spooled or self.warnings)

    def summary(self) -> str:
        """One human line: what was recorded where (and what was spooled)."""
        where = ", ".join(self.delivered) or ("" if self.present else "no sink")
        if self.present:
            where += ("; " if where else "") + f"already in {', '.join(self.present)}"
        line = f"audit {self.action} {self.result}: {where}"
        if self.spooled:
            line += f"; spooled for {', '.join(self.spooled)} (retried on the next run)"
        return line


class SinkError(Exception):
    """A sink could not store events. ``permanent``: retrying the same events cannot help."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class JsonlSink:
    """Append events as JSON lines; an exclusive lock keeps concurrent writers' lines whole."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.key = "file-" + uuid.uuid5(uuid.NAMESPACE_URL, str(self.path.resolve())).hex[:12]
        self.name = f"file {self.path}"

    def write(self, docs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(d, sort_keys=True, ensure_ascii=False) + "\n" for d in docs)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        except OSError as exc:
            raise SinkError(f"cannot append to {self.path}: {exc.strerror or exc}") from exc

    def has(self, event_id: str) -> bool:
        """True when the file already holds an event with this id (torn lines skipped)."""
        needle = f'"id": {json.dumps(event_id)}'
        try:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    if needle not in line:
                        continue
                    with contextlib.suppress(ValueError):
                        if json.loads(line).get("id") == event_id:
                            return True
        except OSError:
            return False
        return False


def index_template(index: str) -> dict[str, Any]:
    """The composable index template (``PUT _index_template/<index>-template``)."""
    keyword = {"type": "keyword"}
    props: dict[str, Any] = {k: keyword for k in (
        "id", "action", "target", "result", "user", "provider", "build_url", "job", "app",
        "environment", "revision", "digest", "from", "to")}
    props["@timestamp"] = {"type": "date"}
    props["reason"] = {"type": "text"}
    props["details"] = {"type": "object"}
    return {"index_patterns": [f"{index}*"], "priority": 100,
            "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                         "mappings": {"properties": props}}}


_TEMPLATES_DONE: set[tuple[str, str]] = set()


class BulkSink:
    """Elasticsearch/OpenSearch ``_bulk`` NDJSON (``index`` actions with ``_id`` = event id)."""

    def __init__(self, url: str, index: str = DEFAULT_INDEX, *, user: str = "",
                 password: str = "", api_key: str = "", timeout_s: float = TIMEOUT_S):
        self.url = url.rstrip("/")
        self.index = index
        ident = f"{clean_url(self.url)}|{index}"
        self.key = "bulk-" + uuid.uuid5(uuid.NAMESPACE_URL, ident).hex[:12]
        self.name = f"index {index} at {clean_url(self.url)}"
        from pipelinelib.adapters.search_index import SearchIndex

        self.server = SearchIndex(self.url, user=user, password=password, api_key=api_key,
                                  timeout_s=timeout_s)

    def _send(self, method: str, path: str, body: str | bytes, content_type: str) -> Any:
        from pipelinelib.adapters.search_index import IndexRefused
        from pipelinelib.errors import Unreachable

        try:
            return self.server.send(method, path, body, content_type)
        except Unreachable as exc:
            raise SinkError(f"{self.name} did not answer: {exc.message}") from exc
        except IndexRefused as exc:
            permanent = exc.status not in (401, 403, 404, 409)
            raise SinkError(f"{self.name}: {method} {path} answered HTTP {exc.status}: "
                            f"{exc.text}", permanent=permanent) from exc

    def ensure_template(self) -> None:
        """PUT the index template once per process (idempotent on the server too)."""
        if (self.url, self.index) in _TEMPLATES_DONE:
            return
        body = json.dumps(index_template(self.index))
        self._send("PUT", f"_index_template/{self.index}-template", body, "application/json")
        _TEMPLATES_DONE.add((self.url, self.index))

    def write(self, docs: list[dict[str, Any]]) -> None:
        self.ensure_template()
        lines = []
        for doc in docs:
            lines.append(json.dumps({"index": {"_index": self.index, "_id": doc["id"]}}))
            lines.append(json.dumps(doc, ensure_ascii=False))
        reply = self._send("POST", "_bulk", ("\n".join(lines) + "\n").encode(),
                           "application/x-ndjson")
        if isinstance(reply, dict) and not reply.get("errors") and (
                reply.get("error") or len(reply.get("items") or docs) < len(docs)):
            # ZincSearch: ``errors: false`` and every listed item "created", but a top-level
            # ``error`` names the document it refused, and the batch stopped there (the rest
            # is missing from ``items``). Nothing says which were kept: the caller re-sends
            # one by one (same ``_id``: no duplicates) and sets the refused one aside.
            raise SinkError(f"{self.name}: {len(docs)} events not all indexed: "
                            f"{str(reply.get('error') or 'items missing')[:200]}",
                            permanent=True)
        if isinstance(reply, dict) and reply.get("errors"):
            items: list[dict[str, Any]] = reply.get("items", [])
            failed = [item for item in items if _item_status(item, 200) >= 300]
            statuses = [_item_status(i, 0) for i in failed]
            permanent = bool(statuses) and all(400 <= s < 500 and s != 429 for s in statuses)
            raise SinkError(f"{self.name}: {len(failed)} of {len(docs)} events not indexed "
                            f"(statuses {sorted(set(statuses))})", permanent=permanent)


def _item_status(item: dict[str, Any], default: int) -> int:
    """The HTTP status of one ``_bulk`` reply item (``{"index": {"status": N}}``)."""
    actions = list(item.values())
    action: dict[str, Any] = (actions[0] if actions else None) or {}
    return int(action.get("status", default))


def sinks_for(settings: AuditSettings) -> list[AuditSink]:
    """The sinks ``settings`` configure (the context's ``credentials.audit``; see the module
    docstring); their passwords are already the context's secrets."""
    sinks: list[AuditSink] = []
    if settings.file:
        sinks.append(JsonlSink(settings.file))
    if settings.url:
        sinks.append(BulkSink(settings.url, settings.index or DEFAULT_INDEX,
                              user=settings.user, password=settings.password,
                              api_key=settings.api_key))
    return sinks


class Spool:
    """Events a sink could not take yet: ``<dir>/<sink key>/<time>-<id>.json``."""

    def __init__(self, root: Path):
        self.root = root

    def put(self, sink: AuditSink, doc: dict[str, Any]) -> Path:
        folder = self.root / sink.key
        folder.mkdir(parents=True, exist_ok=True)
        already = sorted(folder.glob(f"*-{doc['id']}.json"))
        if already:  # the same event spooled by an earlier (killed) run: keep one copy
            return already[0]
        final = folder / f"{doc['@timestamp'].replace(':', '')}-{doc['id']}.json"
        tmp = final.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, final)
        return final

    def pending(self, sink: AuditSink) -> list[Path]:
        folder = self.root / sink.key
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def count(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0

    @contextlib.contextmanager
    def locked(self, sink: AuditSink) -> Iterator[bool]:
        """Hold the sink's flush lock if no other process does (yields False otherwise)."""
        folder = self.root / sink.key
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def reject(self, path: Path) -> None:
        """Move an event the sink refuses for good aside (``rejected/``), to look at by hand."""
        target = self.root / "rejected" / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        os.replace(path, target / path.name)


@dataclass
class FlushReport:
    """What ``flush`` delivered, left spooled and rejected, per sink name."""

    delivered: dict[str, int] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def flush(sinks: list[AuditSink], spool: Spool, batch: int = 500) -> FlushReport:
    """Deliver spooled events, oldest first, to their sinks; stops a sink at its first error."""
    report = FlushReport()
    for sink in sinks:
        with spool.locked(sink) as mine:
            if not mine:
                continue  # another process is flushing this sink right now
            paths = spool.pending(sink)
            done = 0
            for start in range(0, len(paths), batch):
                chunk = paths[start:start + batch]
                docs = []
                for path in chunk:
                    try:
                        docs.append(json.loads(path.read_text(encoding="utf-8")))
                    except (OSError, ValueError):
                        spool.reject(path)
                        report.rejected[sink.name] = report.rejected.get(sink.name, 0) + 1
                try:
                    sink.write(docs)
                except SinkError as exc:
                    report.errors.append(str(exc))
                    if not exc.permanent:
                        break  # still down: keep everything for the next run
                    sent, ok = _one_by_one(sink, spool, chunk, report)
                    done += sent
                    if not ok:
                        break
                    continue
                for path in chunk:
                    path.unlink(missing_ok=True)
                done += len(docs)
            if done:
                report.delivered[sink.name] = done
            left = len(spool.pending(sink))
            if left:
                report.remaining[sink.name] = left
    return report


def _one_by_one(sink: AuditSink, spool: Spool, paths: list[Path],
                report: FlushReport) -> tuple[int, bool]:
    """After a batch was refused: send each event alone, move the refused ones aside.
    Returns (delivered, True unless the sink went down meanwhile)."""
    sent = 0
    for path in paths:
        if not path.exists():
            continue
        try:
            sink.write([json.loads(path.read_text(encoding="utf-8"))])
        except (OSError, ValueError):
            spool.reject(path)
        except SinkError as exc:
            if not exc.permanent:
                return sent, False
            spool.reject(path)
            report.rejected[sink.name] = report.rejected.get(sink.name, 0) + 1
            continue
        path.unlink(missing_ok=True)
        sent += 1
    return sent, True


def build_event(ctx: Context, action: str, *, target: str, result: str, reason: str = "",
                event_id: str = "", **details: Any) -> AuditEvent:
    """The event for ``record`` (redacted; nothing written)."""
    secrets: Secrets = ctx.secrets
    top = {k: details.pop(k) for k in list(details) if k in TOP_LEVEL_DETAILS}
    if "from_" in details:
        top["from"] = details.pop("from_")
    ci = ctx.ci
    given_id: dict[str, Any] = {"id": event_id} if event_id else {}
    event = AuditEvent(
        action=action, target=target, result=result, reason=reason,
        user=ci.user, provider=ci.provider, build_url=clean_url(ci.build_url), job=ci.job,
        app=ctx.app, environment=ctx.environment,
        revision=str(top.get("revision") or ctx.revision or ci.revision),
        digest=str(top.get("digest") or ""), from_=str(top.get("from") or ""),
        to=str(top.get("to") or ""),
        **given_id,
        details={**{k: v for k, v in top.items()
                    if k not in ("digest", "from", "to", "revision")},
                 **details},
    )
    if event_id:
        event.id = event_id
    redacted = secrets.redact(event.to_dict())
    return AuditEvent.from_dict(redacted)


def record(ctx: Context, action: str, *, target: str, result: str, reason: str = "",
           event_id: str = "", **details: Any) -> AuditEvent:
    """Record one audit event in every configured sink; see the module docstring.

    With ``event_id`` a sink that already holds that event (or has it spooled) is left
    alone and listed in ``event.present``: a re-run after a kill writes it once.

    Never raises for a sink outage: the event is spooled and ``event.warnings`` says so.
    Earlier spooled events are delivered first, so sinks keep the order events happened.

    The sinks and the spool are the context's (``ctx.audit_sinks``, ``ctx.audit_spool``,
    built once per run from its credentials); a test builds a context for its own
    environment (``Context.from_env``).
    """
    sinks = ctx.audit_sinks
    event = build_event(ctx, action, target=target, result=result, reason=reason,
                        event_id=event_id, **details)
    doc = event.to_dict()
    spool = Spool(ctx.audit_spool)
    log.info("audit event", action=action, target=target, result=result, reason=reason,
             user=event.user, event_id=event.id)
    if sinks and spool.count():
        report = flush(sinks, spool)
        for name, count in report.delivered.items():
            event.warnings.append(f"delivered {count} spooled event(s) to {name}")
    for sink in sinks:
        if event_id and _already_has(sink, spool, event_id):
            event.present.append(sink.name)
            continue
        if spool.pending(sink):  # keep the order: this event waits behind older ones
            _spool(event, spool, sink, doc, "earlier events are still spooled")
            continue
        try:
            sink.write([doc])
        except SinkError as exc:
            _spool(event, spool, sink, doc, str(exc))
        else:
            event.delivered.append(sink.name)
    return event


def _already_has(sink: AuditSink, spool: Spool, event_id: str) -> bool:
    """The sink holds the event, or it waits in the sink's spool (the bulk sink indexes by
    ``_id``: writing it again replaces, never duplicates)."""
    if any(path.name.endswith(f"-{event_id}.json") for path in spool.pending(sink)):
        return True
    has = getattr(sink, "has", None)
    return bool(has and has(event_id))


def _spool(event: AuditEvent, spool: Spool, sink: AuditSink, doc: dict[str, Any], why: str) -> None:
    try:
        spool.put(sink, doc)
    except OSError as exc:
        event.warnings.append(f"LOST audit event {event.id} for {sink.name}: {why}; "
                              f"spool failed: {exc}")
        log.error("audit event lost", sink=sink.name, error=why, spool_error=str(exc))
        return
    event.spooled.append(sink.name)
    event.warnings.append(f"{sink.name} unavailable ({why}); event spooled")
    log.warning("audit sink unavailable, event spooled", sink=sink.name, error=why,
                spool=str(spool.root))


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event in a JSONL audit file (torn or foreign lines are skipped)."""
    events = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if isinstance(doc, dict) and "action" in doc:
                        events.append(doc)
    except FileNotFoundError:
        return []
    return events
