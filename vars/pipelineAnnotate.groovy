// pipelineAnnotate: record the deployment's outcome - "Successfully Deployed" or
// "Failed Deployment" - as deployment tag, git-note state, workload annotation, this build's
// description and an audit event (`pipeline annotate`). The workload's cluster: the
// kubeconfigCredentialsId the deploy used (a "secret file" credential), or the agent's. Call it in a `finally` so a failure
// is annotated too. result: 'SUCCESS'/'FAILURE' (Jenkins' words) or 'success'/'failure'
// (default: currentBuild.currentResult). When the result is not a success, an annotate
// failure is reported but does not replace the original failure. The build description needs
// a Jenkins API token: jenkinsCredentialsId (username + token). See pipelineAnnotate.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineAnnotate', params,
                            ['app', 'environment', 'result', 'digest', 'workload', 'namespace',
                             'reason', 'jenkinsCredentialsId', 'kubeconfigCredentialsId',
                             'reportDir'],
                            ['environment'])
    String result = (params.result ?: currentBuild.currentResult).toString()
    String outcome = result.toUpperCase() == 'SUCCESS' ? 'success' : 'failure'
    if (outcome == 'failure') {
        // Annotating a failure must not hide the failure itself: report, do not throw.
        try {
            return annotate(params, outcome)
        } catch (err) {
            echo("pipelineAnnotate: could not record the failed deployment: ${err.message}")
            return null
        }
    }
    return annotate(params, outcome)
}

Object annotate(Map params, String outcome) {
    return pipelineCli(
        name: 'annotate',
        reportDir: params.reportDir,
        kubeconfigCredentialsId: params.kubeconfigCredentialsId,
        credentials: params.jenkinsCredentialsId ?
            [usernamePassword(credentialsId: params.jenkinsCredentialsId,
                              usernameVariable: 'PIPELINELIB_JENKINS_USER',
                              passwordVariable: 'PIPELINELIB_JENKINS_TOKEN')] : null,
        env: [
            PIPELINE_ENV: params.environment,
            PIPELINE_RESULT: outcome,
            PIPELINE_APP: params.app,
            PIPELINE_DIGEST: params.digest,
            PIPELINE_WORKLOAD: params.workload,
            PIPELINE_NAMESPACE: params.namespace,
            PIPELINE_REASON: params.reason,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" annotate --env "$PIPELINE_ENV"' +
                ' --result "$PIPELINE_RESULT"' +
                ' ${PIPELINE_APP:+--app "$PIPELINE_APP"}' +
                ' ${PIPELINE_DIGEST:+--digest "$PIPELINE_DIGEST"}' +
                ' ${PIPELINE_WORKLOAD:+--workload "$PIPELINE_WORKLOAD"}' +
                ' ${PIPELINE_NAMESPACE:+--namespace "$PIPELINE_NAMESPACE"}' +
                ' ${PIPELINE_REASON:+--reason "$PIPELINE_REASON"}'
    )
}
