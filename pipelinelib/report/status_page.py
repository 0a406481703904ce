"""The status page: apps x environments in promotion order, one self-contained HTML file.

Columns are the environments in promotion order (``int-test -> qa -> preprod -> prod``,
``sandbox -> staging -> live``: pipelinelib.envspec.order), one group per promotion line;
rows are the apps. Each cell shows what runs there - version and short digest - coloured for
health (healthy / degraded / not deployed) with a sync badge (in sync, pending, drift); a
``≠`` marker where the digest differs from the previous environment of the line that runs
the app (what a promotion would move); a hot-fix not merged back is flagged in red.

Inline CSS only: no script, no outside link, so a CI server can publish it as an artifact.
Every cell carries ``data-*`` attributes (environment, app, health, sync, differs, hotfix)
for tools and tests that read the page's DOM.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}p.meta{color:#5b6472;margin:0 0 16px}
table{border-collapse:separate;border-spacing:6px;}
th{font-weight:600;text-align:left;padding:4px 8px;color:#39414d}
th.line{color:#7a8391;font-weight:500;font-size:12px;text-transform:uppercase}
th.app{font-family:ui-monospace,monospace;background:#fff;border-radius:6px}
td.cell{min-width:150px;padding:8px 10px;border-radius:8px;border:2px solid transparent;
 vertical-align:top;background:#fff}
td.healthy{background:#e3f6e8;border-color:#3fa45b}
td.degraded{background:#fdecd2;border-color:#e08a00}
td.missing{background:#fbe3e3;border-color:#d64545}
td.not-deployed{background:#eceef2;border-color:#c3c8d0;color:#5b6472}
td.absent{background:transparent;color:#b0b6bf;text-align:center}
.version{font-weight:600;font-size:15px}.digest{font-family:ui-monospace,monospace;font-size:12px;
 color:#4a5260}
.badge{display:inline-block;margin-top:4px;padding:1px 6px;border-radius:10px;font-size:11px;
 font-weight:600}
.sync-in{background:#cdeed6;color:#1f6b35}.sync-pending{background:#fff1c2;color:#7a5a00}
.sync-drift{background:#f7c6c6;color:#8a1c1c}
.differs{float:right;font-weight:700;color:#6b3fd6;font-size:16px}
.hotfix{display:block;margin-top:4px;padding:2px 6px;border-radius:4px;background:#d64545;
 color:#fff;font-size:11px;font-weight:700}
.hotfix.merged{background:#8fa3b8}
.arrow{color:#a0a7b2;padding:0 2px}
.legend span{margin-right:14px}.health{font-size:12px;color:#8a4b00;font-weight:600}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;
 border:1px solid}
.sw.healthy{background:#e3f6e8;border-color:#3fa45b}.sw.degraded{background:#fdecd2;
 border-color:#e08a00}.sw.not-deployed{background:#eceef2;border-color:#c3c8d0}
"""


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if digest else ""


def _cell(row: dict[str, Any] | None, previous: dict[str, Any] | None) -> str:
    if row is None:
        return '<td class="cell absent" data-absent="true">—</td>'
    env, app = row["environment"], row["app"]
    deployed = row.get("deployed", row.get("health") != "missing")
    digest = row.get("live_digest") or ""
    health = row.get("health", "")
    if not deployed:
        klass, health_key = "not-deployed", "not-deployed"
    elif health == "healthy" or health == "scaled to 0":
        klass, health_key = "healthy", "healthy"
    else:
        klass, health_key = "degraded", "degraded"
    if row.get("drift"):
        sync, sync_text = "drift", "drift"
    elif row.get("in_sync"):
        sync, sync_text = "in", "in sync"
    else:
        sync, sync_text = "pending", "not in sync"
    prev_digest = (previous or {}).get("live_digest") or ""
    differs = bool(deployed and previous is not None and prev_digest and digest
                   and prev_digest != digest)
    hotfix, hotfix_key = "", "none"
    if row.get("hotfix"):
        merged = row.get("hotfix_back_merged") is True
        hotfix_key = "merged" if merged else "open"
        hotfix = ('<span class="hotfix merged">hot-fix, merged back</span>' if merged else
                  '<span class="hotfix">HOT-FIX not merged back</span>')
    if deployed:
        version = html.escape(str(row.get("version") or row.get("tag") or "?"))
        body = (f'<div class="version">{version}</div>'
                f'<div class="digest" title="{html.escape(digest)}">'
                f'{html.escape(_short(digest)) or "no digest"}</div>')
        if klass == "degraded":
            body += f'<div class="health">{html.escape(health)}</div>'
        if row.get("live_color"):
            body += f'<div class="digest">live colour {html.escape(row["live_color"])}</div>'
    else:
        wanted = html.escape(str(row.get("tag") or _short(row.get("digest") or "") or "?"))
        body = f'<div class="version">not deployed</div><div class="digest">wants {wanted}</div>'
    marker = ('<span class="differs" title="differs from the previous environment">≠</span>'
              if differs else "")
    attrs = (f'data-environment="{html.escape(env)}" data-app="{html.escape(app)}" '
             f'data-health="{health_key}" data-sync="{sync}" '
             f'data-differs="{str(differs).lower()}" '
             f'data-hotfix="{hotfix_key}" '
             f'data-digest="{html.escape(digest)}"')
    return (f'<td class="cell {klass}" {attrs}>{marker}{body}'
            f'<span class="badge sync-{sync}">{sync_text}</span>{hotfix}</td>')


def status_page(rows: Sequence[dict[str, Any]], lines: Sequence[Sequence[str]],
                generated: str, title: str = "What is deployed where") -> str:
    """The page for ``rows`` (pipelinelib.steps.status) with environments in ``lines``
    (promotion lines, each in order)."""
    by = {(r["environment"], r["app"]): r for r in rows}
    envs_with_rows = {r["environment"] for r in rows}
    lines = [[e for e in line if e in envs_with_rows] for line in lines]
    lines = [line for line in lines if line]
    placed = {e for line in lines for e in line}
    extra = sorted(envs_with_rows - placed)
    if extra:
        lines.append(extra)
    apps = sorted({r["app"] for r in rows})
    group_head = "".join(
        f'<th class="line" colspan="{len(line)}">{" → ".join(map(html.escape, line))}</th>'
        for line in lines)
    env_head = "".join(f'<th data-environment="{html.escape(e)}">{html.escape(e)}</th>'
                       for line in lines for e in line)
    body = []
    for app in apps:
        cells = []
        for line in lines:
            previous: dict[str, Any] | None = None
            for env in line:
                row = by.get((env, app))
                cells.append(_cell(row, previous))
                if row is not None and row.get("deployed", row.get("health") != "missing"):
                    previous = row
        body.append(f'<tr data-app="{html.escape(app)}"><th class="app">{html.escape(app)}'
                    f'</th>{"".join(cells)}</tr>')
    legend = ('<p class="legend"><span><i class="sw healthy"></i>healthy</span>'
              '<span><i class="sw degraded"></i>degraded</span>'
              '<span><i class="sw not-deployed"></i>not deployed</span>'
              '<span>≠ digest differs from the previous environment</span>'
              '<span>badge: in sync / not in sync / drift with the env-state repository</span>'
              '</p>')
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"meta\">Generated {html.escape(generated)}"
            f" · {len(apps)} apps in {sum(map(len, lines))} environments</p>"
            f'<table><thead><tr><th></th>{group_head}</tr><tr><th>app</th>{env_head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table>{legend}</body></html>\n')
