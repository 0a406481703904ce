// pipelineSwap: blue/green, swap which colour serves: staging <-> live (`pipeline swap`).
// Privileged: the identity is the person who started the build. See pipelineSwap.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineSwap', params, ['app', 'environment', 'reportDir'],
                            ['app', 'environment'])
    return pipelineCli(
        name: 'swap',
        reportDir: params.reportDir,
        requireUser: true,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_ENV: params.environment,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" swap --app "$PIPELINE_APP"' +
                ' --env "$PIPELINE_ENV"'
    )
}
