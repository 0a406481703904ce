// pipelineSwap: blue/green, switch every Service of the app to the other colour - staging <->
// live (`pipeline swap`), or to colour blue/green. Refused when the target colour is not ready.
// By environment (`environment:` + `envRepo:`): the namespace and cluster come from the
// env-state repository's environments/ENV.yaml and the policy's swap role is checked
// (`--env ENV --repo REPO`); refusals exit 2 and are audited. Otherwise `namespace:`.
// Privileged: the identity is the person who started the build. See pipelineSwap.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelineSwap', params,
                            ['app', 'namespace', 'environment', 'envRepo', 'envBranch', 'colour',
                             'kubeconfigCredentialsId', 'trustCredentialsId', 'reportDir'],
                            ['app'])
    if (params.colour && !(params.colour in ['blue', 'green'])) {
        error("pipelineSwap: colour must be blue or green, not ${params.colour}")
    }
    if (params.environment && params.namespace) {
        error('pipelineSwap: give namespace or environment, not both (with environment the ' +
              'namespace comes from the environment\'s spec)')
    }
    if (params.environment && !params.envRepo) {
        error('pipelineSwap: envRepo (the env-state repository) is required with environment')
    }
    if (!params.environment && (params.envRepo || params.envBranch)) {
        error('pipelineSwap: envRepo and envBranch need environment')
    }
    Map env = [
        PIPELINE_APP: params.app,
        PIPELINE_NAMESPACE: params.namespace,
        PIPELINE_COLOUR: params.colour,
        PIPELINE_ENV: params.environment,
        PIPELINE_ENV_REPO: params.envRepo,   // '' without environment: no --repo
    ]
    if (params.envBranch) {
        // otherwise unset here, so the CLI's default applies (the agent's PIPELINE_ENV_BRANCH or main)
        env.PIPELINE_ENV_BRANCH = params.envBranch
    }
    return pipelineCli(
        name: 'swap',
        reportDir: params.reportDir,
        trustCredentialsId: params.trustCredentialsId,
        requireUser: true,
        kubeconfigCredentialsId: params.kubeconfigCredentialsId,
        env: env,
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" swap --app "$PIPELINE_APP"' +
                ' ${PIPELINE_ENV:+--env "$PIPELINE_ENV"}' +
                ' ${PIPELINE_ENV_REPO:+--repo "$PIPELINE_ENV_REPO"}' +
                ' ${PIPELINE_ENV_BRANCH:+--branch "$PIPELINE_ENV_BRANCH"}' +
                ' ${PIPELINE_NAMESPACE:+--namespace "$PIPELINE_NAMESPACE"}' +
                ' ${PIPELINE_COLOUR:+--to "$PIPELINE_COLOUR"}'
    )
}
