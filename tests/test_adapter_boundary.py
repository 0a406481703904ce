"""No third-party client is called outside ``pipelinelib/adapters/`` (issue 13).

Walks every module of the package (ast, so imports inside functions count too) and fails
when one outside ``adapters/``
- imports a client library (``docker``, ``kubernetes``, GitPython, ``requests``...) or a
  way to start a process (``subprocess``, ``pty``, or the process runner
  ``pipelinelib.adapters.process``);
- starts a process some other way (``os.system``, ``os.popen``, ``os.exec*``,
  ``os.spawn*``, ``asyncio.create_subprocess_*``);
- names an external tool as a command (an argument list ``["git", ...]``, or
  ``shutil.which("helm")``): git, helm, docker, kubectl, squawk, oasdiff, osv-scanner,
  ssh-keygen, cosign... are run by the adapter that owns the tool.
Each exception below names its reason; an exception that no longer finds anything fails
too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipelinelib"

# the outside systems' client libraries and the process starters (top-level module names)
CLIENTS = {"docker", "kubernetes", "git", "gitdb", "requests", "psycopg", "jenkins",
           "subprocess", "pty"}
PROCESS_RUNNER = "pipelinelib.adapters.process"
# os / asyncio functions that start a process (prefixes)
STARTERS = {"os": ("system", "popen", "exec", "spawn", "posix_spawn", "fork"),
            "asyncio": ("create_subprocess_",)}
# external tools: a command naming one belongs in the tool's adapter
TOOLS = {"git", "helm", "docker", "kubectl", "kustomize", "squawk", "oasdiff",
         "osv-scanner", "ssh-keygen", "cosign", "crane", "skopeo", "clairctl", "psql",
         "pg_dump", "lighthouse", "chromium", "ssh", "curl", "openssl", "kind", "kwok"}

# path (relative to pipelinelib/) -> (findings allowed, why)
EXCEPTIONS: dict[str, tuple[set[str], str]] = {
    # the queue runs its stages: `python -m pipelinelib ...` and the app's own commands
    "queue/stages.py": ({PROCESS_RUNNER}, "runs the queue's configured stage commands "
                        "(our own CLI and the app's commands), no third-party client"),
    # the test harness starts and breaks the real components; it is not the library's code
    "testing/plugin.py": ({"psycopg"}, "pytest plugin: checks the testbed's PostgreSQL"),
    "testing/testbed.py": ({"subprocess", "argv:docker"},
                           "starts the testbed's real components"),
    "testing/faults.py": ({"subprocess", "requests", "psycopg"},
                          "fault injection drives Toxiproxy, a private registry and "
                          "PostgreSQL directly"),
    "testing/kill.py": ({"subprocess"}, "kill trials run the CLI as a child and kill it"),
}


def _tool(node: ast.expr) -> str | None:
    """The external tool a string constant names (``"git"``, ``"/usr/bin/helm"``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        name = node.value.rsplit("/", 1)[-1]
        return name if name in TOOLS else None
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def findings(path: Path) -> set[str]:
    """What ``path`` does that only an adapter may: client imports (``requests``), process
    starters (``os.system``), external commands (``argv:git``, ``which:kubectl``)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):  # a type named in an annotation is not a call
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            found |= {PROCESS_RUNNER for name in names if name == PROCESS_RUNNER}
            found |= {name.split(".")[0] for name in names} & CLIENTS
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module.split(".")[0]} & CLIENTS
            if node.module == PROCESS_RUNNER or (
                    node.module == "pipelinelib.adapters"
                    and any(alias.name == "process" for alias in node.names)):
                found.add(PROCESS_RUNNER)
        elif isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            tool = _tool(node.elts[0])
            if tool:
                found.add(f"argv:{tool}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, attr = node.func.value, node.func.attr
            if isinstance(owner, ast.Name):
                if attr.startswith(STARTERS.get(owner.id, ())):
                    found.add(f"{owner.id}.{attr}")
                if owner.id == "shutil" and attr == "which" and node.args:
                    tool = _tool(node.args[0])
                    if tool:
                        found.add(f"which:{tool}")
    return found


def test_no_client_library_or_external_tool_is_called_outside_adapters():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("adapters/"):
            continue
        extra = findings(path) - EXCEPTIONS.get(rel, (set(), ""))[0]
        if extra:
            offenders[rel] = sorted(extra)
    assert offenders == {}, f"clients or external tools used outside adapters/: {offenders}"


def test_every_exception_is_still_needed():
    stale = {rel: sorted(allowed - findings(PACKAGE / rel))
             for rel, (allowed, _why) in EXCEPTIONS.items()
             if not (PACKAGE / rel).is_file() or allowed - findings(PACKAGE / rel)}
    assert stale == {}, f"exceptions that find nothing any more (remove them): {stale}"


def test_the_walk_finds_imports_inside_functions_and_commands_of_external_tools():
    """The detector itself, on the adapters that are allowed all of it: a function-level
    ``import git`` counts (a lazy import is still a call outside adapters/), and so do an
    argument list naming a tool, ``shutil.which`` of one and the process runner."""
    assert findings(PACKAGE / "adapters" / "git_repo.py") >= {"git", "argv:git",
                                                              PROCESS_RUNNER}
    assert "requests" in findings(PACKAGE / "adapters" / "search_index.py")
    assert findings(PACKAGE / "adapters" / "kustomize.py") >= {"which:kubectl",
                                                               "which:kustomize",
                                                               PROCESS_RUNNER}


def test_a_process_started_any_other_way_is_found(tmp_path: Path) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text("import os, asyncio\n"
                      "def run(ref):\n"
                      "    os.system('true')\n"
                      "    os.execvp('helm', ['helm', 'version'])\n"
                      "    asyncio.create_subprocess_exec('/usr/bin/cosign', 'verify', ref)\n"
                      "    return ('ssh-keygen', '-Y', 'verify')\n")
    assert findings(module) == {"os.system", "os.execvp", "asyncio.create_subprocess_exec",
                                "argv:helm", "argv:ssh-keygen"}


def test_a_type_named_under_type_checking_is_not_a_call(tmp_path: Path) -> None:
    module = tmp_path / "typed.py"
    module.write_text("from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n"
                      "    from pipelinelib.adapters.process import Finished\n"
                      "    import docker\n")
    assert findings(module) == set()
