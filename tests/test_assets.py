"""Cache-busted assets: content hashes in names, a manifest, rewritten references, idempotent."""

import json

from pipelinelib.buildspec import AssetSpec
from pipelinelib.context import Context
from pipelinelib.steps.assets import fingerprint_assets


def _site(tmp_path):
    src = tmp_path / "public"
    src.mkdir()
    (src / "index.html").write_text('<link href="app.css"><img src="logo.svg">')
    (src / "app.css").write_text('body { background: url("logo.svg") }')
    (src / "logo.svg").write_text("<svg/>")
    return AssetSpec(src, tmp_path / "build" / "public", ("index.html",))


def test_assets_are_fingerprinted_with_a_manifest_and_rewritten_references(tmp_path):
    spec = _site(tmp_path)
    result = fingerprint_assets(Context(), spec)
    assert result.changed
    manifest = json.loads((spec.output / "asset-manifest.json").read_text())
    css, svg = manifest["files"]["app.css"], manifest["files"]["logo.svg"]
    assert css.startswith("app.") and css.endswith(".css") and svg.startswith("logo.")
    index = (spec.output / "index.html").read_text()
    assert css in index and svg in index and '"app.css"' not in index
    assert svg in (spec.output / css).read_text()
    assert result.outputs["assets_version"] == manifest["version"]


def test_rerun_is_unchanged_and_a_change_produces_a_new_name(tmp_path):
    spec = _site(tmp_path)
    first = fingerprint_assets(Context(), spec)
    assert not fingerprint_assets(Context(), spec).changed
    (spec.source / "logo.svg").write_text("<svg><g/></svg>")
    second = fingerprint_assets(Context(), spec)
    assert second.changed and second.outputs["assets_version"] != first.outputs["assets_version"]
    names = sorted(p.name for p in spec.output.iterdir())
    assert len([n for n in names if n.startswith("logo.")]) == 1, "stale asset removed"


def test_dry_run_writes_nothing(tmp_path):
    spec = _site(tmp_path)
    result = fingerprint_assets(Context(dry_run=True), spec)
    assert result.changed and result.dry_run and not spec.output.exists()
