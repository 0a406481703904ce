"""Performance budgets over Lighthouse JSON reports (and sitespeed.io coach's advice JSON).

A budget file (YAML)::

    categories:                     # minimum category scores, 0-1 (or 0-100)
      performance: 0.9
      accessibility: 0.9
    metrics:                        # maximum audit numericValue; units ms/s, B/KB/KiB/MB
      largest-contentful-paint: 2.5s
      total-blocking-time: 200ms
      cumulative-layout-shift: 0.1
      total-byte-weight: 500KiB
    aggregation: median-run         # several runs of a page: which value each check judges

``aggregation`` is lhci's ``aggregationMethod`` (docs/assertions.md of lighthouse-ci):
``median-run`` (the default) judges every check on the run Lighthouse's computeMedianRun
picks; ``optimistic`` judges each check on its best value among the valid runs (lhci's own
default: a regression that is in the page is in every run, while a busy CI agent spoils
only some), ``pessimistic`` on its worst, ``median`` on the median value.

Lighthouse writes ``categories.<id>.score`` (0-1, ``null`` when the category could not be
measured) and ``audits.<id>.numericValue``. A report with a ``runtimeError``, a null score
or a missing audit that the budget names fails: a gate never passes on what it could not
measure. Coach reports (``advice.<category>.score``, 0-100) feed the ``categories`` budget
as ``coach-<category>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelinelib.errors import BadInput

KEYS = {"categories", "metrics", "aggregation"}
AGGREGATIONS = ("median-run", "optimistic", "pessimistic", "median")
_UNITS = {"": 1, "ms": 1, "s": 1000, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000 ** 2,
          "mib": 1024 ** 2}
_QUANTITY = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")


@dataclass(frozen=True)
class Budget:
    categories: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = ""
    aggregation: str = "median-run"  # one of AGGREGATIONS


@dataclass
class Measured:
    """What a report says: category scores (0-1) and audit values, plus unreadable parts."""

    url: str = ""
    scores: dict[str, float | None] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    tool: str = "lighthouse"
    benchmark_index: float | None = None  # environment.benchmarkIndex: the host's CPU speed
    warnings: list[str] = field(default_factory=list)  # runWarnings, first sentence each


@dataclass
class Check:
    name: str
    ok: bool
    line: str


def quantity(value: Any, where: str, source: str) -> float:
    """A number, or ``2.5s`` / ``200ms`` / ``500KiB`` in ms or bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _QUANTITY.fullmatch(str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise BadInput(f"bad quantity {value!r}", source=source or None, field=where,
                       expected="a number, or with ms, s, B, KB, KiB, MB, MiB")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def load_budget(path: str | Path) -> Budget:
    import yaml

    from pipelinelib import yamlsafe

    source = str(path)
    try:
        data = yamlsafe.safe_load(Path(path)) or {}
    except FileNotFoundError as exc:
        raise BadInput("budget file not found", source=source) from exc
    except yamlsafe.YamlRefused:
        raise  # names the file, the line and the problem already
    except yaml.YAMLError as exc:
        raise BadInput(f"not valid YAML: {exc}", source=source) from exc
    if not isinstance(data, dict):
        raise BadInput("a budget is a mapping", source=source, expected="categories, metrics")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise BadInput(f"unknown key {unknown[0]!r}", source=source,
                       expected="categories, metrics, aggregation")
    aggregation = data.get("aggregation", "median-run")
    if aggregation not in AGGREGATIONS:
        raise BadInput(f"unknown aggregation {aggregation!r}", source=source,
                       field="aggregation", expected=", ".join(AGGREGATIONS))
    for key in ("categories", "metrics"):
        if not isinstance(data.get(key) or {}, dict):
            raise BadInput(f"{key} is a {type(data[key]).__name__}", source=source, field=key,
                           expected="a mapping of name: " + ("minimum score" if key ==
                                                              "categories" else "maximum value"))
    cats = {}
    for name, value in (data.get("categories") or {}).items():
        score = quantity(value, f"categories.{name}", source)
        cats[str(name)] = score / 100 if score > 1 else score
    metrics = {str(k): quantity(v, f"metrics.{k}", source)
               for k, v in (data.get("metrics") or {}).items()}
    if not cats and not metrics:
        raise BadInput("the budget is empty", source=source, expected="categories or metrics")
    return Budget(cats, metrics, source, str(aggregation))


def read_report(path: str | Path) -> Measured:
    """A Lighthouse (or coach) JSON report; malformed input is ``BadInput``."""
    from pipelinelib.scan.parsers import load_json

    doc = load_json(path)
    source = str(path)
    if not isinstance(doc, dict):
        raise BadInput("not a report object", source=source)
    if "advice" in doc and "categories" not in doc:
        return _coach(doc, source)
    if "categories" not in doc or "audits" not in doc:
        raise BadInput("not a Lighthouse report", source=source,
                       expected="a JSON report with categories and audits "
                                "(lighthouse --output json)")
    measured = Measured(url=str(doc.get("finalDisplayedUrl") or doc.get("finalUrl")
                                or doc.get("requestedUrl") or ""))
    env = doc.get("environment")
    index = env.get("benchmarkIndex") if isinstance(env, dict) else None
    if isinstance(index, (int, float)) and not isinstance(index, bool):
        measured.benchmark_index = float(index)
    run_warnings = doc.get("runWarnings")
    for warning in run_warnings if isinstance(run_warnings, list) else []:
        if isinstance(warning, str) and warning.strip():
            measured.warnings.append(" ".join(warning.split()).split(". ")[0].rstrip(".") + ".")
    error = doc.get("runtimeError")
    if isinstance(error, dict) and error.get("code") not in (None, "NO_ERROR"):
        measured.errors.append(f"lighthouse runtime error {error.get('code')}: "
                               f"{error.get('message', '')}")
    for key in ("categories", "audits"):
        if not isinstance(doc.get(key) or {}, dict):
            raise BadInput(f"{key} is a {type(doc[key]).__name__}", source=source, field=key,
                           expected="an object keyed by id (lighthouse --output json)")
    for cid, cat in (doc.get("categories") or {}).items():
        if not isinstance(cat, dict):
            raise BadInput("unexpected shape", source=source, field=f"categories.{cid}",
                           expected="an object")
        score = cat.get("score")
        if score is not None and not isinstance(score, (int, float)):
            raise BadInput("score is not a number", source=source,
                           field=f"categories.{cid}.score")
        measured.scores[cid] = score
    for aid, audit in (doc.get("audits") or {}).items():
        if not isinstance(audit, dict):
            raise BadInput("unexpected shape", source=source, field=f"audits.{aid}",
                           expected="an object")
        if isinstance(audit.get("numericValue"), (int, float)):
            measured.values[aid] = float(audit["numericValue"])
            measured.units[aid] = str(audit.get("numericUnit") or "")
    return measured


def _coach(doc: dict[str, Any], source: str) -> Measured:
    advice = doc["advice"]
    if not isinstance(advice, dict):
        raise BadInput("unexpected shape", source=source, field="advice", expected="an object")
    measured = Measured(url=str(doc.get("url") or ""), tool="coach")
    if isinstance(advice.get("score"), (int, float)):
        measured.scores["coach"] = advice["score"] / 100
    for name, part in advice.items():
        if isinstance(part, dict) and "score" in part:
            score = part["score"]
            measured.scores[f"coach-{name}"] = score / 100 if isinstance(score, (int, float)) \
                else None
    return measured


def check(measured: Measured, budget: Budget) -> list[Check]:
    """One check per budget line (plus one per runtime error)."""
    checks = [Check("runtime", False, f"✗ {e}") for e in measured.errors]
    for name, minimum in budget.categories.items():
        score = measured.scores.get(name)
        if score is None:
            why = ("not in the report" if name not in measured.scores
                   else "not measured (score null)")
            checks.append(Check(name, False, f"✗ category {name}: {why}"))
            continue
        ok = score >= minimum
        checks.append(Check(name, ok, f"{'✓' if ok else '✗'} category {name}: "
                                      f"{round(score * 100)} (minimum {round(minimum * 100)})"))
    for name, maximum in budget.metrics.items():
        if name not in measured.values:
            checks.append(Check(name, False, f"✗ {name}: not in the report"))
            continue
        value, unit = measured.values[name], measured.units.get(name, "")
        ok = value <= maximum
        checks.append(Check(name, ok, f"{'✓' if ok else '✗'} {name}: {_show(value, unit)} "
                                      f"(budget {_show(maximum, unit)})"))
    return checks


def _show(value: float, unit: str) -> str:
    if unit == "millisecond":
        return f"{value:.0f} ms"
    if unit == "byte":
        return f"{value / 1024:.1f} KiB"
    return f"{value:g}"
