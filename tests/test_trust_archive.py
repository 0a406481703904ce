"""The trust root as a Jenkins "secret file" credential: PIPELINE_TRUST_DIR may name a tar
archive of the directory; it is unpacked privately, and a hostile archive is refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pipelinelib.envspec.load import environment_path, load_environment
from pipelinelib.errors import BadInput
from pipelinelib.promotion.enforce import enforce
from pipelinelib.promotion.trust import trust_root
from tests.helpers.envstate import env_file
from tests.helpers.git import write_repo
from tests.helpers.trust import DIGEST_A, TRUST_POLICY, make_trust, release_ctx, write_signed


def test_a_tar_archive_of_the_trust_root_verifies_like_the_directory(tmp_path, monkeypatch):
    trust = make_trust(tmp_path, TRUST_POLICY)
    archive = tmp_path / "trust-root.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(trust.directory, arcname=".")
    clone, _ = write_repo(tmp_path, {"environments/prod.yaml": env_file(
        "prod", "prod-ns", "127.0.0.1:5001/t/api", DIGEST_A)})
    env = load_environment(environment_path(clone, "prod"), root=clone)
    write_signed(clone, env, "rm-alice", "jenkins", "rm-bob", "rm-bob", trust)
    monkeypatch.setenv("PIPELINE_TRUST_DIR", str(archive))
    [verified] = enforce(release_ctx(), env, ["api"])
    assert (verified.promoted_by, verified.approved_by) == ("rm-alice", "rm-bob")
    unpacked = trust_root().directory
    assert unpacked != trust.directory and (unpacked / "allowed_signers").is_file()


@pytest.mark.parametrize(("name", "message"), [
    ("../escape", "neither a directory nor a readable tar archive"),
    ("/etc/pipelinelib-evil", "no allowed_signers file")])  # unpacked inside, as etc/...
def test_an_archive_writing_outside_its_directory_is_refused(tmp_path, monkeypatch, name,
                                                             message):
    archive = tmp_path / f"hostile{len(name)}.tar"
    with tarfile.open(archive, "w") as tar:
        data = b"x"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    monkeypatch.setenv("PIPELINE_TRUST_DIR", str(archive))
    with pytest.raises(BadInput, match=message):
        trust_root()
    assert not (tmp_path.parent / "escape").exists()
    assert not (tmp_path / "escape").exists()
    assert not Path("/etc/pipelinelib-evil").exists()


def test_a_file_that_is_no_archive_is_bad_input(tmp_path, monkeypatch):
    junk = tmp_path / "trust"
    junk.write_text("not a tar archive")
    monkeypatch.setenv("PIPELINE_TRUST_DIR", str(junk))
    with pytest.raises(BadInput, match="neither a directory nor a readable tar archive"):
        trust_root()
