// pipelinePlan: what `pipeline apply` would change in an environment, and drift
// (`pipeline plan ENV`). Returns the exit code: 0 no changes, 4 changes pending.
// The env-state repository is PIPELINE_ENV_REPO in the agent's environment (or the
// workspace). See pipelinePlan.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelinePlan', params, ['environment', 'reportDir'], ['environment'])
    return pipelineCli(
        name: 'plan',
        reportDir: params.reportDir,
        okCodes: [0, 4],
        env: [
            PIPELINE_ENV: params.environment,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" plan "$PIPELINE_ENV"'
    )
}
