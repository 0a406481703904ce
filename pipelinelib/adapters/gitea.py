"""Gitea over its REST API (``/api/v1``): repositories, pull requests, reviews, statuses.

Thin and typed: the queue and the pull-request promotion decide *what* to do; this module
only talks to the server and translates its errors. Authentication is an access token
(``Authorization: token T``) or basic auth; an admin client can act as another user
(``sudo``, Gitea's ``Sudo`` header) — the tests use that to play reviewers.

- repositories   POST /user/repos, GET/DELETE /repos/{owner}/{repo}, PUT .../collaborators/{u}
- pull requests  GET/POST /repos/{o}/{r}/pulls, GET/PATCH .../pulls/{n}, POST .../pulls/{n}/merge
- reviews        GET/POST /repos/{o}/{r}/pulls/{n}/reviews
- statuses       POST/GET /repos/{o}/{r}/statuses/{sha}
- comments       GET/POST /repos/{o}/{r}/issues/{n}/comments
- branch rules   POST /repos/{o}/{r}/branch_protections

Errors: 401 -> ``Refused`` (credentials), 403 -> ``Refused`` with Gitea's message, 404 ->
``BadInput`` (unknown repository, pull request or user), 405/409/422 -> ``StepFailed`` with
Gitea's message (not retried; a merge the mergeability check has not cleared yet answers
405 "Please try again later" and is retried by ``merge`` itself, bounded). Connection
errors, 429 and 5xx are retried (jittered, bounded), then ``Unreachable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
import structlog

from pipelinelib.errors import BadInput, Refused, StepFailed, TransientError, Unreachable
from pipelinelib.retry import HTTPStatusError, transient_retry

STATES = ("pending", "success", "error", "failure", "warning")
_RETRIED = frozenset({429, 500, 502, 503, 504})


class _GiteaHTTPError(HTTPStatusError):
    """Internal: a retried error status (429, 5xx)."""


class _Final(Exception):
    """Internal: an error status that is never retried (4xx)."""

    def __init__(self, response: requests.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


@dataclass(frozen=True)
class PullRequest:
    """One pull request as Gitea reports it."""

    number: int
    title: str
    body: str
    state: str  # open | closed
    merged: bool
    head: str
    base: str
    head_sha: str
    author: str
    merge_commit: str = ""
    mergeable: bool = False
    url: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PullRequest:
        head, base = data.get("head") or {}, data.get("base") or {}
        return cls(number=int(data["number"]), title=data.get("title") or "",
                   body=data.get("body") or "", state=data.get("state") or "",
                   merged=bool(data.get("merged")), head=head.get("ref") or "",
                   base=base.get("ref") or "", head_sha=head.get("sha") or "",
                   author=(data.get("user") or {}).get("login") or "",
                   merge_commit=data.get("merge_commit_sha") or "",
                   mergeable=bool(data.get("mergeable")), url=data.get("html_url") or "")


@dataclass(frozen=True)
class Review:
    """One review of a pull request (``state``: APPROVED, REQUEST_CHANGES, COMMENT ...)."""

    id: int
    user: str
    state: str
    commit: str
    dismissed: bool = False
    stale: bool = False
    submitted_at: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Review:
        return cls(id=int(data["id"]), user=(data.get("user") or {}).get("login") or "",
                   state=data.get("state") or "", commit=data.get("commit_id") or "",
                   dismissed=bool(data.get("dismissed")), stale=bool(data.get("stale")),
                   submitted_at=data.get("submitted_at") or "")


@dataclass(frozen=True)
class CommitStatus:
    """One commit status (the latest per ``context`` is what counts)."""

    context: str
    state: str
    description: str = ""
    target_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class GiteaClient:
    """One Gitea server (base URL without ``/api/v1``)."""

    def __init__(self, url: str, *, token: str | None = None, username: str | None = None,
                 password: str | None = None, sudo: str | None = None, timeout: float = 20.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"
        elif username and password:
            self.session.auth = (username, password)
        if sudo:
            self.session.headers["Sudo"] = sudo
        self.username = username or ""
        self.timeout = timeout
        self.sleep = sleep
        self.log = structlog.get_logger("pipelinelib.gitea").bind(gitea=self.url)
        self._auth = (token, username, password)

    @classmethod
    def login(cls, url: str | None, user: str | None, token: str | None,
              password: str | None, **kwargs: Any) -> GiteaClient:
        """Logged in to ``url`` with an access token, or a user and password (the
        context's ``Credentials.gitea``: ``PIPELINELIB_GITEA_URL``, ``_TOKEN``, ``_USER``,
        ``_PASSWORD``, already secrets there). BadInput without a URL or a login."""
        if not url:
            raise BadInput("no git server configured", field="PIPELINELIB_GITEA_URL",
                           expected="the Gitea base URL, e.g. https://git.example.org")
        if not token and not (user and password):
            raise BadInput("no git server credentials", field="PIPELINELIB_GITEA_TOKEN",
                           expected="an access token, or PIPELINELIB_GITEA_USER and "
                                    "PIPELINELIB_GITEA_PASSWORD")
        return cls(url, token=token, username=user, password=password, **kwargs)

    def as_user(self, user: str) -> GiteaClient:
        """The same (admin) credentials acting as ``user`` (Gitea's ``Sudo`` header)."""
        token, username, password = self._auth
        return GiteaClient(self.url, token=token, username=username, password=password,
                           sudo=user, timeout=self.timeout, sleep=self.sleep)

    # -- server, users, repositories -----------------------------------------------------------
    def version(self) -> str:
        return str(self._json("GET", "/version", what="version").get("version", ""))

    def me(self) -> str:
        """The login the credentials (and ``sudo``) act as."""
        return str(self._json("GET", "/user", what="current user").get("login", ""))

    def create_user(self, name: str, password: str, email: str = "") -> None:
        """Admin: create a user (no password change forced)."""
        self._json("POST", "/admin/users", what=f"user {name}", body={
            "username": name, "password": password, "email": email or f"{name}@example.invalid",
            "must_change_password": False, "send_notify": False})

    def create_token(self, name: str, scopes: list[str] | None = None) -> str:
        """A new access token of the current (basic-auth) user; returned once by Gitea."""
        data = self._json("POST", f"/users/{_q(self.username)}/tokens", what=f"token {name}",
                          body={"name": name, "scopes": scopes or [
                              "write:repository", "write:issue", "read:user"]})
        return str(data.get("sha1") or "")

    def delete_token(self, name: str) -> None:
        """Delete one of the current user's access tokens (by name)."""
        self._json("DELETE", f"/users/{_q(self.username)}/tokens/{_q(name)}",
                   what=f"token {name}", missing_ok=True)

    def delete_user(self, name: str) -> None:
        """Admin: delete a user (and, with ``purge``, what they own)."""
        self._json("DELETE", f"/admin/users/{_q(name)}?purge=true", what=f"user {name}",
                   missing_ok=True)

    def create_repo(self, name: str, *, default_branch: str = "master",
                    private: bool = False) -> dict[str, Any]:
        """A new empty repository owned by the current user."""
        created: dict[str, Any] = self._json("POST", "/user/repos", what=f"repository {name}",
                                             body={"name": name, "private": private,
                                                   "default_branch": default_branch,
                                                   "auto_init": False})
        return created

    def repo(self, owner: str, repo: str) -> dict[str, Any]:
        """The repository as Gitea reports it (``empty``, ``default_branch`` ...)."""
        found: dict[str, Any] = self._json("GET", f"/repos/{_q(owner)}/{_q(repo)}",
                                           what=f"{owner}/{repo}")
        return found

    def delete_repo(self, owner: str, repo: str) -> None:
        self._json("DELETE", f"/repos/{_q(owner)}/{_q(repo)}", what=f"{owner}/{repo}",
                   missing_ok=True)

    def add_collaborator(self, owner: str, repo: str, user: str,
                         permission: str = "write") -> None:
        self._json("PUT", f"/repos/{_q(owner)}/{_q(repo)}/collaborators/{_q(user)}",
                   what=f"collaborator {user}", body={"permission": permission})

    def protect_branch(self, owner: str, repo: str, branch: str, *, approvals: int = 1,
                       approvers: list[str] | None = None) -> None:
        """Branch protection: ``approvals`` approving reviews, optionally only from
        ``approvers`` (Gitea's approvals whitelist); no direct pushes."""
        body: dict[str, Any] = {"rule_name": branch, "branch_name": branch,
                                "enable_push": False, "required_approvals": approvals,
                                "block_on_rejected_reviews": True,
                                "dismiss_stale_approvals": True}
        if approvers:
            body |= {"enable_approvals_whitelist": True,
                     "approvals_whitelist_username": approvers}
        self._json("POST", f"/repos/{_q(owner)}/{_q(repo)}/branch_protections",
                   what=f"protection of {branch}", body=body)

    # -- pull requests -------------------------------------------------------------------------
    def pull_requests(self, owner: str, repo: str, state: str = "open") -> list[PullRequest]:
        """Pull requests in ``state`` (open, closed, all), newest first."""
        out: list[PullRequest] = []
        for page in range(1, 50):
            data = self._json("GET", f"/repos/{_q(owner)}/{_q(repo)}/pulls?state={state}"
                              f"&sort=newest&limit=50&page={page}", what=f"{owner}/{repo} pulls")
            if not data:
                break
            out.extend(PullRequest.from_json(d) for d in data)
            if len(data) < 50:
                break
        return out

    def find_pull_request(self, owner: str, repo: str, head: str, base: str,
                          state: str = "open") -> PullRequest | None:
        """The newest pull request ``head -> base`` in ``state``, or None."""
        for pr in self.pull_requests(owner, repo, state):
            if pr.head == head and pr.base == base:
                return pr
        return None

    def pull_request(self, owner: str, repo: str, number: int) -> PullRequest:
        return PullRequest.from_json(self._json(
            "GET", f"/repos/{_q(owner)}/{_q(repo)}/pulls/{number}", what=f"pull #{number}"))

    def open_pull_request(self, owner: str, repo: str, *, head: str, base: str, title: str,
                          body: str) -> PullRequest:
        return PullRequest.from_json(self._json(
            "POST", f"/repos/{_q(owner)}/{_q(repo)}/pulls", what=f"pull {head}->{base}",
            body={"head": head, "base": base, "title": title, "body": body}))

    def edit_pull_request(self, owner: str, repo: str, number: int, *, title: str,
                          body: str) -> PullRequest:
        return PullRequest.from_json(self._json(
            "PATCH", f"/repos/{_q(owner)}/{_q(repo)}/pulls/{number}", what=f"pull #{number}",
            body={"title": title, "body": body}))

    def reviews(self, owner: str, repo: str, number: int) -> list[Review]:
        data = self._json("GET", f"/repos/{_q(owner)}/{_q(repo)}/pulls/{number}/reviews",
                          what=f"reviews of #{number}")
        return [Review.from_json(d) for d in data or []]

    def review(self, owner: str, repo: str, number: int, event: str = "APPROVED",
               body: str = "", commit: str = "") -> Review:
        """Submit a review as the current user (``event``: APPROVED, REQUEST_CHANGES,
        COMMENT)."""
        payload: dict[str, Any] = {"event": event, "body": body}
        if commit:
            payload["commit_id"] = commit
        return Review.from_json(self._json(
            "POST", f"/repos/{_q(owner)}/{_q(repo)}/pulls/{number}/reviews",
            what=f"review of #{number}", body=payload))

    def merge(self, owner: str, repo: str, number: int, *, head_sha: str = "",
              style: str = "merge", message: str = "", wait_s: float = 60.0) -> None:
        """Merge pull request ``number`` (only while its head is ``head_sha``, if given).

        Right after a push Gitea answers 405 "Please try again later" until its
        mergeability check ran: that is waited for (bounded by ``wait_s``)."""
        body: dict[str, Any] = {"Do": style}
        if head_sha:
            body["head_commit_id"] = head_sha
        if message:
            body["MergeMessageField"] = message
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._json("POST", f"/repos/{_q(owner)}/{_q(repo)}/pulls/{number}/merge",
                           what=f"merge of #{number}", body=body)
                return
            except StepFailed as exc:
                if "try again later" not in (exc.cause or "").lower() or \
                        time.monotonic() >= deadline:
                    raise
                self.sleep(0.5)

    # -- statuses and comments -----------------------------------------------------------------
    def set_status(self, owner: str, repo: str, sha: str, *, context: str, state: str,
                   description: str = "", target_url: str = "") -> None:
        if state not in STATES:
            raise BadInput(f"invalid commit status {state!r}", field="state",
                           expected=" | ".join(STATES))
        self._json("POST", f"/repos/{_q(owner)}/{_q(repo)}/statuses/{sha}",
                   what=f"status of {sha[:12]}",
                   body={"context": context, "state": state, "description": description[:255],
                         "target_url": target_url})

    def statuses(self, owner: str, repo: str, sha: str) -> dict[str, CommitStatus]:
        """The latest status per context on ``sha``."""
        data = self._json("GET", f"/repos/{_q(owner)}/{_q(repo)}/statuses/{sha}?limit=50"
                          "&sort=newest", what=f"statuses of {sha[:12]}")
        # "newest" sorts by creation time in whole seconds: two statuses set within the same
        # second tie, so the latest is the one with the highest id (ids only grow)
        latest: dict[str, tuple[int, CommitStatus]] = {}
        for d in data or []:
            context = d.get("context") or ""
            order = int(d.get("id") or 0)
            if context not in latest or order > latest[context][0]:
                latest[context] = (order, CommitStatus(
                    context, d.get("status") or d.get("state") or "",
                    d.get("description") or "", d.get("target_url") or ""))
        return {context: status for context, (_, status) in latest.items()}

    def comments(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        data = self._json("GET", f"/repos/{_q(owner)}/{_q(repo)}/issues/{number}/comments",
                          what=f"comments of #{number}")
        return [{"id": d.get("id"), "user": (d.get("user") or {}).get("login") or "",
                 "body": d.get("body") or ""} for d in data or []]

    def comment(self, owner: str, repo: str, number: int, body: str) -> None:
        self._json("POST", f"/repos/{_q(owner)}/{_q(repo)}/issues/{number}/comments",
                   what=f"comment on #{number}", body={"body": body})

    # -- transport -----------------------------------------------------------------------------
    def _json(self, method: str, path: str, *, what: str, body: Any = None,
              missing_ok: bool = False) -> Any:
        try:
            response = self._send(method, path, body)
        except _Final as exc:
            if missing_ok and exc.response.status_code == 404:
                return {}
            raise self._translate(exc.response, what) from exc
        except _GiteaHTTPError as exc:
            raise Unreachable(f"Gitea at {self.url} kept failing ({what})",
                              cause=f"HTTP {exc.status}: {_message(exc.response)}"[:300],
                              hint="check that Gitea is up") from exc
        except (TransientError, requests.RequestException) as exc:
            raise Unreachable(f"Gitea at {self.url} is unreachable or failing ({what})",
                              cause=str(exc)[:300], hint="check the URL and that Gitea is up"
                              ) from exc
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            return {"message": response.text[:300]}

    @transient_retry(attempts=5, max_delay_s=30)
    def _send(self, method: str, path: str, body: Any) -> requests.Response:
        response = self.session.request(method, f"{self.url}/api/v1{path}", json=body,
                                        timeout=self.timeout)
        if response.status_code in _RETRIED:
            raise _GiteaHTTPError(response)
        if response.status_code >= 400:
            raise _Final(response)
        return response

    def _translate(self, response: requests.Response, what: str) -> Exception:
        status, message = response.status_code, _message(response)
        if status == 401:
            return Refused(f"Gitea rejected the credentials ({what})",
                           hint="check PIPELINELIB_GITEA_TOKEN / _USER / _PASSWORD")
        if status == 403:
            return Refused(f"Gitea refused: {message or 'forbidden'} ({what})",
                           hint="the account needs write access to the repository")
        if status == 404:
            return BadInput(f"not found on Gitea: {what}", field="repository",
                            expected="an existing repository, pull request or user")
        return StepFailed(f"Gitea answered {status} for {what}", cause=message[:300] or None)


def repository_on(server: str, url: str) -> tuple[str, str] | None:
    """``(owner, repo)`` when the git URL ``url`` lives on the Gitea at ``server``."""
    from urllib.parse import urlsplit

    parts, base = urlsplit(url), urlsplit(server.rstrip("/"))
    if parts.hostname != base.hostname or parts.port != base.port:
        return None
    path = parts.path[len(base.path):] if parts.path.startswith(base.path) else parts.path
    segments = [s for s in path.strip("/").removesuffix(".git").split("/") if s]
    if len(segments) != 2:
        return None
    return segments[0], segments[1]


def _message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("errors") or "")
    return str(data)[:300]


def _q(part: str) -> str:
    return quote(str(part), safe="")
