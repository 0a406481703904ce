"""The shared test code: one home for each piece the test modules use.

No test module imports another; what two of them share lives here.

- ``paths``: the repository's folders (ROOT, EXAMPLE, FIXTURES ...).
- ``git``: one git runner and the origin/clone builders.
- ``cli``: ``run_pipeline`` (the CLI in a subprocess).
- ``kube``: one kubectl wrapper (``Kubectl``), the typed cluster world (``Cluster``), the
  deployer's RBAC.
- ``manifests``: app manifests for the rollout tests (``web``, ``image``, ``write``).
- ``audit_log``: the apiserver's audit log as evidence of what was sent.
- ``registry``: tiny real images pushed to the testbed's registry.
- ``trust``: keys, allowed signers, signed policies and promotions.
- ``gitea``, ``queue``, ``pull_request``: the real git server and the worlds on it.
- ``promotion``: the promotion world (env-state repo with a bare origin, images pushed).
- ``envstate``: environment files and repositories, CI variables.
- ``audit_sink``: ZincSearch, a real Elasticsearch-compatible audit sink.
- ``realnode``: the testbed's real node (kubelet + containerd).
- ``jenkins_api``, ``gocd_agent``, ``groovy``: the CI servers' stand-ins and tools.
- ``tools``: the testbed's pinned tools (testbed/tools/NAME) and their exports.
- ``fakes``: a fake clock and a JSON HTTP handler.
- ``wait``: poll for a condition with a deadline (``wait_until``), instead of sleeping.
- ``processes``: racing writers, one function in several processes at once.
- ``yamlbombs``: hostile YAML.

Pytest fixtures shared across modules are registered in tests/conftest.py.
"""
