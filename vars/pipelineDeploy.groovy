// pipelineDeploy: roll an app out to an environment (`pipeline rollout`).
// See pipelineDeploy.txt. Returns the exit code: 0 done, 5 = blue/green colour ready and
// waiting for promotion (the caller may ask for `input`, then call pipelineSwap).

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineDeploy', params,
                            ['app', 'environment', 'manifests', 'digest', 'reportDir'],
                            ['app', 'environment'])
    return pipelineCli(
        name: 'deploy',
        reportDir: params.reportDir,
        okCodes: [0, 5],
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_ENV: params.environment,
            PIPELINE_MANIFESTS: params.manifests,
            PIPELINE_DIGEST: params.digest,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" rollout --app "$PIPELINE_APP"' +
                ' --env "$PIPELINE_ENV"' +
                ' ${PIPELINE_MANIFESTS:+--manifests "$PIPELINE_MANIFESTS"}' +
                ' ${PIPELINE_DIGEST:+--digest "$PIPELINE_DIGEST"}'
    )
}
