"""Reports of a run: JUnit XML for the CI server, summary.json and summary.md for people."""

from pipelinelib.report.writer import write_reports

__all__ = ["write_reports"]
