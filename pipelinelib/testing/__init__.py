"""Test helpers shipped with pipelinelib: bring up the real testbed from pytest.

Installed as a pytest plugin (entry point ``pipelinelib``), it gives any project
the same real components pipelinelib's own tests use: a Docker engine, open and
authenticated registries, a Kubernetes control plane with kwok, PostgreSQL.
"""

from pipelinelib.testing.testbed import Testbed, TestbedError

__all__ = ["Testbed", "TestbedError"]
