"""Helmsman-level spec features on load: merge keys, several files composed, set/set_string
with $ENV lookups, enabled: false, namespaces with settings — every problem with its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelinelib.envspec.load import SpecInvalid, load_environment, parse_environment
from pipelinelib.envspec.render import chart_values
from pipelinelib.secrets import Secrets
from pipelinelib.steps.plan import render_all

SRC = "environments/prod.yaml"
HEAD = "apiVersion: pipelinelib.dev/v1\nkind: Environment\nname: prod\n"
DIGEST = "sha256:" + "a" * 64


def test_merge_keys_apply_app_templates_and_explicit_keys_win():
    text = HEAD + f"""\
namespaces: [prod]
templates:
  common: &common
    replicas: 2
    priority: -1
  pinned: &pinned
    image: {{repository: 127.0.0.1:5001/t/api, digest: "{DIGEST}"}}
    replicas: 5
apps:
  api:
    <<: *common
    <<: *pinned
    priority: -3
  web:
    <<: [*common, *pinned]
"""
    env = parse_environment(text, SRC, "prod")
    api, web = env.apps["api"], env.apps["web"]
    assert (api.replicas, api.priority) == (5, -3), "a later << wins; explicit keys win"
    assert (web.replicas, web.priority) == (2, -1), "in a << list the first mapping wins"
    assert api.image is not None and api.image.digest == DIGEST


def test_a_bad_field_pulled_in_by_a_merge_key_names_the_templates_line():
    text = HEAD + "templates:\n  t: &t\n    replicas: many\napps:\n  api:\n    <<: *t\n" \
        "    image: {repository: x, tag: '1'}\n"
    with pytest.raises(SpecInvalid) as info:
        parse_environment(text, SRC, "prod")
    assert str(info.value.problems[0]) == (
        f"{SRC}:6 apps.api.replicas: got string 'many' (expected integer)")


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_several_files_composed_in_order_this_file_winning(tmp_path):
    write(tmp_path, "common/base.yaml", f"""\
namespaces:
  prod: {{protected: true, labels: {{team: ehealth}}}}
defaults: {{replicas: 2}}
apps:
  api:
    image: {{repository: 127.0.0.1:5001/t/api, digest: "{DIGEST}"}}
    env: {{LOG: info}}
""")
    write(tmp_path, "common/prod-sizes.yaml", "apps:\n  api:\n    replicas: 4\n")
    path = write(tmp_path, "environments/prod.yaml", HEAD + """\
include: [common/base.yaml, common/prod-sizes.yaml]
apps:
  api:
    env: {LOG: warning}
""")
    env = load_environment(path, root=tmp_path)
    api = env.apps["api"]
    assert (api.replicas, api.env, api.namespace) == (4, {"LOG": "warning"}, "prod")
    assert env.protected(api) and env.namespace_specs["prod"].labels == {"team": "ehealth"}
    assert env.includes == ["common/base.yaml", "common/prod-sizes.yaml"]


def test_problems_in_composed_files_name_the_file_and_line_they_are_in(tmp_path):
    write(tmp_path, "common/base.yaml", "apps:\n  api:\n    replicas: lots\n")
    path = write(tmp_path, "environments/prod.yaml", HEAD + """\
include: [common/base.yaml, common/missing.yaml]
apps:
  api:
    image: {repository: x, tag: "1"}
    colour: blue
""")
    with pytest.raises(SpecInvalid) as info:
        load_environment(path, root=tmp_path)
    text = sorted(str(p) for p in info.value.problems)
    assert f"{path}:4 include.1: no file 'common/missing.yaml' in the env-state repository " \
           "(expected a spec file path relative to the repository root)" in text
    assert f"{tmp_path}/common/base.yaml:3 apps.api.replicas: got string 'lots' " \
           "(expected integer)" in text
    assert any(s.startswith(f"{path}:8 apps.api.colour: unknown key") for s in text)


def test_set_and_set_string_read_the_environment_and_register_the_values_as_secrets():
    text = HEAD + """\
apps:
  db:
    chart: {name: db, repository: charts/db, version: "1.0.0"}
    values: {auth: {user: app}}
    set:
      auth.password: $DB_PASSWORD
      image.tag: "$$TAG"
      replicaCount: "${REPLICAS}"
      "annotations.example\\\\.com/team": ehealth
      hosts[1].name: b.example
    set_string: {build: 12345, flag: true}
"""
    environ = {"DB_PASSWORD": "planted-db-secret-77", "REPLICAS": "3"}
    env = parse_environment(text, SRC, "prod", environ=environ)
    secrets = Secrets()
    values = chart_values(env.apps["db"], None, secrets, environ)
    assert values["auth"] == {"user": "app", "password": "planted-db-secret-77"}
    assert values["image"] == {"tag": "$TAG"}, "$$ is a literal $"
    assert values["replicaCount"] == 3, "typed like helm --set"
    assert values["annotations"] == {"example.com/team": "ehealth"}
    assert values["hosts"] == [None, {"name": "b.example"}]
    assert values["build"] == "12345" and values["flag"] == "true"
    assert "planted-db-secret-77" in secrets
    assert "planted-db-secret-77" not in repr(env.apps["db"].fingerprint())
    assert env.apps["db"].set["auth.password"] == "$DB_PASSWORD", "the spec keeps the name"


def test_missing_environment_variables_are_all_reported_with_their_lines_on_render():
    text = HEAD + """\
apps:
  db:
    chart: {name: db, repository: charts/db, version: "1.0.0"}
    set: {a: $NOT_SET_ONE, b: "x-${NOT_SET_TWO}"}
    set_string: {c: $NOT_SET_ONE}
"""
    env = parse_environment(text, SRC, "prod", environ={})  # status/promote need no values
    with pytest.raises(SpecInvalid) as info:
        render_all(env, Secrets())  # plan and apply render: every variable must be set
    assert [str(p) for p in info.value.problems] == [
        f"{SRC}:7 apps.db.set.a: environment variable NOT_SET_ONE is not set "
        "(expected NOT_SET_ONE in the environment (or $$ for a literal $))",
        f"{SRC}:7 apps.db.set.b: environment variable NOT_SET_TWO is not set "
        "(expected NOT_SET_TWO in the environment (or $$ for a literal $))",
        f"{SRC}:8 apps.db.set_string.c: environment variable NOT_SET_ONE is not set "
        "(expected NOT_SET_ONE in the environment (or $$ for a literal $))"]


def test_enabled_false_leaves_the_app_out_and_namespaces_take_settings():
    text = HEAD + """\
namespaces:
  prod:
    protected: true
    labels: {env: prod}
    annotations: {owner: ehealth}
    limits:
      - {type: Container, default: {cpu: 300m, memory: 200Mi}, defaultRequest: {cpu: 200m}}
    quotas: {pods: 25, limits.cpu: "10", requests.nvidia.com/gpu: "2"}
  staging:
apps:
  old:
    image: {repository: x, tag: "1"}
    enabled: false
  api:
    image: {repository: x, tag: "1"}
    namespace: staging
"""
    env = parse_environment(text, SRC, "prod")
    assert list(env.apps) == ["api"] and env.disabled == ["old"]
    assert env.namespaces == ["prod", "staging"]
    prod = env.namespace_specs["prod"]
    assert prod.protected and prod.quotas["pods"] == "25" and prod.limits[0]["type"] == "Container"
    assert not env.protected(env.apps["api"]) and env.protected("prod")


def test_namespace_settings_are_validated_with_lines():
    text = HEAD + """\
namespaces:
  prod:
    protected: "yes"
    labels: {pod-security.kubernetes.io/enforce: privileged}
    limits: [{type: Node}]
apps: {}
"""
    with pytest.raises(SpecInvalid) as info:
        parse_environment(text, SRC, "prod")
    text_all = "\n".join(map(str, info.value.problems))
    assert f"{SRC}:6 namespaces.prod.protected: got string 'yes' (expected boolean)" in text_all
    assert "namespaces.prod.limits.0.type: got 'Node'" in text_all


def test_pod_security_labels_are_refused():
    text = HEAD + "namespaces:\n  prod:\n    labels: {pod-security.kubernetes.io/enforce: " \
        "privileged}\napps: {}\n"
    with pytest.raises(SpecInvalid) as info:
        parse_environment(text, SRC, "prod")
    assert str(info.value.problems[0]).startswith(
        f"{SRC}:6 namespaces.prod.labels.pod-security.kubernetes.io/enforce: Pod Security "
        "labels are set by the cluster's admins")


def test_values_files_must_exist_in_the_repository_and_be_mappings(tmp_path):
    write(tmp_path, "values/list.yaml", "- a\n- b\n")
    write(tmp_path, "charts/db/Chart.yaml", "apiVersion: v2\nname: db\nversion: 1.0.0\n")
    path = write(tmp_path, "environments/prod.yaml", HEAD + """\
apps:
  db:
    chart: {name: db, repository: charts/db, version: "1.0.0"}
    values_files: [values/missing.yaml, values/list.yaml, ../../etc/passwd]
""")
    with pytest.raises(SpecInvalid) as info:
        load_environment(path, root=tmp_path)
    text = [str(p) for p in info.value.problems]
    assert any("apps.db.values_files.0: no file 'values/missing.yaml'" in s for s in text)
    assert any(s.startswith(f"{tmp_path}/values/list.yaml:1: a values file is not a mapping")
               for s in text)
    assert any("apps.db.values_files.2: no file '../../etc/passwd'" in s for s in text)


def test_an_alias_bomb_through_templates_is_refused_with_its_line():
    lines = ['  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    text = HEAD + "templates:\n" + "\n".join(lines) + "\napps: {}\n"
    with pytest.raises(SpecInvalid) as info:
        parse_environment(text, SRC, "prod")
    problem = info.value.problems[0]
    assert problem.source == SRC and problem.line is not None
    assert "alias" in problem.message and "expand to more than" in problem.message


@pytest.mark.parametrize(("namespaces", "expected"), [
    ("x", f"{SRC}:4 namespaces: got string (expected a list of namespace names, or a mapping "
          "of name to settings)"),
    ("[ok, Bad]", f"{SRC}:4 namespaces.1: invalid value 'Bad' (expected a DNS label"),
    ("{Bad: {}}", f"{SRC}:4 namespaces.Bad: invalid name 'Bad' (expected a DNS label"),
])
def test_namespaces_in_either_form_are_explained_with_the_field(namespaces, expected):
    with pytest.raises(SpecInvalid) as info:
        parse_environment(HEAD + f"namespaces: {namespaces}\napps: {{}}\n", SRC, "prod")
    assert str(info.value.problems[0]).startswith(expected)


def test_the_text_plan_shows_namespace_changes_hooks_and_disabled_apps():
    from pipelinelib.envspec.show import format_plan

    namespaces = [{"namespace": "prod", "action": "update", "protected": True,
                   "changes": ["~ label team: None -> ehealth", "+ LimitRange/pipelinelib-limits"],
                   "deletes": []}]
    plans = [{"app": "old", "namespace": "prod", "priority": 10**6, "action": "delete",
              "creates": [], "changes": [], "deletes": ["Deployment/old"], "drift": False,
              "disabled": True, "hooks": []},
             {"app": "db", "namespace": "prod", "priority": 0, "action": "create",
              "creates": ["Secret/db-auth-1a2b3c4d5e"], "changes": [], "deletes": [],
              "drift": False, "hooks": ["pre-install Job/db-init (weight -5; "
                                        "before-hook-creation)"]}]
    assert format_plan("prod", plans, namespaces).splitlines() == [
        "Environment prod:",
        "~ namespace prod  (update, protected)",
        "    ~ label team: None -> ehealth",
        "    + LimitRange/pipelinelib-limits",
        "- old  (delete, namespace prod, enabled: false)",
        "    - Deployment/old",
        "+ db  (create, namespace prod, priority 0)",
        "    + Secret/db-auth-1a2b3c4d5e",
        "    > hook pre-install Job/db-init (weight -5; before-hook-creation)",
        "Namespaces: 1 to create or change.",
        "Plan: 1 to create, 0 to change, 1 to delete, 0 unchanged."]


def test_helmsman_style_negative_priorities_order_the_apply():
    text = HEAD + "apps:\n" + "".join(
        f"  {name}:\n    image: {{repository: x, tag: '1'}}\n    priority: {prio}\n"
        for name, prio in (("web", 0), ("db", -3), ("cache", -2), ("api", 0), ("queue", -3)))
    env = parse_environment(text, SRC, "prod")
    assert [(p, [a.name for a in apps]) for p, apps in env.by_priority()] == [
        (-3, ["db", "queue"]), (-2, ["cache"]), (0, ["api", "web"])]


def test_the_protected_namespace_label_cannot_be_set_or_removed_through_a_spec():
    text = HEAD + "namespaces:\n  prod:\n    labels: {team: a, " \
        "pipelinelib.dev/protected: \"false\"}\napps: {}\n"
    with pytest.raises(SpecInvalid) as info:
        parse_environment(text, SRC, "prod")
    assert [str(p) for p in info.value.problems] == [
        f"{SRC}:6 namespaces.prod.labels.pipelinelib.dev/protected: pipelinelib.dev/protected "
        "is set by the cluster's admins, never through a spec (expected other labels "
        "(protected: true marks the namespace protected in the policy))"]


def test_pipeline_validate_refuses_the_protected_label_with_exit_2(tmp_path):
    from tests.helpers.cli import run_pipeline

    spec = tmp_path / "environments" / "prod.yaml"
    spec.parent.mkdir()
    spec.write_text(HEAD + "namespaces:\n  prod:\n    labels: {pipelinelib.dev/protected: "
                    "\"false\"}\napps: {}\n")
    out = run_pipeline("validate", str(spec))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "prod.yaml:6" in out.stdout + out.stderr
    assert "namespaces.prod.labels.pipelinelib.dev/protected" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
