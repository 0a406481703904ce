// pipelineHotfix: promote a hot-fix image straight to an environment with a mandatory reason
// (`pipeline promote APP --to ENV --hotfix --image REPOSITORY@DIGEST --reason TEXT`,
// seed 004 §4.1). Privileged: the identity is the person who started the build.
// See pipelineHotfix.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineHotfix', params,
                            ['app', 'to', 'image', 'reason', 'sourceRepo', 'trustCredentialsId', 'signingKeyCredentialsId', 'attestKeyCredentialsId', 'reportDir'],
                            ['app', 'to', 'image', 'reason'])
    return pipelineCli(
        name: 'hotfix',
        reportDir: params.reportDir,
        trustCredentialsId: params.trustCredentialsId,
        signingKeyCredentialsId: params.signingKeyCredentialsId,
        attestKeyCredentialsId: params.attestKeyCredentialsId,
        requireUser: true,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_TO: params.to,
            PIPELINE_IMAGE: params.image,
            PIPELINE_REASON: params.reason,
            PIPELINE_SOURCE_REPO: params.sourceRepo,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" promote "$PIPELINE_APP"' +
                ' --to "$PIPELINE_TO" --hotfix --image "$PIPELINE_IMAGE" --reason "$PIPELINE_REASON"' +
                ' ${PIPELINE_SOURCE_REPO:+--source-repo "$PIPELINE_SOURCE_REPO"}'
    )
}
