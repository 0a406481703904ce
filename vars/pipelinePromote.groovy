// pipelinePromote: promote an app's exact image digest to the next environment
// (`pipeline promote`). Privileged: the identity is the person who started the build
// (build cause) and, after an `input` step, its approver (pass `approver:` from
// input's submitterParameter); the promotion policy checks both. See pipelinePromote.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelinePromote', params, ['app', 'from', 'to', 'digest', 'approver', 'reportDir'],
                            ['app', 'to'])
    return pipelineCli(
        name: 'promote',
        reportDir: params.reportDir,
        requireUser: true,
        approver: params.approver,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_FROM: params.from,
            PIPELINE_TO: params.to,
            PIPELINE_DIGEST: params.digest,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" promote "$PIPELINE_APP"' +
                ' ${PIPELINE_FROM:+--from "$PIPELINE_FROM"} --to "$PIPELINE_TO"' +
                ' ${PIPELINE_DIGEST:+--digest "$PIPELINE_DIGEST"}'
    )
}
