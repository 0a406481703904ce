// pipelineRollback: return an app to an earlier revision (`pipeline rollback`): the revision
// before the live one, toRevision N, or toGitRevision SHA; a blue/green app switches back to
// the colour that served before. By environment (`environment:` + `envRepo:`): the namespace
// and cluster come from environments/ENV.yaml, the policy's swap role is checked, and in a
// protected environment the target must run a digest promoted there before (signed records,
// verified against the trust root: pass `trustCredentialsId:`); refusals exit 2, audited.
// Privileged: the identity is the person who started the build. See pipelineRollback.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineRollback', params,
                            ['app', 'namespace', 'environment', 'envRepo', 'envBranch',
                             'toRevision', 'toGitRevision', 'kubeconfigCredentialsId',
                             'trustCredentialsId', 'reportDir'],
                            ['app'])
    if (params.toRevision && params.toGitRevision) {
        error('pipelineRollback: give toRevision or toGitRevision, not both')
    }
    if (params.environment && params.namespace) {
        error('pipelineRollback: give namespace or environment, not both (with environment ' +
              'the namespace comes from the environment\'s spec)')
    }
    if (params.environment && !params.envRepo) {
        error('pipelineRollback: envRepo (the env-state repository) is required with environment')
    }
    if (!params.environment && (params.envRepo || params.envBranch)) {
        error('pipelineRollback: envRepo and envBranch need environment')
    }
    Map env = [
        PIPELINE_APP: params.app,
        PIPELINE_NAMESPACE: params.namespace,
        PIPELINE_ENV: params.environment,
        PIPELINE_ENV_REPO: params.envRepo,   // '' without environment: no --repo
        PIPELINE_TO_REVISION: params.toRevision?.toString(),
        PIPELINE_TO_GIT_REVISION: params.toGitRevision,
    ]
    if (params.envBranch) {
        env.PIPELINE_ENV_BRANCH = params.envBranch
    }
    return pipelineCli(
        name: 'rollback',
        reportDir: params.reportDir,
        trustCredentialsId: params.trustCredentialsId,
        requireUser: true,
        kubeconfigCredentialsId: params.kubeconfigCredentialsId,
        env: env,
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" rollback --app "$PIPELINE_APP"' +
                ' ${PIPELINE_ENV:+--env "$PIPELINE_ENV"}' +
                ' ${PIPELINE_ENV_REPO:+--repo "$PIPELINE_ENV_REPO"}' +
                ' ${PIPELINE_ENV_BRANCH:+--branch "$PIPELINE_ENV_BRANCH"}' +
                ' ${PIPELINE_NAMESPACE:+--namespace "$PIPELINE_NAMESPACE"}' +
                ' ${PIPELINE_TO_REVISION:+--to-revision "$PIPELINE_TO_REVISION"}' +
                ' ${PIPELINE_TO_GIT_REVISION:+--to-git-revision "$PIPELINE_TO_GIT_REVISION"}'
    )
}
