"""The part of Jenkins' HTTP API a build's steps call back, on loopback: Jenkins cannot run here.

`pipeline annotate` in a Jenkins build sets the build's description and display name through
python-jenkins: GET crumbIssuer/api/json, GET job/NAME/N/api/json?depth=0, POST
job/NAME/N/submitDescription or configSubmit (crumb header, basic auth with the API token)
-> 302 to the build page. The answers are Jenkins' (payload sources: tests/test_jenkins.py's
header); a wrong token is a 401, a missing crumb a 403 "No valid crumb was included in the
request", an unknown build a 404.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
from typing import Any
from urllib.parse import parse_qs, urlparse

CRUMB = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": "5ca1ab1e",
         "crumbRequestField": "Jenkins-Crumb"}


class JenkinsBuildAPI:
    """One job's builds: their description and display name, as the steps set them."""

    def __init__(self, user: str, token: str, job: str, number: int):
        self.user, self.token = user, token
        self.job_path = "".join(f"/job/{p}" for p in job.split("/"))
        self.number = number
        self.build: dict[str, Any] = {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": number,
            "result": None, "building": True, "duration": 0, "displayName": f"#{number}",
            "description": None}
        self.requests: list[tuple[str, str]] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", ctype: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                api.requests.append((self.command, self.path))
                expected = base64.b64encode(f"{api.user}:{api.token}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._send(401, b"<html>Unauthorized</html>", "text/html")
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                path = urlparse(self.path).path
                build = f"{api.job_path}/{api.number}/"
                if path == "/crumbIssuer/api/json":
                    self._send(200, json.dumps(CRUMB).encode())
                elif path == build + "api/json":
                    self._send(200, json.dumps({**api.build, "url": self._url(build)}).encode())
                elif path == build:
                    self._send(200, b"<html>build page</html>", "text/html")
                else:
                    self._send(404, b"<html>Not Found</html>", "text/html")

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                if self.headers.get(CRUMB["crumbRequestField"]) != CRUMB["crumb"]:
                    self._send(403, b"<html>No valid crumb was included in the request</html>",
                               "text/html")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                path = urlparse(self.path).path
                build = f"{api.job_path}/{api.number}/"
                match = re.fullmatch(re.escape(build) + r"(submitDescription|configSubmit)", path)
                if not match:
                    self._send(404, b"<html>Not Found</html>", "text/html")
                    return
                if match.group(1) == "submitDescription":
                    api.build["description"] = form.get("description", [""])[0]
                else:
                    data = json.loads(form.get("json", ["{}"])[0])
                    api.build["displayName"] = data.get("displayName", api.build["displayName"])
                    api.build["description"] = data.get("description", api.build["description"])
                self._send(302, headers={"Location": self._url(build)})

            def _url(self, path: str) -> str:
                return f"http://127.0.0.1:{api.server.server_address[1]}{path}"

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.build_url = f"{self.url}{self.job_path.lstrip('/')}/{number}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def respond_as_build(jenkins: str, build: str, number: int, submit: str) -> None:
    """Register `responses` answers for what editing build ``number`` at ``build`` calls:
    the crumb, the build's api/json (running, no description), POST ``submit``
    (``submitDescription`` or ``configSubmit``) -> 302 to the build page, the build page."""
    import responses

    responses.add(responses.GET, jenkins + "crumbIssuer/api/json",
                  json={"crumb": "c1", "crumbRequestField": "Jenkins-Crumb"})
    responses.add(responses.GET, build + "api/json",
                  json={"number": number, "url": build, "result": None, "building": True,
                        "displayName": f"#{number}", "description": None})
    responses.add(responses.POST, build + submit, status=302, headers={"Location": build})
    responses.add(responses.GET, build, body="")
