"""Promotion: copy an exact image digest from one environment's spec to the next's.

``policy`` (who may promote where, four eyes), ``approvals`` (a second person's approval,
stale when the digest or spec changes), ``hotfix`` (records and the back-merge check),
``audit`` (every promotion, approval and refusal is recorded).
"""
