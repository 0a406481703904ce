package pipelinelib

import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.junit.Test

import static org.junit.Assert.assertNotNull

/**
 * The example Jenkinsfile, run for real: every `sh` executes its script on this machine
 * against the testbed, with the parameters, environment and credentials Jenkins would bind.
 * tests/test_ci_harness_jenkins.py prepares the workspace (a checkout of the app), the agent's
 * environment and the credential store, runs this class alone
 * (-Dtest=JenkinsfileTestbedTest -Dpipelinelib.testbed.config=FILE) and checks the results
 * it writes and the testbed's state. Excluded from the plain `mvn test` (pom.xml).
 */
class JenkinsfileTestbedTest extends PipelineLibTestBase {

    @Test
    void exampleJenkinsfileRunsForRealOnTheTestbed() {
        String configPath = System.getProperty('pipelinelib.testbed.config')
        assertNotNull('pipelinelib.testbed.config is not set', configPath)
        Map cfg = new JsonSlurper().parse(new File(configPath)) as Map
        workspace = new File(cfg.workspace as String)
        agentEnv = cfg.agentEnv as Map
        credentialStore = cfg.credentials as Map
        baseEnv.putAll(cfg.jenkinsEnv as Map)
        causes = [[_class: 'hudson.model.Cause$UserIdCause', userId: cfg.user,
                   userName: cfg.user, shortDescription: "Started by user ${cfg.user}".toString()]]
        // the release manager does not approve the promotion: Jenkins aborts at the input
        helper.registerAllowedMethod('input', [Map]) { Map m ->
            events << "input ${m.message}".toString()
            throw new PipelineAbort(cfg.inputAnswer as String)
        }
        String error = null
        try {
            runScript(cfg.script as String)
        } catch (PipelineAbort e) {
            error = e.message
        }
        Map results = [
            events: events,
            error : error,
            sh    : shCalls.collect { [label  : it.label, command: commandOf(it.script as String),
                                       status : it.status,
                                       output : tail((it.output ?: '').toString(), 4000),
                                       envKeys: (it.env as Map).keySet().sort()] },
        ]
        new File(cfg.results as String).text = JsonOutput.toJson(results)
    }

    private static String tail(String text, int chars) {
        return text.length() > chars ? text.substring(text.length() - chars) : text
    }
}
