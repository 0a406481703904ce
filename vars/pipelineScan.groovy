// pipelineScan: scan an image and apply the severity policy (`pipeline scan`).
// See pipelineScan.txt. Values reach the shell only as environment variables.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineScan', params,
                            ['appDir', 'image', 'report', 'policy', 'reportDir'], [])
    return pipelineCli(
        name: 'scan',
        reportDir: params.reportDir,
        env: [
            PIPELINE_APP_DIR: params.appDir ?: '.',
            PIPELINE_IMAGE: params.image,
            PIPELINE_SCAN_REPORT: params.report,
            PIPELINE_POLICY: params.policy,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" scan --app-dir "$PIPELINE_APP_DIR"' +
                ' ${PIPELINE_IMAGE:+--image "$PIPELINE_IMAGE"}' +
                ' ${PIPELINE_SCAN_REPORT:+--report "$PIPELINE_SCAN_REPORT"}' +
                ' ${PIPELINE_POLICY:+--policy "$PIPELINE_POLICY"}'
    )
}
