package pipelinelib

import org.junit.Test

import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertNotNull
import static org.junit.Assert.assertTrue
import static org.junit.Assert.fail

/** The vars/ steps: what reaches `sh`, what is always reported, how failures propagate. */
class VarsTest extends PipelineLibTestBase {

    static final String HOSTILE = '\'; rm -rf / #"$(id)`id`${HOME} *'

    /** Each var with a full parameter map, and the one env variable each value must land in. */
    static final Map<String, Map> CALLS = [
        pipelineBuild   : [appDir: 'services/web', registry: 'registry.example:5000'],
        pipelineScan    : [report: 'trivy:trivy.json', osvImage: 'ns/web:abc1234', policy: 'scan.yaml',
                           failOn: 'high', image: 'registry/ns/web', digest: 'sha256:0a'],
        pipelineGate    : [appDir: 'services/web', config: 'gate.yaml', environment: 'staging', marks: '2', migrateNext: true, deployedRev: 'v1.4.0',
                           buildResult: 'SUCCESS', override: '4', reason: 'accepted by CAB',
                           image: 'registry/ns/web', digest: 'sha256:0a', dsnCredentialsId: 'web-dsn'],
        pipelineMigrate : [dir: 'db/migrations', dsnCredentialsId: 'web-dsn', jobImage: 'ns/web@sha256:0a',
                           jobCommand: 'bin/migrate --all', namespace: 'web',
                           kubeconfigCredentialsId: 'sandbox-kubeconfig'],
        pipelineDeploy  : [app: 'web', manifests: 'k8s', namespace: 'web-sandbox', revision: 'abc1234',
                           fromBuild: 'reports/build', blueGreen: true, kubeconfigCredentialsId: 'sandbox-kubeconfig'],
        pipelinePromote : [app: 'web', from: 'staging', to: 'live'],
        pipelineSwap    : [app: 'web', namespace: 'web', colour: 'green'],
        pipelineRollback: [app: 'web', namespace: 'web', toGitRevision: 'abc1234'],
        pipelineHotfix  : [app: 'web', to: 'live', image: 'ns/web@sha256:0a', reason: 'CVE-2024-1 in login',
                           sourceRepo: 'https://git.example/web.git'],
        pipelineAnnotate: [app: 'web', environment: 'sandbox', result: 'SUCCESS', digest: 'sha256:0a',
                           workload: 'deployment/web', namespace: 'web-sandbox', reason: 'ok',
                           jenkinsCredentialsId: 'jenkins-api'],
        pipelinePlan    : [environment: 'int-test'],
        pipelinePerf    : [report: 'reports/lighthouse.json', budget: 'perf-budget.yaml'],
        pipelineApply   : [environment: 'int-test', app: 'web'],
    ]

    /** Parameters that are not passed on as text (credential ids, flags, choices). */
    static final List<String> NOT_STRINGS = ['dsnCredentialsId', 'kubeconfigCredentialsId',
                                             'jenkinsCredentialsId', 'result', 'blueGreen',
                                             'awaitPromotion', 'approve', 'colour', 'buildResult',
                                             'migrateNext']

    private Map<String, String> hostile(Map params) {
        return params.collectEntries { k, v ->
            [(k): k in NOT_STRINGS ? v : "${v}${HOSTILE}".toString()]
        }
    }

    @Test
    void shScriptTextIsConstantAndValuesArriveOnlyThroughWithEnv() {
        CALLS.each { String var, Map params ->
            shCalls.clear()
            runVar(var, params)
            Map plain = shCalls[0]
            shCalls.clear()
            Map evil = hostile(params)
            runVar(var, evil)
            Map attacked = shCalls[0]
            assertEquals("${var}: sh text must not depend on the values".toString(),
                         plain.script, attacked.script)
            evil.each { k, v ->
                if (!(k in NOT_STRINGS)) {
                    assertFalse("${var}: ${k} reached the sh text".toString(),
                                attacked.script.contains(v.toString()))
                }
            }
            assertFalse("${var}: hostile text in sh".toString(), attacked.script.contains('rm -rf'))
            // every hostile value is in the environment, byte for byte
            evil.findAll { k, v -> !(k in NOT_STRINGS + ['reportDir']) }.each { k, v ->
                assertTrue("${var}: ${k} value not passed via withEnv".toString(),
                           attacked.env.values().contains(v))
            }
        }
    }

    @Test
    void everyVarHasHelpTextAndSingleQuotedShellText() {
        File vars = new File(ROOT, 'vars')
        def groovyFiles = vars.listFiles().findAll { it.name.endsWith('.groovy') }
        assertEquals(CALLS.size() + 1, groovyFiles.size())
        groovyFiles.each { File f ->
            File help = new File(vars, f.name.replace('.groovy', '.txt'))
            assertTrue("${help} missing".toString(), help.isFile() && help.text.trim())
            // the sh text is built from single-quoted literals only: no GString in script:
            f.readLines().findAll { it.contains('script:') && !it.trim().startsWith('*') }.each {
                assertFalse("${f.name}: ${it}".toString(), it.contains('script: "'))
            }
            assertFalse("${f.name} calls sh directly with a GString".toString(),
                        (f.text =~ /\bsh\s*\(?\s*"/).find())
        }
    }

    @Test
    void reportDirIsSetArchivedAndFedToJunit() {
        runVar('pipelineBuild', [appDir: '.', reportDir: 'out/build-reports'])
        assertEquals('out/build-reports', shCalls[0].env.PIPELINE_REPORT_DIR)
        assertEquals(['sh build', 'archive out/build-reports/**', 'junit out/build-reports/junit.xml'],
                     events)
    }

    @Test
    void failureStillArchivesAndFeedsJunitThenPropagates() {
        exitCodes.build = 1
        try {
            runVar('pipelineBuild', [appDir: '.'])
            fail('a failed pipeline build must fail the stage')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('exit 1 (a step failed)'))
            assertTrue(e.message, e.message.contains('reports/build/summary.md'))
        }
        assertEquals(['sh build', 'archive reports/build/**', 'junit reports/build/junit.xml'],
                     events.take(3))
        assertTrue(events[3].startsWith('error pipeline build failed'))
    }

    @Test
    void exitCodeMeaningIsInTheFailureMessage() {
        exitCodes.promote = 2
        try {
            runVar('pipelinePromote', [app: 'web', to: 'live'])
            fail('refused promotion must fail')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('exit 2 (bad input or refused; nothing was written)'))
        }
        exitCodes.promote = 3
        try {
            runVar('pipelinePromote', [app: 'web', to: 'live'])
            fail('unreachable system must fail')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('exit 3 (a required system is unreachable)'))
        }
    }

    @Test
    void deployReturnsFiveWhenTheNewColourAwaitsPromotion() {
        exitCodes.rollout = 5
        assertEquals(5, runVar('pipelineDeploy', [app: 'web', manifests: 'k8s', awaitPromotion: true]))
        assertEquals('1', shCalls[0].env.PIPELINE_BLUE_GREEN)
        assertEquals('1', shCalls[0].env.PIPELINE_AWAIT_PROMOTION)
        try {
            runVar('pipelineDeploy', [app: 'web', manifests: 'k8s'])
            fail('exit 5 without awaitPromotion is not a deploy success')
        } catch (PipelineAbort e) {
            assertTrue(e.message.contains('exit 5'))
        }
    }

    @Test
    void trustRootAndSigningKeysComeFromFileCredentials() {
        runVar('pipelinePromote', [app: 'web', to: 'prod', trustCredentialsId: 'pipelinelib-trust-root',
                                   signingKeyCredentialsId: 'pipelinelib-promotion-key',
                                   attestKeyCredentialsId: 'pipelinelib-attest-key'])
        assertEquals('****', shCalls[0].env.PIPELINE_TRUST_DIR)
        assertEquals('****', shCalls[0].env.PIPELINE_SIGNING_KEY)
        assertEquals('****', shCalls[0].env.PIPELINE_ATTEST_KEY)
        assertFalse(shCalls[0].script.contains('pipelinelib-trust-root'))
        runVar('pipelineRollback', [app: 'web', environment: 'prod', envRepo: 'https://git.example/env.git',
                                    trustCredentialsId: 'pipelinelib-trust-root', toRevision: 3])
        assertEquals('****', shCalls[1].env.PIPELINE_TRUST_DIR)
        assertEquals('prod', shCalls[1].env.PIPELINE_ENV)
        assertTrue(shCalls[1].script.contains('--env "$PIPELINE_ENV"'))
        assertEquals(null, shCalls[1].env.PIPELINE_SIGNING_KEY)
        runVar('pipelineBuild', [appDir: 'app', attestKeyCredentialsId: 'pipelinelib-attest-key'])
        assertEquals('****', shCalls[2].env.PIPELINE_ATTEST_KEY)
        try {
            runVar('pipelineRollback', [app: 'web', environment: 'prod', namespace: 'prod'])
            fail('environment and namespace together must fail')
        } catch (PipelineAbort e) {
            assertTrue(e.message.contains('not both'))
        }
    }

    @Test
    void deployAndSwapTakeTheClusterFromAKubeconfigCredential() {
        runVar('pipelineDeploy', [app: 'web', manifests: 'k8s', kubeconfigCredentialsId: 'live-kube'])
        assertEquals('****', shCalls[0].env.KUBECONFIG)
        assertTrue(events.contains('withCredentials'))
        try {
            runVar('pipelineSwap', [app: 'web', colour: 'purple'])
            fail('an unknown colour must fail')
        } catch (PipelineAbort e) {
            assertTrue(e.message.contains('colour must be blue or green'))
        }
    }

    @Test
    void swapByEnvironmentPassesEnvAndRepoThroughWithEnvOnly() {
        runVar('pipelineSwap', [app: 'web', namespace: 'web'])
        String namespaceScript = shCalls[0].script
        shCalls.clear()
        runVar('pipelineSwap', [app: 'web', environment: 'live', colour: 'green',
                                envRepo: 'https://git.example/env-state.git', envBranch: 'release'])
        Map call = shCalls[0]
        assertEquals('one constant text for both forms', namespaceScript, call.script)
        assertTrue(call.script.contains('${PIPELINE_ENV:+--env "$PIPELINE_ENV"}'))
        assertTrue(call.script.contains('${PIPELINE_ENV_REPO:+--repo "$PIPELINE_ENV_REPO"}'))
        assertTrue(call.script.contains('${PIPELINE_ENV_BRANCH:+--branch "$PIPELINE_ENV_BRANCH"}'))
        assertEquals('live', call.env.PIPELINE_ENV)
        assertEquals('https://git.example/env-state.git', call.env.PIPELINE_ENV_REPO)
        assertEquals('release', call.env.PIPELINE_ENV_BRANCH)
        assertEquals('', call.env.PIPELINE_NAMESPACE)
        assertEquals('alice', call.env.PIPELINE_TRIGGERED_BY)

        // hostile values change nothing in the text and arrive byte for byte
        shCalls.clear()
        Map evil = [app: "web${HOSTILE}", environment: "live${HOSTILE}",
                    envRepo: "/srv/env-state${HOSTILE}", envBranch: "main${HOSTILE}"]
        runVar('pipelineSwap', evil)
        assertEquals(namespaceScript, shCalls[0].script)
        evil.each { k, v ->
            assertFalse(k, shCalls[0].script.contains(v.toString()))
            assertTrue(k, shCalls[0].env.values().contains(v.toString()))
        }

        // without envBranch the agent's PIPELINE_ENV_BRANCH (or the CLI's main) applies
        shCalls.clear()
        baseEnv.PIPELINE_ENV_BRANCH = 'agent-branch'
        runVar('pipelineSwap', [app: 'web', environment: 'live', envRepo: '/srv/env-state'])
        assertEquals('agent-branch', shCalls[0].env.PIPELINE_ENV_BRANCH)

        // the namespace form never passes the agent's env-state repository on (no --repo)
        shCalls.clear()
        baseEnv.PIPELINE_ENV_REPO = '/srv/agent-env-state'
        runVar('pipelineSwap', [app: 'web', namespace: 'web-live'])
        assertEquals('', shCalls[0].env.PIPELINE_ENV)
        assertEquals('', shCalls[0].env.PIPELINE_ENV_REPO)
        assertEquals('web-live', shCalls[0].env.PIPELINE_NAMESPACE)
    }

    @Test
    void swapRejectsConflictingOrIncompleteEnvironmentParametersBeforeAnythingRuns() {
        [
            'namespace or environment, not both': [app: 'web', namespace: 'web', environment: 'live',
                                                   envRepo: '/srv/env-state'],
            'envRepo (the env-state repository) is required with environment':
                [app: 'web', environment: 'live'],
            'envRepo and envBranch need environment': [app: 'web', envRepo: '/srv/env-state'],
            'unknown parameter(s) env': [app: 'web', env: 'live'],
        ].each { String msg, Map p ->
            try {
                runVar('pipelineSwap', p)
                fail("must fail: ${p}".toString())
            } catch (PipelineAbort e) {
                assertTrue(e.message, e.message.contains(msg))
            }
        }
        try {
            runVar('pipelineSwap', [app: 'web', envBranch: 'main'])
            fail('envBranch without environment must fail')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('envRepo and envBranch need environment'))
        }
        assertTrue('nothing may run', shCalls.isEmpty())
    }

    @Test
    void migrateNeedsADsnCredentialOrACompleteJob() {
        ['dsnCredentialsId': [dir: 'db'], 'both jobImage': [jobImage: 'ns/web@sha256:0a']].each { msg, p ->
            try {
                runVar('pipelineMigrate', p)
                fail("must fail: ${p}".toString())
            } catch (PipelineAbort e) {
                assertTrue(e.message, e.message.contains(msg))
            }
        }
        assertTrue(shCalls.isEmpty())
        runVar('pipelineMigrate', [jobImage: 'ns/web@sha256:0a', jobCommand: 'migrate'])
        assertEquals('migrations', shCalls[0].env.PIPELINE_MIGRATIONS_DIR)
    }

    @Test
    void gateOverridesNeedAReasonAndAPerson() {
        try {
            runVar('pipelineGate', [override: '4'])
            fail('an override without a reason must fail')
        } catch (PipelineAbort e) {
            assertTrue(e.message.contains('needs a reason'))
        }
        causes = [[_class: 'hudson.triggers.SCMTrigger$SCMTriggerCause', shortDescription: 'Started by an SCM change']]
        binding.setVariable('currentBuild', currentBuildMockFor())
        try {
            runVar('pipelineGate', [override: '4', reason: 'accepted'])
            fail('an override by no one must be refused')
        } catch (PipelineAbort e) {
            assertTrue(e.message.contains('refused: no person started this build'))
        }
        currentResult = 'UNSTABLE'
        binding.setVariable('currentBuild', currentBuildMockFor())
        runVar('pipelineGate', [:])
        assertEquals('UNSTABLE', shCalls[0].env.PIPELINE_BUILD_RESULT)
    }

    @Test
    void scanNeedsAReportOrAnImage() {
        try {
            runVar('pipelineScan', [policy: 'scan.yaml'])
            fail('nothing to scan must fail')
        } catch (PipelineAbort e) {
            assertTrue(e.message.contains('give report:'))
        }
        assertTrue(shCalls.isEmpty())
    }

    @Test
    void annotateSpeaksTheCliWordsAndCanWriteTheBuildDescription() {
        runVar('pipelineAnnotate', [environment: 'live', result: 'UNSTABLE',
                                    jenkinsCredentialsId: 'jenkins-api'])
        assertEquals('failure', shCalls[0].env.PIPELINE_RESULT)
        assertEquals('bot', shCalls[0].env.PIPELINELIB_JENKINS_USER)
        assertEquals('****', shCalls[0].env.PIPELINELIB_JENKINS_TOKEN)
        shCalls.clear()
        runVar('pipelineAnnotate', [environment: 'live', result: 'SUCCESS'])
        assertEquals('success', shCalls[0].env.PIPELINE_RESULT)
    }

    @Test
    void identityComesFromTheBuildCauseNotFromParametersOrEnvironment() {
        baseEnv.BUILD_USER_ID = 'mallory'          // e.g. a job parameter of that name
        baseEnv.PIPELINE_TRIGGERED_BY = 'mallory'
        runVar('pipelinePromote', [app: 'web', from: 'staging', to: 'live'])
        assertEquals('alice', shCalls[0].env.BUILD_USER_ID)
        assertEquals('alice', shCalls[0].env.PIPELINE_TRIGGERED_BY)
        assertEquals('', shCalls[0].env.PIPELINE_APPROVED_BY)
    }

    @Test
    void identityCannotBePassedAsAVarParameterOrEnvName() {
        try {
            runVar('pipelinePromote', [app: 'web', to: 'live', user: 'mallory'])
            fail('an identity parameter must be rejected')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('unknown parameter(s) user'))
        }
        try {
            runVar('pipelineCli', [name: 'x', script: 'true', env: [PIPELINE_TRIGGERED_BY: 'mallory']])
            fail('PIPELINE_TRIGGERED_BY must not be settable')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('not an allowed parameter variable'))
        }
        try {
            runVar('pipelineCli', [name: 'x', script: 'true', env: [BUILD_USER_ID: 'mallory']])
            fail('BUILD_USER_ID must not be settable')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('not an allowed parameter variable'))
        }
        assertTrue(shCalls.isEmpty())
    }

    @Test
    void privilegedVarsRefuseWhenNoPersonStartedOrApprovedTheBuild() {
        causes = [[_class: 'hudson.triggers.TimerTrigger$TimerTriggerCause',
                   shortDescription: 'Started by timer']]
        binding.setVariable('currentBuild', currentBuildMockFor())
        ['pipelinePromote', 'pipelineSwap', 'pipelineHotfix', 'pipelineRollback'].each { String var ->
            try {
                runVar(var, CALLS[var])
                fail("${var} must refuse a timer-started build".toString())
            } catch (PipelineAbort e) {
                assertTrue(e.message, e.message.contains('refused: no person started this build'))
                assertTrue(e.message, e.message.contains('Started by timer'))
            }
        }
        assertTrue('nothing may run', shCalls.isEmpty())
        // the approver of an input step is a person Jenkins authenticated
        runVar('pipelinePromote', [app: 'web', to: 'staging', approver: 'rita'])
        assertEquals('rita', shCalls[0].env.PIPELINE_APPROVED_BY)
        assertEquals('', shCalls[0].env.PIPELINE_TRIGGERED_BY)
    }

    @Test
    void unprivilegedVarsRunForTimerBuildsWithAnEmptyIdentity() {
        causes = [[_class: 'hudson.triggers.SCMTrigger$SCMTriggerCause', shortDescription: 'Started by an SCM change']]
        binding.setVariable('currentBuild', currentBuildMockFor())
        runVar('pipelineBuild', [:])
        assertEquals('', shCalls[0].env.BUILD_USER_ID)
        assertEquals('.', shCalls[0].env.PIPELINE_APP_DIR)
    }

    @Test
    void unknownOrMissingParametersFailBeforeAnythingRuns() {
        try {
            runVar('pipelineBuild', [appdir: 'typo'])
            fail('a typo must not be ignored')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('unknown parameter(s) appdir'))
        }
        try {
            runVar('pipelineHotfix', [app: 'web', to: 'live', image: 'ns/web@sha256:0a', reason: '  '])
            fail('a hot-fix needs a reason')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('missing required parameter(s) reason'))
        }
        assertTrue(shCalls.isEmpty())
        assertFalse(events.any { it.startsWith('junit') })
    }

    @Test
    void migrateTakesTheDsnFromACredentialNeverFromAParameter() {
        runVar('pipelineMigrate', CALLS.pipelineMigrate)
        assertTrue(events.contains('withCredentials'))
        assertEquals('****', shCalls[0].env.PIPELINE_DB_DSN)
        assertFalse(shCalls[0].env.values().contains('web-dsn'))
    }

    @Test
    void annotatingAFailureNeverHidesTheFailure() {
        exitCodes.annotate = 3
        assertEquals(null, runVar('pipelineAnnotate', [app: 'web', environment: 'sandbox', result: 'FAILURE']))
        assertEquals('failure', shCalls[0].env.PIPELINE_RESULT)
        assertTrue(events.contains('junit reports/annotate/junit.xml'))
        try {
            runVar('pipelineAnnotate', [app: 'web', environment: 'sandbox', result: 'SUCCESS'])
            fail('annotating a success that cannot be recorded fails')
        } catch (PipelineAbort e) {
            assertNotNull(e.message)
        }
    }

    @Test
    void planReturnsFourWhenChangesArePending() {
        exitCodes.plan = 4
        assertEquals(4, runVar('pipelinePlan', [environment: 'int-test']))
        assertEquals('int-test', shCalls[0].env.PIPELINE_ENV)
    }

    @Test
    void promoteCanRecordAFourEyesApprovalInstead() {
        runVar('pipelinePromote', [app: 'web', from: 'staging', to: 'live', approve: true])
        assertEquals('1', shCalls[0].env.PIPELINE_APPROVE)
        assertTrue(shCalls[0].script.endsWith('${PIPELINE_APPROVE:+--approve}'))
        shCalls.clear()
        runVar('pipelinePromote', [app: 'web', from: 'staging', to: 'live'])
        assertEquals('', shCalls[0].env.PIPELINE_APPROVE)
    }

    @Test
    void optionalValuesAreSetEmptySoTheEnvironmentCannotLeakThem() {
        baseEnv.PIPELINE_REGISTRY = 'evil.example'
        runVar('pipelineBuild', [:])
        assertEquals('', shCalls[0].env.PIPELINE_REGISTRY)
    }

    @Test
    void perfMeasuresOneThingServedOrAtAUrlOrReadsReports() {
        runVar('pipelinePerf', [serve: 'build/public', runs: 5, budget: 'perf-budget.yaml'])
        assertEquals('build/public', shCalls[0].env.PIPELINE_PERF_SERVE)
        assertEquals('5', shCalls[0].env.PIPELINE_PERF_RUNS)
        assertEquals('', shCalls[0].env.PIPELINE_PERF_URL)
        [[budget: 'b.yaml'], [serve: 'd', url: 'http://127.0.0.1:8080/', budget: 'b.yaml']].each {
            try {
                runVar('pipelinePerf', it)
                fail("pipelinePerf ${it} must be refused")
            } catch (PipelineAbort e) {
                assertTrue(e.message, e.message.contains('pipelinePerf: give one of serve:'))
            }
        }
    }
}
