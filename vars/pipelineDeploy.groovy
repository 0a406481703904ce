// pipelineDeploy: roll an app's manifests out to Kubernetes (`pipeline rollout`): create before
// delete, wait for health, roll back on failure, prune. The cluster comes from a Jenkins
// "secret file" kubeconfig credential (kubeconfigCredentialsId), or the agent's KUBECONFIG.
// Returns the exit code: 0 done, 5 = blue/green colour ready and awaiting promotion (with
// awaitPromotion: true; ask with `input`, then call pipelineSwap). See pipelineDeploy.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineDeploy', params,
                            ['app', 'manifests', 'namespace', 'revision', 'fromBuild', 'blueGreen',
                             'awaitPromotion', 'kubeconfigCredentialsId', 'reportDir'],
                            ['app', 'manifests'])
    return pipelineCli(
        name: 'deploy',
        reportDir: params.reportDir,
        okCodes: params.awaitPromotion ? [0, 5] : [0],
        kubeconfigCredentialsId: params.kubeconfigCredentialsId,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_MANIFESTS: params.manifests,
            PIPELINE_NAMESPACE: params.namespace,
            PIPELINE_REVISION: params.revision,
            PIPELINE_FROM_BUILD: params.fromBuild,
            PIPELINE_BLUE_GREEN: params.blueGreen || params.awaitPromotion ? '1' : '',
            PIPELINE_AWAIT_PROMOTION: params.awaitPromotion ? '1' : '',
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" rollout "$PIPELINE_MANIFESTS"' +
                ' --app "$PIPELINE_APP"' +
                ' ${PIPELINE_NAMESPACE:+--namespace "$PIPELINE_NAMESPACE"}' +
                ' ${PIPELINE_REVISION:+--revision "$PIPELINE_REVISION"}' +
                ' ${PIPELINE_FROM_BUILD:+--from-build "$PIPELINE_FROM_BUILD"}' +
                ' ${PIPELINE_BLUE_GREEN:+--blue-green} ${PIPELINE_AWAIT_PROMOTION:+--await-promotion}'
    )
}
