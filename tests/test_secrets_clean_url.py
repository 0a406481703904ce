"""One `clean_url` (pipelinelib.secrets): the cases of both of its former homes.

buildspec stripped credentials from the git remote it records as the image's source; the
audit records and the CI context stripped user info and masked secret-looking query values.
The one function does both (the stricter behaviour) and keeps what is not a secret.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipelinelib import buildspec
from pipelinelib.context import Context
from pipelinelib.secrets import MASK, clean_url


@pytest.mark.parametrize(("url", "clean"), [
    # the build's git remote (was buildspec._without_credentials)
    ("https://ci-bot:tok3n-9f1e@git.example:8443/shop/web.git",
     "https://git.example:8443/shop/web.git"),
    ("https://tok3n-9f1e@git.example/shop/web.git", "https://git.example/shop/web.git"),
    ("http://u:p-77c2@[::1]:3000/shop/web.git", "http://[::1]:3000/shop/web.git"),
    ("https://Git.Example/Shop/Web.git", "https://Git.Example/Shop/Web.git"),
    ("git@git.example:shop/web.git", "git@git.example:shop/web.git"),
    ("https://git.example/shop/web.git?access_token=tok3n-9f1e",
     f"https://git.example/shop/web.git?access_token={MASK}"),
    # the CI build URL and the audit sink (was already secrets.clean_url)
    ("https://u:pw-1234@ci.example/job/1/?token=abcd&x=1",
     f"https://ci.example/job/1/?token={MASK}&x=1"),
    ("https://es.example:9200/?api_key=k-5e1d", f"https://es.example:9200/?api_key={MASK}"),
    ("", ""),
    ("http://[bad", MASK),
])
def test_clean_url_drops_user_info_and_masks_secret_query_values(url, clean):
    assert clean_url(url) == clean


def test_the_build_records_its_git_remote_without_credentials(tmp_path: Path):
    app = tmp_path / "web"
    app.mkdir()
    (app / "release.env").write_text("CONTAINER_NAMESPACE=shop\nPROJECT_NAMESPACE=shop\n"
                                     "CONTAINER_NAME=web\n")
    (app / "Dockerfile").write_text("FROM scratch\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(app), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example", "commit", "-q", "-m", "env")
    git("remote", "add", "origin",
        "https://ci-bot:tok3n-9f1e@git.example:8443/shop/web.git?access_token=tok3n-9f1e")
    spec = buildspec.load(Context(), app, registry="127.0.0.1:5001")
    assert spec.source_url == f"https://git.example:8443/shop/web.git?access_token={MASK}"
    assert "tok3n" not in repr(spec)
