"""Hostile YAML for the validation tests."""

from __future__ import annotations


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic bomb: each level is a list of ``width`` aliases of the level below."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}", "data:",
             '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for i in range(1, levels):
        name = f"l{i}"
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{prev}"] * width) + "]")
        prev = name
    return "\n".join(lines) + "\n"
