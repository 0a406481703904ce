// pipelineAnnotate: record the deployment's outcome - "Successfully Deployed" or
// "Failed Deployment" - as tag, git note, audit event and this build's description
// (`pipeline annotate`). Call it in a `finally` so a failure is annotated too.
// Pass result: 'SUCCESS' or 'FAILURE' (default: currentBuild.currentResult). When the result
// is not SUCCESS an annotate failure is reported but does not replace the original failure.
// See pipelineAnnotate.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineAnnotate', params,
                            ['app', 'environment', 'result', 'digest', 'reportDir'],
                            ['app', 'environment'])
    String result = params.result ?: currentBuild.currentResult
    if (result != 'SUCCESS') {
        // Annotating a failure must not hide the failure itself: report, do not throw.
        try {
            return annotate(params, result)
        } catch (err) {
            echo("pipelineAnnotate: could not record the failed deployment: ${err.message}")
            return null
        }
    }
    return annotate(params, result)
}

Object annotate(Map params, String result) {
    return pipelineCli(
        name: 'annotate',
        reportDir: params.reportDir,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_ENV: params.environment,
            PIPELINE_RESULT: result,
            PIPELINE_DIGEST: params.digest,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" annotate --app "$PIPELINE_APP"' +
                ' --env "$PIPELINE_ENV" --result "$PIPELINE_RESULT"' +
                ' ${PIPELINE_DIGEST:+--digest "$PIPELINE_DIGEST"}'
    )
}
