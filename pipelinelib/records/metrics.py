"""The deployment history and DORA metrics, read from git alone (plus the audit JSONL).

Sources, merged by deployment id (one deployment counted once):

- state notes: each ``history`` entry with an ``annotation`` is a deployment attempt
  (``Successfully Deployed`` -> success, ``Failed Deployment`` -> failure); a ``broken``
  entry without one (marked by hand later) turns that commit's last deployment in the
  same environment into a failure from then on (an incident);
- deployment tags: a tag whose deployment id no note mentions is a success at its time;
- the audit JSONL (optional): ``deployment`` events not seen above.

Metrics over a window (per environment, or all):

- deployment frequency: successful deployments per day;
- lead time for changes: commit time (committer date) -> successful deployment time;
- change failure rate: failed deployments / all deployments;
- time to restore: a failure -> the next successful deployment in the same environment.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib.records import format as fmt

SUCCESS, FAILURE = fmt.ANNOTATIONS["success"], fmt.ANNOTATIONS["failure"]


@dataclass
class Deployment:
    """One deployment attempt."""

    time: dt.datetime
    environment: str
    commit: str
    result: str  # success | failure
    deployment_id: str = ""
    tag: str = ""
    actor: str = ""
    digest: str = ""
    build_url: str = ""
    commit_time: dt.datetime | None = None
    source: str = ""
    failed_at: dt.datetime | None = None  # when it was found broken (an incident), if later

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("time", "commit_time", "failed_at"):
            value = data[key]
            data[key] = value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
        return data


def _from_notes(notes: dict[str, Any]) -> tuple[list[Deployment], list[tuple[str, str, Any]]]:
    deployments, marks = [], []
    for commit, note in notes.items():
        for entry in note.history:
            when = fmt.parse_time(entry.get("time"))
            if when is None:
                continue
            annotation = entry.get("annotation")
            env = str(entry.get("environment") or "")
            if annotation in (SUCCESS, FAILURE):
                deployments.append(Deployment(
                    when, env, commit, "success" if annotation == SUCCESS else "failure",
                    str(entry.get("deployment_id") or ""), str(entry.get("tag") or ""),
                    str(entry.get("actor") or ""), str(entry.get("digest") or ""),
                    str(entry.get("build_url") or ""), source="note"))
            elif entry.get("state") == "broken":
                marks.append((commit, env, when))
    return deployments, marks


def collect(repo: Any, audit_file: str | None = None, fetch: bool = True) -> list[Deployment]:
    """Every deployment attempt the records hold, oldest first.

    ``fetch`` first brings tags and notes from the remote; without it only the local clone
    is read (the notes as last fetched: the local ref, else the remote-tracking copy)."""
    from pipelinelib.records import states, tags

    if fetch:
        if repo.remote is not None:
            repo.fetch([fmt.TAGS_REFSPEC])
        states.fetch_notes(repo)
    elif repo.ref_sha(fmt.NOTES_REF) is None and repo.ref_sha(fmt.NOTES_TRACKING_REF):
        repo.update_ref(fmt.NOTES_REF, repo.ref_sha(fmt.NOTES_TRACKING_REF))
    deployments, marks = _from_notes(states.read_all(repo))
    seen = {d.deployment_id for d in deployments if d.deployment_id}
    for tag in tags.read_tags(repo):
        if tag.deployment_id and tag.deployment_id in seen:
            continue
        when = fmt.parse_time(tag.fields.get("time"))
        if when is None:
            continue
        deployments.append(Deployment(when, tag.environment, tag.commit, "success",
                                      tag.deployment_id, tag.name,
                                      str(tag.fields.get("actor") or ""),
                                      str(tag.fields.get("digest") or ""),
                                      str(tag.fields.get("build_url") or ""), source="tag"))
        seen.add(tag.deployment_id)
    if audit_file:
        from pipelinelib.records.audit import read_jsonl

        for event in read_jsonl(audit_file):
            details = event.get("details") or {}
            dep_id = str(details.get("deployment_id") or "")
            when = fmt.parse_time(event.get("@timestamp"))
            if event.get("action") != "deployment" or when is None or (dep_id and dep_id in seen):
                continue
            if event.get("result") not in ("success", "failure") or not event.get("revision"):
                continue
            deployments.append(Deployment(
                when, str(event.get("environment") or event.get("to") or ""),
                str(event["revision"]), str(event["result"]), dep_id,
                str(details.get("tag") or ""), str(event.get("user") or ""),
                str(event.get("digest") or ""), str(event.get("build_url") or ""),
                source="audit"))
            if dep_id:
                seen.add(dep_id)
    for commit, env, when in marks:  # found broken later: its last deployment failed
        earlier = [d for d in deployments if d.commit == commit and d.result == "success"
                   and (not env or d.environment == env) and d.time <= when]
        if earlier:
            latest = max(earlier, key=lambda d: d.time)
            latest.failed_at = latest.failed_at or when
    times = repo.commit_times(d.commit for d in deployments)
    for d in deployments:
        if d.commit in times:
            d.commit_time = dt.datetime.fromtimestamp(times[d.commit], dt.timezone.utc)
    # the records' times have whole seconds: within one, the tags' numbers (given as they
    # are made, in the repository's series or the environment's) tell the order
    def order(d: Deployment) -> tuple[dt.datetime, int]:
        numbers = (tags.tag_number(d.tag, tags.tag_prefix(series))
                   for series in (None, d.environment))
        return d.time, next((n for n in numbers if n is not None), -1)
    return sorted(deployments, key=order)


def deployed_in(repo: Any, environment: str) -> Deployment | None:
    """The latest successful deployment to ``environment`` the records hold (None: never)."""
    done = [d for d in collect(repo) if d.environment == environment and d.result == "success"]
    return done[-1] if done else None


@dataclass
class Metrics:
    """DORA metrics for one window; durations in hours."""

    environment: str
    since: str
    until: str
    days: float
    deployments: int
    successful: int
    failed: int
    deployment_frequency_per_day: float
    lead_time_hours_median: float | None
    lead_time_hours_mean: float | None
    change_failure_rate: float | None
    time_to_restore_hours_median: float | None
    restores: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hours(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 3600, 3)


def compute(deployments: list[Deployment], *, environment: str = "",
            since: dt.datetime, until: dt.datetime) -> Metrics:
    """The metrics of ``deployments`` in [since, until] (one environment, or all)."""
    mine = [d for d in deployments if (not environment or d.environment == environment)]
    window = [d for d in mine if since <= d.time <= until]
    failed = [d for d in window if d.result == "failure" or d.failed_at is not None]
    ok = [d for d in window if d.result == "success"]
    days = max((until - since).total_seconds() / 86400, 1e-9)
    leads = [_hours(d.time - d.commit_time) for d in ok if d.commit_time is not None]
    restores: list[dict[str, Any]] = []
    for fail in failed:
        start = fail.failed_at or fail.time
        fixed = next((d for d in mine if d.environment == fail.environment
                      and d.result == "success" and d.failed_at is None and d.time > start), None)
        if fixed is not None:
            restores.append({"environment": fail.environment, "failed": fail.commit,
                             "restored_by": fixed.commit, "hours": _hours(fixed.time - start)})
    return Metrics(
        environment=environment or "(all)", since=since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        until=until.strftime("%Y-%m-%dT%H:%M:%SZ"), days=round(days, 3),
        deployments=len(window), successful=len(ok), failed=len(failed),
        deployment_frequency_per_day=round(len(ok) / days, 3),
        lead_time_hours_median=round(statistics.median(leads), 3) if leads else None,
        lead_time_hours_mean=round(statistics.fmean(leads), 3) if leads else None,
        change_failure_rate=round(len(failed) / len(window), 3) if window else None,
        time_to_restore_hours_median=(
            round(statistics.median(r["hours"] for r in restores), 3) if restores else None),
        restores=restores,
    )


def last_fetched(repo: Any) -> dt.datetime | None:
    """When the clone last fetched from its remote (FETCH_HEAD), else when it was cloned
    (its first reflog entry of HEAD); None when git holds neither."""
    git_dir = Path(repo.repo.git_dir)
    for candidate in (git_dir / "FETCH_HEAD", git_dir / "logs" / "HEAD"):
        if candidate.exists():
            if candidate.name == "HEAD":
                first = candidate.read_text(errors="replace").split("\n", 1)[0]
                match = re.search(r"> (\d+) [+-]\d{4}\t", first)
                if match:
                    return dt.datetime.fromtimestamp(int(match.group(1)), dt.timezone.utc)
                continue
            return dt.datetime.fromtimestamp(candidate.stat().st_mtime, dt.timezone.utc)
    return None
