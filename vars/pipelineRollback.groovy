// pipelineRollback: return an app to an earlier revision (`pipeline rollback`): the revision
// before the live one, toRevision N, or toGitRevision SHA; a blue/green app switches back to
// the colour that served before. Privileged: the identity is the person who started the build.
// See pipelineRollback.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineRollback', params,
                            ['app', 'namespace', 'toRevision', 'toGitRevision',
                             'kubeconfigCredentialsId', 'reportDir'],
                            ['app'])
    if (params.toRevision && params.toGitRevision) {
        error('pipelineRollback: give toRevision or toGitRevision, not both')
    }
    return pipelineCli(
        name: 'rollback',
        reportDir: params.reportDir,
        requireUser: true,
        kubeconfigCredentialsId: params.kubeconfigCredentialsId,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_NAMESPACE: params.namespace,
            PIPELINE_TO_REVISION: params.toRevision?.toString(),
            PIPELINE_TO_GIT_REVISION: params.toGitRevision,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" rollback --app "$PIPELINE_APP"' +
                ' ${PIPELINE_NAMESPACE:+--namespace "$PIPELINE_NAMESPACE"}' +
                ' ${PIPELINE_TO_REVISION:+--to-revision "$PIPELINE_TO_REVISION"}' +
                ' ${PIPELINE_TO_GIT_REVISION:+--to-git-revision "$PIPELINE_TO_GIT_REVISION"}'
    )
}
