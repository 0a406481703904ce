"""`pipelinelib.steps` exports every public step, lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pipelinelib.steps as steps
from pipelinelib.step import step_name

STEPS_DIR = Path(steps.__file__).parent


def _declared_steps() -> dict[str, str]:
    """{function: module} of every ``@step``-decorated function in pipelinelib/steps/."""
    found = {}
    for path in sorted(STEPS_DIR.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and getattr(d.func, "id", "") == "step"
                    for d in node.decorator_list):
                found[node.name] = path.stem
    return found


def test_every_declared_step_is_exported_as_the_step_function():
    declared = _declared_steps()
    assert len(declared) >= 30
    for name, module in declared.items():
        if name == module:  # rollout.rollout: the name is the module's
            assert getattr(steps, name).__name__ == f"pipelinelib.steps.{module}"
            assert step_name(getattr(getattr(steps, name), name))
        else:
            assert name in steps.__all__, name
            fn = getattr(steps, name)
            assert fn.__module__ == f"pipelinelib.steps.{module}" and step_name(fn), name
    assert set(dir(steps)) == set(steps.__all__)


def test_importing_steps_loads_no_step_module():
    code = ("import sys, pipelinelib.steps as s; "
            "print(sorted(m for m in sys.modules if m.startswith('pipelinelib.steps.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    code = "from pipelinelib.steps import push_image; print(push_image.step_name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "push"


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_step"):
        steps.no_such_step  # noqa: B018
