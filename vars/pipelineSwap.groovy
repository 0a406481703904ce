// pipelineSwap: blue/green, switch every Service of the app to the other colour - staging <->
// live (`pipeline swap`), or to colour blue/green. Refused when the target colour is not ready.
// Privileged: the identity is the person who started the build. See pipelineSwap.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineSwap', params,
                            ['app', 'namespace', 'colour', 'kubeconfigCredentialsId', 'reportDir'],
                            ['app'])
    if (params.colour && !(params.colour in ['blue', 'green'])) {
        error("pipelineSwap: colour must be blue or green, not ${params.colour}")
    }
    return pipelineCli(
        name: 'swap',
        reportDir: params.reportDir,
        requireUser: true,
        credentials: params.kubeconfigCredentialsId ?
            [file(credentialsId: params.kubeconfigCredentialsId, variable: 'KUBECONFIG')] : null,
        env: [
            PIPELINE_APP: params.app,
            PIPELINE_NAMESPACE: params.namespace,
            PIPELINE_COLOUR: params.colour,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" swap --app "$PIPELINE_APP"' +
                ' ${PIPELINE_NAMESPACE:+--namespace "$PIPELINE_NAMESPACE"}' +
                ' ${PIPELINE_COLOUR:+--to "$PIPELINE_COLOUR"}'
    )
}
