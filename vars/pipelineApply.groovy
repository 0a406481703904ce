// pipelineApply: bring an environment to its desired-state spec (`pipeline apply ENV`), the
// seed 004 auto-roll: run it when the env-state repository changes. Only the apps that changed
// are applied, in priority order. The env-state repository is PIPELINE_ENV_REPO in the agent's
// environment (or the workspace). See pipelineApply.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineApply', params, ['environment', 'app', 'trustCredentialsId', 'reportDir'],
                            ['environment'])
    return pipelineCli(
        name: 'apply',
        reportDir: params.reportDir,
        trustCredentialsId: params.trustCredentialsId,
        env: [
            PIPELINE_ENV: params.environment,
            PIPELINE_APP: params.app,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" apply "$PIPELINE_ENV"' +
                ' ${PIPELINE_APP:+--app "$PIPELINE_APP"}'
    )
}
