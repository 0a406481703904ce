"""OpenSSH's ``ssh-keygen -Y``: SSH signatures of data (sign, find-principals, verify).

Argument lists only, stdin closed (or fed the data verified), bounded in time. A missing
``ssh-keygen`` raises ``BadInput``; a signing that fails raises ``KeygenFailed`` with
ssh-keygen's own words; no ``subprocess`` type leaves this module.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from pipelinelib.errors import BadInput, StepFailed

TIMEOUT_S = 60.0  # one signature or verification; ssh-keygen answers in milliseconds


class KeygenFailed(StepFailed):
    """ssh-keygen could not sign (unreadable or encrypted key, ...); ``cause`` says why."""


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if not found:
        raise BadInput("ssh-keygen is not installed", field="ssh-keygen",
                       expected="OpenSSH's client (Debian: apt-get install openssh-client)")
    return found


def _run(args: list[str], data: bytes | None = None) -> tuple[int, str]:
    """Run ssh-keygen with ``args``; (exit code, stdout + stderr as text)."""
    try:
        argv = [_ssh_keygen(), *args]
        if data is None:
            proc = subprocess.run(argv, capture_output=True, check=False, timeout=TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        else:
            proc = subprocess.run(argv, capture_output=True, check=False, timeout=TIMEOUT_S,
                                  input=data)
    except subprocess.TimeoutExpired as exc:
        raise KeygenFailed(f"ssh-keygen {args[:3]} did not finish within {TIMEOUT_S:.0f}s"
                           ) from exc
    except OSError as exc:
        raise KeygenFailed("cannot run ssh-keygen", cause=str(exc)) from exc
    out = (proc.stdout or b"").decode("utf-8", "replace")
    err = (proc.stderr or b"").decode("utf-8", "replace")
    return proc.returncode, out if proc.returncode == 0 else err


def sign(data: bytes, key: Path, namespace: str) -> str:
    """The armored SSH signature of ``data`` by the private key file ``key``."""
    with tempfile.TemporaryDirectory(prefix="pipelinelib-sign-") as scratch:
        path = Path(scratch) / "data"
        path.write_bytes(data)
        code, text = _run(["-q", "-Y", "sign", "-f", str(key), "-n", namespace, str(path)])
        sig = path.with_name("data.sig")
        if code != 0 or not sig.is_file():
            raise KeygenFailed(f"ssh-keygen could not sign with {key}",
                               cause=text.strip()[:200])
        return sig.read_text()


def find_principals(allowed_signers: Path, signature: str, namespace: str) -> list[str]:
    """The principals of ``allowed_signers`` whose key matches ``signature`` (unverified)."""
    with tempfile.TemporaryDirectory(prefix="pipelinelib-verify-") as scratch:
        sig = Path(scratch) / "sig"
        sig.write_text(signature)
        code, text = _run(["-Y", "find-principals", "-s", str(sig), "-f",
                           str(allowed_signers), "-n", namespace])
        return text.split() if code == 0 else []


def verify(allowed_signers: Path, principal: str, namespace: str, signature: str,
           data: bytes) -> bool:
    """True when ``signature`` is ``principal``'s valid signature of ``data``."""
    with tempfile.TemporaryDirectory(prefix="pipelinelib-verify-") as scratch:
        sig = Path(scratch) / "sig"
        sig.write_text(signature)
        code, _ = _run(["-Y", "verify", "-f", str(allowed_signers), "-I", principal, "-n",
                        namespace, "-s", str(sig)], data)
        return code == 0
