"""Fingerprint static assets (seed 003: "compile static resources into a cache busted
static asset; mark cache busted state in config").

Every asset is copied to ``name.<hash>.ext``; entry points (``index.html``) keep
their names with references rewritten; ``asset-manifest.json`` maps each original
path to its fingerprinted one and carries a version for the whole set, for the app
to read. Re-running with unchanged sources writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath

from pipelinelib.buildspec import AssetSpec
from pipelinelib.context import Context
from pipelinelib.result import StepResult
from pipelinelib.step import step

MANIFEST = "asset-manifest.json"
REWRITTEN = {".css", ".html", ".htm", ".js", ".json", ".svg", ".txt"}
# hashing order: files that reference others are rewritten after the files they reference
_RANK = {".css": 2, ".js": 2, ".html": 3, ".htm": 3}
HASH_LEN = 10


@step("assets")
def fingerprint_assets(ctx: Context, assets: AssetSpec) -> StepResult:
    """Write fingerprinted copies of ``assets.source`` into ``assets.output``."""
    desired = plan_assets(assets)
    actions = _differences(assets.output, desired)
    if actions and not ctx.dry_run:
        _apply(assets.output, desired)
    manifest = json.loads(desired[MANIFEST])
    return StepResult.of(
        "assets",
        actions,
        dry_run=ctx.dry_run,
        summary=f"{len(actions)} asset file(s) updated" if actions else "",
        assets_version=manifest["version"],
        manifest=str(assets.output / MANIFEST),
    )


def plan_assets(assets: AssetSpec) -> dict[str, bytes]:
    """The output tree (relative path -> bytes), computed without writing anything."""
    files = sorted(p for p in assets.source.rglob("*") if p.is_file())
    rel = {p: PurePosixPath(p.relative_to(assets.source).as_posix()) for p in files}
    entry = [p for p in files if str(rel[p]) in assets.entrypoints]
    ordered = sorted((p for p in files if p not in entry), key=lambda p: _RANK.get(p.suffix, 1))
    mapping: dict[str, str] = {}
    out: dict[str, bytes] = {}
    for path in ordered:
        data = _rewrite(path, path.read_bytes(), mapping)
        digest = hashlib.sha256(data).hexdigest()[:HASH_LEN]
        name = rel[path]
        hashed = str(name.with_name(f"{name.stem}.{digest}{name.suffix}"))
        mapping[str(name)] = hashed
        out[hashed] = data
    for path in entry:
        out[str(rel[path])] = _rewrite(path, path.read_bytes(), mapping)
    version = hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()[:HASH_LEN]
    out[MANIFEST] = (
        json.dumps({"version": version, "files": mapping}, indent=2, sort_keys=True) + "\n"
    ).encode()
    return out


def _rewrite(path: Path, data: bytes, mapping: dict[str, str]) -> bytes:
    if path.suffix not in REWRITTEN or not mapping:
        return data
    text = data.decode("utf-8")
    for original in sorted(mapping, key=len, reverse=True):
        text = text.replace(original, mapping[original])
    return text.encode("utf-8")


def _differences(output: Path, desired: dict[str, bytes]) -> list[str]:
    existing = (
        {p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()}
        if output.is_dir()
        else set()
    )
    actions = [
        f"write {name}"
        for name, data in sorted(desired.items())
        if name not in existing or (output / name).read_bytes() != data
    ]
    actions += [f"remove stale {name}" for name in sorted(existing - set(desired))]
    return actions


def _apply(output: Path, desired: dict[str, bytes]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    for name, data in desired.items():
        target = output / name
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    for path in output.rglob("*"):
        if path.is_file() and path.relative_to(output).as_posix() not in desired:
            path.unlink()
