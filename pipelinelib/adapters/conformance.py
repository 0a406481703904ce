"""Each adapter satisfies its seam: checked by mypy (``make lint``), never run.

A method renamed or retyped in an adapter, or added to a Protocol and not implemented,
fails the type check here rather than in a step at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelinelib.adapters.clair import ClairClient
    from pipelinelib.adapters.docker_engine import DockerEngine
    from pipelinelib.adapters.git_repo import GitRepo
    from pipelinelib.adapters.helm import HelmTool
    from pipelinelib.adapters.http import HttpProbe
    from pipelinelib.adapters.kube import KubeClient
    from pipelinelib.adapters.osv_scanner import OsvScannerTool
    from pipelinelib.adapters.postgres import Postgres
    from pipelinelib.adapters.protocols import (
        ClairScanner,
        Database,
        Engine,
        GitRepository,
        Helm,
        Http,
        Kube,
        OsvScanner,
        Registry,
    )
    from pipelinelib.adapters.registry import RegistryClient


def _seams(kube: KubeClient, engine: DockerEngine, registry: RegistryClient, git: GitRepo,
           db: Postgres, helm: HelmTool, http: HttpProbe, osv: OsvScannerTool,
           clair: ClairClient) -> None:
    """Never called: assigning each adapter to its Protocol is the check."""
    seams: tuple[Kube, Engine, Registry, GitRepository, Database, Helm, Http, OsvScanner,
                 ClairScanner] = (kube, engine, registry, git, db, helm, http, osv, clair)
    del seams
