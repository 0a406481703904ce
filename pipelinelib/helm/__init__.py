"""Helm concepts: hook ordering (``hooks``). The ``helm`` tool itself is an adapter:
``pipelinelib.adapters.helm`` (reached as ``ctx.helm``)."""
