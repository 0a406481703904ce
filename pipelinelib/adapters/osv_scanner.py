"""The OSV-Scanner tool (``ctx.scanner("osv-scanner")``): an image tarball (``docker save``)
or lockfiles, fully offline against a local db.

The local database is OSV-Scanner's offline layout. v2.5 (through osv-scalibr) reads
``DB/osv-scalibr/<Ecosystem>/all.zip``; older releases and the docs say
``DB/osv-scanner/<Ecosystem>/all.zip``; ``assemble_local_db`` writes both. Each zip holds one
OSV JSON file per advisory. Offline matching needs ``--offline`` (``--offline-vulnerabilities``
alone silently skips the local matcher in v2.5 image scans) plus the hidden
``--local-db-path`` (the environment variable is ``OSV_SCALIBR_LOCAL_DB_CACHE_DIRECTORY`` in
v2.5, ``OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY`` before; both are set).
Exit codes: 0 nothing found, 1 findings, 128 no packages found; anything else is a failure
with the scanner's stderr as evidence.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput, StepFailed

ENV_BINARY = "PIPELINELIB_OSV_SCANNER"


def find_binary(explicit: str | None = None) -> str:
    """The scanner binary: ``explicit``, ``$PIPELINELIB_OSV_SCANNER``, else on PATH."""
    import shutil

    candidate = explicit or os.environ.get(ENV_BINARY) or shutil.which("osv-scanner")
    if not candidate or not Path(candidate).is_file():
        raise BadInput(
            "osv-scanner not found",
            field="--osv-scanner",
            hint="build it with testbed/tools/osv-scanner or set PIPELINELIB_OSV_SCANNER",
        )
    return candidate


def scan_archive(
    binary: str, archive: str | Path, *, local_db: str | Path | None = None,
    offline: bool = True, timeout: float = 600,
) -> dict[str, Any]:
    """Scan an image archive; returns OSV-Scanner's JSON report (a dict)."""
    return _run([binary, "scan", "image", "--archive", "--format", "json"], str(archive),
                local_db=local_db, offline=offline, timeout=timeout,
                hint="check the archive and the local advisory database")


def scan_lockfile(
    binary: str, lockfile: str | Path, *, local_db: str | Path | None = None,
    offline: bool = True, timeout: float = 300,
) -> dict[str, Any]:
    """Scan one lockfile (requirements.txt, poetry.lock, package-lock.json, go.mod...)."""
    return _run([binary, "scan", "source", "--format", "json", "--lockfile"], str(lockfile),
                local_db=local_db, offline=offline, timeout=timeout,
                hint="check the lockfile and the local advisory database")


def _run(args: list[str], target: str, *, local_db: str | Path | None, offline: bool,
         timeout: float, hint: str) -> dict[str, Any]:
    env = dict(os.environ)
    if offline:
        if not local_db:
            raise BadInput("offline scans need a local advisory database", field="--local-db")
        args = [*args[:3], "--offline", "--local-db-path", str(local_db), *args[3:]]
        env["OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY"] = str(local_db)
        env["OSV_SCALIBR_LOCAL_DB_CACHE_DIRECTORY"] = str(local_db)
    args = [*args, target]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"osv-scanner did not finish within {timeout:.0f}s") from exc
    tail = proc.stderr.strip().splitlines()[-15:]
    if proc.returncode == 128:
        return {"results": []}
    if proc.returncode not in (0, 1):
        raise StepFailed(
            f"osv-scanner failed (exit {proc.returncode})",
            cause=tail[-1] if tail else None,
            hint=hint,
            evidence=tail,
        )
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
        return report
    except json.JSONDecodeError as exc:
        raise StepFailed("osv-scanner wrote no JSON report", evidence=tail) from exc


def prepare_local_db(path: str | Path, scratch: str | Path) -> Path:
    """An offline database directory: ``path`` itself when it is one, else ``path``'s
    advisories (``<Ecosystem>/*.json``, e.g. a mirror of osv.dev exports) zipped into
    ``scratch``."""
    src = Path(path)
    if (src / "osv-scanner").is_dir():
        return src
    return assemble_local_db(src, Path(scratch) / "osv-db")


def assemble_local_db(advisories: str | Path, dest: str | Path) -> Path:
    """Zip ``advisories/<Ecosystem>/*.json`` into an offline database at ``dest``."""
    import zipfile

    src, dest = Path(advisories), Path(dest)
    ecosystems = [d for d in sorted(src.iterdir()) if d.is_dir()] if src.is_dir() else []
    if not ecosystems:
        raise BadInput("no advisories found", source=str(src),
                       expected="one directory per ecosystem holding OSV JSON files")
    for top in ("osv-scalibr", "osv-scanner"):
        for eco in ecosystems:
            out = dest / top / eco.name
            out.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(out / "all.zip", "w", zipfile.ZIP_DEFLATED) as zipped:
                for advisory in sorted(eco.glob("*.json")):
                    json.loads(advisory.read_text())  # a broken advisory is caught here
                    zipped.write(advisory, advisory.name)
    return dest


class OsvScannerTool:
    """OSV-Scanner with its binary found once (``find_binary``); the ``OsvScanner`` seam."""

    name = "osv-scanner"

    def __init__(self, binary: str | None = None):
        self.binary = find_binary(binary)

    def scan_archive(self, archive: str | Path, *, local_db: str | Path | None = None,
                     offline: bool = True, timeout: float = 600) -> dict[str, Any]:
        return scan_archive(self.binary, archive, local_db=local_db, offline=offline,
                            timeout=timeout)

    def scan_lockfile(self, lockfile: str | Path, *, local_db: str | Path | None = None,
                      offline: bool = True, timeout: float = 300) -> dict[str, Any]:
        return scan_lockfile(self.binary, lockfile, local_db=local_db, offline=offline,
                             timeout=timeout)
