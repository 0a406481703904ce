"""The context resolves credentials and the kubeconfig once and hands out typed adapters.

Real components: the testbed's htpasswd registry, its Kubernetes control plane (as the
least-privilege deployer) and its PostgreSQL.
"""

from __future__ import annotations

import pytest

from pipelinelib.adapters.protocols import Database, Helm, Http, Kube, Registry
from pipelinelib.context import Context, Credentials
from pipelinelib.errors import StepFailed


def test_credentials_come_from_the_environment_once_and_the_password_is_a_secret():
    env = {"PIPELINE_KUBECONFIG": "/k/pipeline", "KUBECONFIG": "/k/default",
           "PIPELINE_KUBE_CONTEXT": "staging", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
           "PIPELINE_REGISTRY_USER": "ci", "PIPELINE_REGISTRY_PASSWORD": "planted-s3cret-pw"}
    cred = Credentials.from_env(env)
    assert (cred.kubeconfig, cred.kube_context, cred.in_cluster) == ("/k/pipeline", "staging",
                                                                     False)
    assert (cred.registry_user, cred.registry_password) == ("ci", "planted-s3cret-pw")
    assert "planted-s3cret-pw" not in repr(cred)
    assert Credentials.from_env({"KUBECONFIG": "/k/default"}).kubeconfig == "/k/default"
    pod = Credentials.from_env({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert pod.in_cluster and pod.kubeconfig is None
    ctx = Context(credentials=cred)
    assert "planted-s3cret-pw" not in ctx.secrets.redact_text("login planted-s3cret-pw")


def test_the_registry_client_is_one_per_host_and_logs_in_with_the_runs_credentials(
        registry_env):
    host = registry_env["PIPELINELIB_AUTH_REGISTRY"]
    user = registry_env["PIPELINELIB_AUTH_REGISTRY_USER"]
    password = registry_env["PIPELINELIB_AUTH_REGISTRY_PASSWORD"]
    ctx = Context(credentials=Credentials(registry_user=user, registry_password=password))
    registry = ctx.registry(host)
    assert isinstance(registry, Registry)
    registry.ping()
    assert ctx.registry(host) is registry, "one client per host for the run"
    assert password not in ctx.secrets.redact_text(f"pw {password}")

    anonymous = Context(credentials=Credentials())
    with pytest.raises(StepFailed):
        anonymous.registry(host).ping()
    # a build's env file logs in to its own registry instead (validate_build does this)
    anonymous.use_registry_credentials(host, user, password)
    anonymous.registry(host).ping()
    assert password not in anonymous.secrets.redact_text(password)


def test_a_registry_given_to_the_context_wins_over_the_default(registry_env):
    host = registry_env["PIPELINELIB_REGISTRY"]
    from pipelinelib.adapters.registry import RegistryClient

    mine = RegistryClient(host)
    assert Context(adapters={"registry": mine}).registry("elsewhere:5000") is mine
    per_host = Context(adapters={"registry": lambda h: RegistryClient(h)})
    assert per_host.registry(host).host == host


def test_one_kubernetes_client_per_cluster_and_use_kube_switches_the_runs_cluster(kube_env):
    deployer = kube_env["PIPELINELIB_DEPLOYER_KUBECONFIG"]
    ctx = Context(credentials=Credentials(kubeconfig=deployer))
    assert isinstance(ctx.kube, Kube)
    assert ctx.kube_for() is ctx.kube, "no kubeconfig or context: the run's cluster"
    other = ctx.kube_for(deployer, None)
    assert ctx.kube_for(deployer, None) is other, "cached per (kubeconfig, context)"
    assert other.server_version().startswith("v")
    ctx.use_kube(deployer, None)
    assert ctx.kube is other


def test_a_database_session_registers_the_dsn_password(postgres_db):
    from pipelinelib.adapters.postgres import dsn_parts

    ctx = Context()
    with ctx.database(postgres_db, application_name="pipelinelib test") as db:
        assert isinstance(db, Database)
        assert db.scalar("select 1") == 1
    password = dsn_parts(postgres_db)["password"]
    assert password not in ctx.secrets.redact_text(f"dsn password {password}")


def test_tool_adapters_satisfy_their_seams():
    ctx = Context()
    assert isinstance(ctx.helm, Helm)
    assert isinstance(ctx.http, Http)
    assert ctx.helm is ctx.helm, "created once"


def test_the_ci_server_is_built_once_by_the_context_and_none_without_a_token():
    from pipelinelib.context import CIInfo

    jenkins = CIInfo(provider="jenkins", user="rita", build_number="42", job="deploy",
                     build_url="https://ci.example.org/job/deploy/42/")
    login = {"JENKINS_URL": "https://ci.example.org/", "PIPELINELIB_JENKINS_USER": "rita",
             "PIPELINELIB_JENKINS_TOKEN": "planted-ci-tok3n"}
    ctx = Context(ci=jenkins, credentials=Credentials.from_env(login))
    assert "planted-ci-tok3n" not in repr(ctx.credentials)
    server = ctx.ci_server
    assert server is not None and server.where == "jenkins"
    assert ctx.ci_server is server, "one client for the whole run"
    assert "planted-ci-tok3n" not in ctx.secrets.redact_text("token planted-ci-tok3n")
    no_token = {k: v for k, v in login.items() if k != "PIPELINELIB_JENKINS_TOKEN"}
    assert Context(ci=jenkins, credentials=Credentials.from_env(no_token)).ci_server is None
    assert Context(ci=CIInfo(provider="local", user="me"),
                   credentials=Credentials.from_env(login)).ci_server is None


def test_every_login_is_read_once_and_every_password_and_token_is_a_secret(tmp_path):
    planted = {"registry": "planted-reg-pw", "jenkins": "planted-jenkins-tok",
               "gocd": "planted-gocd-tok", "gitea": "planted-gitea-tok",
               "audit-key": "planted-audit-key",
               "audit-url": "planted-url-pw", "attest-key": "planted-attest-key-pw"}
    env = {"PIPELINE_REGISTRY_USER": "ci", "PIPELINE_REGISTRY_PASSWORD": planted["registry"],
           "JENKINS_URL": "https://ci.example.org/", "PIPELINELIB_JENKINS_USER": "bot",
           "PIPELINELIB_JENKINS_TOKEN": planted["jenkins"],
           "GO_SERVER_URL": "https://gocd.example.org/go",
           "PIPELINELIB_GOCD_TOKEN": planted["gocd"],
           "PIPELINELIB_GITEA_URL": "https://git.example.org",
           "PIPELINELIB_GITEA_TOKEN": planted["gitea"],
           "PIPELINE_AUDIT_URL": f"https://writer:{planted['audit-url']}@audit.example.org:9200",
           "PIPELINE_AUDIT_API_KEY": planted["audit-key"],
           "PIPELINE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
           "PIPELINE_AUDIT_SPOOL": str(tmp_path / "spool"),
           "PIPELINE_SIGNING_KEY": "/keys/rm-alice", "PIPELINE_ATTEST_KEY": "/keys/ci.pem",
           "PIPELINE_ATTEST_KEY_PASSWORD": planted["attest-key"]}
    ctx = Context.from_env(env)
    cred = ctx.credentials
    assert (cred.jenkins.url, cred.jenkins.user) == ("https://ci.example.org/", "bot")
    assert cred.gocd.url == "https://gocd.example.org/go"
    assert (cred.signing_key, cred.attest_key) == ("/keys/rm-alice", "/keys/ci.pem")
    # the audit URL's own login is used, and never shown
    assert cred.audit.url == "https://audit.example.org:9200"
    assert (cred.audit.user, cred.audit.password) == ("writer", planted["audit-url"])
    assert ctx.audit_spool == tmp_path / "spool"
    assert [s.name for s in ctx.audit_sinks] == [
        f"file {tmp_path / 'audit.jsonl'}", "index pipeline-audit at https://audit.example.org:9200"]
    shown = repr(cred) + ctx.secrets.redact_text(" ".join(planted.values()))
    for value in planted.values():
        assert value in ctx.secrets and value not in shown
    # the git server: a repository on the configured Gitea, and one elsewhere
    client, where = ctx.git_server("https://git.example.org/team/web.git")
    assert client is not None and client.url == "https://git.example.org"
    assert where == ("team", "web")
    assert ctx.git_server("https://github.com/team/web.git") == (None, None)
    assert Context.from_env({}).git_server("https://git.example.org/team/web.git") == (None,
                                                                                        None)
