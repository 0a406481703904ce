package pipelinelib

import org.junit.Test

import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertTrue
import static org.junit.Assert.fail

/** The shipped Jenkinsfiles: stage order, failure propagation, reports always published. */
class JenkinsfileTest extends PipelineLibTestBase {

    private List<String> stages() {
        return events.findAll { it.startsWith('stage ') }.collect { it.substring(6) }
    }

    @Test
    void exampleAppPipelineRunsEveryStageInOrderThenPromotesAfterApproval() {
        helper.registerAllowedMethod('input', [Map]) { Map m -> events << 'input'; 'rita' }
        runScript('examples/jenkins/Jenkinsfile')
        assertEquals(['Checkout', 'Build', 'Scan', 'Perf', 'Gate', 'Migrate', 'Deploy sandbox', 'Approve',
                      'Promote to staging'], stages())
        // pipeline perf serves the built page and runs Lighthouse itself; the gate before
        // migrate (pending migrations expected), mark 2 again before the rollout
        assertEquals(['build', 'test results', 'scan', 'perf', 'gate', 'migrate', 'gate',
                      'rollout', 'annotate', 'promote'],
                     shCalls.collect { it.label == 'test results' ? it.label : commandOf(it.script) })
        Map perf = shCalls.find { commandOf(it.script) == 'perf' }
        assertEquals('examples/hello/build/public', perf.env.PIPELINE_PERF_SERVE)
        assertEquals('3', perf.env.PIPELINE_PERF_RUNS)
        assertEquals('', perf.env.PIPELINE_PERF_REPORT)
        assertTrue(perf.script.contains('${PIPELINE_PERF_SERVE:+--serve "$PIPELINE_PERF_SERVE"}'))
        assertEquals('examples/hello/perf-budget.yaml', perf.env.PIPELINE_BUDGET)
        List gates = shCalls.findAll { commandOf(it.script) == 'gate' }
        assertEquals(['1', ''], gates.collect { it.env.PIPELINE_MIGRATE_NEXT })
        assertEquals(['', '2'], gates.collect { it.env.PIPELINE_MARKS ?: '' })
        assertTrue(events.indexOf('input') < events.indexOf('sh promote'))
        Map annotate = shCalls.find { commandOf(it.script) == 'annotate' }
        assertEquals('success', annotate.env.PIPELINE_RESULT)
        assertEquals('deployment/hello', annotate.env.PIPELINE_WORKLOAD)
        Map scan = shCalls.find { commandOf(it.script) == 'scan' }
        assertEquals('127.0.0.1:5001/pipelinelib/hello-example-org-web:0123456', scan.env.PIPELINE_OSV_IMAGE)
        Map promote = shCalls.find { commandOf(it.script) == 'promote' }
        assertEquals('rita', promote.env.PIPELINE_APPROVED_BY)
        assertEquals('alice', promote.env.PIPELINE_TRIGGERED_BY)
        assertEquals('staging', promote.env.PIPELINE_TO)
        // every pipeline command published its reports
        ['build', 'scan', 'perf', 'gate', 'migrate', 'gate-migrated', 'deploy', 'annotate', 'promote'].each {
            assertTrue(it, events.contains("junit reports/${it}/junit.xml".toString()))
        }
    }

    /** Fails `command` with exit 1: the build stops after `expectedStages`, having run `commands`. */
    private void assertStopsAfter(String command, List<String> expectedStages, List<String> commands) {
        exitCodes[command] = 1
        try {
            runScript('examples/jenkins/Jenkinsfile')
            fail("a failed ${command} must fail the build")
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.startsWith("pipeline ${command} failed: exit 1"))
        }
        assertEquals(expectedStages, stages())
        assertEquals(commands, shCalls.findAll { it.label != 'test results' }
                                      .collect { commandOf(it.script) })
        assertEquals('failure', shCalls.last().env.PIPELINE_RESULT)
        assertTrue(events.contains("junit reports/${command}/junit.xml".toString()))
        assertFalse(events.contains('input'))
    }

    @Test
    void exampleStopsAtTheFirstFailedStageAndStillAnnotatesTheFailure() {
        assertStopsAfter('scan', ['Checkout', 'Build', 'Scan'], ['build', 'scan', 'annotate'])
    }

    @Test
    void aBlownPerformanceBudgetStopsBeforeTheGateAndIsAnnotated() {
        assertStopsAfter('perf', ['Checkout', 'Build', 'Scan', 'Perf'], ['build', 'scan', 'perf', 'annotate'])
    }

    @Test
    void aFailedAnnotationDoesNotHideTheDeployFailure() {
        exitCodes.rollout = 1
        exitCodes.annotate = 3
        try {
            runScript('examples/jenkins/Jenkinsfile')
            fail('a failed deploy must fail the build')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.startsWith('pipeline deploy failed: exit 1'))
        }
        assertTrue(events.any { it.startsWith('echo pipelineAnnotate: could not record') })
    }

    @Test
    void repositoryCiRunsLintGroovyThenIntegrationAndAlwaysPublishesReports() {
        runScript('Jenkinsfile')
        assertEquals(['Checkout', 'Lint', 'Unit (Groovy)', 'Integration'], stages())
        assertEquals(['make setup lint', 'tests/groovy/ensure-tools && cd tests/groovy && mvn -B -q test',
                      'bash .ci/run'],
                     shCalls*.script)
        assertTrue(events.last().startsWith('archive'))
    }

    @Test
    void repositoryCiFailureStopsLaterStagesButPublishesReports() {
        exitCodes.make = 1
        try {
            runScript('Jenkinsfile')
            fail('lint failure must fail the build')
        } catch (PipelineAbort e) {
            assertTrue(e.message.contains('exit code 1'))
        }
        assertEquals(['Checkout', 'Lint'], stages())
        assertTrue(events.any { it.startsWith('junit reports/*.xml') })
    }

    @Test
    void releaseJobsPassTheirParametersAndTakeTheIdentityFromTheCause() {
        binding.setVariable('params', [APP: 'web', FROM_ENV: 'staging', TO_ENV: 'live',
                                       APPROVE_ONLY: false, BUILD_USER_ID: 'mallory'])
        runScript('jenkins/jobs/promote.Jenkinsfile')
        Map call = shCalls.last()
        assertEquals(['promote'], pipelineCommands())
        assertEquals('live', call.env.PIPELINE_TO)
        assertEquals('staging', call.env.PIPELINE_FROM)
        assertEquals('', call.env.PIPELINE_APPROVE)
        assertEquals('alice', call.env.BUILD_USER_ID)
        assertEquals('****', call.env.PIPELINE_TRUST_DIR)      // release folder credentials
        assertEquals('****', call.env.PIPELINE_SIGNING_KEY)
        assertEquals('****', call.env.PIPELINE_ATTEST_KEY)
        assertEquals('#42 promote web staging -> live',
                     binding.getVariable('currentBuild').displayName.toString())

        shCalls.clear(); events.clear()
        baseEnv.PIPELINE_ENV_REPO = 'https://git.example/env-state.git'   // the agent's
        binding.setVariable('params', [APP: 'web', ENVIRONMENT: 'live', COLOUR: 'toggle'])
        runScript('jenkins/jobs/swap.Jenkinsfile')
        assertEquals(['swap'], pipelineCommands())
        assertEquals('', shCalls.last().env.PIPELINE_COLOUR)
        assertEquals('****', shCalls.last().env.KUBECONFIG)
        assertEquals('****', shCalls.last().env.PIPELINE_TRUST_DIR)
        // by environment: `--env live --repo ...`, so the policy's swap role is checked
        assertEquals('live', shCalls.last().env.PIPELINE_ENV)
        assertEquals('https://git.example/env-state.git', shCalls.last().env.PIPELINE_ENV_REPO)
        assertEquals('', shCalls.last().env.PIPELINE_NAMESPACE)
        assertEquals('alice', shCalls.last().env.PIPELINE_TRIGGERED_BY)
        assertEquals('#42 swap web in live to the other colour',
                     binding.getVariable('currentBuild').displayName.toString())

        shCalls.clear(); events.clear()
        binding.setVariable('params', [APP: 'web', TO_ENV: 'live', IMAGE: 'ns/web@sha256:0b',
                                       REASON: 'CVE-2024-1234'])
        runScript('jenkins/jobs/hotfix.Jenkinsfile')
        assertEquals('CVE-2024-1234', shCalls.last().env.PIPELINE_REASON)
        assertEquals('ns/web@sha256:0b', shCalls.last().env.PIPELINE_IMAGE)
        assertTrue(shCalls.last().script.contains('--hotfix --image "$PIPELINE_IMAGE" --reason "$PIPELINE_REASON"'))
    }

    @Test
    void swapJobWithoutAnEnvStateRepositoryOnTheAgentRunsNothing() {
        binding.setVariable('params', [APP: 'web', ENVIRONMENT: 'live', COLOUR: 'blue'])
        try {
            runScript('jenkins/jobs/swap.Jenkinsfile')
            fail('a swap by environment needs the env-state repository')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('no PIPELINE_ENV_REPO'))
        }
        assertTrue(shCalls.isEmpty())
    }

    @Test
    void rollbackJobRunsPipelineRollbackByEnvironment() {
        baseEnv.PIPELINE_ENV_REPO = 'https://git.example/env-state.git'   // the agent's
        binding.setVariable('params', [APP: 'web', ENVIRONMENT: 'prod', TO_GIT_REVISION: '0123abc'])
        runScript('jenkins/jobs/rollback.Jenkinsfile')
        assertEquals(['rollback'], pipelineCommands())
        Map call = shCalls.last()
        assertEquals('web', call.env.PIPELINE_APP)
        assertEquals('prod', call.env.PIPELINE_ENVIRONMENT)
        assertEquals('0123abc', call.env.PIPELINE_TO_GIT_REVISION)
        assertEquals('****', call.env.KUBECONFIG)
        assertEquals('alice', call.env.PIPELINE_TRIGGERED_BY)
        assertTrue(call.script, call.script.contains('rollback --app "$PIPELINE_APP" --env "$PIPELINE_ENVIRONMENT"'))
        assertEquals('#42 rollback web in prod',
                     binding.getVariable('currentBuild').displayName.toString())
    }

    @Test
    void rollbackJobWithoutAnEnvStateRepositoryRunsNothing() {
        binding.setVariable('params', [APP: 'web', ENVIRONMENT: 'prod', TO_GIT_REVISION: ''])
        try {
            runScript('jenkins/jobs/rollback.Jenkinsfile')
            fail('a rollback by environment needs the env-state repository')
        } catch (PipelineAbort e) {
            assertTrue(e.message, e.message.contains('no PIPELINE_ENV_REPO'))
        }
        assertTrue(shCalls.isEmpty())
    }

    @Test
    void promoteJobCanOnlyRecordAnApproval() {
        binding.setVariable('params', [APP: 'web', FROM_ENV: 'staging', TO_ENV: 'live',
                                       APPROVE_ONLY: true])
        runScript('jenkins/jobs/promote.Jenkinsfile')
        assertEquals('1', shCalls.last().env.PIPELINE_APPROVE)
        assertEquals('****', shCalls.last().env.PIPELINE_TRUST_DIR)
        assertEquals(null, shCalls.last().env.PIPELINE_SIGNING_KEY)   // the approver's own key
        assertEquals('#42 approve web staging -> live',
                     binding.getVariable('currentBuild').displayName.toString())
    }

    @Test
    void hotfixJobWithoutAReasonRunsNothing() {
        binding.setVariable('params', [APP: 'web', TO_ENV: 'live', IMAGE: 'ns/web@sha256:0b', REASON: ''])
        try {
            runScript('jenkins/jobs/hotfix.Jenkinsfile')
            fail('hot-fix without reason must fail')
        } catch (PipelineAbort e) {
            assertTrue(e.message.contains('missing required parameter(s) reason'))
        }
        assertTrue(shCalls.isEmpty())
    }
}
