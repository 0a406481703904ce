"""pytest plugin: session fixtures for the real testbed components.

Fixtures: ``testbed`` (the ``Testbed``), ``docker_env``, ``registry_env``,
``kube_env``, ``node_env``, ``postgres_env`` (each a dict of the component's exported
variables); ``toxiproxy``, ``fault_proxy`` and ``scenario`` from ``faults``.
A component that fails to start fails the test run; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelinelib.testing.faults import (  # noqa: F401
    fault_proxy,
    private_postgres,
    private_registry,
    scenario,
    toxiproxy,
)
from pipelinelib.testing.testbed import Testbed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pipelinelib")
    group.addoption("--testbed-dir", default=None,
                    help="testbed state directory (default $PIPELINELIB_TESTBED or "
                         "/tmp/pipelinelib-testbed)")


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Testbed:
    """The shared testbed; components start on first use and keep running after the session."""
    return Testbed(request.config.getoption("--testbed-dir"))


@pytest.fixture(scope="session")
def docker_env(testbed: Testbed) -> dict[str, str]:
    """A private Docker engine: DOCKER_HOST, PIPELINELIB_BASE_IMAGE."""
    return testbed.up("docker")


@pytest.fixture(scope="session")
def registry_env(testbed: Testbed) -> dict[str, str]:
    """Open and basic-auth registries (PIPELINELIB_REGISTRY, PIPELINELIB_AUTH_REGISTRY...)."""
    return testbed.up("docker", "registry")


@pytest.fixture(scope="session")
def kube_env(testbed: Testbed) -> dict[str, str]:
    """A Kubernetes control plane with kwok nodes: KUBECONFIG, PIPELINELIB_KUBE_BIN."""
    return testbed.up("kubernetes")


@pytest.fixture(scope="session")
def node_env(testbed: Testbed) -> dict[str, str]:
    """The control plane and one real tainted node (kubelet, containerd): PIPELINELIB_REAL_NODE."""
    return testbed.up("docker", "registry", "kubernetes", "node")


@pytest.fixture(scope="session")
def postgres_env(testbed: Testbed) -> dict[str, str]:
    """A private PostgreSQL cluster: PIPELINELIB_PG_DSN and friends."""
    return testbed.up("postgres")


@pytest.fixture
def postgres_db(postgres_env: dict[str, str]) -> Iterator[str]:
    """A fresh database on the testbed's PostgreSQL; yields its DSN and drops it afterwards."""
    import uuid

    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = postgres_env["PIPELINELIB_PG_DSN"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
