"""Deployment records: who deployed what, where and when, kept where they cannot be lost.

- ``audit``: audit events (deployment, promotion, refusal, override, swap) written to a
  JSONL file and/or an Elasticsearch/OpenSearch ``_bulk`` index; an outage spools them.
- ``tags``: annotated ``deployment-NNNN`` tags on each deployed commit (numbers unique
  across racing jobs: fetch, max+1, compare-and-swap push, retry).
- ``states``: the refspec state (development, staged, deployable, deployed, broken) as a
  git note under ``refs/notes/pipelinelib-state``, first line ``state: <state>``.
- ``history`` and ``metrics``: the deployment log and DORA metrics read back from git.

Imports stay light here: ``pipelinelib.records.audit`` is imported by every command that
audits, and must not pull in GitPython.
"""
