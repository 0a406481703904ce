"""The one YAML loader: bounded in bytes, documents, depth and alias expansion.

Every file pipelinelib reads as YAML (manifests, environment specs, policies, budgets, gate
configs, CI inputs, rendered charts) goes through here. Before anything is built, one pass
over libyaml's event stream checks the limits *while parsing*: a billion-laughs bomb is
refused after a few hundred events, a deep nesting before Python recursion, a 10 GB file
before it is read. Then the same text is composed/constructed safely (``SafeConstructor``:
no Python tags).

Limits (each overridable with ``PIPELINE_YAML_<NAME>``, e.g. ``PIPELINE_YAML_MAX_BYTES``):

    max_bytes            16 MiB   one file (stat before reading)
    max_document_bytes    4 MiB   one document (the apiserver's request limit is 3 MiB)
    max_documents         5000    documents in one file
    max_depth              100    nested mappings/sequences
    max_nodes        1,000,000    nodes after expanding every alias
    max_alias_nodes    100,000    nodes that aliases add (kubectl: "excessive aliasing")

Alias expansion is counted without expanding: an anchored node's size is known when it
ends, an alias adds that size. go-yaml v3 (used by kubectl through sigs.k8s.io/yaml) bounds
the same thing with a ratio of alias decodes to all decodes; a fixed ceiling on the nodes
aliases add is simpler to state and allows every real use (templates, ``<<: *base``).

Text must be UTF-8 (kubectl's rule too); the ``mapping`` option refuses documents that are
not mappings (a Kubernetes object, a spec). Every refusal is :class:`YamlRefused`: a
``BadInput`` (exit 2, naming the file, line and limit) that is also a
``yaml.MarkedYAMLError``, so callers' ``except yaml.YAMLError`` handlers keep working.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from pipelinelib.errors import BadInput

# libyaml: an order of magnitude faster than the pure-Python parser
_Parser: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
_Composer: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_YAML_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(_YAML_TAG + t for t in (
    "str", "int", "float", "bool", "null", "seq", "map", "timestamp", "binary", "merge",
    "set", "omap", "pairs", "value")) | {"!"}


@dataclass(frozen=True)
class Limits:
    """What one file may hold; see the module doc."""

    max_bytes: int = 16 * 1024 * 1024
    max_document_bytes: int = 4 * 1024 * 1024
    max_documents: int = 5000
    max_depth: int = 100
    max_nodes: int = 1_000_000
    max_alias_nodes: int = 100_000

    @classmethod
    def from_env(cls, environ: Any = None) -> Limits:
        """The defaults, each overridden by ``PIPELINE_YAML_<NAME>`` when set."""
        environ = os.environ if environ is None else environ
        limits = cls()
        for f in fields(cls):
            value = environ.get(f"PIPELINE_YAML_{f.name.upper()}")
            if value:
                try:
                    limits = replace(limits, **{f.name: int(value)})
                except ValueError as exc:
                    raise BadInput(f"not an integer: {value!r}",
                                   field=f"PIPELINE_YAML_{f.name.upper()}",
                                   expected="a positive integer") from exc
        return limits


class YamlRefused(BadInput, yaml.MarkedYAMLError):
    """The YAML is malformed or over a limit; exit 2. Also a ``yaml.MarkedYAMLError``."""

    def __init__(self, problem: str, *, source: str, mark: Any = None,
                 expected: str | None = None, hint: str | None = None):
        line = mark.line + 1 if mark is not None else None
        BadInput.__init__(self, problem, source=source, line=line, expected=expected,
                          hint=hint)
        self.problem, self.problem_mark = problem, mark
        self.context, self.context_mark, self.note = None, None, None


def _limit(name: str, value: int) -> str:
    return f"{name}={value}; raise with PIPELINE_YAML_{name.upper()}"


def read(source: str | bytes | Path, name: str | None = None,
         limits: Limits | None = None) -> tuple[str, str]:
    """(text, name) of a file (size checked before reading), bytes or text; UTF-8 only."""
    limits = limits or Limits.from_env()
    if isinstance(source, Path):
        name = name or str(source)
        try:
            size = source.stat().st_size
            if size > limits.max_bytes:
                raise YamlRefused(f"file too large: {size} bytes", source=name,
                                  expected=f"at most {_limit('max_bytes', limits.max_bytes)}")
            with source.open("rb") as handle:
                raw = handle.read(size + 1)  # no buffer of max_bytes
                if len(raw) > size:  # still growing: read on up to the limit
                    raw += handle.read(limits.max_bytes + 1 - len(raw))
                data: str | bytes = raw
        except FileNotFoundError:
            raise  # the caller says what was missing
        except OSError as exc:
            raise YamlRefused(f"cannot read: {exc.strerror or exc}", source=name) from exc
    else:
        data = source
    name = name or "<yaml>"
    if len(data) > limits.max_bytes:
        raise YamlRefused(f"too large: more than {limits.max_bytes} bytes", source=name,
                          expected=f"at most {_limit('max_bytes', limits.max_bytes)}")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlRefused.not_utf8(exc, source=name, expected="a UTF-8 YAML file") from exc
    return data.removeprefix("\ufeff"), name


def check(text: str, name: str = "<yaml>", limits: Limits | None = None) -> int:
    """Stream the events and refuse the first limit crossed; returns the document count."""
    limits = limits or Limits.from_env()
    documents = depth = nodes = alias_nodes = 0
    anchors: dict[str, int] = {}
    open_: list[tuple[str | None, int]] = []  # (anchor, nodes before) per open collection
    doc_start = 0
    parser = _Parser(text)
    try:
        while parser.check_event():
            event = parser.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent or kind is yaml.MappingStartEvent or \
                    kind is yaml.SequenceStartEvent:
                tag = event.tag
                if tag is not None and tag not in _ALLOWED_TAGS:
                    raise YamlRefused(f"tag {tag} is not allowed", source=name,
                                      mark=event.start_mark,
                                      expected="plain YAML (maps, lists, scalars)")
                nodes += 1
                if kind is yaml.ScalarEvent:
                    if event.anchor is not None:
                        anchors[event.anchor] = 1
                else:
                    open_.append((event.anchor, nodes - 1))
                    depth = len(open_)
                    if depth > limits.max_depth:
                        raise YamlRefused(f"nested deeper than {limits.max_depth} levels",
                                          source=name, mark=event.start_mark,
                                          expected=_limit("max_depth", limits.max_depth))
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                anchor, before = open_.pop()
                if anchor is not None:
                    anchors[anchor] = nodes - before
            elif kind is yaml.AliasEvent:
                size = anchors.get(event.anchor, 1)
                nodes += size
                alias_nodes += size
                if alias_nodes > limits.max_alias_nodes:
                    raise YamlRefused(
                        f"excessive aliasing: aliases expand to more than "
                        f"{limits.max_alias_nodes} nodes", source=name, mark=event.start_mark,
                        expected=_limit("max_alias_nodes", limits.max_alias_nodes))
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > limits.max_documents:
                    raise YamlRefused(f"more than {limits.max_documents} documents",
                                      source=name, mark=event.start_mark,
                                      expected=_limit("max_documents", limits.max_documents))
                anchors.clear()
                doc_start = event.start_mark.index
            elif kind is yaml.DocumentEndEvent:
                size = event.end_mark.index - doc_start
                if size > limits.max_document_bytes:
                    raise YamlRefused(f"document {documents} is {size} characters",
                                      source=name, mark=event.start_mark,
                                      expected="at most " + _limit(
                                          "max_document_bytes", limits.max_document_bytes))
            if nodes > limits.max_nodes:
                raise YamlRefused(f"more than {limits.max_nodes} nodes (aliases expanded)",
                                  source=name, mark=event.start_mark,
                                  expected=_limit("max_nodes", limits.max_nodes))
    except YamlRefused:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlRefused(f"not valid YAML: {exc.problem or exc.context or exc}",
                          source=name, mark=mark) from None
    except yaml.YAMLError as exc:
        raise YamlRefused(f"not valid YAML: {exc}", source=name) from None
    finally:
        parser.dispose()
    return documents


class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor; Kubernetes' rules in ``plain`` mode (timestamps stay strings)."""


class _PlainConstructor(yaml.constructor.SafeConstructor):
    pass


def _timestamp_as_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    """A timestamp stays the string it was written as."""
    return str(loader.construct_yaml_str(node))


_PlainConstructor.add_constructor(_YAML_TAG + "timestamp", _timestamp_as_str)


def _compose_nodes(text: str, name: str) -> list[yaml.Node]:
    loader = _Composer(text)
    try:
        out = []
        while loader.check_node():
            out.append(loader.get_node())
        return out
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlRefused(f"not valid YAML: {exc.problem or exc}", source=name,
                          mark=mark) from None
    except yaml.YAMLError as exc:
        raise YamlRefused(f"not valid YAML: {exc}", source=name) from None
    finally:
        loader.dispose()


def compose_all(source: str | bytes | Path, name: str | None = None,
                limits: Limits | None = None) -> list[yaml.Node]:
    """The documents' node trees (for line numbers), after the limit checks."""
    text, name = read(source, name, limits)
    check(text, name, limits)
    return _compose_nodes(text, name)


def compose(source: str | bytes | Path, name: str | None = None,
            limits: Limits | None = None) -> yaml.Node | None:
    """The single document's node tree, or None for an empty stream."""
    nodes = compose_all(source, name, limits)
    if len(nodes) > 1:
        raise YamlRefused(f"{len(nodes)} documents where one is expected", source=name or
                          (str(source) if isinstance(source, Path) else "<yaml>"),
                          mark=nodes[1].start_mark, expected="a single YAML document")
    return nodes[0] if nodes else None


def construct(node: yaml.Node, name: str = "<yaml>", plain: bool = False) -> Any:
    """Python data of one composed node (safe types only)."""
    constructor = (_PlainConstructor if plain else _Constructor)()
    try:
        return constructor.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlRefused(f"not valid YAML: {exc.problem or exc}", source=name,
                          mark=mark) from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise YamlRefused(f"not valid YAML: {exc}", source=name,
                          mark=node.start_mark) from None


def load_with_lines(source: str | bytes | Path, name: str | None = None, *,
                    plain: bool = False, mapping: bool = False, skip_empty: bool = True,
                    limits: Limits | None = None) -> list[tuple[Any, int, int]]:
    """(data, 1-based line, document index) of every document; empty ones skipped."""
    text, name = read(source, name, limits)
    check(text, name, limits)
    out = []
    for index, node in enumerate(_compose_nodes(text, name)):
        data = construct(node, name, plain)
        if data is None and skip_empty:
            continue
        if mapping and not isinstance(data, dict):
            what = type(data).__name__ if data is not None else "empty"
            raise YamlRefused(f"document {index} is a {_KIND.get(what, what)}, not a mapping",
                              source=name, mark=node.start_mark,
                              expected="a mapping (key: value)")
        out.append((data, node.start_mark.line + 1, index))
    return out


_KIND = {"str": "string", "list": "list", "int": "number", "float": "number",
         "bool": "boolean", "empty": "empty document"}


def safe_load_all(source: str | bytes | Path, name: str | None = None, *,
                  plain: bool = False, mapping: bool = False,
                  limits: Limits | None = None) -> list[Any]:
    """Every non-empty document's data."""
    return [d for d, _, _ in load_with_lines(source, name, plain=plain, mapping=mapping,
                                             limits=limits)]


def safe_load(source: str | bytes | Path, name: str | None = None, *, plain: bool = False,
              mapping: bool = False, limits: Limits | None = None) -> Any:
    """The single document's data (None when empty); drop-in for ``yaml.safe_load``."""
    text, name = read(source, name, limits)
    node = compose(text, name, limits)
    if node is None:
        return None
    data = construct(node, name, plain)
    if mapping and not isinstance(data, dict):
        raise YamlRefused(f"the document is a {_KIND.get(type(data).__name__, 'value')}, "
                          "not a mapping", source=name, mark=node.start_mark,
                          expected="a mapping (key: value)")
    return data
