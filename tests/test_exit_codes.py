"""One exit-code table: the Groovy steps in vars/ (the meaning a failed stage names, the codes
a step returns instead of failing), the README and ``pipelinelib.errors`` say the same.

The Groovy text is parsed as text (the map literal in ``exitMeaning``, the ``okCodes:``
lists, the ``== N`` comparisons in the steps' help), so a code added or renumbered on one
side only fails here, not in a Jenkins run."""

from __future__ import annotations

import re

from pipelinelib import errors
from tests.helpers.paths import ROOT

VARS = ROOT / "vars"
EXIT_CONSTANTS = {name: value for name, value in vars(errors).items()
                  if name.startswith("EXIT_") and isinstance(value, int)}
CODES = set(EXIT_CONSTANTS.values())


def groovy_meanings() -> dict[int, str]:
    """The ``meanings`` map of ``exitMeaning`` in vars/pipelineCli.groovy."""
    text = (VARS / "pipelineCli.groovy").read_text()
    body = re.search(r"String exitMeaning\(Integer status\) \{\s*Map meanings = \[(.*?)\]",
                     text, re.S)
    assert body, "vars/pipelineCli.groovy: no `Map meanings = [...]` in exitMeaning"
    entries = re.findall(r"^\s*(\d+)\s*:\s*'([^']*)'\s*,?\s*$", body.group(1), re.M)
    assert entries, "exitMeaning's map has no `N: 'meaning'` entries"
    return {int(code): meaning for code, meaning in entries}


def help_lines() -> dict[int, str]:
    """``pipeline --help``'s exit-code lines (errors.EXIT_CODES_HELP), by code."""
    lines = re.findall(r"^\s+(\d+)\s+(.+)$", errors.EXIT_CODES_HELP, re.M)
    return {int(code): meaning for code, meaning in lines}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) - {"a", "an", "the", "or", "is", "and"}


def test_the_constants_are_the_codes_zero_to_five_each_once() -> None:
    assert sorted(EXIT_CONSTANTS.values()) == list(range(len(EXIT_CONSTANTS))), EXIT_CONSTANTS


def test_the_groovy_table_has_exactly_the_codes_errors_py_defines() -> None:
    meanings = groovy_meanings()
    assert set(meanings) == CODES, (
        f"vars/pipelineCli.groovy exitMeaning has {sorted(meanings)}; errors.py EXIT_* are "
        f"{sorted(CODES)}")


def test_each_groovy_meaning_says_what_the_cli_help_says_for_that_code() -> None:
    meanings, help_ = groovy_meanings(), help_lines()
    assert set(help_) == CODES, f"EXIT_CODES_HELP lists {sorted(help_)}"
    for code, meaning in meanings.items():
        missing = words(meaning) - words(help_[code])
        assert not missing, (f"exit {code}: the Groovy table says {meaning!r}, errors.py "
                             f"says {help_[code]!r}; {sorted(missing)} only in the Groovy")


def test_the_error_tree_in_the_errors_docstring_names_each_class_exit_code() -> None:
    tree = re.findall(r"(?:├──|└──|^\s{4})\s*(\w+)\s.*?exit (\d+)\s*$", errors.__doc__ or "",
                      re.M)
    assert len(tree) >= 4, f"no error tree with exit codes in errors.py's docstring: {tree}"
    for name, code in tree:
        cls = getattr(errors, name)
        assert cls.exit_code == int(code), f"{name}: docstring exit {code}, class {cls.exit_code}"
        assert int(code) in CODES


def test_every_code_a_step_accepts_or_documents_is_in_the_table() -> None:
    """``okCodes:`` in each vars/*.groovy, and each ``== N`` its help (vars/*.txt) tests the
    returned code against: a code the table knows, and one the step returns, not fails on."""
    meanings = groovy_meanings()
    checked = 0
    for groovy in sorted(VARS.glob("pipeline*.groovy")):
        accepted: set[int] = set()
        for listing in re.findall(r"okCodes:\s*([^\n,]*\[[^\n]*\])", groovy.read_text()):
            accepted |= {int(n) for n in re.findall(r"\d+", listing)}
        assert accepted <= set(meanings), f"{groovy.name}: okCodes {sorted(accepted)}"
        helptext = groovy.with_suffix(".txt")
        documented = {int(n) for n in re.findall(r"==\s*(\d+)", helptext.read_text())} \
            if helptext.exists() else set()
        assert documented <= accepted, (f"{helptext.name} compares the result with "
                                        f"{sorted(documented)}; {groovy.name} returns "
                                        f"{sorted(accepted) or [0]} (others fail the stage)")
        checked += len(accepted) + len(documented)
    assert checked >= 4, "no okCodes found in vars/: the parser no longer matches the Groovy"


def test_plan_and_deploy_accept_the_codes_errors_py_gives_their_outcomes() -> None:
    plan = (VARS / "pipelinePlan.groovy").read_text()
    deploy = (VARS / "pipelineDeploy.groovy").read_text()
    assert re.search(rf"okCodes:\s*\[\s*{errors.EXIT_OK}\s*,\s*{errors.EXIT_CHANGES_PENDING}\s*\]",
                     plan), "pipelinePlan must return EXIT_CHANGES_PENDING, not fail on it"
    assert re.search(rf"\[\s*{errors.EXIT_OK}\s*,\s*{errors.EXIT_AWAITING_PROMOTION}\s*\]",
                     deploy), "pipelineDeploy(awaitPromotion) must return EXIT_AWAITING_PROMOTION"


def test_the_readme_exit_code_table_lists_the_same_codes() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    rows = {int(n) for n in re.findall(r"^\|\s*(\d+)\s*\|", section, re.M)}
    assert rows == CODES, f"README 'Exit codes' lists {sorted(rows)}"
