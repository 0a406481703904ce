"""Secrets never reach log lines, whatever the format and wherever they hide."""

import io
import json

import structlog

from pipelinelib.log import configure, default_format
from pipelinelib.secrets import MASK, Secrets, looks_secret

PLANTED = "planted-s3cret-value"


def test_redact_masks_values_in_nested_structures_and_secret_keys():
    secrets = Secrets([PLANTED])
    data = {"msg": f"url=https://u:{PLANTED}@h", "nested": [{"x": PLANTED}],
            "db_password": "other-value", "Authorization": "Bearer abc", "name": "web"}
    clean = secrets.redact(data)
    assert PLANTED not in json.dumps(clean)
    assert clean["db_password"] == MASK and clean["Authorization"] == MASK
    assert clean["name"] == "web"


def test_short_values_are_not_treated_as_secrets():
    secrets = Secrets(["ab"])
    assert secrets.redact_text("abc") == "abc"


def test_secret_looking_keys():
    assert all(looks_secret(k) for k in ("DB_PASSWORD", "api_token", "Authorization",
                                          "client_secret", "REGISTRY_PASSWORD", "apiKey"))
    assert not any(looks_secret(k) for k in ("name", "image", "digest", "tokenizer_version"))


def _log_lines(fmt):
    stream = io.StringIO()
    secrets = configure(fmt, "debug", stream=stream)
    secrets.add(PLANTED)
    log = structlog.get_logger("t")
    log.info(f"connecting with {PLANTED}", password="pw-other-123", url=f"x://{PLANTED}")
    log.error("failed", error=ValueError(f"bad {PLANTED}"))
    return stream.getvalue()


def test_json_logs_are_redacted_json_lines():
    out = _log_lines("json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert PLANTED not in out and "pw-other-123" not in out
    assert lines[0]["password"] == MASK and lines[0]["level"] == "info"


def test_console_logs_are_redacted():
    out = _log_lines("console")
    assert PLANTED not in out and "pw-other-123" not in out
    assert "connecting with ***" in out


def test_json_is_the_default_in_ci():
    assert default_format({"CI": "true"}) == "json"
    assert default_format({"BUILD_URL": "http://jenkins/job/1/"}) == "json"
    assert default_format({}) == "console"
