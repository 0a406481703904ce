// pipelineGate: the release checklist (`pipeline gate`): built and tested, migrations before
// deployment, old and new versions co-exist, breaking changes only in a major release, audit
// mapping updated - each mark with its evidence. environment: the target, whose deployed
// version (marks 4 and 5) comes from the deployment records (or deployedRev). buildResult defaults to this build's result.
// A failed mark may be overridden (override: '4,5', reason:) by a user the gate config lists;
// that user is the person who started this build (build cause). See pipelineGate.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineGate', params,
                            ['appDir', 'config', 'environment', 'marks', 'migrateNext', 'deployedRev', 'buildResult', 'override', 'reason',
                             'image', 'digest', 'dsnCredentialsId', 'attestKeyCredentialsId', 'reportDir'], [])
    if (params.override && !params.reason) {
        error('pipelineGate: an override needs a reason:')
    }
    return pipelineCli(
        name: 'gate',
        reportDir: params.reportDir,
        attestKeyCredentialsId: params.attestKeyCredentialsId,
        requireUser: params.override ? true : false,
        credentials: params.dsnCredentialsId ?
            [string(credentialsId: params.dsnCredentialsId, variable: 'PIPELINE_DB_DSN')] : null,
        env: [
            PIPELINE_APP_DIR: params.appDir ?: '.',
            PIPELINE_GATE_CONFIG: params.config,
            PIPELINE_ENVIRONMENT: params.environment,
            PIPELINE_MARKS: params.marks,
            PIPELINE_MIGRATE_NEXT: params.migrateNext ? '1' : '',
            PIPELINE_DEPLOYED_REV: params.deployedRev,
            PIPELINE_BUILD_RESULT: (params.buildResult ?: currentBuild.currentResult)?.toString(),
            PIPELINE_OVERRIDE: params.override,
            PIPELINE_REASON: params.reason,
            PIPELINE_IMAGE: params.image,
            PIPELINE_DIGEST: params.digest,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" gate --app-dir "$PIPELINE_APP_DIR"' +
                ' ${PIPELINE_GATE_CONFIG:+--config "$PIPELINE_GATE_CONFIG"}' +
                ' ${PIPELINE_ENVIRONMENT:+--environment "$PIPELINE_ENVIRONMENT"}' +
                ' ${PIPELINE_MARKS:+--marks "$PIPELINE_MARKS"} ${PIPELINE_MIGRATE_NEXT:+--migrate-next}' +
                ' ${PIPELINE_DEPLOYED_REV:+--deployed-rev "$PIPELINE_DEPLOYED_REV"}' +
                ' ${PIPELINE_BUILD_RESULT:+--build-result "$PIPELINE_BUILD_RESULT"}' +
                ' ${PIPELINE_OVERRIDE:+--override "$PIPELINE_OVERRIDE"}' +
                ' ${PIPELINE_REASON:+--reason "$PIPELINE_REASON"}' +
                ' ${PIPELINE_IMAGE:+--image "$PIPELINE_IMAGE"}' +
                ' ${PIPELINE_DIGEST:+--digest "$PIPELINE_DIGEST"}'
    )
}
