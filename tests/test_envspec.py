"""Environment specs: the published schema, validation naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from pipelinelib.envspec import yamlines
from pipelinelib.envspec.load import (
    SCHEMA_PATH,
    SpecInvalid,
    list_environments,
    load_environment,
    parse_environment,
)
from pipelinelib.errors import EXIT_BAD_INPUT
from tests.helpers.paths import EXAMPLE_STATE

SRC = "environments/staging.yaml"
VALID = """\
apiVersion: pipelinelib.dev/v1
kind: Environment
name: staging
namespaces: [uro-staging]
apps:
  uro:
    image:
      repository: 127.0.0.1:5001/vsekai/uro
      tag: "0.1.0"
    replicas: 2
"""


def test_the_schema_is_published_as_a_valid_json_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


def test_every_example_environment_is_valid():
    names = list_environments(EXAMPLE_STATE)
    assert names == ["int-test", "live", "preprod", "prod", "qa", "sandbox", "staging"]
    for name in names:
        env = load_environment(EXAMPLE_STATE / "environments" / f"{name}.yaml",
                               root=EXAMPLE_STATE)
        assert env.name == name and env.apps


def test_a_valid_spec_builds_apps_with_defaults():
    env = parse_environment(VALID, SRC, "staging")
    app = env.apps["uro"]
    assert (app.namespace, app.replicas, app.priority) == ("uro-staging", 2, 0)
    assert app.image.ref == "127.0.0.1:5001/vsekai/uro:0.1.0"


def test_an_unknown_key_is_an_error_naming_file_line_and_the_allowed_keys():
    text = VALID + "    colour: blue\n"
    with pytest.raises(SpecInvalid) as info:
        parse_environment(text, SRC, "staging")
    err = info.value
    assert err.exit_code == EXIT_BAD_INPUT
    assert str(err.problems[0]).startswith(f"{SRC}:11 apps.uro.colour: unknown key 'colour'")
    assert "expected one of" in str(err.problems[0]) and "replicas" in str(err.problems[0])


def test_several_errors_are_reported_at_once_in_line_order():
    text = VALID.replace("replicas: 2", "replicas: two") + """\
  Bad_Name:
    image: {repository: x}
  api:
    image: {repository: x, digest: "sha256:nothex"}
    chart: {name: api}
"""
    with pytest.raises(SpecInvalid) as info:
        parse_environment(text, SRC, "staging")
    lines = [str(p) for p in info.value.problems]
    assert f"{SRC}:10 apps.uro.replicas: got string 'two' (expected integer)" in lines
    assert any(s.startswith(f"{SRC}:11 apps.Bad_Name: invalid name") for s in lines)
    assert any(s.startswith(f"{SRC}:12 apps.Bad_Name.image: the image needs a tag or a digest")
               for s in lines)
    assert any(s.startswith(f"{SRC}:14 apps.api.image.digest: invalid value") for s in lines)
    assert any("apps.api.chart: missing required key 'repository'" in s for s in lines)
    assert len(lines) >= 5
    assert str(info.value).startswith(f"{len(lines)} problems in the environment spec:")


def test_semantic_rules_namespace_file_name_duplicate_hosts_env_and_secret():
    text = VALID.replace("name: staging", "name: live") + """\
    namespace: elsewhere
    env: {DATABASE_URL: x}
    secrets: {DATABASE_URL: {secret: db, key: url}}
    dns: [uro.example]
  other:
    image: {repository: y, tag: "1"}
    dns: [uro.example]
"""
    with pytest.raises(SpecInvalid) as info:
        parse_environment(text, SRC, "staging")
    text_all = "\n".join(map(str, info.value.problems))
    assert f"{SRC}:3 name: 'live' differs from the file name (expected 'staging')" in text_all
    assert "apps.uro.namespace: namespace 'elsewhere' is not allowed here" in text_all
    assert "DATABASE_URL is both in env and in secrets" in text_all
    assert "host 'uro.example' is already bound to uro" in text_all


def test_missing_manifest_directory_is_named(tmp_path: Path):
    (tmp_path / "environments").mkdir()
    path = tmp_path / "environments" / "staging.yaml"
    path.write_text(VALID + "    manifests: manifests/nowhere\n")
    with pytest.raises(SpecInvalid) as info:
        load_environment(path, root=tmp_path)
    assert "apps.uro.manifests: no directory 'manifests/nowhere'" in str(info.value)


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(SpecInvalid) as info:
        parse_environment(VALID + "  broken: [\n", SRC)
    assert info.value.problems[0].line is not None
    assert "not valid YAML" in str(info.value)


def test_duplicate_keys_are_errors_with_their_line():
    with pytest.raises(SpecInvalid) as info:
        parse_environment(VALID + "    replicas: 3\n", SRC)
    assert str(info.value.problems[0]).startswith(f"{SRC}:11: not valid YAML: duplicate key")


def test_set_value_changes_exactly_one_line_and_keeps_comments():
    text = VALID.replace('tag: "0.1.0"', 'tag: "0.1.0"   # pinned by the release manager')
    digest = "sha256:" + "a" * 64
    new = yamlines.set_value(text, ("apps", "uro", "image", "digest"), digest)
    new = yamlines.set_value(new, ("apps", "uro", "image", "tag"), "0.2.0")
    old_lines, new_lines = text.splitlines(), new.splitlines()
    assert len(new_lines) == len(old_lines) + 1
    assert '      tag: "0.2.0"   # pinned by the release manager' in new_lines
    assert f'      digest: "{digest}"' in new_lines
    assert yaml.safe_load(new)["apps"]["uro"]["image"]["digest"] == digest


def test_blue_green_strategy_and_await_promotion_are_read_and_checked_with_lines():
    text = VALID.replace("namespaces: [uro-staging]\n",
                         "namespaces: [uro-staging]\nawait_promotion: true\n")
    text += "    strategy: blue-green\n    ports: [{port: 4000}]\n"
    env = parse_environment(text, SRC, "staging")
    app = env.apps["uro"]
    assert app.blue_green and env.awaits_promotion(app)
    override = parse_environment(text + "    await_promotion: false\n", SRC, "staging")
    assert not override.awaits_promotion(override.apps["uro"])
    plain = parse_environment(VALID, SRC, "staging")
    assert plain.apps["uro"].strategy == "rolling" and not plain.awaits_promotion(
        plain.apps["uro"])
    assert plain.apps["uro"].fingerprint() == parse_environment(
        VALID + "    strategy: rolling\n", SRC, "staging").apps["uro"].fingerprint(), \
        "an explicit default strategy does not change the fingerprint (approvals stay valid)"
    no_service = VALID + "    strategy: blue-green\n"
    with pytest.raises(SpecInvalid) as err:
        parse_environment(no_service, SRC, "staging")
    assert str(err.value.problems[0]) == (
        f"{SRC}:11 apps.uro.strategy: a blue/green app needs a Service to switch between "
        "colours (expected ports (or manifests/a chart with a Service))")
