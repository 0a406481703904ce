"""Lighthouse (npm ``lighthouse``) in headless Chromium (``ctx.lighthouse``): one run, one
JSON report.

The binary is ``$PIPELINELIB_LIGHTHOUSE`` or ``lighthouse`` on PATH; Chromium is
``$CHROME_PATH`` or ``$PIPELINELIB_CHROMIUM`` (else Lighthouse's chrome-launcher looks for
one). Each run is the argument list the examples used::

    lighthouse URL --output json --output-path OUT --quiet \
      --chrome-flags="--headless=new --no-sandbox --disable-gpu"

Lighthouse writes the report even when the page could not be measured (a ``runtimeError``
such as NO_FCP, exit code 1): the report is returned and judged. A run that wrote no report
is a ``StepFailed`` with Lighthouse's stderr tail.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipelinelib.adapters import process
from pipelinelib.errors import BadInput, StepFailed

ENV_BINARY = "PIPELINELIB_LIGHTHOUSE"
ENV_CHROMIUM = "PIPELINELIB_CHROMIUM"
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu"


def find_binary(explicit: str | None = None) -> str:
    """The Lighthouse CLI: ``explicit``, ``$PIPELINELIB_LIGHTHOUSE``, else on PATH."""
    candidate = explicit or os.environ.get(ENV_BINARY) or shutil.which("lighthouse")
    if not candidate or not Path(candidate).is_file():
        raise BadInput("lighthouse not found", field="PIPELINELIB_LIGHTHOUSE",
                       expected="the Lighthouse CLI (npm lighthouse) on PATH or in "
                                "PIPELINELIB_LIGHTHOUSE",
                       hint="install it with testbed/tools/lighthouse")
    return candidate


class LighthouseTool:
    """The Lighthouse CLI, its binary and Chromium bound."""

    name = "lighthouse"

    def __init__(self, binary: str | None = None, chromium: str | None = None):
        self.binary = find_binary(binary)
        self.chromium = (chromium or os.environ.get("CHROME_PATH")
                         or os.environ.get(ENV_CHROMIUM) or None)

    def run(self, url: str, output: str | Path, *, timeout: float) -> Path:
        """Measure ``url`` once; the JSON report is written to ``output`` (returned)."""
        out = Path(output)
        out.unlink(missing_ok=True)
        env = dict(os.environ)
        if self.chromium:
            env["CHROME_PATH"] = self.chromium
        argv = [self.binary, url, "--output", "json", "--output-path", str(out), "--quiet",
                f"--chrome-flags={CHROME_FLAGS}"]
        try:
            done = process.run(argv, env=env, timeout=timeout)
        except process.TimedOut as exc:
            raise StepFailed(f"lighthouse did not finish within {timeout:.0f}s",
                             hint="the machine may be overloaded; raise --timeout") from exc
        except process.CannotRun as exc:
            raise StepFailed(str(exc), hint="check PIPELINELIB_LIGHTHOUSE") from exc
        if not out.is_file() or out.stat().st_size == 0:
            raise StepFailed(f"lighthouse exited {done.returncode} without a report",
                             evidence=done.stderr.strip().splitlines()[-15:],
                             hint="see Lighthouse's output above (Chromium: CHROME_PATH or "
                                  "PIPELINELIB_CHROMIUM)")
        return out
