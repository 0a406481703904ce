"""Job compositions: one module per job, each a typed function over (job, ctx, options).

A pipeline runs steps inside a ``Job`` (which records them, reports, and decides the exit
code); its options are a dataclass that ``pipelinelib.commands`` fills from the command
line (the ``pipeline X`` subcommand and the ``jobs/X.py`` script share that parser).

``build``, ``scan``, ``promote`` (also through a pull request), ``swap``, ``rollback``,
``branch_deploy``, ``autoroll`` and ``queue``.
"""
