"""A self-contained HTML page of the DORA metrics: the figures, a chart of deployments per
day (successful and failed), and the history. No scripts and no external files, so a CI
server can publish it as a build artifact (Jenkins ``publishHTML``, a GoCD artifact tab).
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from typing import Any

BAR_WIDTH, GAP, HEIGHT, LEFT, BOTTOM = 14, 4, 160, 30, 24
STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
         ".ok{fill:#2e7d32}.failed{fill:#c62828}.axis{stroke:#888}text{font-size:10px}"
         "tr.failure td,tr.broken td{background:#fdecea}")


def per_day(deployments: list[Any], since: dt.datetime, until: dt.datetime
            ) -> list[tuple[dt.date, int, int]]:
    """(day, successful, failed) for every day of the window, oldest first."""
    ok: Counter[dt.date] = Counter()
    failed: Counter[dt.date] = Counter()
    for d in deployments:
        (ok if d.result == "success" and not d.failed_at else failed)[d.time.date()] += 1
    days, day = [], since.date()
    while day <= until.date():
        days.append((day, ok[day], failed[day]))
        day += dt.timedelta(days=1)
    return days


def chart_svg(days: list[tuple[dt.date, int, int]]) -> str:
    """Stacked bars, one per day: successful (green) under failed (red)."""
    top = max((s + f for _, s, f in days), default=0) or 1
    scale = (HEIGHT - BOTTOM - 10) / top
    width = LEFT + len(days) * (BAR_WIDTH + GAP) + 10
    base = HEIGHT - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
             f'role="img" aria-label="deployments per day">',
             f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{width - 5}" y2="{base}"/>',
             f'<text x="2" y="14">{top}</text><text x="2" y="{base}">0</text>']
    for i, (day, ok, failed) in enumerate(days):
        x = LEFT + i * (BAR_WIDTH + GAP)
        ok_h, failed_h = ok * scale, failed * scale
        label = f"{day.isoformat()}: {ok} successful, {failed} failed"
        if ok:
            parts.append(f'<rect class="ok" x="{x}" y="{base - ok_h:.1f}" width="{BAR_WIDTH}" '
                         f'height="{ok_h:.1f}"><title>{label}</title></rect>')
        if failed:
            parts.append(f'<rect class="failed" x="{x}" y="{base - ok_h - failed_h:.1f}" '
                         f'width="{BAR_WIDTH}" height="{failed_h:.1f}"><title>{label}</title>'
                         "</rect>")
        if i % 7 == 0 or i == len(days) - 1:
            parts.append(f'<text x="{x}" y="{HEIGHT - 8}">{day.strftime("%m-%d")}</text>')
    parts.append("</svg>")
    return "".join(parts)


def metrics_html(metrics: dict[str, Any], deployments: list[Any], since: dt.datetime,
                 until: dt.datetime) -> str:
    """The page for one window; ``metrics`` is ``Metrics.to_dict()``."""
    def num(value: Any, unit: str = "") -> str:
        return "n/a" if value is None else f"{value}{unit}"

    figures = [
        ("deployments", f"{metrics['deployments']} ({metrics['successful']} successful, "
                        f"{metrics['failed']} failed)"),
        ("deployment frequency", f"{metrics['deployment_frequency_per_day']} per day"),
        ("lead time for changes", f"median {num(metrics['lead_time_hours_median'], ' h')}, "
                                  f"mean {num(metrics['lead_time_hours_mean'], ' h')}"),
        ("change failure rate", num(metrics["change_failure_rate"])),
        ("time to restore", f"median {num(metrics['time_to_restore_hours_median'], ' h')}"),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in figures)
    history = "".join(
        f'<tr class="{"broken" if d.failed_at else d.result}">' + "".join(
            f"<td>{html.escape(str(c))}</td>" for c in (
                d.time.strftime("%Y-%m-%dT%H:%M:%SZ"), d.environment,
                "broken" if d.failed_at else d.result, d.commit[:12], d.tag or "-",
                d.actor or "-"))
        + "</tr>" for d in deployments)
    title = f"DORA metrics: {metrics['environment']}"
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(metrics['since'])} .. {html.escape(metrics['until'])} "
            f"({metrics['days']} days)</p><table>{rows}</table>"
            f"<h2>Deployments per day</h2>{chart_svg(per_day(deployments, since, until))}"
            "<h2>History</h2><table><tr><th>time</th><th>environment</th><th>result</th>"
            f"<th>commit</th><th>tag</th><th>actor</th></tr>{history}</table></body></html>\n")
