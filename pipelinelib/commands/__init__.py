"""CLI commands: each module has ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args, ctx) -> exit code``. Keep their imports light; import steps inside ``run``."""
