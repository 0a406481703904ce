"""Image names follow seed 003 and the docker reference grammar."""

import pytest

from pipelinelib.errors import BadInput
from pipelinelib.imageref import ImageName, parse, tag_for_branch


def test_seed_name_scheme():
    name = ImageName("littleman-co", "git-littleman-co", "nginx")
    assert str(name.ref("a4945f8")) == "littleman-co/git-littleman-co-nginx:a4945f8"


def test_registry_prefix():
    name = ImageName("littleman-co", "docs-littleman-co", "nginx", registry="127.0.0.1:5001")
    assert str(name.ref("a4945f8")) == "127.0.0.1:5001/littleman-co/docs-littleman-co-nginx:a4945f8"


@pytest.mark.parametrize(("parts", "field"), [
    (("Littleman", "docs", "nginx"), "CONTAINER_NAMESPACE"),
    (("littleman", "docs_", "nginx"), "PROJECT_NAMESPACE"),
    (("littleman", "docs", ""), "CONTAINER_NAME"),
    (("littleman", "docs", "ng inx"), "CONTAINER_NAME"),
])
def test_invalid_parts_name_the_field(parts, field):
    with pytest.raises(BadInput) as err:
        ImageName(*parts, source="release.env")
    assert f"release.env {field}:" in str(err.value)


def test_invalid_tag_is_refused():
    with pytest.raises(BadInput, match="not a valid image tag"):
        ImageName("a", "b", "c").ref(".bad")


@pytest.mark.parametrize("reference", [
    "ubuntu", "library/ubuntu:22.04", "127.0.0.1:5001/a/b-c:1.0",
    "localhost/x@sha256:" + "a" * 64, "reg.example.com:443/ns/app:v1@sha256:" + "b" * 64,
])
def test_parse_round_trips(reference):
    assert str(parse(reference)) == reference


@pytest.mark.parametrize("reference", [
    "UPPER/case", "a//b", "a/b:", "a/b@sha256:short", "a/b:-tag", "-a/b",
])
def test_parse_refuses_invalid_references(reference):
    with pytest.raises(BadInput):
        parse(reference)


def test_branch_names_become_valid_tags():
    assert tag_for_branch("feature/Login Page") == "feature-login-page"
