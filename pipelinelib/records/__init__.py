"""Deployment records: who deployed what, where and when, kept where they cannot be lost.

- ``audit``: audit events (deployment, promotion, refusal, override, swap) written to a
  JSONL file and/or an Elasticsearch/OpenSearch ``_bulk`` index; an outage spools them.
- ``tags``: annotated ``deployment-NNNN`` tags on each deployed commit (numbers unique
  across racing jobs: fetch, max+1, compare-and-swap push, retry).
- ``states``: the refspec state (development, staged, deployable, deployed, broken) as a
  git note under ``refs/notes/pipelinelib-state``, first line ``state: <state>``.
- ``metrics``: the deployment history and DORA metrics read back from git (+ audit JSONL).

Imports stay light here: ``pipelinelib.records.audit`` is imported by every command that
audits, and must not pull in GitPython.
"""
