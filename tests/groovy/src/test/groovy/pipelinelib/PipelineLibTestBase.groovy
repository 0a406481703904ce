package pipelinelib

import com.lesfurets.jenkins.unit.BasePipelineTest
import org.junit.Before

import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths

import static com.lesfurets.jenkins.unit.global.lib.LibraryConfiguration.library
import static com.lesfurets.jenkins.unit.global.lib.LocalSource.localSource

/**
 * Loads the repository's vars/ as the implicit shared library `pipelinelib` and records
 * what the pipeline steps receive: every `sh` with the environment withEnv gave it, and
 * the junit / archiveArtifacts / input / error calls in order.
 */
abstract class PipelineLibTestBase extends BasePipelineTest {

    static final String ROOT = System.getProperty('pipelinelib.root',
                                                  new File('../..').canonicalPath)

    /** One record per sh call: [script: text, env: Map, label: String]. */
    List<Map> shCalls = []
    /** Steps in call order (name + short argument), for stage-order assertions. */
    List<String> events = []
    /** Environment stack built by withEnv. */
    List<Map> envStack = []
    /** Exit status per `pipeline` command name (e.g. 'build': 1); default 0. */
    Map<String, Integer> exitCodes = [:]
    /** Build causes, as currentBuild.getBuildCauses() returns them. */
    List<Map> causes = [[_class: 'hudson.model.Cause$UserIdCause', userId: 'alice',
                         userName: 'Alice', shortDescription: 'Started by user Alice']]
    Map<String, String> baseEnv = [GIT_COMMIT: '0123456789abcdef0123456789abcdef01234567']
    String currentResult = 'SUCCESS'
    /**
     * Set by a test that runs on the testbed (JenkinsfileTestbedTest): `sh` then really runs
     * its script with /bin/sh in this directory, as a Jenkins agent does, with the agent's
     * environment (agentEnv) under the build's (env, withEnv, withCredentials).
     */
    File workspace = null
    Map<String, String> agentEnv = [:]
    /** Credentials by id, as Jenkins stores them: a String (secret text, or a secret file's
     *  path) or [username: , password: ]. An id that is not here fails the build. */
    Map<String, Object> credentialStore = [:]

    @Before
    @Override
    void setUp() throws Exception {
        scriptRoots += ROOT
        scriptExtension = ''
        super.setUp()
        helper.registerSharedLibrary(library()
            .name('pipelinelib')
            .defaultVersion('main')
            .allowOverride(true)
            .implicit(true)
            .targetPath(Files.createTempDirectory('jpu-target').toString())
            .retriever(localSource(libraryParent()))
            .build())
        def self = this
        binding.setVariable('env', baseEnv)
        binding.setVariable('params', [:])
        binding.setVariable('currentBuild', currentBuildMock())
        binding.setVariable('scm', [:])

        helper.registerAllowedMethod('withEnv', [List, Closure]) { List l, Closure c ->
            Map frame = l.collectEntries { String kv ->
                int i = kv.indexOf('=')
                [(kv.substring(0, i)): kv.substring(i + 1)]
            }
            self.envStack.push(frame)
            try {
                return c.call()
            } finally {
                self.envStack.pop()
            }
        }
        helper.registerAllowedMethod('withCredentials', [List, Closure]) { List l, Closure c ->
            self.events << 'withCredentials'
            Map frame = [:]
            l.each { binding ->
                frame[binding.variable] = '****'
                if (binding.usernameVariable) {
                    frame[binding.usernameVariable] = 'bot'
                }
                if (self.workspace != null) {
                    def stored = self.credentialStore[binding.credentialsId]
                    if (stored == null) {  // what Jenkins' credentials binding says
                        throw new PipelineAbort("ERROR: Could not find credentials entry with ID '${binding.credentialsId}'")
                    }
                    if (binding.usernameVariable) {
                        frame[binding.usernameVariable] = stored.username
                        frame[binding.variable] = stored.password
                    } else {
                        frame[binding.variable] = stored.toString()
                    }
                }
            }
            self.envStack.push(frame)
            try {
                return c.call()
            } finally {
                self.envStack.pop()
            }
        }
        helper.registerAllowedMethod('string', [Map]) { Map m -> m }
        helper.registerAllowedMethod('file', [Map]) { Map m -> m }
        helper.registerAllowedMethod('usernamePassword', [Map]) { Map m ->
            [variable: m.passwordVariable, usernameVariable: m.usernameVariable,
             credentialsId: m.credentialsId]
        }
        helper.registerAllowedMethod('echo', [String]) { String s -> self.events << "echo ${s}".toString() }
        helper.registerAllowedMethod('sh', [Map]) { Map m -> self.recordSh(m.script, m) }
        helper.registerAllowedMethod('sh', [String]) { String s -> self.recordSh(s, [script: s]) }
        helper.registerAllowedMethod('junit', [Map]) { Map m -> self.events << "junit ${m.testResults}".toString() }
        helper.registerAllowedMethod('archiveArtifacts', [Map]) { Map m ->
            self.events << "archive ${m.artifacts}".toString()
        }
        helper.registerAllowedMethod('error', [String]) { String msg ->
            self.events << "error ${msg}".toString()
            self.currentResult = 'FAILURE'
            throw new PipelineAbort(msg)
        }
        helper.registerAllowedMethod('input', [Map]) { Map m -> self.events << "input ${m.message}".toString() }
        helper.registerAllowedMethod('stage', [String, Closure]) { String name, Closure c ->
            self.events << "stage ${name}".toString()
            return c.call()
        }
        helper.registerAllowedMethod('milestone', [Integer]) { Integer n -> self.events << "milestone ${n}".toString() }
        helper.registerAllowedMethod('lock', [Map, Closure]) { Map m, Closure c -> c.call() }
        helper.registerAllowedMethod('timeout', [Map, Closure]) { Map m, Closure c -> c.call() }
        helper.registerAllowedMethod('checkout', [Map]) { Map m -> self.events << 'checkout' }
        helper.registerAllowedMethod('checkout', [Object]) { Object m -> self.events << 'checkout' }
        helper.registerAllowedMethod('cleanWs', []) { -> self.events << 'cleanWs' }
        helper.registerAllowedMethod('ansiColor', [String, Closure]) { String s, Closure c -> c.call() }
        helper.registerAllowedMethod('timestamps', [Closure]) { Closure c -> c.call() }
        helper.registerAllowedMethod('properties', [List]) { List l -> }
        helper.registerAllowedMethod('disableConcurrentBuilds', []) { -> }
        helper.registerAllowedMethod('buildDiscarder', [Object]) { Object o -> }
        helper.registerAllowedMethod('logRotator', [Map]) { Map m -> }
    }

    /** The library's parent directory: a temporary `pipelinelib@main` link to the repository. */
    private static String libraryParent() {
        Path parent = Files.createTempDirectory('jpu-libs')
        Files.createSymbolicLink(parent.resolve('pipelinelib@main'), Paths.get(ROOT))
        return parent.toString() + File.separator
    }

    Object currentBuildMockFor() { return currentBuildMock() }

    private Object currentBuildMock() {
        def test = this
        return new Expando(
            getBuildCauses: { String cls = null ->
                cls ? test.causes.findAll { it._class == cls } : test.causes
            },
            getCurrentResult: { -> test.currentResult },
            currentResult: test.currentResult,
            getResult: { -> test.currentResult },
            setResult: { String r -> test.currentResult = r },
            number: 42,
            displayName: '#42',
            description: null,
        )
    }

    /** Environment the innermost sh sees: base env overlaid with every withEnv frame. */
    Map<String, String> effectiveEnv() {
        Map<String, String> env = new LinkedHashMap(baseEnv)
        envStack.each { env.putAll(it) }
        return env
    }

    Object recordSh(String script, Map args) {
        Map env = effectiveEnv()
        Map call = [script: script, env: env, label: args.label]
        shCalls << call
        String command = commandOf(script)
        events << "sh ${command}".toString()
        int status = exitCodes.get(command, 0)
        if (workspace != null) {
            // Jenkins' sh: a shell script in the workspace, `sh -e`, the agent's environment
            // overlaid with the build's variables
            ProcessBuilder pb = new ProcessBuilder(['/bin/sh', '-e', '-c', script])
                .directory(workspace).redirectErrorStream(true)
            pb.environment().clear()
            pb.environment().putAll(agentEnv)
            env.each { k, v -> pb.environment().put(k.toString(), v == null ? '' : v.toString()) }
            Process process = pb.start()
            call.output = process.inputStream.getText('UTF-8')
            status = process.waitFor()
            call.status = status
        }
        if (args.returnStatus) {
            return status
        }
        if (status != 0) {
            throw new PipelineAbort("script returned exit code ${status}")
        }
        return args.returnStdout ? (call.output ?: '') : null
    }

    /** The `pipeline` subcommand a script runs ('build'), or the script's first word. */
    static String commandOf(String script) {
        def m = script =~ ('pipeline --report-dir "\\$PIPELINE_REPORT_DIR" (\\w+)')
        if (m.find()) {
            return m.group(1)
        }
        return script.trim().split(/\s+/)[0]
    }

    /** Run a var by name (as a Jenkinsfile would call it) with a parameter map. */
    Object runVar(String name, Map params) {
        Script script = loadScript("vars/${name}.groovy")
        return script.call(params)
    }

    List<String> pipelineCommands() {
        return events.findAll { it.startsWith('sh ') }.collect { it.substring(3) }
    }
}

/** What `error` throws here (Jenkins throws hudson.AbortException). */
class PipelineAbort extends RuntimeException {
    PipelineAbort(String message) { super(message) }
}
