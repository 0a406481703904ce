"""Start testbed components with the project's ``testbed/up`` and read their exports."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

COMPONENTS = ("docker", "registry", "kubernetes", "node", "postgres")


class TestbedError(RuntimeError):
    """A testbed component could not be started."""

    __test__ = False


def scripts_dir() -> Path:
    """Where ``up``/``down`` live: $PIPELINELIB_TESTBED_SCRIPTS, else the source tree's testbed/."""
    override = os.environ.get("PIPELINELIB_TESTBED_SCRIPTS")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[2] / "testbed")
    for path in candidates:
        if (path / "up").is_file():
            return path
    raise TestbedError(f"no testbed scripts found (looked in {', '.join(map(str, candidates))}); "
                       "set PIPELINELIB_TESTBED_SCRIPTS")


def parse_exports(text: str) -> dict[str, str]:
    """Parse ``export NAME=value`` lines (shell-quoted values) into a dict."""
    exports: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        for token in shlex.split(line[len("export "):]):
            name, sep, value = token.partition("=")
            if sep:
                exports[name] = value
    return exports


class Testbed:
    """The testbed in one state directory; ``up()`` is idempotent and cached per component."""

    __test__ = False  # not a pytest test class

    def __init__(self, state_dir: str | os.PathLike[str] | None = None):
        default = os.environ.get("PIPELINELIB_TESTBED", "/tmp/pipelinelib-testbed")  # noqa: S108
        self.state_dir = Path(state_dir or default)
        self.env: dict[str, str] = {}
        self._started: set[str] = set()
        self._lock = threading.Lock()

    def up(self, *components: str) -> dict[str, str]:
        """Start ``components`` (reusing running ones); return all exports so far."""
        unknown = set(components) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown testbed components: {sorted(unknown)}")
        with self._lock:
            missing = [c for c in components if c not in self._started]
            if missing:
                cmd = [str(scripts_dir() / "up"), "--state-dir", str(self.state_dir),
                       "--only", ",".join(missing)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                sys.stderr.write(proc.stderr[-4000:])
                if proc.returncode != 0:
                    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
                    raise TestbedError(f"testbed/up --only {','.join(missing)} failed "
                                       f"(exit {proc.returncode}):\n{tail}")
                self.env.update(parse_exports(proc.stdout))
                self._started.update(missing)
            return dict(self.env)

    def down(self) -> None:
        """Stop every component this state directory's pid files name."""
        subprocess.run([str(scripts_dir() / "down"), "--state-dir", str(self.state_dir)],
                       check=False)
