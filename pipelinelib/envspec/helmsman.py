"""Convert a helmsman desired state file (YAML or TOML) into a pipelinelib environment spec.

Field by field as docs/environments.md ("Coming from helmsman") tabulates: what maps is
written into the spec; what does not is returned as ``Note``s (field, reason), never
dropped silently. Several files (``-f a -f b`` or a ``--spec`` file's ``stateFiles``) are
merged in order, later files winning, as helmsman merges them. YAML merge keys
(``<<: *template``, helmsman's ``appsTemplates``) are resolved while loading.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NOT_CONVERTED, NOT_NEEDED, DIFFERENT = "not converted", "not needed", "different"

# helmsman field -> (how it is treated, why); the fields that map are handled in code.
TOP_NOTES = {
    "certificates": (DIFFERENT, "pipelinelib never creates kube contexts: use cluster.context "
                     "or cluster.kubeconfig of an existing kubeconfig"),
    "preconfiguredHelmRepos": (NOT_CONVERTED, "the repository URL is not in the file: set "
                               "chart.repository of each app that uses it"),
}
SETTINGS_NOTES = {
    "username": (DIFFERENT, "credentials never go into a spec: use a kubeconfig"),
    "password": (DIFFERENT, "credentials never go into a spec: use a kubeconfig"),
    "clusterURI": (DIFFERENT, "the cluster comes from the kubeconfig (cluster.context)"),
    "bearerToken": (DIFFERENT, "credentials never go into a spec: use a kubeconfig"),
    "bearerTokenPath": (DIFFERENT, "credentials never go into a spec: use a kubeconfig"),
    "serviceAccount": (NOT_NEEDED, "Tiller (Helm 2) only"),
    "storageBackend": (NOT_NEEDED, "no helm release storage: charts are rendered with `helm "
                       "template` and applied by the rollout step; history is the workloads' "
                       "own revisions"),
    "slackWebhook": (NOT_NEEDED, "the CI server notifies; pipelinelib writes JUnit XML and a "
                     "Markdown summary"),
    "msTeamsWebhook": (NOT_NEEDED, "the CI server notifies; pipelinelib writes JUnit XML and a "
                       "Markdown summary"),
    "reverseDelete": (NOT_CONVERTED, "apps that leave the spec are removed in one step; their "
                      "order is not configurable"),
    "namespaceLabelsAuthoritative": (DIFFERENT, "labels are server-side applied: a label the "
                                     "spec set and later dropped is removed, others are kept"),
    "globalHooks": (NOT_CONVERTED, "helmsman lifecycle hooks (manifests/scripts around helm "
                    "commands): use the chart's own Helm hooks, which apply honours"),
    "skipIgnoredApps": (NOT_NEEDED, "--app selects apps; others are not listed as ignored"),
    "skipPendingApps": (NOT_NEEDED, "no helm release states: the deploy lock serializes runs"),
}
SECRET_TOOLS = ("vault", "eyaml")
APP_NOTES = {
    "group": (DIFFERENT, "select apps with `pipeline apply ENV --app NAME` (repeatable)"),
    "description": (NOT_CONVERTED, "apps carry no description field (kept as a comment)"),
    "secretsFile": (NOT_CONVERTED, "helm-secrets/sops files are not decrypted: reference "
                    "existing Secrets (secrets:) or read values from the environment "
                    "(set: {key: $NAME})"),
    "secretsFiles": (NOT_CONVERTED, "helm-secrets/sops files are not decrypted: reference "
                     "existing Secrets (secrets:) or read values from the environment "
                     "(set: {key: $NAME})"),
    "postRenderer": (NOT_CONVERTED, "no post-renderer: use images:/values, or manifests"),
    "test": (DIFFERENT, "no `helm test`: apply waits for every workload's health and fails "
             "with evidence"),
    "wait": (NOT_NEEDED, "apply always waits for health (timeout)"),
    "noHooks": (NOT_CONVERTED, "a chart's Helm hooks always run"),
    "setFile": (NOT_CONVERTED, "put the file's content into values, or a values file"),
    "helmFlags": (NOT_CONVERTED, "no helm command line: flags have no equivalent"),
    "helmDiffFlags": (NOT_NEEDED, "`pipeline plan` diffs against the cluster itself"),
    "hooks": (NOT_CONVERTED, "helmsman lifecycle hooks (manifests/scripts around helm "
              "commands): use the chart's own Helm hooks, which apply honours"),
}


@dataclass
class Note:
    """One helmsman field that was not carried over: where, how and why."""

    field: str
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.kind} — {self.reason}"


@dataclass
class Conversion:
    """The spec produced (data and YAML text) and every field not carried over."""

    name: str
    spec: dict[str, Any]
    notes: list[Note] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The spec as YAML, headed by where it came from and what was not converted."""
        import yaml

        head = [f"# imported from helmsman: {', '.join(self.sources)}",
                "# by `pipeline import helmsman`; fields not carried over:"]
        head += [f"#   {n}" for n in self.notes] or ["#   (none)"]
        head += [f"# {c}" for c in self.comments]
        body = yaml.safe_dump(self.spec, sort_keys=False, default_flow_style=False, width=100)
        return "\n".join(head) + "\n" + body


def read_dsf(path: Path) -> dict[str, Any]:
    """One helmsman file as data: TOML by its suffix, else YAML (merge keys resolved)."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror or exc}", source=source,
                       expected="a helmsman desired state file") from exc
    if path.suffix == ".toml":
        import tomllib

        try:
            data: Any = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            line = re.search(r"line (\d+)", str(exc))
            raise BadInput(f"not valid TOML: {exc}", source=source,
                           line=int(line.group(1)) if line else None) from exc
    else:
        from pipelinelib.envspec import yamlines

        try:
            data, _ = yamlines.load(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadInput("not UTF-8 text", source=source, expected="YAML or TOML") from exc
        except yamlines.YamlError as exc:
            raise BadInput(f"not valid YAML: {exc}", source=source, line=exc.line) from exc
    if not isinstance(data, dict):
        raise BadInput("not a mapping", source=source,
                       expected="a helmsman desired state file (namespaces, apps, ...)")
    return data


def expand_files(paths: list[Path]) -> list[Path]:
    """The state files to merge: a ``--spec`` style file lists them under ``stateFiles``."""
    out: list[Path] = []
    for path in paths:
        data = read_dsf(path)
        files = data.get("stateFiles")
        if files is None:
            out.append(path)
            continue
        if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(
                f.get("path"), str) for f in files):
            raise BadInput("stateFiles is a list of {path: FILE}", source=str(path),
                           field="stateFiles", expected="- path: FILE")
        out += [(path.parent / f["path"]) for f in files]
    return out


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value not in (None, "", [], {}) or key not in out:  # mergo: empty never wins
            out[key] = value
    return out


def convert(paths: list[Path], name: str | None = None,
            repo: Path | None = None) -> Conversion:
    """Convert the helmsman files ``paths`` (merged in order) into one environment spec.

    ``repo`` is the env-state repository: local paths (values files, charts) are written
    relative to it; without it they stay relative to the first file's directory.
    """
    files = expand_files(paths)
    merged: dict[str, Any] = {}
    for path in files:
        merged = _merge(merged, read_dsf(path))
    base = files[0].parent if files else Path(".")
    conv = Conversion(name="", spec={}, sources=[str(p) for p in files])
    _Converter(merged, conv, base, repo).run(name)
    return conv


class _Converter:
    def __init__(self, dsf: dict[str, Any], conv: Conversion, base: Path, repo: Path | None):
        self.dsf, self.conv, self.base, self.repo = dsf, conv, base, repo

    def note(self, field: str, kind: str, reason: str) -> None:
        self.conv.notes.append(Note(field, kind, reason))

    def run(self, name: str | None) -> None:
        dsf, spec = self.dsf, self.conv.spec
        context = dsf.get("context")
        env = name or (context if isinstance(context, str) and DNS_LABEL.match(context)
                       else None) or "imported"
        self.conv.name = env
        spec.update({"apiVersion": "pipelinelib.dev/v1", "kind": "Environment", "name": env})
        if context and context != env:
            self.note("context", DIFFERENT, f"the environment's name ({env}) identifies what "
                      "it owns (label pipelinelib.dev/environment)")
        self._metadata(dsf.get("metadata") or {})
        settings = dsf.get("settings") or {}
        if settings.get("kubeContext"):
            spec["cluster"] = {"context": str(settings["kubeContext"])}
        for key in sorted(k for k, v in settings.items() if v not in (None, "", [], {})):
            if key in ("kubeContext", "globalMaxHistory"):
                continue
            if key.startswith(SECRET_TOOLS):
                self.note(f"settings.{key}", NOT_CONVERTED, "encrypted values files are not "
                          "decrypted: reference existing Secrets or read values from the "
                          "environment (set: {key: $NAME})")
            elif key in SETTINGS_NOTES:
                self.note(f"settings.{key}", *SETTINGS_NOTES[key])
            else:
                self.note(f"settings.{key}", NOT_CONVERTED, "unknown helmsman setting")
        namespaces = self._namespaces(dsf.get("namespaces") or {})
        if namespaces:
            spec["namespaces"] = namespaces
        if settings.get("globalMaxHistory"):
            spec["defaults"] = {"max_history": int(settings["globalMaxHistory"])}
        for key in sorted(k for k, v in dsf.items() if v not in (None, "", [], {})):
            if key in TOP_NOTES:
                self.note(key, *TOP_NOTES[key])
            elif key not in ("context", "metadata", "settings", "namespaces", "helmRepos",
                             "apps", "appsTemplates", "stateFiles"):
                self.note(key, NOT_CONVERTED, "unknown helmsman field")
        apps = {}
        for key, raw in (dsf.get("apps") or {}).items():
            app = self._app(str(key), raw or {})
            if app is not None:
                apps[app[0]] = app[1]
        spec["apps"] = apps
        if apps:
            self.conv.comments.append("apply deploys only images pinned by digest: where a "
                                      "chart does not pin them, add images: {CONTAINER: "
                                      "{repository: R, digest: sha256:...}} to the app")

    def _metadata(self, metadata: dict[str, Any]) -> None:
        if metadata.get("description"):
            self.conv.spec["description"] = str(metadata["description"])
        for key, value in metadata.items():
            if key != "description":
                self.conv.comments.append(f"metadata {key}: {value}")

    def _namespaces(self, raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, settings in raw.items():
            settings = settings or {}
            at = f"namespaces.{name}"
            if not DNS_LABEL.match(str(name)):
                self.note(at, NOT_CONVERTED, "not a DNS label")
                continue
            ns: dict[str, Any] = {}
            if settings.get("protected"):
                ns["protected"] = True
            for key in ("labels", "annotations"):
                if settings.get(key):
                    ns[key] = {str(k): str(v) for k, v in settings[key].items()}
            limits = [self._limit(lim) for lim in settings.get("limits") or []]
            if limits:
                ns["limits"] = limits
            quotas = dict(settings.get("quotas") or {})
            custom = quotas.pop("customQuotas", None) or []
            hard = {str(k): str(v) for k, v in quotas.items() if v not in (None, "")}
            hard.update({str(c["name"]): str(c["value"]) for c in custom
                         if isinstance(c, dict) and c.get("name")})
            if hard:
                ns["quotas"] = hard
            for key in sorted(set(settings) - {"protected", "labels", "annotations", "limits",
                                                "quotas"}):
                self.note(f"{at}.{key}", NOT_CONVERTED, "unknown namespace field")
            out[str(name)] = ns
        return out

    @staticmethod
    def _limit(raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"type": raw.get("type", "Container")}
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            values = {str(k): str(v) for k, v in (raw.get(key) or {}).items() if v}
            if values:
                out[key] = values
        return out

    def _app(self, key: str, raw: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        name = str(raw.get("name") or key)
        at = f"apps.{key}"
        if not DNS_LABEL.match(name):
            self.note(at, NOT_CONVERTED, f"release name {name!r} is not a DNS label")
            return None
        app: dict[str, Any] = {}
        if raw.get("namespace"):
            app["namespace"] = str(raw["namespace"])
        if raw.get("enabled") is not True:
            app["enabled"] = False  # helmsman: enabled defaults to false
        chart = self._chart(at, str(raw.get("chart") or ""), str(raw.get("version") or ""))
        if chart is None:
            return None
        app["chart"] = chart
        files = [raw["valuesFile"]] if raw.get("valuesFile") else []
        files += list(raw.get("valuesFiles") or [])
        paths = [p for p in (self._local(f"{at}.valuesFiles", f) for f in files) if p]
        if paths:
            app["values_files"] = paths
        for ours, theirs in (("set", "set"), ("set_string", "setString")):
            values = raw.get(theirs) or {}
            if values:
                app[ours] = {str(k): v for k, v in values.items()}
        for ours, theirs in (("priority", "priority"), ("timeout", "timeout"),
                             ("max_history", "maxHistory")):
            if raw.get(theirs):
                app[ours] = int(raw[theirs])
        if raw.get("protected"):
            app["protected"] = True
        if raw.get("description"):
            self.conv.comments.append(f"app {name}: {raw['description']}")
        for field_name in sorted(raw):
            if field_name in APP_NOTES and raw[field_name] not in (None, "", [], {}, False):
                if field_name in ("test", "wait", "noHooks") and raw[field_name] is False:
                    continue
                kind, reason = APP_NOTES[field_name]
                if field_name == "helmFlags":
                    reason += f" ({' '.join(map(str, raw[field_name]))})"
                self.note(f"{at}.{field_name}", kind, reason)
            elif field_name not in APP_NOTES and field_name not in (
                    "name", "namespace", "enabled", "chart", "version", "valuesFile",
                    "valuesFiles", "set", "setString", "priority", "timeout", "maxHistory",
                    "protected"):
                self.note(f"{at}.{field_name}", NOT_CONVERTED, "unknown helmsman app field")
        return name, app

    def _chart(self, at: str, chart: str, version: str) -> dict[str, str] | None:
        repos = self.dsf.get("helmRepos") or {}
        if chart.startswith("oci://"):
            where, _, chart_name = chart.rpartition("/")
            return {"name": chart_name, "repository": where, "version": version}
        if chart.startswith((".", "/")):
            local = self._local(f"{at}.chart", chart)
            if local is None:
                return None
            return {"name": Path(chart).name, "repository": local, "version": version or "0"}
        repo, _, chart_name = chart.partition("/")
        url = repos.get(repo)
        if not chart_name or not isinstance(url, str):
            self.note(f"{at}.chart", NOT_CONVERTED, f"chart {chart!r}: repository {repo!r} "
                      "is not in helmRepos (preconfigured?): set chart.repository")
            return None
        if not url.startswith(("http://", "https://", "oci://")):
            self.note(f"{at}.chart", NOT_CONVERTED, f"chart repository {url!r}: only http(s), "
                      "oci:// and local charts are read")
            return None
        if "@" in url.split("//", 1)[1].split("/", 1)[0]:
            self.note(f"helmRepos.{repo}", DIFFERENT, "credentials in a repository URL are "
                      "not kept: helm runs with a private, empty configuration")
            return None
        return {"name": chart_name, "repository": url, "version": version}

    def _local(self, at: str, path: str) -> str | None:
        """A local file path relative to the env-state repository (or the DSF's folder)."""
        if re.match(r"^[a-z0-9]+://", path):
            self.note(at, NOT_CONVERTED, f"{path!r}: only files in the env-state repository")
            return None
        full = (self.base / path).resolve()
        if self.repo is None:
            return os.path.normpath(path)
        try:
            return str(full.relative_to(self.repo.resolve()))
        except ValueError:
            self.note(at, NOT_CONVERTED, f"{path!r} is outside the env-state repository")
            return None
