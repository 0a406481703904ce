"""Hypothesis: any malformed spec is refused with exit 2, one clear message, nothing written."""

from __future__ import annotations

import copy
import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelinelib.envspec.load import SpecInvalid, parse_environment
from tests.helpers.cli import run_pipeline
from tests.helpers.git import git

SRC = "environments/staging.yaml"
BASE = {
    "apiVersion": "pipelinelib.dev/v1", "kind": "Environment", "name": "staging",
    "namespaces": ["uro-staging"],
    "apps": {"uro": {"image": {"repository": "127.0.0.1:5001/vsekai/uro", "tag": "0.1.0"},
                     "replicas": 2, "ports": [{"name": "http", "port": 4000}],
                     "config": {"A": "1"}, "secrets": {"DB": {"secret": "db", "key": "url"}},
                     "resources": {"memory": "64Mi", "cpu": "100m"}, "priority": 1}},
}
# (path, a value that is wrong there)
WRONG = [
    (("apiVersion",), "v2"), (("kind",), "Cluster"), (("name",), "Staging!"),
    (("namespaces",), "uro-staging"), (("apps",), ["uro"]), (("apps", "uro", "replicas"), "two"),
    (("apps", "uro", "replicas"), -1), (("apps", "uro", "image"), "uro:1"),
    (("apps", "uro", "image", "digest"), "sha256:xyz"), (("apps", "uro", "image", "tag"), "-x"),
    (("apps", "uro", "ports", 0, "port"), 70000), (("apps", "uro", "ports"), {"http": 1}),
    (("apps", "uro", "config"), ["A=1"]), (("apps", "uro", "secrets", "DB"), "plaintext"),
    (("apps", "uro", "resources", "memory"), "lots"), (("apps", "uro", "priority"), "high"),
    (("apps", "uro", "protected"), "yes"), (("apps", "uro", "dns"), "uro.example"),
    (("apps", "uro", "chart"), {"name": "x"}), (("max_parallel",), 0),
]
REQUIRED = [("apiVersion",), ("kind",), ("name",), ("apps",), ("apps", "uro", "image"),
            ("apps", "uro", "image", "repository")]
CONTAINERS = [(), ("apps", "uro"), ("apps", "uro", "image"), ("apps", "uro", "resources")]

mutation = st.one_of(
    st.tuples(st.just("wrong"), st.sampled_from(WRONG)),
    st.tuples(st.just("drop"), st.sampled_from(REQUIRED)),
    st.tuples(st.just("unknown"), st.tuples(
        st.sampled_from(CONTAINERS),
        st.text(string.ascii_lowercase, min_size=3, max_size=8).map(lambda s: f"x{s}"))),
)


def _apply(data: dict, change: tuple) -> dict:
    data = copy.deepcopy(data)
    kind, arg = change
    if kind == "wrong":
        path, value = arg
    elif kind == "drop":
        path, value = arg, None
    else:
        path, value = (*arg[0], arg[1]), "surprise"
    node = data
    for key in path[:-1]:
        node = node[key]
    if kind == "drop":
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_every_malformed_spec_is_refused_with_file_line_and_field(changes):
    data = BASE
    for change in changes:
        try:
            data = _apply(data, change)
        except (KeyError, TypeError, IndexError):
            continue  # an earlier mutation removed the place; still malformed below
    if data == BASE:
        return
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        parse_environment(text, SRC, "staging")
    except SpecInvalid as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.source == SRC and isinstance(problem.line, int), str(problem)
            assert str(problem).startswith(f"{SRC}:{problem.line}")
        assert "Traceback" not in str(exc)
    else:
        raise AssertionError(f"accepted a malformed spec:\n{text}")


def test_cli_refuses_malformed_specs_with_exit_2_and_writes_nothing(tmp_path: Path):
    repo = tmp_path / "state"
    (repo / "environments").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for i, change in enumerate([WRONG[5], ("drop", ("apps", "uro", "image")),
                                ("unknown", ((), "colour"))]):
        data = _apply(BASE, change if change[0] in ("drop", "unknown") else ("wrong", change))
        (repo / "environments" / "staging.yaml").write_text(yaml.safe_dump(data))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"bad {i}")
        head = git(repo, "rev-parse", "HEAD")
        for command in ("plan", "apply"):
            out = run_pipeline(command, "staging", "--repo", str(repo),
                               env={"PIPELINE_LOG_FORMAT": "console",
                                    "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")})
            assert out.returncode == 2, out.stderr
            assert "Traceback" not in out.stderr
            assert "environments/staging.yaml:" in out.stderr
            assert out.stdout == ""
            assert git(repo, "status", "--porcelain") == ""
            assert git(repo, "rev-parse", "HEAD") == head
