#!/usr/bin/env python3
"""Pin pipelinelib's dependency closure to the versions installed now: constraints.txt.

    python3 tools/constraints.py > constraints.txt      (after `make setup` on a good run)
    python3 tools/constraints.py --outdated              (what `make outdated` prints)

constraints.txt is what `make setup`, CI and the tool image install with (pip -c): a new
release of a dependency cannot change a run unnoticed. `--outdated` asks PyPI (pip's own
index client) for each pinned package's newest release and lists those behind.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def closure(root: str = "pipelinelib", extras: tuple[str, ...] = ("dev",)) -> dict[str, str]:
    """{name: installed version} of every distribution ``root[extras]`` needs."""
    found: dict[str, str] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is required but not installed: run `make setup` first"
                             ) from None
        key = canonicalize_name(dist.metadata["Name"])
        if key in found and not wanted:
            continue
        found[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            env = {"extra": ""}
            if req.marker and not any(req.marker.evaluate({**env, "extra": e})
                                      for e in ("", *wanted)):
                continue
            if canonicalize_name(req.name) not in found:
                todo.append((req.name, tuple(req.extras)))
    found.pop(canonicalize_name(root), None)
    return dict(sorted(found.items()))


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if match:
            out[canonicalize_name(match.group(1))] = match.group(2)
    return out


def outdated(path: Path) -> int:
    """Print each pin with a newer release on the index; exit 0 (a report, not a failure)."""
    pinned = pins(path)
    listing = subprocess.run([sys.executable, "-m", "pip", "list", "--outdated",
                              "--format=json", "--disable-pip-version-check"],
                             capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        print(listing.stderr.strip(), file=sys.stderr)
        return 3
    behind = [(canonicalize_name(p["name"]), p["latest_version"])
              for p in json.loads(listing.stdout or "[]")
              if canonicalize_name(p["name"]) in pinned]
    print(f"{len(behind)} of {len(pinned)} pinned packages have a newer release "
          f"({path.name}):")
    for name, latest in sorted(behind):
        print(f"  {name:<28} {pinned[name]:<14} -> {latest}")
    return 0


def main(argv: list[str]) -> int:
    path = ROOT / "constraints.txt"
    if argv[1:2] == ["--outdated"]:
        return outdated(path)
    print("# pipelinelib's dependency closure, pinned (tools/constraints.py; `make outdated`)")
    print(f"# Python {sys.version.split()[0]}; install with: pip install -c constraints.txt "
          "-e '.[dev]'")
    for name, version in closure().items():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
