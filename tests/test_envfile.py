"""The env file: strict KEY=VALUE, shell-compatible quoting, secrets, clear errors."""

import subprocess

import pytest

from pipelinelib.envfile import EnvFile, parse
from pipelinelib.errors import BadInput


def entries(text, environ=None):
    return {k: e.value for k, e in parse(text, "release.env", environ).items()}


def test_plain_quoted_and_exported_values_are_read_literally():
    text = """
# comment
A=simple-value_1.2:3@x
B='hello, $world `x`'
C="say \\"hi\\" \\\\ done"
export D=1.25.3
E=  # empty with comment
"""
    assert entries(text) == {"A": "simple-value_1.2:3@x", "B": "hello, $world `x`",
                             "C": 'say "hi" \\ done', "D": "1.25.3", "E": ""}


def test_values_mean_the_same_when_the_file_is_sourced_by_a_shell(tmp_path):
    text = "A=plain\nB='it is'\nC='a b  c'\nD=\"q \\\" e\"\nexport E=x/y:z\n"
    path = tmp_path / "release.env"
    path.write_text(text)
    out = subprocess.run(["sh", "-c", '. "$1"; printf "%s\\n" "$A" "$B" "$C" "$D" "$E"', "sh",
                          str(path)], capture_output=True, text=True, check=True).stdout
    parsed = EnvFile.load(path).values()
    assert out.splitlines() == [parsed[k] for k in "ABCDE"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("A=$(rm -rf /)", "unquoted value has characters a shell would interpret"),
    ("A=two words", "unexpected text after the value"),
    ("A=x#y", "unquoted value has characters"),
    ('A="$HOME"', "would be expanded by a shell"),
    ('A="x\\n"', "unsupported escape"),
    ("A='open", "unterminated single quote"),
    ('A="open', "unterminated double quote"),
    ("1A=x", "invalid key"),
    ("A-B=x", "invalid key"),
    ("just text", "not a KEY=VALUE line"),
    ("A=1\nA=2", "A is set twice (first on line 1)"),
])
def test_malformed_lines_name_file_and_line(text, fragment):
    with pytest.raises(BadInput) as err:
        parse(text, "release.env")
    message = str(err.value)
    assert message.startswith("release.env:")
    assert fragment in message


def test_error_line_number_points_at_the_bad_line():
    with pytest.raises(BadInput) as err:
        parse("# c\n\nA=1\nB=`x`\n", "app/release.env")
    assert str(err.value).startswith("app/release.env:4 B:")


def test_secret_marker_and_secret_looking_keys_are_secret():
    parsed = parse("DB_PASSWORD=abc12345\nTOKEN_X='t0k3n-value' # secret\nNAME=web\n"
                   "API_TOKEN=zzzz9999\n")
    assert {k for k, e in parsed.items() if e.secret} == {"DB_PASSWORD", "TOKEN_X", "API_TOKEN"}


def test_empty_secret_is_read_from_the_environment():
    assert entries("REGISTRY_PASSWORD=   # secret", {"REGISTRY_PASSWORD": "from-env-123"}) == {
        "REGISTRY_PASSWORD": "from-env-123"}


def test_empty_secret_missing_from_the_environment_is_an_error():
    with pytest.raises(BadInput, match="environment has no REGISTRY_PASSWORD"):
        parse("REGISTRY_PASSWORD= # secret", "release.env", {})


def test_public_values_labels_and_versions_exclude_secrets(tmp_path):
    path = tmp_path / "release.env"
    path.write_text("NGINX_VERSION=1.25.3\nDB_PASSWORD='hunter2-secret'\nNAME=web\n")
    env = EnvFile.load(path)
    assert env.public() == {"NGINX_VERSION": "1.25.3", "NAME": "web"}
    assert env.versions() == {"NGINX_VERSION": "1.25.3"}
    assert env.labels() == {"io.pipelinelib.env.nginx_version": "1.25.3",
                            "io.pipelinelib.env.name": "web"}
    assert "hunter2-secret" not in str(env.labels())


def test_missing_file_and_missing_key_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="env file not found"):
        EnvFile.load(tmp_path / "nope.env")
    path = tmp_path / "release.env"
    path.write_text("A=1\n")
    with pytest.raises(BadInput, match=r"release.env CONTAINER_NAME: missing key"):
        EnvFile.load(path).require("CONTAINER_NAME")
