"""Who may promote into which environment, and where a second person must approve.

``policy.yaml`` at the root of the env-state repository::

    groups:
      release-managers: [alice, bob]
    environments:
      sandbox: {promote: ["*"], require_ci: false}
      prod:
        promote: ["group:release-managers"]
        approve: ["group:release-managers"]   # four eyes: a second person from here
        four_eyes: true
        hotfix: ["group:release-managers"]
        gates: [scan]          # recorded results that must exist (and pass) for the digest
      staging:
        promote: ["*"]
        swap: ["group:release-managers"]   # blue/green `pipeline swap` (default: promote)

Deny by default: an environment the policy does not name accepts nobody. ``"*"`` is any
identified user. The identity is ``ctx.ci.user`` from the CI server (Jenkins
BUILD_USER_ID, GoCD GO_TRIGGER_USER); a local run counts only where ``require_ci: false``.

Where it comes from: with a trust root (``PIPELINE_TRUST_DIR``, see ``promotion.trust``)
the policy is that directory's ``policy.yaml``, counted only when two different people
signed it; the env-state repository's own ``policy.yaml`` is then ignored. Without one,
the env-state repository's file is used (``trusted=False``): its writers could change it,
so every change to a protected environment is refused at deploy time (``enforce``).
``protected: true`` (implied by ``four_eyes``) makes every change to an environment need
a signed promotion (and, with four eyes, a signed approval) before it is deployed;
``ci_signers: [name]`` names the CI server keys that sign promotions for the user the CI
server authenticated. ``review_sources: [URL]`` names the git servers whose pull-request
reviews count as a four-eyes approval at deploy time (``enforce``): the server, not a
personal key, vouches for the reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib import yamlsafe
from pipelinelib.envspec import yamlines
from pipelinelib.errors import BadInput, Refused

POLICY_FILE = "policy.yaml"
_ENV_KEYS = {"promote", "approve", "four_eyes", "hotfix", "require_ci", "gates", "swap",
             "protected"}
_TOP_KEYS = {"groups", "environments", "ci_signers", "review_sources"}


@dataclass
class EnvPolicy:
    """The rules of one environment."""

    promote: list[str] = field(default_factory=list)
    approve: list[str] = field(default_factory=list)
    four_eyes: bool = False
    hotfix: list[str] = field(default_factory=list)
    require_ci: bool = True
    gates: list[str] = field(default_factory=list)
    swap: list[str] | None = None
    protected: bool = False

    @property
    def guarded(self) -> bool:
        """True when a change here must carry signed evidence before it is deployed."""
        return self.protected or self.four_eyes

    @property
    def swappers(self) -> list[str]:
        """Who may switch a blue/green app's live colour here (default: who may promote)."""
        return self.promote if self.swap is None else self.swap


@dataclass
class Policy:
    """Groups and per-environment rules; see the module docstring."""

    groups: dict[str, list[str]]
    environments: dict[str, EnvPolicy]
    source: str = POLICY_FILE
    ci_signers: list[str] = field(default_factory=list)
    trusted: bool = False  # from the trust root, signed by two people
    signed_by: list[str] = field(default_factory=list)
    review_sources: list[str] = field(default_factory=list)  # git servers vouching reviews

    def trusts_reviews_from(self, server: str) -> bool:
        """True when the policy names ``server`` (a URL) as a source of review approvals."""
        return bool(server) and server.rstrip("/") in {s.rstrip("/") for s in self.review_sources}

    def env(self, name: str) -> EnvPolicy:
        return self.environments.get(name, EnvPolicy())

    def holds(self, user: str, members: list[str]) -> bool:
        """True when ``user`` is named in ``members`` (directly, via a group, or ``*``)."""
        if not user:
            return False
        for entry in members:
            if entry == "*" or entry == user:
                return True
            if entry.startswith("group:") and user in self.groups.get(entry[6:], []):
                return True
        return False


def load_policy(root: str | Path) -> Policy:
    """The policy: the trust root's when ``PIPELINE_TRUST_DIR`` is set (verified: two
    signatures), else ``policy.yaml`` of the env-state checkout ``root`` (untrusted)."""
    from pipelinelib.promotion.trust import POLICY_SIGNERS_NEEDED, policy_signers, trust_root

    trust = trust_root()
    if trust is None:
        return parse_policy(Path(root) / POLICY_FILE)
    path = trust.directory / POLICY_FILE
    if not path.is_file():
        raise BadInput("no policy file in the trust root", source=str(path),
                       expected="policy.yaml saying who may promote where")
    signers = policy_signers(trust, path.read_bytes())
    if len(signers) < POLICY_SIGNERS_NEEDED:
        raise Refused(f"the policy in the trust root is signed by {len(signers)} "
                      f"({', '.join(signers) or 'nobody'}), not {POLICY_SIGNERS_NEEDED} "
                      "different people: a policy change needs four eyes", field=str(path),
                      hint="two people allowed the pipelinelib-policy namespace each run "
                      "`ssh-keygen -Y sign -n pipelinelib-policy -f KEY policy.yaml` and put "
                      "the .sig as policy.yaml.sig/NAME.sig")
    policy = parse_policy(path, label=str(path))
    policy.trusted, policy.signed_by = True, signers
    return policy


def parse_policy(path: Path, label: str = POLICY_FILE) -> Policy:
    """Read one policy file; every problem names its line (``label``: how hints name it)."""
    source = str(path)
    if not path.is_file():
        raise BadInput("no policy file in the env-state repository", source=source,
                       expected="policy.yaml saying who may promote where")
    try:
        data, lines = yamlines.load(yamlsafe.read(path)[0])
    except yamlines.YamlError as exc:
        raise BadInput(f"not valid YAML: {exc}", source=source, line=exc.line) from exc
    if not isinstance(data, dict) or set(data) - _TOP_KEYS:
        extra = sorted(set(data) - _TOP_KEYS) if isinstance(data, dict) else []
        raise BadInput(f"unknown keys {extra}" if extra else "not a mapping", source=source,
                       line=lines.line((extra[0],) if extra else ()),
                       expected="groups, environments, ci_signers and review_sources")
    ci_signers = data.get("ci_signers") or []
    if not isinstance(ci_signers, list) or not all(isinstance(m, str) for m in ci_signers):
        raise BadInput("ci_signers is a list of signer names", source=source,
                       line=lines.line(("ci_signers",)), field="ci_signers",
                       expected="a list of strings")
    review_sources = data.get("review_sources") or []
    if not isinstance(review_sources, list) or not all(
            isinstance(m, str) and m.startswith(("https://", "http://")) for m in review_sources):
        raise BadInput("review_sources is a list of git server URLs", source=source,
                       line=lines.line(("review_sources",)), field="review_sources",
                       expected="a list of http(s) URLs")
    groups = data.get("groups") or {}
    for name, members in groups.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise BadInput("a group is a list of user names", source=source,
                           line=lines.line(("groups", name)), field=f"groups.{name}",
                           expected="a list of strings")
    envs = {}
    for name, raw in (data.get("environments") or {}).items():
        at = ("environments", name)
        if not isinstance(raw, dict):
            raise BadInput("not a mapping", source=source, line=lines.line(at),
                           field=".".join(at), expected=", ".join(sorted(_ENV_KEYS)))
        for k, v in raw.items():
            if k not in _ENV_KEYS:
                raise BadInput(f"unknown key {k!r}", source=source, line=lines.line((*at, k)),
                               field=f"environments.{name}.{k}",
                               expected="one of " + ", ".join(sorted(_ENV_KEYS)))
            boolean = k in ("four_eyes", "require_ci", "protected")
            if (boolean and not isinstance(v, bool)) or (not boolean and not (
                    isinstance(v, list) and all(isinstance(m, str) for m in v))):
                raise BadInput(f"invalid value {v!r}", source=source, line=lines.line((*at, k)),
                               field=f"environments.{name}.{k}",
                               expected="true or false" if boolean else "a list of names")
        envs[name] = EnvPolicy(promote=raw.get("promote", []), approve=raw.get("approve", []),
                               four_eyes=raw.get("four_eyes", False),
                               hotfix=raw.get("hotfix", []),
                               require_ci=raw.get("require_ci", True),
                               gates=raw.get("gates", []), swap=raw.get("swap"),
                               protected=raw.get("protected", False))
        if envs[name].four_eyes and not envs[name].approve:
            raise BadInput("four_eyes needs approvers", source=source,
                           line=lines.line((*at, "four_eyes")),
                           field=f"environments.{name}.approve", expected="a list of users")
    return Policy(groups, envs, label, ci_signers, review_sources=review_sources)


def identity(ctx: Any, rules: EnvPolicy, env: str) -> str:
    """The CI server's user for this run, or ``Refused`` when there is none we may trust."""
    ci = ctx.ci
    if rules.require_ci and ci.provider == "local":
        raise Refused(f"promotion into {env} must run on the CI server (identity from the "
                      "build cause); this is a local run", field="identity",
                      hint="trigger the promote job in Jenkins/GoCD")
    if not ci.user:
        raise Refused(f"the CI server did not say who triggered this run ({ci.provider})",
                      field="identity", hint="Jenkins: install build-user-vars "
                      "(BUILD_USER_ID); GoCD: GO_TRIGGER_USER")
    return ci.user
