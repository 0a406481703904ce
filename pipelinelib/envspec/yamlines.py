"""YAML with line numbers, and surgical edits that keep comments and layout.

``load(text)`` returns plain Python data plus ``Lines``: the 1-based line of every
mapping key / sequence item, addressed by its path (a tuple of keys and indexes).
``set_value(text, path, value)`` rewrites one scalar in place (or inserts the key
into its parent mapping), so a promotion commit changes exactly one line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from pipelinelib import yamlsafe

Path = tuple[Any, ...]


class YamlError(ValueError):
    """The text is not YAML (or has duplicate keys); ``line`` says where."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


class Lines:
    """Line numbers by path; a missing path falls back to its nearest ancestor."""

    def __init__(self) -> None:
        self.by_path: dict[Path, int] = {}

    def line(self, path: Sequence[Any]) -> int | None:
        path = tuple(path)
        while path:
            if path in self.by_path:
                return self.by_path[path]
            path = path[:-1]
        return self.by_path.get((), None)


def compose(text: str) -> yaml.Node | None:
    """The node graph of one YAML document: the one place env specs are parsed (bounded)."""
    return yamlsafe.compose(text)


def load(text: str) -> tuple[Any, Lines]:
    """Parse ``text`` (one document) into data and the line of every node.

    Merge keys (``<<: *template``, ``<<: [*a, *b]``) are resolved as YAML 1.1 defines them:
    keys written in the mapping win, then the first mapping of a ``<<`` list; a later
    ``<<`` key wins over an earlier one (helmsman's app-template pattern).
    """
    try:
        node = compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(str(exc.problem or exc), mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise YamlError(str(exc), None) from exc
    lines = Lines()
    if node is None:
        return None, lines
    return _Builder(lines).build(node, ()), lines


MAX_ALIASED = 20_000  # nodes built again through aliases/merge keys: an alias bomb stops here
_MERGE = "tag:yaml.org,2002:merge"


class _Builder:
    """Plain data from a node graph, recording the line of every path."""

    def __init__(self, lines: Lines):
        self.lines = lines
        self.scalar = yaml.constructor.SafeConstructor().construct_object
        self.seen: set[int] = set()
        self.again = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        if id(node) in self.seen:
            self.again += 1
            if self.again > MAX_ALIASED:
                raise YamlError(f"aliases expand to more than {MAX_ALIASED} extra nodes",
                                node.start_mark.line + 1)
        self.seen.add(id(node))
        self.lines.by_path[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in reversed(self._merge_sources(value_node)):
                    merged.update(self._mapping(source, path))
                continue
            key = (self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode)
                   else str(key_node))
            if isinstance(key, (dict, list)):
                raise YamlError("mapping keys must be scalars", key_node.start_mark.line + 1)
            if key in result:
                raise YamlError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
            child = (*path, key)
            result[key] = self.build(value_node, child)
            self.lines.by_path[child] = key_node.start_mark.line + 1
        self.lines.by_path[path] = node.start_mark.line + 1
        return {**merged, **result}

    @staticmethod
    def _merge_sources(node: yaml.Node) -> list[yaml.MappingNode]:
        if isinstance(node, yaml.MappingNode):
            return [node]
        if isinstance(node, yaml.SequenceNode) and all(
                isinstance(n, yaml.MappingNode) for n in node.value):
            return list(node.value)
        raise YamlError("a merge key (<<) takes a mapping or a list of mappings",
                        node.start_mark.line + 1)


def _find(node: yaml.Node, path: Sequence[Any]) -> tuple[yaml.Node | None, yaml.Node | None]:
    """(parent mapping node, value node) for ``path``; value None when the key is absent."""
    parent = None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return parent, None
        parent = node
        match = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
        if match is None:
            return parent if key == path[-1] else None, None
        node = match
    return parent, node


def render_scalar(value: Any) -> str:
    """A YAML flow scalar for ``value`` (strings always quoted)."""
    if isinstance(value, str):
        return json.dumps(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...")


def set_value(text: str, path: Sequence[Any], value: Any) -> str:
    """``text`` with the scalar at ``path`` set to ``value``; comments are kept.

    The parent mapping must exist and be in block style; a missing key is added after
    the parent's last key with the same indentation.
    """
    root = compose(text)
    if root is None:
        raise YamlError(f"cannot set {'.'.join(map(str, path))}: the document is empty", 1)
    parent, node = _find(root, path)
    rendered = render_scalar(value)
    if node is not None:
        if not isinstance(node, yaml.ScalarNode):
            raise YamlError(f"{'.'.join(map(str, path))} is not a scalar", node.start_mark.line + 1)
        if yaml.constructor.SafeConstructor().construct_object(node) == value:
            return text
        return text[: node.start_mark.index] + rendered + text[node.end_mark.index :]
    if not isinstance(parent, yaml.MappingNode) or parent.flow_style or not parent.value:
        raise YamlError(f"cannot add {'.'.join(map(str, path))}: no block mapping to add it to",
                        None)
    first_key = parent.value[0][0]
    indent = " " * first_key.start_mark.column
    last_value = parent.value[-1][1]
    end = last_value.end_mark.index
    line_end = text.find("\n", end - 1 if end and text[end - 1] == "\n" else end)
    insert_at = len(text) if line_end < 0 else line_end + 1
    prefix = "" if insert_at == 0 or text[insert_at - 1] == "\n" else "\n"
    line = f"{prefix}{indent}{path[-1]}: {rendered}\n"
    return text[:insert_at] + line + text[insert_at:]
