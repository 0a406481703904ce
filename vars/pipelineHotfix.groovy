// pipelineHotfix: promote a hot-fix build straight to an environment with a mandatory reason
// (`pipeline promote --hotfix`, seed 004 §4.1). Privileged: the identity is the person who
// started the build. See pipelineHotfix.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineHotfix', params, ['app', 'to', 'digest', 'reason', 'reportDir'],
                            ['app', 'to', 'digest', 'reason'])
    return pipelineCli(
        name: 'hotfix',
        reportDir: params.reportDir,
        requireUser: true,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_TO: params.to,
            PIPELINE_DIGEST: params.digest,
            PIPELINE_REASON: params.reason,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" promote "$PIPELINE_APP"' +
                ' --to "$PIPELINE_TO" --digest "$PIPELINE_DIGEST" --hotfix --reason "$PIPELINE_REASON"'
    )
}
