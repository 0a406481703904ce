"""The promotion policy file: roles, groups, deny by default, errors naming their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelinelib.context import CIInfo, Context
from pipelinelib.errors import BadInput, Refused
from pipelinelib.promotion.policy import identity, load_policy
from tests.helpers.paths import EXAMPLE_STATE


def test_the_example_policy_grants_roles_through_groups_and_denies_by_default():
    policy = load_policy(EXAMPLE_STATE)
    prod = policy.env("prod")
    assert prod.four_eyes and policy.holds("rm-alice", prod.promote)
    assert not policy.holds("dev-dana", prod.promote)
    assert policy.holds("anyone", policy.env("sandbox").promote)
    assert not policy.holds("rm-alice", policy.env("nowhere").promote), "deny by default"
    assert not policy.holds("", ["*"]), "an unknown user holds nothing"


def test_the_swap_role_defaults_to_the_promote_role():
    policy = load_policy(EXAMPLE_STATE)
    staging = policy.env("staging")
    assert policy.holds("changes", staging.promote) and not policy.holds("changes",
                                                                         staging.swappers)
    assert policy.holds("rm-alice", staging.swappers)
    assert policy.env("live").swappers == policy.env("live").promote


@pytest.mark.parametrize("text, message, line", [
    ("groups: {a: [x]}\nenvironments:\n  prod: {promote: [x], owner: y}\n",
     "unknown key 'owner'", 3),
    ("environments:\n  prod:\n    four_eyes: yes-please\n", "invalid value 'yes-please'", 3),
    ("environments:\n  prod:\n    four_eyes: true\n", "four_eyes needs approvers", 3),
    ("groups:\n  a: x\n", "a group is a list of user names", 2),
    ("environments:\n  staging:\n    swap: rm-alice\n", "invalid value 'rm-alice'", 3),
    ("team: [x]\n", "unknown keys ['team']", 1),
])
def test_policy_errors_name_file_line_and_field(tmp_path: Path, text, message, line):
    (tmp_path / "policy.yaml").write_text(text)
    with pytest.raises(BadInput) as info:
        load_policy(tmp_path)
    assert message in str(info.value)
    assert f"policy.yaml:{line}" in str(info.value)


def test_a_missing_policy_file_is_bad_input(tmp_path: Path):
    with pytest.raises(BadInput, match="no policy file"):
        load_policy(tmp_path)


def test_identity_is_the_ci_servers_user_never_a_local_one_where_ci_is_required():
    policy = load_policy(EXAMPLE_STATE)
    jenkins = Context(ci=CIInfo.from_env({"JENKINS_URL": "x", "BUILD_USER_ID": "rm-bob"}))
    assert identity(jenkins, policy.env("prod"), "prod") == "rm-bob"
    local = Context(ci=CIInfo(provider="local", user="rm-bob"))
    with pytest.raises(Refused, match="must run on the CI server"):
        identity(local, policy.env("prod"), "prod")
    assert identity(local, policy.env("sandbox"), "sandbox") == "rm-bob"
    gocd_anonymous = Context(ci=CIInfo.from_env({"GO_PIPELINE_NAME": "p"}))
    with pytest.raises(Refused, match="did not say who triggered"):
        identity(gocd_anonymous, policy.env("prod"), "prod")
