"""Environments in promotion order: each chain from its entry environment onwards.

``promotion.from`` in each environment file names where its images come from; an environment
without it starts a chain. Seed 004 and seed 002 give ``int-test -> qa -> preprod -> prod``
and ``sandbox -> staging -> live``. Chains are listed by their first environment's name;
environments promoted from one source are ordered by name; an environment reached by two
chains appears once, in the first.

Given the apps of each environment, chains that deploy the same apps are one line: seed 002's
``sandbox`` (deployed from the sandbox branch, promoted nowhere) and ``staging -> live``
(deployed from main) become ``sandbox -> staging -> live`` - the shorter chain first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def promotion_chains(sources: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """``{env: promote_from}`` -> the chains, entry environment first."""
    children: dict[str, list[str]] = {name: [] for name in sources}
    for name, froms in sources.items():
        for source in froms:
            if source in children:
                children[source].append(name)
    seen: set[str] = set()
    chains: list[list[str]] = []

    def walk(name: str, chain: list[str]) -> None:
        if name in seen:
            return
        seen.add(name)
        chain.append(name)
        for child in sorted(children[name]):
            walk(child, chain)

    roots = sorted(n for n, froms in sources.items()
                   if not [s for s in froms if s in sources])
    for root in roots + sorted(sources):  # the rest: environments caught in a cycle
        chain: list[str] = []
        walk(root, chain)
        if chain:
            chains.append(chain)
    return chains


def promotion_lines(sources: Mapping[str, Sequence[str]],
                    apps: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The chains, those sharing an app joined into one line (shorter chain first)."""
    lines: list[tuple[set[str], list[list[str]]]] = []
    for chain in promotion_chains(sources):
        deployed = {a for env in chain for a in apps.get(env, ())}
        for line_apps, members in lines:
            if line_apps & deployed:
                line_apps |= deployed
                members.append(chain)
                break
        else:
            lines.append((deployed, [chain]))
    return [[env for chain in sorted(members, key=len) for env in chain]
            for _, members in lines]


def promotion_order(sources: Mapping[str, Sequence[str]],
                    apps: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """Every environment once, line after line (see ``promotion_lines``)."""
    return [name for line in promotion_lines(sources, apps or {}) for name in line]
