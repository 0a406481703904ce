"""Kubernetes deployment pieces used by the rollout step.

``kinds``: the one table of kinds (order, workload, hashed, prunable, history, scope,
health rule); ``labels``: every label and annotation we write or read; ``manifests``: load,
validate, order, label and hash; ``health``: per-kind success and failure rules; ``wait``:
the watch-driven waiter (rollout, rollback, migration Job, helm hooks); ``lock``: the
deploy Lease; ``revisions``: diff, rollback and prune; ``bluegreen``: colours and the
Service swap.
"""
