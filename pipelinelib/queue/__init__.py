"""The deploy queue of seed 003: see ``pipelinelib.queue.runner``."""
