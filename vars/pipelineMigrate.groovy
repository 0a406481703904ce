// pipelineMigrate: apply database migrations before the rollout (`pipeline migrate`).
// See pipelineMigrate.txt. The database DSN comes from a Jenkins credential, never a parameter.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineMigrate', params,
                            ['dir', 'environment', 'dsnCredentialsId', 'reportDir'],
                            ['dir', 'environment', 'dsnCredentialsId'])
    return pipelineCli(
        name: 'migrate',
        reportDir: params.reportDir,
        env: [
            PIPELINE_MIGRATIONS_DIR: params.dir,
            PIPELINE_ENV: params.environment,
        ],
        credentials: [string(credentialsId: params.dsnCredentialsId, variable: 'PIPELINELIB_PG_DSN')],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" migrate --dir "$PIPELINE_MIGRATIONS_DIR"' +
                ' --env "$PIPELINE_ENV"'
    )
}
