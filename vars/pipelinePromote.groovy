// pipelinePromote: promote an app's exact image digest from one environment's spec to the
// next (`pipeline promote APP --from ENV --to ENV`): one commit to the env-state repository
// (PIPELINE_ENV_REPO in the agent's environment), then applied. `approve: true` records this
// person's four-eyes approval instead (`--approve`).
// Privileged: the identity is the person who started the build (build cause) and, after an
// `input` step, its approver (pass `approver:` from input's submitterParameter); the
// promotion policy checks it. See pipelinePromote.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelinePromote', params,
                            ['app', 'from', 'to', 'approve', 'approver', 'trustCredentialsId', 'signingKeyCredentialsId', 'attestKeyCredentialsId', 'reportDir'],
                            ['app', 'to'])
    return pipelineCli(
        name: 'promote',
        reportDir: params.reportDir,
        trustCredentialsId: params.trustCredentialsId,
        signingKeyCredentialsId: params.signingKeyCredentialsId,
        attestKeyCredentialsId: params.attestKeyCredentialsId,
        requireUser: true,
        approver: params.approver,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_FROM: params.from,
            PIPELINE_TO: params.to,
            PIPELINE_APPROVE: params.approve ? '1' : '',
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" promote "$PIPELINE_APP"' +
                ' ${PIPELINE_FROM:+--from "$PIPELINE_FROM"} --to "$PIPELINE_TO"' +
                ' ${PIPELINE_APPROVE:+--approve}'
    )
}
