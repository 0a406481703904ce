"""Audit trail: JSONL and ``_bulk`` sinks, redaction, the spool across an outage."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipelinelib.records import audit
from pipelinelib.records.audit import read_jsonl, record
from tests.helpers.audit_sink import (
    AUDIT_PLANTED,
    ZINC_PASSWORD,
    ZINC_USER,
    Zinc,
    audit_ctx,
    zinc_search,
)
from tests.helpers.fakes import JSONHandler
from tests.helpers.processes import run_at_once
from tests.helpers.tools import tool_exports

DIGEST = "sha256:" + "ab" * 32
PLANTED = AUDIT_PLANTED


class BulkPeer:
    """A small real HTTP server that speaks the two Elasticsearch calls the sink uses:
    ``PUT /_index_template/<name>`` and ``POST /_bulk`` (NDJSON), indexing by ``_id``."""

    def __init__(self) -> None:
        self.templates: dict[str, Any] = {}
        self.docs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.fail_status: int | None = None
        peer = self

        class Handler(JSONHandler):
            _reply = JSONHandler.send_json

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def do_PUT(self) -> None:
                body = self._body()
                peer.requests.append(("PUT", self.path, dict(self.headers)))
                if peer.fail_status:
                    return self._reply(peer.fail_status, {"error": "down"})
                name = self.path.rsplit("/", 1)[-1]
                peer.templates[name] = json.loads(body)
                self._reply(200, {"acknowledged": True})

            def do_POST(self) -> None:
                body = self._body()
                peer.requests.append(("POST", self.path, dict(self.headers)))
                if peer.fail_status:
                    return self._reply(peer.fail_status, {"error": "down"})
                lines = body.decode().splitlines()
                items = []
                for action, doc in zip(lines[::2], lines[1::2], strict=True):
                    meta, source = json.loads(action)["index"], json.loads(doc)
                    if source["target"] == "poison":  # a mapping error: refused for good
                        items.append({"index": {"_id": meta["_id"], "status": 400}})
                        continue
                    peer.docs[meta["_id"]] = {"_index": meta["_index"], **source}
                    items.append({"index": {"_id": meta["_id"], "status": 201}})
                errors = any(i["index"]["status"] >= 300 for i in items)
                self._reply(200, {"errors": errors, "items": items})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer() -> Iterator[BulkPeer]:
    server = BulkPeer()
    audit._TEMPLATES_DONE.clear()
    yield server
    server.close()


def test_event_records_who_what_where_from_to_and_redacts_secrets(tmp_path: Path) -> None:
    env = {"PIPELINE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}
    event = record(audit_ctx(env), "promotion", target="hello", result="success",
                   reason=f"approved, token {PLANTED}", digest=DIGEST, from_="staging",
                   to="live", api_token="raw-token-value", note=PLANTED)
    [doc] = read_jsonl(tmp_path / "audit.jsonl")
    assert doc["id"] == event.id
    assert (doc["action"], doc["target"], doc["result"]) == ("promotion", "hello", "success")
    assert (doc["user"], doc["provider"], doc["job"]) == ("release-rita", "jenkins", "deploy")
    assert doc["build_url"] == "https://ci.example.org/job/deploy/42/"
    assert (doc["app"], doc["environment"]) == ("hello", "live")
    assert (doc["from"], doc["to"], doc["digest"]) == ("staging", "live", DIGEST)
    assert doc["details"] == {"api_token": "***", "note": "***"}
    assert doc["reason"] == "approved, token ***"
    raw = (tmp_path / "audit.jsonl").read_text()
    for secret in (PLANTED, "raw-token-value", "tok3n-xyz"):
        assert secret not in raw
    assert event.delivered == [f"file {tmp_path / 'audit.jsonl'}"]
    assert not event.degraded


def test_bulk_sink_puts_the_index_template_then_indexes_ndjson(
        tmp_path: Path, peer: BulkPeer) -> None:
    env = {"PIPELINE_AUDIT_URL": peer.url, "PIPELINE_AUDIT_INDEX": "deploys-audit",
           "PIPELINE_AUDIT_USER": "writer", "PIPELINE_AUDIT_PASSWORD": "pw-" + PLANTED,
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}
    ctx = audit_ctx(env)
    first = record(ctx, "deployment", target="hello", result="success", digest=DIGEST)
    second = record(ctx, "swap", target="hello", result="failure", reason="green not ready")
    template = peer.templates["deploys-audit-template"]
    assert template["index_patterns"] == ["deploys-audit*"]
    props = template["template"]["mappings"]["properties"]
    assert props["@timestamp"] == {"type": "date"} and props["action"] == {"type": "keyword"}
    assert set(peer.docs) == {first.id, second.id}
    assert peer.docs[first.id]["_index"] == "deploys-audit"
    assert peer.docs[second.id]["reason"] == "green not ready"
    bulk = [r for r in peer.requests if r[0] == "POST"]
    assert [r[1] for r in bulk] == ["/_bulk", "/_bulk"]
    assert bulk[0][2]["Content-Type"] == "application/x-ndjson"
    assert bulk[0][2]["Authorization"].startswith("Basic ")
    assert [r[1] for r in peer.requests].count("/_index_template/deploys-audit-template") == 1
    assert "pw-" + PLANTED in ctx.secrets


def test_outage_spools_events_and_the_next_run_delivers_them_in_order_once(
        tmp_path: Path, peer: BulkPeer) -> None:
    env = {"PIPELINE_AUDIT_URL": peer.url, "PIPELINE_AUDIT_FILE": str(tmp_path / "a.jsonl"),
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}
    ctx = audit_ctx(env)
    peer.fail_status = 503
    down = [record(ctx, "deployment", target="hello", result="success")
            for _ in range(2)]
    for event in down:
        assert event.spooled and event.degraded
        assert "spooled" in event.summary() and "unavailable" in event.warnings[0]
        assert event.delivered == [f"file {tmp_path / 'a.jsonl'}"]  # the file sink still works
    assert peer.docs == {}
    assert len(list((tmp_path / "spool").glob("*/*.json"))) == 2

    peer.fail_status = None
    audit._TEMPLATES_DONE.clear()
    back = record(ctx, "override", target="hello", result="overridden", reason="hot-fix")
    assert not back.spooled
    assert any("delivered 2 spooled" in w for w in back.warnings)
    assert set(peer.docs) == {down[0].id, down[1].id, back.id}
    assert list((tmp_path / "spool").glob("*/*.json")) == []
    times = [peer.docs[e.id]["@timestamp"] for e in (*down, back)]
    assert times == sorted(times)

    # a flush repeated after the spool is empty indexes nothing twice
    report = audit.flush(ctx.audit_sinks, audit.Spool(ctx.audit_spool))
    assert report.delivered == {} and len(peer.docs) == 3


def test_an_event_the_server_refuses_for_good_is_set_aside_and_the_rest_delivered(
        tmp_path: Path, peer: BulkPeer) -> None:
    env = {"PIPELINE_AUDIT_URL": peer.url, "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}
    ctx = audit_ctx(env)
    peer.fail_status = 503
    spooled = [record(ctx, "swap", target=t, result="success")
               for t in ("hello", "poison", "world")]
    peer.fail_status = None
    audit._TEMPLATES_DONE.clear()
    last = record(ctx, "swap", target="last", result="success")
    assert set(peer.docs) == {spooled[0].id, spooled[2].id, last.id}
    [aside] = list((tmp_path / "spool" / "rejected").glob("*/*.json"))
    assert spooled[1].id in aside.name
    assert list((tmp_path / "spool").glob("bulk-*/*.json")) == []


def test_unreachable_server_spools_instead_of_failing(tmp_path: Path) -> None:
    env = {"PIPELINE_AUDIT_URL": "http://127.0.0.1:9/", "PIPELINE_AUDIT_SPOOL": str(tmp_path)}
    event = record(audit_ctx(env), "refusal", target="hello", result="refused",
                   reason="no approval")
    assert event.spooled and not event.delivered
    [path] = list(tmp_path.glob("*/*.json"))
    assert json.loads(path.read_text())["id"] == event.id


def _write_many(path: str, worker: int, count: int) -> None:
    env = {"PIPELINE_AUDIT_FILE": path, "PIPELINE_AUDIT_SPOOL": path + ".spool"}
    ctx = audit_ctx(env)
    for i in range(count):
        record(ctx, "deployment", target=f"app-{worker}", result="success",
               reason="x" * 3000, seq=i)


def test_concurrent_writers_keep_every_jsonl_line_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.jsonl")
    run_at_once(_write_many, [(path, w, 40) for w in range(3)], timeout_s=60)
    lines = Path(path).read_text().splitlines()
    events = [json.loads(line) for line in lines]  # a torn line would not parse
    assert len(events) == 120
    for worker in range(3):
        seqs = [e["details"]["seq"] for e in events if e["target"] == f"app-{worker}"]
        assert seqs == list(range(40))


# -- a real Elasticsearch-compatible server: ZincSearch built from the Go module proxy ------

@pytest.fixture(scope="module")
def zinc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zinc]:
    server = Zinc(tool_exports("zincsearch")["PIPELINELIB_ZINCSEARCH"],
                  tmp_path_factory.mktemp("zinc"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zincsearch(zinc: Zinc) -> str:
    if not zinc.running():
        zinc.start()
    return zinc.url


def test_events_land_in_zincsearch_through_bulk_with_the_template(
        tmp_path: Path, zincsearch: str) -> None:
    import requests

    audit._TEMPLATES_DONE.clear()
    env = {"PIPELINE_AUDIT_URL": zincsearch, "PIPELINE_AUDIT_INDEX": "pipeline-audit-zt1",
           "PIPELINE_AUDIT_USER": ZINC_USER, "PIPELINE_AUDIT_PASSWORD": ZINC_PASSWORD,
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool")}
    ctx = audit_ctx(env)
    event = record(ctx, "swap", target="hello", result="success", reason=f"go {PLANTED}",
                   from_="blue", to="green", digest=DIGEST)
    assert event.delivered and not event.degraded
    [doc] = zinc_search(zincsearch, "pipeline-audit-zt1", 1, {"term": {"id": event.id}})
    assert (doc["action"], doc["from"], doc["to"], doc["digest"]) == ("swap", "blue", "green",
                                                                    DIGEST)
    assert doc["reason"] == "go ***" and doc["user"] == "release-rita"
    template = requests.get(f"{zincsearch}/_index_template/pipeline-audit-zt1-template",
                            auth=(ZINC_USER, ZINC_PASSWORD), timeout=5).json()
    mapped = template["template"]["mappings"]["properties"]
    assert mapped["action"]["type"] == "keyword" and mapped["@timestamp"]["type"] == "date"
    assert ZINC_PASSWORD in ctx.secrets


def test_events_spooled_during_an_outage_reach_zincsearch_once_it_answers(
        tmp_path: Path, zinc: Zinc) -> None:
    audit._TEMPLATES_DONE.clear()
    env = {"PIPELINE_AUDIT_URL": zinc.url, "PIPELINE_AUDIT_INDEX": "pipeline-audit-zt2",
           "PIPELINE_AUDIT_USER": ZINC_USER, "PIPELINE_AUDIT_PASSWORD": ZINC_PASSWORD,
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool"),
           "PIPELINE_AUDIT_FILE": str(tmp_path / "audit.jsonl")}
    ctx = audit_ctx(env)
    zinc.stop()  # the outage
    try:
        lost = [record(ctx, "refusal", target="hello", result="refused", reason="no approval")
                for _ in range(2)]
    finally:
        zinc.start()
    for event in lost:
        assert event.spooled == [f"index pipeline-audit-zt2 at {zinc.url}"]
        assert event.delivered == [f"file {tmp_path / 'audit.jsonl'}"]
    later = record(ctx, "deployment", target="hello", result="success")
    assert later.delivered and any("delivered 2 spooled" in w for w in later.warnings)
    found = zinc_search(zinc.url, "pipeline-audit-zt2", 3)
    assert sorted(d["id"] for d in found) == sorted(e.id for e in (*lost, later))
    assert list((tmp_path / "spool").glob("*/*.json")) == []
