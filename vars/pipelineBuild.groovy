// pipelineBuild: build, tag, push and smoke-test an app's image (`pipeline build`).
// See pipelineBuild.txt. Values reach the shell only as environment variables.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineBuild', params, ['appDir', 'registry', 'attestKeyCredentialsId', 'reportDir'], [])
    return pipelineCli(
        name: 'build',
        reportDir: params.reportDir,
        attestKeyCredentialsId: params.attestKeyCredentialsId,
        env: [
            PIPELINE_APP_DIR: params.appDir ?: '.',
            PIPELINE_REGISTRY: params.registry,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" build --app-dir "$PIPELINE_APP_DIR"' +
                ' ${PIPELINE_REGISTRY:+--registry "$PIPELINE_REGISTRY"}'
    )
}
