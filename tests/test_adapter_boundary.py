"""No third-party client is called outside ``pipelinelib/adapters/`` (issue 13).

Walks every module of the package (ast, so imports inside functions count too) and fails
when one outside ``adapters/`` imports a client library. Each exception below names its
reason; an exception that no longer imports anything fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipelinelib"

# the outside systems' client libraries (top-level module names)
CLIENTS = {"docker", "kubernetes", "git", "gitdb", "requests", "psycopg", "jenkins",
           "subprocess"}

# path (relative to pipelinelib/) -> (modules allowed, why)
EXCEPTIONS: dict[str, tuple[set[str], str]] = {
    # the test harness starts and breaks the real components; it is not the library's code
    "testing/plugin.py": ({"psycopg"}, "pytest plugin: checks the testbed's PostgreSQL"),
    "testing/testbed.py": ({"subprocess"}, "starts the testbed's real components"),
    "testing/faults.py": ({"subprocess", "requests", "psycopg"},
                          "fault injection drives Toxiproxy, a private registry and "
                          "PostgreSQL directly"),
    "testing/kill.py": ({"subprocess"}, "kill trials run the CLI as a child and kill it"),
}


def client_imports(path: Path) -> set[str]:
    """The client libraries ``path`` imports, anywhere in the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & CLIENTS
    return found


def test_no_client_library_is_imported_outside_adapters():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("adapters/"):
            continue
        extra = client_imports(path) - EXCEPTIONS.get(rel, (set(), ""))[0]
        if extra:
            offenders[rel] = sorted(extra)
    assert offenders == {}, f"client libraries imported outside adapters/: {offenders}"


def test_every_exception_is_still_needed():
    stale = {rel: sorted(allowed - client_imports(PACKAGE / rel))
             for rel, (allowed, _why) in EXCEPTIONS.items()
             if not (PACKAGE / rel).is_file() or allowed - client_imports(PACKAGE / rel)}
    assert stale == {}, f"exceptions that import nothing any more (remove them): {stale}"


def test_the_walk_finds_imports_inside_functions():
    """The detector itself: a function-level ``import git`` counts (a lazy import is still
    a call outside adapters/)."""
    assert client_imports(PACKAGE / "adapters" / "git_repo.py") >= {"git"}
    assert "requests" in client_imports(PACKAGE / "adapters" / "search_index.py")
