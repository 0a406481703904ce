"""The audit sink (a real ZincSearch) behind Toxiproxy, while `pipeline annotate` records
its deployment event: a slow or sliced sink is written through; a sink that is down, resets
or goes silent costs a warning and a spooled event, never the step; when the sink answers
again the next run delivers the spool exactly once. And the per-item refusal of ``_bulk``
as ZincSearch really does it (``errors: false``, a top-level ``error``, the batch cut short):
the refused event is set aside, every other one delivered once."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipelinelib.records import audit
from pipelinelib.testing.faults import Proxy, count_retries, host_port, url_via
from tests.helpers.audit_sink import ZINC_PASSWORD, ZINC_USER, Zinc, audit_ctx, zinc_search
from tests.helpers.cli import run_pipeline
from tests.helpers.git import clone, make_origin


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zinc]:
    from pipelinelib.testing.faults import tool_binary

    server = Zinc(tool_binary("zincsearch", "PIPELINELIB_ZINCSEARCH"),
                  tmp_path_factory.mktemp("zinc-faults"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


FAULTS: dict[str, tuple[Callable[[Proxy], Any], bool]] = {
    # fault -> (add it, the event reaches the sink during the faulted run)
    "latency 300 ms": (lambda p: p.add("latency", latency=300), True),
    "bandwidth 8 KB/s": (lambda p: p.add("bandwidth", rate=8), True),
    "slicer: 32-byte slices": (lambda p: p.add("slicer", average_size=32, size_variation=16,
                                               delay=200, stream="upstream"), True),
    "audit sink down (proxy disabled)": (lambda p: p.set_enabled(False), False),
    "reset_peer: every connection reset": (lambda p: p.add("reset_peer", timeout=0), False),
    "timeout: every connection silent, closed after 1 s": (
        lambda p: p.add("timeout", timeout=1000), False),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_annotate_records_its_audit_event_once_through_a_sink_fault(
        sink, fault_proxy, tmp_path, scenario, fault):
    row = scenario("annotate", fault, "audit sink")
    audit._TEMPLATES_DONE.clear()
    proxy = fault_proxy("zinc", host_port(sink.url))
    index = f"audit-flt-{os.urandom(4).hex()}"
    origin, shas = make_origin(tmp_path)
    repo = clone(tmp_path, origin, "work")
    env = {"PIPELINE_AUDIT_URL": url_via(sink.url, proxy), "PIPELINE_AUDIT_INDEX": index,
           "PIPELINE_AUDIT_USER": ZINC_USER, "PIPELINE_AUDIT_PASSWORD": ZINC_PASSWORD,
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool"), "BUILD_USER_ID": "rm-kim",
           "BUILD_URL": "https://ci.example/job/deploy/5/", "JOB_NAME": "deploy",
           "JENKINS_URL": "https://ci.example/"}
    args = ["annotate", "--env", "live", "--result", "success", "--app", "hello",
            "--revision", shas[-1], "--repo", str(repo)]
    add, through = FAULTS[fault]
    add(proxy)
    started = time.monotonic()
    out = run_pipeline(*args, env=env)
    row.seconds = round(time.monotonic() - started, 2)
    row.retries = count_retries(out.stderr)
    assert out.returncode == 0, out.stderr[-3000:]
    spooled = list((tmp_path / "spool").glob("bulk-*/*.json"))
    if through:
        row.outcome = "survived: event delivered"
        assert spooled == []
    else:
        row.outcome = "survived: event spooled, warning shown"
        assert len(spooled) == 1 and "WARNING" in out.stdout, out.stdout
    proxy.clear()
    rerun = run_pipeline(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert list((tmp_path / "spool").glob("bulk-*/*.json")) == [], "the spool is flushed"
    docs = zinc_search(sink.url, index, 1)
    assert [d["action"] for d in docs] == ["deployment"], "exactly one event in the sink"
    row.rerun = "unchanged" if through else "spool flushed once"
    row.passed = True


def test_zincsearch_refusing_one_event_of_a_batch_sets_it_aside_and_delivers_the_rest_once(
        sink, tmp_path, scenario):
    row = scenario("audit flush", "_bulk refuses one event of a batch (ZincSearch)",
                   "audit sink")
    audit._TEMPLATES_DONE.clear()
    index = f"audit-refuse-{os.urandom(4).hex()}"
    spool_dir = tmp_path / "spool"
    env = {"PIPELINE_AUDIT_URL": "http://127.0.0.1:9/", "PIPELINE_AUDIT_INDEX": index,
           "PIPELINE_AUDIT_SPOOL": str(spool_dir)}
    ctx = audit_ctx(env)
    down = [audit.record(ctx, "swap", target=f"app-{i}", result="success")
            for i in range(4)]
    assert all(e.spooled for e in down)
    # the second event is one the server refuses for good: a timestamp it cannot parse
    poisoned = next(p for p in spool_dir.glob("*/*.json") if down[1].id in p.name)
    doc = json.loads(poisoned.read_text())
    doc["@timestamp"] = "not a time"
    poisoned.write_text(json.dumps(doc))
    # the spool belongs to the URL it was written for: move it to the real sink's folder
    real = {**env, "PIPELINE_AUDIT_URL": sink.url, "PIPELINE_AUDIT_USER": ZINC_USER,
            "PIPELINE_AUDIT_PASSWORD": ZINC_PASSWORD}
    [sink_obj] = audit_ctx(real).audit_sinks
    target = spool_dir / sink_obj.key
    target.mkdir()
    for path in spool_dir.glob("bulk-*/*.json"):
        if path.parent != target:
            path.rename(target / path.name)
    started = time.monotonic()
    report = audit.flush([sink_obj], audit.Spool(spool_dir))
    row.seconds = round(time.monotonic() - started, 2)
    row.outcome = (f"delivered {sum(report.delivered.values())}, "
                   f"rejected {sum(report.rejected.values())}")
    docs = zinc_search(sink.url, index, 3)
    assert sorted(d["id"] for d in docs) == sorted(e.id for e in (down[0], *down[2:]))
    [aside] = list((spool_dir / "rejected").glob("*/*.json"))
    assert down[1].id in aside.name
    assert list(target.glob("*.json")) == [], "nothing left spooled"
    again = audit.flush([sink_obj], audit.Spool(spool_dir))
    assert again.delivered == {} and len(zinc_search(sink.url, index, 3)) == 3, "once"
    row.rerun = "flush again: nothing sent"
    row.passed = True

