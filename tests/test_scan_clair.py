"""The Clair v4 client against a local HTTP server speaking Clair's documented API
(Clair itself cannot run here: it needs its updaters' network feeds and PostgreSQL data).
The server checks what the client sends: the manifest with registry blob URIs."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from pipelinelib.adapters.clair import ClairClient
from pipelinelib.errors import StepFailed, Unreachable
from pipelinelib.scan.parsers import parse_doc
from tests.helpers.fakes import JSONHandler
from tests.helpers.paths import FIXTURES

FIX = FIXTURES / "scan"
DIGEST = "sha256:9c1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e"


# index states as claircore's indexer reports them (indexer/controller/state.go: CheckManifest,
# FetchLayers, ScanLayers, Coalesce, IndexManifest, IndexError, IndexFinished)
class FakeClair(JSONHandler):
    polls_left = 2
    index_state = "IndexFinished"
    received: list[dict] = []

    _send = JSONHandler.send_json

    def do_POST(self):
        assert self.path == "/indexer/api/v1/index_report"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body)
        self._send(201, {"manifest_hash": body["hash"], "state": "CheckManifest",
                         "success": False, "err": ""})

    def do_GET(self):
        if self.path.startswith("/indexer/api/v1/index_report/"):
            cls = type(self)
            cls.polls_left -= 1
            state = cls.index_state if cls.polls_left <= 0 else "ScanLayers"
            self._send(200, {"manifest_hash": DIGEST, "state": state,
                             "success": state == "IndexFinished",
                             "err": "" if state == "IndexFinished" else "fetch failed: 401"})
        elif self.path == f"/matcher/api/v1/vulnerability_report/{DIGEST}":
            self._send(200, json.loads((FIX / "clair.json").read_text()))
        else:
            self._send(404, {"code": "not-found", "message": "no such report"})


@pytest.fixture
def clair_url():
    FakeClair.polls_left, FakeClair.index_state, FakeClair.received = 2, "IndexFinished", []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeClair)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


LAYERS = [{"hash": "sha256:" + "a" * 64,
           "uri": "http://127.0.0.1:5001/v2/pipelinelib/x/blobs/sha256:" + "a" * 64,
           "headers": {}}]


def test_index_waits_for_the_indexer_then_reads_the_vulnerability_report(clair_url):
    report = ClairClient(clair_url).scan(DIGEST, LAYERS, poll_s=0.01)
    assert FakeClair.received == [{"hash": DIGEST, "layers": LAYERS}]
    found = {f.id: f for f in parse_doc(report, "clair")}
    assert found["CVE-2023-4863"].fixed == "1.2.4-0.2+deb12u1"


def test_an_index_error_fails_with_clairs_message(clair_url):
    FakeClair.index_state = "IndexError"
    with pytest.raises(StepFailed) as err:
        ClairClient(clair_url).index(DIGEST, LAYERS, poll_s=0.01)
    assert "could not index" in err.value.message and "fetch failed: 401" in err.value.cause


def test_an_unknown_report_is_a_failure_and_no_server_is_unreachable(clair_url):
    with pytest.raises(StepFailed, match="answered 404"):
        ClairClient(clair_url).vulnerability_report("sha256:" + "0" * 64)
    with pytest.raises(Unreachable):
        ClairClient("http://127.0.0.1:9", timeout=0.5).vulnerability_report(DIGEST)
