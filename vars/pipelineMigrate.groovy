// pipelineMigrate: apply database migrations before the rollout (`pipeline migrate`).
// SQL form: a directory of V<n>__name.sql files; the DSN is a Jenkins "secret text" credential
// (dsnCredentialsId) bound as PIPELINE_DB_DSN - never a parameter, never on a command line.
// Job form: the app's own migration command run as a Kubernetes Job from the image digest
// (jobImage, jobCommand, namespace; cluster from kubeconfigCredentialsId).
// See pipelineMigrate.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineMigrate', params,
                            ['dir', 'dsnCredentialsId', 'jobImage', 'jobCommand', 'namespace',
                             'kubeconfigCredentialsId', 'reportDir'], [])
    boolean jobForm = params.jobImage || params.jobCommand
    if (jobForm && !(params.jobImage && params.jobCommand)) {
        error('pipelineMigrate: the Job form needs both jobImage: and jobCommand:')
    }
    if (!jobForm && !params.dsnCredentialsId) {
        error('pipelineMigrate: give dsnCredentialsId: (a secret text credential holding the DSN)')
    }
    List creds = []
    if (params.dsnCredentialsId) {
        creds << string(credentialsId: params.dsnCredentialsId, variable: 'PIPELINE_DB_DSN')
    }
    if (params.kubeconfigCredentialsId) {
        creds << file(credentialsId: params.kubeconfigCredentialsId, variable: 'KUBECONFIG')
    }
    return pipelineCli(
        name: 'migrate',
        reportDir: params.reportDir,
        credentials: creds ?: null,
        env: [
            PIPELINE_MIGRATIONS_DIR: params.dir ?: 'migrations',
            PIPELINE_JOB_IMAGE: params.jobImage,
            PIPELINE_JOB_COMMAND: params.jobCommand,
            PIPELINE_NAMESPACE: params.namespace,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" migrate --dir "$PIPELINE_MIGRATIONS_DIR"' +
                ' ${PIPELINE_JOB_IMAGE:+--job-image "$PIPELINE_JOB_IMAGE"}' +
                ' ${PIPELINE_JOB_COMMAND:+--job-command "$PIPELINE_JOB_COMMAND"}' +
                ' ${PIPELINE_NAMESPACE:+--namespace "$PIPELINE_NAMESPACE"}'
    )
}
