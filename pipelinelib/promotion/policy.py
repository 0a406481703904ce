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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib import yamlsafe
from pipelinelib.envspec import yamlines
from pipelinelib.errors import BadInput, Refused

POLICY_FILE = "policy.yaml"
_ENV_KEYS = {"promote", "approve", "four_eyes", "hotfix", "require_ci", "gates", "swap"}


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
    """Read ``policy.yaml`` from an env-state checkout; every problem names its line."""
    path = Path(root) / POLICY_FILE
    source = str(path)
    if not path.is_file():
        raise BadInput("no policy file in the env-state repository", source=source,
                       expected="policy.yaml saying who may promote where")
    try:
        data, lines = yamlines.load(yamlsafe.read(path)[0])
    except yamlines.YamlError as exc:
        raise BadInput(f"not valid YAML: {exc}", source=source, line=exc.line) from exc
    if not isinstance(data, dict) or set(data) - {"groups", "environments"}:
        extra = sorted(set(data) - {"groups", "environments"}) if isinstance(data, dict) else []
        raise BadInput(f"unknown keys {extra}" if extra else "not a mapping", source=source,
                       line=lines.line((extra[0],) if extra else ()),
                       expected="groups and environments")
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
            boolean = k in ("four_eyes", "require_ci")
            if (boolean and not isinstance(v, bool)) or (not boolean and not (
                    isinstance(v, list) and all(isinstance(m, str) for m in v))):
                raise BadInput(f"invalid value {v!r}", source=source, line=lines.line((*at, k)),
                               field=f"environments.{name}.{k}",
                               expected="true or false" if boolean else "a list of names")
        envs[name] = EnvPolicy(promote=raw.get("promote", []), approve=raw.get("approve", []),
                               four_eyes=raw.get("four_eyes", False),
                               hotfix=raw.get("hotfix", []),
                               require_ci=raw.get("require_ci", True),
                               gates=raw.get("gates", []), swap=raw.get("swap"))
        if envs[name].four_eyes and not envs[name].approve:
            raise BadInput("four_eyes needs approvers", source=source,
                           line=lines.line((*at, "four_eyes")),
                           field=f"environments.{name}.approve", expected="a list of users")
    return Policy(groups, envs, POLICY_FILE)


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
