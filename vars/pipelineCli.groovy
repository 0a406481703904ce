// The one place the shared library runs the `pipeline` CLI. Every other var calls this.
//
// Safety rules (tested in tests/groovy):
//  * `script` is constant shell text written as a single-quoted Groovy literal by the calling
//    var: values never become shell text. They reach the shell as environment variables
//    (withEnv) that the text quotes ("$PIPELINE_APP").
//  * Who started the build comes from the build cause (a person's userId), never from a
//    parameter: BUILD_USER_ID / PIPELINE_TRIGGERED_BY are always set here, overriding any
//    parameter or environment variable of that name.
//  * The report directory is archived and its junit.xml fed to `junit` always, also after a
//    failure; the failure then propagates (error) with the exit code's meaning.

/**
 * Run one `pipeline` command.
 *
 * @param cfg.name        the step's name: report dir default and messages
 * @param cfg.script      constant shell text that calls `pipeline` (single-quoted literal)
 * @param cfg.env         Map of PIPELINE_* names to values (null/'' = unset)
 * @param cfg.reportDir   report directory (default reports/NAME)
 * @param cfg.okCodes     exit codes that are not failures (default [0])
 * @param cfg.requireUser true for privileged jobs: a person must have started this build, or
 *                        approved it in an `input` step (cfg.approver)
 * @param cfg.approver    who approved the `input` step (its submitterParameter), if any
 * @param cfg.credentials optional list of withCredentials bindings
 * @param cfg.kubeconfigCredentialsId optional "secret file" credential bound as KUBECONFIG
 * @param cfg.trustCredentialsId optional "secret file" credential (a tar archive of the trust
 *                        root: allowed_signers, policy.yaml, policy.yaml.sig/) bound as
 *                        PIPELINE_TRUST_DIR
 * @param cfg.signingKeyCredentialsId optional "secret file" (the CI's SSH promotion key) bound
 *                        as PIPELINE_SIGNING_KEY
 * @param cfg.attestKeyCredentialsId optional "secret file" (the PEM attestation key) bound as
 *                        PIPELINE_ATTEST_KEY
 * @return the exit code (one of okCodes)
 */
def call(Map cfg) {
    String name = cfg.name
    String reportDir = cfg.reportDir ?: "reports/${name}"
    List okCodes = cfg.okCodes ?: [0]
    String user = triggeringUser()
    String approver = (cfg.approver ?: '').toString()
    if (cfg.requireUser && !user && !approver) {
        error("pipeline ${name}: refused: no person started this build (it was started by " +
              "${causeSummary()}); privileged jobs take the identity from the build cause, " +
              "so start it from Jenkins as yourself or approve it in an input step")
    }
    List<String> envList = []
    (cfg.env ?: [:]).each { key, value ->
        if (!(key ==~ /PIPELINE_[A-Z0-9_]+/) || key in ['PIPELINE_TRIGGERED_BY', 'PIPELINE_APPROVED_BY', 'PIPELINE_REPORT_DIR']) {
            error("pipelineCli: ${key} is not an allowed parameter variable")
        }
        envList << "${key}=${value == null ? '' : value}".toString()
    }
    envList << "PIPELINE_REPORT_DIR=${reportDir}".toString()
    envList << "PIPELINE_TRIGGERED_BY=${user}".toString()
    envList << "BUILD_USER_ID=${user}".toString()
    envList << "PIPELINE_APPROVED_BY=${approver}".toString()

    List credentials = (cfg.credentials ?: []) + (cfg.kubeconfigCredentialsId ?
        [file(credentialsId: cfg.kubeconfigCredentialsId, variable: 'KUBECONFIG')] : [])
    signingCredentials().each { String param, String variable ->
        if (cfg[param]) {
            credentials << file(credentialsId: cfg[param], variable: variable)
        }
    }
    Integer status = null
    try {
        withEnv(envList) {
            if (credentials) {
                withCredentials(credentials) {
                    status = sh(script: cfg.script, returnStatus: true, label: "pipeline ${name}")
                }
            } else {
                status = sh(script: cfg.script, returnStatus: true, label: "pipeline ${name}")
            }
        }
    } finally {
        archiveArtifacts(artifacts: "${reportDir}/**", allowEmptyArchive: true)
        junit(testResults: "${reportDir}/junit.xml", allowEmptyResults: true)
    }
    if (!(status in okCodes)) {
        String meaning = exitMeaning(status)
        error("pipeline ${name} failed: exit ${status} (${meaning}); see ${reportDir}/summary.md")
    }
    return status
}

/** The signing/trust credentials a var may pass on (docs/ci-servers.md, docs/security.md):
 *  parameter -> the variable the CLI reads. Never parameters of the build: credential ids. */
Map<String, String> signingCredentials() {
    return [
        trustCredentialsId: 'PIPELINE_TRUST_DIR',
        signingKeyCredentialsId: 'PIPELINE_SIGNING_KEY',
        attestKeyCredentialsId: 'PIPELINE_ATTEST_KEY',
    ]
}

/** What a `pipeline` exit code means (README "Exit codes"). */
String exitMeaning(Integer status) {
    Map meanings = [
        0: 'success',
        1: 'a step failed',
        2: 'bad input or refused; nothing was written',
        3: 'a required system is unreachable',
        4: 'changes are pending',
        5: 'the new colour is ready and awaits promotion',
    ]
    return meanings.get(status, 'unexpected exit code')
}

/** The userId of the person who started this build, or '' (timer, SCM, upstream job). */
String triggeringUser() {
    def causes = currentBuild.getBuildCauses('hudson.model.Cause$UserIdCause')
    if (!causes) {
        return ''
    }
    return (causes[0].userId ?: '').toString()
}

String causeSummary() {
    def causes = currentBuild.getBuildCauses()
    if (!causes) {
        return 'an unknown cause'
    }
    return causes.collect { it.shortDescription ?: it._class }.join(', ')
}

/** Fail fast on unknown or missing parameters of a var (typos must not be ignored). */
void checkParams(String var, Map given, List<String> allowed, List<String> required) {
    def unknown = given.keySet().findAll { !(it in allowed) }
    if (unknown) {
        error("${var}: unknown parameter(s) ${unknown.sort().join(', ')} (allowed: ${allowed.join(', ')})")
    }
    def missing = required.findAll { given[it] == null || given[it].toString().trim() == '' }
    if (missing) {
        error("${var}: missing required parameter(s) ${missing.join(', ')}")
    }
}
