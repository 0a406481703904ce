// pipelineScan: the security gate, seed 003 (`pipeline scan`): read scanner findings (a Trivy,
// Grype, OSV-Scanner or Clair report, or run OSV-Scanner on an engine image), apply the policy,
// record the verdict against the image digest. See pipelineScan.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineScan', params,
                            ['report', 'osvImage', 'policy', 'failOn', 'image', 'digest',
                             'attestKeyCredentialsId', 'reportDir'], [])
    if (!params.report && !params.osvImage) {
        error('pipelineScan: give report: (a scanner JSON report) or osvImage: (an image to scan)')
    }
    return pipelineCli(
        name: 'scan',
        reportDir: params.reportDir,
        attestKeyCredentialsId: params.attestKeyCredentialsId,
        env: [
            PIPELINE_SCAN_REPORT: params.report,
            PIPELINE_OSV_IMAGE: params.osvImage,
            PIPELINE_POLICY: params.policy,
            PIPELINE_FAIL_ON: params.failOn,
            PIPELINE_IMAGE: params.image,
            PIPELINE_DIGEST: params.digest,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" scan' +
                ' ${PIPELINE_SCAN_REPORT:+--report "$PIPELINE_SCAN_REPORT"}' +
                ' ${PIPELINE_OSV_IMAGE:+--osv-image "$PIPELINE_OSV_IMAGE"}' +
                ' ${PIPELINE_POLICY:+--policy "$PIPELINE_POLICY"}' +
                ' ${PIPELINE_FAIL_ON:+--fail-on "$PIPELINE_FAIL_ON"}' +
                ' ${PIPELINE_IMAGE:+--image "$PIPELINE_IMAGE"}' +
                ' ${PIPELINE_DIGEST:+--digest "$PIPELINE_DIGEST"}'
    )
}
