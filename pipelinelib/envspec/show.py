"""Human output: a plan like ``terraform plan``, and the status table."""

from __future__ import annotations

import json
from typing import Any

_SIGN = {"create": "+", "update": "~", "delete": "-", "none": " "}
_FRIENDLY = (
    ("spec.template.spec.containers", "container"),
    ("spec.template.metadata.annotations", "pod annotation"),
    ("spec.replicas", "replicas"),
    ("spec.rules", "dns"),
    ("data.", "config."),
)


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 90 else text[:87] + "..."


def friendly(field: str) -> str:
    """``spec.template.spec.containers[web].image`` -> ``container[web].image``."""
    for prefix, name in _FRIENDLY:
        if field.startswith(prefix):
            return name + field[len(prefix):]
    return field


def format_plan(env: str, plans: list[dict[str, Any]],
                namespaces: list[dict[str, Any]] | None = None) -> str:
    """The plan as text: one block per namespace and app that would change, then a summary."""
    out = [f"Environment {env}:"]
    ns_pending = [n for n in namespaces or [] if n["action"] != "none"]
    for n in ns_pending:
        out.append(f"{_SIGN[n['action']]} namespace {n['namespace']}  ({n['action']}"
                   + (", protected)" if n["protected"] else ")"))
        out += [f"    {change}" for change in n["changes"]]
    pending = [p for p in plans if p["action"] != "none"]
    for p in pending:
        head = f"{_SIGN[p['action']]} {p['app']}  ({p['action']}, namespace {p['namespace']}"
        head += (f", priority {p['priority']})" if p["priority"] < 10**6 else
                 ", enabled: false)" if p.get("disabled") else ", not in the spec)")
        if p.get("strategy") == "blue-green":
            head += f"  blue/green, live colour {p.get('live_color') or '(none yet)'}"
        out.append(head)
        if p.get("awaiting_promotion"):
            out.append(f"    = {p['awaiting_promotion']} already runs this spec, ready; awaiting "
                       f"promotion: `pipeline swap --env {env} --app {p['app']}` makes it live")
        for obj in p["creates"]:
            out.append(f"    + {obj}")
        for c in p["changes"]:
            mark = "!" if c["drift"] else "~"
            line = (f"    {mark} {c['object']} {friendly(c['field'])}: {_value(c['live'])} -> "
                    f"{_value(c['desired'])}")
            out.append(line + ("   (drift: changed by hand in the cluster)" if c["drift"] else ""))
        for obj in p["deletes"]:
            out.append(f"    - {obj}")
        for hook in p.get("hooks") or []:
            out.append(f"    > hook {hook}")
    unchanged = len(plans) - len(pending)
    counts = {a: sum(p["action"] == a for p in plans) for a in ("create", "update", "delete")}
    drifted = sum(p["drift"] for p in plans)
    if ns_pending:
        out.append(f"Namespaces: {len(ns_pending)} to create or change.")
    if pending:
        out.append(f"Plan: {counts['create']} to create, {counts['update']} to change, "
                   f"{counts['delete']} to delete, {unchanged} unchanged"
                   + (f"; {drifted} drifted (live changed by hand)" if drifted else "") + ".")
    elif not ns_pending:
        out.append(f"No changes. {len(plans)} apps match the spec.")
    return "\n".join(out)


STATUS_COLUMNS = ("environment", "app", "image", "revision", "version", "deployed_by",
                  "deployed_when", "health", "sync")


def _cells(row: dict[str, Any]) -> list[str]:
    sync = "drift" if row["drift"] else ("in sync" if row["in_sync"] else "changes pending")
    if row.get("hotfix"):
        sync += ", hot-fix" + ("" if row.get("hotfix_back_merged") else " NOT BACK-MERGED")
    image = row["digest"][:19] if row["digest"] else f":{row['tag']}"
    if row.get("deployed") is False:  # nothing runs: no image to show (the spec's is wanted)
        image = "-"
    return [row["environment"], row["app"], image,
            (row["revision"] or "")[:12], row["version"] or "", row.get("deployed_by", ""),
            (row.get("deployed_when") or "")[:19], row["health"], sync]


def format_status(rows: list[dict[str, Any]]) -> str:
    """A plain-text table."""
    table = [list(STATUS_COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(STATUS_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
                     for r in table)


