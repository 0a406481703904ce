"""`pipeline import helmsman`: helmsman's own example files become valid environment specs,
and every field that is not carried over is reported with its reason."""

from __future__ import annotations

import yaml

from pipelinelib.envspec.helmsman import convert
from pipelinelib.envspec.load import load_environment, parse_environment
from pipelinelib.errors import EXIT_BAD_INPUT
from tests.helpers.cli import run_pipeline
from tests.helpers.paths import FIXTURES

HELMSMAN = FIXTURES / "envs" / "helmsman"


class AnyVariable(dict):
    def __contains__(self, key: object) -> bool:
        return True


def notes(conv) -> list[str]:
    return [f"{n.field}: {n.kind}" for n in conv.notes]


def test_helmsmans_example_yaml_converts_to_a_valid_spec_and_names_what_it_left_out():
    conv = convert([HELMSMAN / "example.yaml"])
    env = parse_environment(conv.text(), "environments/test-infra.yaml", "test-infra",
                            environ=AnyVariable())
    assert env.context == "minikube" and env.namespaces == ["production", "staging"]
    prod, staging = env.namespace_specs["production"], env.namespace_specs["staging"]
    assert prod.protected and [lim["type"] for lim in prod.limits] == ["Container", "Pod"]
    assert prod.limits[0]["default"] == {"cpu": "300m", "memory": "200Mi"}
    assert staging.labels == {"env": "staging"} and staging.quotas == {
        "limits.cpu": "10", "limits.memory": "20Gi", "pods": "25", "requests.cpu": "10",
        "requests.memory": "30Gi", "requests.nvidia.com/gpu": "2"}
    argo, artifactory = env.apps["argo"], env.apps["artifactory"]
    assert argo.chart is not None and (argo.chart.name, argo.chart.repository,
                                       argo.chart.version) == (
        "argo", "https://argoproj.github.io/argo-helm", "0.8.5")
    assert (argo.namespace, argo.priority, argo.protected) == ("staging", -3, True)
    assert argo.set == {"images.tag": "$$TAG"}, "helmsman's $$ escape means the same here"
    assert (artifactory.priority, artifactory.timeout, artifactory.max_history) == (-2, 300, 4)
    assert artifactory.namespace == "production" and env.protected(artifactory)
    assert notes(conv) == ["apps.argo.hooks: not converted", "apps.argo.wait: not needed",
                           "apps.artifactory.helmFlags: not converted"]
    assert "--devel" in str(conv.notes[-1])
    assert "# metadata maintainer: k8s-admin (me@example.com)" in conv.text()


def test_helmsmans_example_toml_converts_like_the_yaml():
    conv = convert([HELMSMAN / "example.toml"])
    env = parse_environment(conv.text(), "environments/test-infra.yaml", "test-infra",
                            environ=AnyVariable())
    assert sorted(env.apps) == ["argo", "artifactory"] and env.name == "test-infra"
    assert env.apps["argo"].namespace == "production" and env.protected(env.apps["argo"])
    assert env.namespace_specs["staging"].quotas["requests.nvidia.com/gpu"] == "2"
    assert conv.spec["defaults"] == {"max_history": 5}
    assert notes(conv) == ["apps.argo.hooks: not converted", "apps.argo.wait: not needed",
                           "apps.artifactory.helmFlags: not converted"]


def test_app_templates_with_merge_keys_and_values_files_relative_to_the_repository():
    root = HELMSMAN / "appsTemplates"
    conv = convert([root / "config" / "helmsman.yaml"], "dev", root)
    env = parse_environment(conv.text(), "environments/dev.yaml", "dev", root,
                            environ=AnyVariable())
    assert sorted(env.apps) == ["development-puppetserver", "development-tomcat",
                                "testing-puppetserver", "testing-tomcat"]
    tomcat = env.apps["development-tomcat"]
    assert tomcat.values_files == ["apps/tomcat/development-values.yaml"]
    assert (tomcat.priority, tomcat.protected, tomcat.namespace) == (-2, True, "development")
    assert env.apps["testing-tomcat"].protected is False
    assert "settings.slackWebhook: not needed" in notes(conv)


def test_several_files_merge_in_order_and_disabled_apps_stay_disabled(tmp_path):
    (tmp_path / "common.yaml").write_text(
        "helmRepos: {stable: 'https://charts.example'}\nnamespaces: {shared: {}}\n"
        "apps:\n  api: {namespace: shared, chart: stable/api, version: '1.0', enabled: true}\n"
        "  old: {namespace: shared, chart: stable/old, version: '1.0'}\n")
    (tmp_path / "prod.toml").write_text(
        'context = "prod"\n[settings]\nkubeContext = "prod-cluster"\n'
        '[apps.api]\nversion = "2.0"\npriority = -1\n[apps.api.setString]\n"image.tag" = "$TAG"\n')
    (tmp_path / "spec.yaml").write_text(
        "stateFiles:\n  - path: common.yaml\n  - path: prod.toml\n")
    conv = convert([tmp_path / "spec.yaml"])
    env = parse_environment(conv.text(), "environments/prod.yaml", "prod", environ={"TAG": "x"})
    api = env.apps["api"]
    assert api.chart is not None and api.chart.version == "2.0" and api.priority == -1
    assert api.set_string == {"image.tag": "$TAG"} and env.context == "prod-cluster"
    assert env.disabled == ["old"], "helmsman's enabled defaults to false"


def test_the_command_writes_the_spec_and_reports_what_it_could_not_convert(tmp_path):
    out = tmp_path / "environments" / "test-infra.yaml"
    proc = run_pipeline("import", "helmsman", str(HELMSMAN / "example.yaml"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "apps.artifactory.helmFlags: not converted" in proc.stderr
    assert "environment test-infra: 2 apps, 3 fields not carried over" in proc.stderr
    spec = yaml.safe_load(out.read_text())
    assert spec["apps"]["argo"]["chart"]["version"] == "0.8.5"
    env = load_environment(out, root=tmp_path, environ=AnyVariable())
    assert env.name == "test-infra"


def test_bad_helmsman_input_exits_2_naming_the_file_and_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[apps]\n[apps.x\nchart = "a/b"\n')
    out = tmp_path / "out.yaml"
    proc = run_pipeline("import", "helmsman", str(bad), "--out", str(out))
    assert proc.returncode == EXIT_BAD_INPUT and not out.exists()
    assert f"{bad}:2" in proc.stderr and "not valid TOML" in proc.stderr
    assert "Traceback" not in proc.stderr
    missing = run_pipeline("import", "helmsman", str(tmp_path / "nope.yaml"))
    assert missing.returncode == EXIT_BAD_INPUT and "nope.yaml: cannot read" in missing.stderr
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    proc = run_pipeline("import", "helmsman", str(scalar))
    assert proc.returncode == EXIT_BAD_INPUT and "not a mapping" in proc.stderr


def test_json_output_lists_the_notes_and_a_dry_run_writes_nothing(tmp_path):
    import json

    out = tmp_path / "prod.yaml"
    proc = run_pipeline("--dry-run", "import", "helmsman", str(HELMSMAN / "example.toml"),
                        "--out", str(out), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["environment"] == "test-infra" and body["written"] == ""
    assert [n["field"] for n in body["not_converted"]] == [
        "apps.argo.hooks", "apps.argo.wait", "apps.artifactory.helmFlags"]
    assert body["spec"]["apps"]["artifactory"]["max_history"] == 4
    assert not out.exists() and "dry run" in proc.stderr
