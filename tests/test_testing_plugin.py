"""The pytest plugin shipped for maintainers: their own tests get the real testbed."""

from __future__ import annotations

import pytest

from pipelinelib.testing.testbed import Testbed, TestbedError, parse_exports

pytest_plugins = ["pytester"]


def test_a_maintainers_test_gets_the_real_engine_and_registry(pytester, testbed):
    pytester.makepyfile(
        test_mine="""
        import docker, requests

        def test_engine_and_registry(docker_env, registry_env):
            client = docker.DockerClient(base_url=docker_env["DOCKER_HOST"])
            assert client.images.get(docker_env["PIPELINELIB_BASE_IMAGE"]).id.startswith("sha256:")
            ping = requests.get(f"http://{registry_env['PIPELINELIB_REGISTRY']}/v2/", timeout=5)
            assert ping.status_code == 200
            auth_registry = registry_env["PIPELINELIB_AUTH_REGISTRY"]
            auth = requests.get(f"http://{auth_registry}/v2/", timeout=5)
            assert auth.status_code == 401
        """
    )
    result = pytester.runpytest_subprocess("--testbed-dir", str(testbed.state_dir), "-q")
    result.assert_outcomes(passed=1)


def test_testbed_up_is_idempotent_and_reuses_what_runs(testbed, registry_env):
    again = Testbed(testbed.state_dir).up("docker", "registry")
    assert again["DOCKER_HOST"] == registry_env["DOCKER_HOST"]
    assert again["PIPELINELIB_AUTH_REGISTRY_PASSWORD"] == registry_env[
        "PIPELINELIB_AUTH_REGISTRY_PASSWORD"
    ]


def test_an_unknown_component_is_an_error_not_a_skip(testbed):
    with pytest.raises(ValueError, match="unknown testbed components"):
        testbed.up("mainframe")


def test_a_component_that_fails_to_start_fails_loudly(tmp_path, monkeypatch):
    scripts = tmp_path / "scripts"
    (scripts / "docker").mkdir(parents=True)
    up = scripts / "up"
    up.write_text("#!/bin/sh\necho 'testbed: dockerd did not answer' >&2\nexit 1\n")
    up.chmod(0o755)
    monkeypatch.setenv("PIPELINELIB_TESTBED_SCRIPTS", str(scripts))
    with pytest.raises(TestbedError, match="dockerd did not answer"):
        Testbed(tmp_path / "state").up("docker")


def test_exports_are_parsed_with_shell_quoting():
    text = "testbed: noise\nexport A=1\nexport B='two words'\nexport C=x\\ y\n"
    assert parse_exports(text) == {"A": "1", "B": "two words", "C": "x y"}
