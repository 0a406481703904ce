"""``python -m pipelinelib`` is the ``pipeline`` command."""

from pipelinelib.cli import run

run()
