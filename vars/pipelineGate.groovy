// pipelineGate: the release checklist, every mark with its evidence (`pipeline gate`).
// See pipelineGate.txt. Values reach the shell only as environment variables.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineGate', params, ['appDir', 'environment', 'reportDir'],
                            ['environment'])
    return pipelineCli(
        name: 'gate',
        reportDir: params.reportDir,
        env: [
            PIPELINE_APP_DIR: params.appDir ?: '.',
            PIPELINE_ENV: params.environment,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" gate --app-dir "$PIPELINE_APP_DIR"' +
                ' --env "$PIPELINE_ENV"'
    )
}
