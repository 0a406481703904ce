"""The one YAML loader: every limit is checked while parsing, refusals are exit-2 BadInput."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from pathlib import Path

import pytest
import yaml

from pipelinelib import yamlsafe
from pipelinelib.errors import BadInput
from pipelinelib.yamlsafe import Limits, YamlRefused
from tests.helpers.yamlbombs import billion_laughs


def test_billion_laughs_is_refused_while_parsing_with_little_memory(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    tracemalloc.start()
    with pytest.raises(YamlRefused) as refused:
        yamlsafe.safe_load_all(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    error = refused.value
    assert isinstance(error, BadInput) and error.exit_code == 2
    assert str(bomb) in error.message and "excessive aliasing" in error.message
    assert "max_alias_nodes=100000" in error.message, "the message names the limit"
    assert "PIPELINE_YAML_MAX_ALIAS_NODES" in error.message
    assert error.line == 10, "the line (level 5) where the expansion crosses the limit"
    assert peak < 5 * 1024 * 1024, f"peak {peak} bytes: nothing was expanded"


def test_refusal_is_also_a_yaml_error_so_existing_handlers_name_the_file(tmp_path):
    with pytest.raises(yaml.MarkedYAMLError) as refused:
        yamlsafe.compose(billion_laughs())
    assert refused.value.problem.startswith("excessive aliasing")
    assert refused.value.problem_mark.line == 9


def test_ordinary_aliases_and_merge_keys_still_work():
    text = """
base: &base {image: web, replicas: 2, env: [A, B]}
apps:
  one: {<<: *base, replicas: 3}
  two: *base
"""
    data = yamlsafe.safe_load(text)
    assert data["apps"]["one"] == {"image": "web", "replicas": 3, "env": ["A", "B"]}
    assert data["apps"]["two"]["env"] == ["A", "B"]


def test_alias_limit_counts_expanded_nodes_not_alias_events():
    # 20 aliases of a 10,000-node list: 200,000 nodes although only 20 alias events
    big = "[" + ",".join(["1"] * 10_000) + "]"
    text = f"a: &a {big}\nb: [" + ",".join(["*a"] * 20) + "]\n"
    with pytest.raises(YamlRefused, match="excessive aliasing"):
        yamlsafe.safe_load(text)
    assert yamlsafe.safe_load(text, limits=Limits(max_alias_nodes=300_000))["b"][19][0] == 1


@pytest.mark.parametrize(("text", "limits", "phrase", "limit"), [
    ("[" * 101 + "]" * 101, Limits(), "nested deeper than 100 levels", "max_depth=100"),
    ("a: 1\n---\nb: 2\n---\nc: 3\n", Limits(max_documents=2), "more than 2 documents",
     "max_documents=2"),
    ("a: " + "x" * 2000 + "\n", Limits(max_document_bytes=1000), "document 1 is",
     "max_document_bytes=1000"),
    ("[" + ",".join(["1"] * 500) + "]", Limits(max_nodes=100), "more than 100 nodes",
     "max_nodes=100"),
    ("a: " + "x" * 300, Limits(max_bytes=100), "too large", "max_bytes=100"),
])
def test_each_limit_is_named_in_the_refusal(text, limits, phrase, limit):
    with pytest.raises(YamlRefused) as refused:
        yamlsafe.safe_load_all(text, "input.yaml", limits=limits)
    assert phrase in refused.value.message and limit in refused.value.message
    assert refused.value.message.startswith("input.yaml")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:  # sparse: 64 MiB of nothing, never read
        handle.truncate(64 * 1024 * 1024)
    tracemalloc.start()
    with pytest.raises(YamlRefused, match="file too large: 67108864 bytes"):
        yamlsafe.safe_load_all(huge)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1024 * 1024


def test_limits_come_from_the_environment():
    limits = Limits.from_env({"PIPELINE_YAML_MAX_DEPTH": "7", "PIPELINE_YAML_MAX_BYTES": "10"})
    assert (limits.max_depth, limits.max_bytes, limits.max_documents) == (7, 10, 5000)
    with pytest.raises(BadInput, match="PIPELINE_YAML_MAX_DEPTH: not an integer"):
        Limits.from_env({"PIPELINE_YAML_MAX_DEPTH": "deep"})


@pytest.mark.parametrize(("data", "phrase"), [
    (b"kind: \xff\xfe\x00binary", "not UTF-8 text (byte 0xff at offset 6)"),
    (b"a: \x00\x01\x02", "not valid YAML"),
    ("!!python/object/apply:os.system ['echo pwned']", "tag tag:yaml.org,2002:python/object"),
    ("a: !custom 1", "tag !custom is not allowed"),
    ("a: [1, 2", "not valid YAML"),
    ("a: *nowhere", "not valid YAML"),
])
def test_binary_other_encodings_python_tags_and_syntax_errors_are_refused(data, phrase):
    with pytest.raises(YamlRefused) as refused:
        yamlsafe.safe_load_all(data, "x.yaml")
    assert phrase in refused.value.message
    assert refused.value.exit_code == 2


def test_documents_that_are_not_mappings_are_refused_when_a_mapping_is_required():
    with pytest.raises(YamlRefused, match="document 1 is a string, not a mapping"):
        yamlsafe.safe_load_all("a: 1\n---\njust a string\n", "m.yaml", mapping=True)
    with pytest.raises(YamlRefused, match="is a list, not a mapping"):
        yamlsafe.safe_load("[1, 2]", "m.yaml", mapping=True)
    assert yamlsafe.safe_load_all("just a string") == ["just a string"]


def test_plain_mode_keeps_timestamps_as_strings_like_kubernetes():
    text = "date: 2024-01-02\nat: 2024-01-02T03:04:05Z\n"
    assert yamlsafe.safe_load(text, plain=True) == {"date": "2024-01-02",
                                                    "at": "2024-01-02T03:04:05Z"}
    assert yamlsafe.safe_load(text)["date"] == dt.date(2024, 1, 2)


def test_lines_and_indexes_of_documents_skip_empty_ones():
    docs = yamlsafe.load_with_lines("---\n# only a comment\n---\na: 1\n---\n---\nb: 2\n")
    assert [(d, line, i) for d, line, i in docs] == [({"a": 1}, 4, 1), ({"b": 2}, 7, 3)]


def test_a_missing_file_stays_file_not_found_for_the_callers_message(tmp_path):
    with pytest.raises(FileNotFoundError):
        yamlsafe.safe_load(Path(tmp_path / "nope.yaml"))
