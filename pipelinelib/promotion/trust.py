"""The trust root: who may sign, and the policy, from outside the environment repository.

``PIPELINE_TRUST_DIR`` names a directory the CI server provides (a Jenkins/GoCD secret
file or config, or a checkout of a separately protected repository) — never the env-state
repository whose changes it judges. It holds:

``allowed_signers``
    OpenSSH's format (``ssh-keygen(1)`` ALLOWED SIGNERS), one line per person or CI key::

        rm-alice namespaces="pipelinelib-approval,pipelinelib-policy" ssh-ed25519 AAAA...
        jenkins namespaces="pipelinelib-promotion" ssh-ed25519 AAAA...

    ``namespaces=`` limits what a key may sign: approvals, promotions, the policy.
``policy.yaml``
    The policy (see ``promotion.policy``), plus ``ci_signers: [jenkins]``: keys that sign
    promotions on behalf of the user the CI server authenticated.
``policy.yaml.sig/<name>.sig``
    Signatures of ``policy.yaml`` (namespace ``pipelinelib-policy``). The policy counts only
    when two different people signed it: a change to the policy needs four eyes.

Signatures are SSH signatures (``ssh-keygen -Y sign/verify``), as git signs commits: every
developer already has an SSH key, the allowed-signers file is a plain reviewable list, and
verifying needs nothing but OpenSSH's client (Debian ``openssh-client``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelinelib.adapters import ssh_keygen
from pipelinelib.errors import BadInput, Refused

TRUST_ENV = "PIPELINE_TRUST_DIR"
SIGNING_KEY_ENV = "PIPELINE_SIGNING_KEY"
ALLOWED_SIGNERS = "allowed_signers"
POLICY_SIGS = "policy.yaml.sig"
NS_APPROVAL = "pipelinelib-approval"
NS_PROMOTION = "pipelinelib-promotion"
NS_POLICY = "pipelinelib-policy"
POLICY_SIGNERS_NEEDED = 2


def sign(data: bytes, key: str | Path, namespace: str) -> str:
    """An SSH signature (armored text) of ``data`` with the private key file ``key``."""
    key = Path(key)
    if not key.is_file():
        raise BadInput(f"no signing key at {key}", field=SIGNING_KEY_ENV,
                       expected="the path of an SSH private key (ssh-keygen -t ed25519)")
    try:
        return ssh_keygen.sign(data, key, namespace)
    except ssh_keygen.KeygenFailed as exc:
        raise BadInput(f"could not sign with {key}: {exc.cause or ''}",
                       field=SIGNING_KEY_ENV, expected="an unencrypted SSH private key") from exc


@dataclass(frozen=True)
class TrustRoot:
    """The allowed signers (and where they came from)."""

    directory: Path

    @property
    def allowed_signers(self) -> Path:
        return self.directory / ALLOWED_SIGNERS

    def signer(self, data: bytes, signature: str, namespace: str) -> str | None:
        """The principal whose key made ``signature`` over ``data`` for ``namespace``, or
        None when no allowed signer did (forged, altered, wrong namespace, unknown key)."""
        if not signature or "BEGIN SSH SIGNATURE" not in signature:
            return None
        for principal in ssh_keygen.find_principals(self.allowed_signers, signature, namespace):
            if ssh_keygen.verify(self.allowed_signers, principal, namespace, signature, data):
                return principal
        return None

    def principal_of_key(self, key: str | Path, namespace: str) -> str | None:
        """Which allowed signer a private key belongs to (signs a probe and looks it up)."""
        probe = b"pipelinelib: whose key is this?"
        return self.signer(probe, sign(probe, key, namespace), namespace)


def trust_root(required: bool = False) -> TrustRoot | None:
    """The trust root named by ``PIPELINE_TRUST_DIR`` (None when unset and not required)."""
    where = os.environ.get(TRUST_ENV, "").strip()
    if not where:
        if required:
            raise Refused("no trust root: signed approvals cannot be verified",
                          field=TRUST_ENV, hint="point PIPELINE_TRUST_DIR at the directory "
                          "the CI server provides (allowed_signers, signed policy.yaml)")
        return None
    path = Path(where)
    root = TrustRoot(_unpacked(path) if path.is_file() else path)
    if not root.allowed_signers.is_file():
        raise BadInput("the trust root has no allowed_signers file", source=where,
                       field=ALLOWED_SIGNERS, expected="OpenSSH allowed signers, one per line")
    return root


ARCHIVE_LIMIT = 1 << 20  # bytes: a trust root is a few small text files
_unpacked_dirs: dict[Path, Path] = {}


def _unpacked(archive: Path) -> Path:
    """A tar archive of the trust root (how a Jenkins "secret file" credential carries a
    directory), unpacked once per process into a private temporary directory: regular files
    only, inside the directory, at most ``ARCHIVE_LIMIT`` bytes in all."""
    import atexit
    import tarfile

    if archive in _unpacked_dirs:
        return _unpacked_dirs[archive]
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            if sum(m.size for m in members) > ARCHIVE_LIMIT:
                raise BadInput("the trust root archive is too large", source=str(archive),
                               field=TRUST_ENV, expected=f"at most {ARCHIVE_LIMIT} bytes")
            target = Path(tempfile.mkdtemp(prefix="pipelinelib-trust-"))
            atexit.register(shutil.rmtree, target, True)
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BadInput(f"the trust root is neither a directory nor a readable tar archive: "
                       f"{exc}", source=str(archive), field=TRUST_ENV,
                       expected="a directory, or a tar archive of one (a secret file "
                       "credential)") from exc
    _unpacked_dirs[archive] = target
    return target


def policy_signers(root: TrustRoot, policy_bytes: bytes) -> list[str]:
    """The distinct people whose valid signature of the policy lies in ``policy.yaml.sig/``."""
    folder = root.directory / POLICY_SIGS
    signers: list[str] = []
    for sig in sorted(folder.glob("*.sig")) if folder.is_dir() else []:
        who = root.signer(policy_bytes, sig.read_text(errors="replace"), NS_POLICY)
        if who and who not in signers:
            signers.append(who)
    return signers


def sign_policy(directory: str | Path, key: str | Path, name: str) -> Path:
    """Write ``policy.yaml.sig/<name>.sig``: one person's signature of the policy."""
    directory = Path(directory)
    data = (directory / "policy.yaml").read_bytes()
    out = directory / POLICY_SIGS / f"{name}.sig"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(sign(data, key, NS_POLICY))
    return out
