// pipelinePerf: the performance budget, seed 003 (`pipeline perf`): measure the page with
// Lighthouse (serve: a static directory, or url:) `runs` times and check the median run against
// the budget YAML; or check Lighthouse/coach JSON reports made elsewhere (report:, a glob of
// several runs of one page). See pipelinePerf.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelinePerf', params,
                            ['report', 'serve', 'url', 'runs', 'budget', 'attestKeyCredentialsId', 'reportDir'],
                            ['budget'])
    def given = ['report', 'serve', 'url'].findAll { params[it] }
    if (given.size() != 1) {
        error('pipelinePerf: give one of serve: (a static directory), url: (a page) or report: ' +
              '(Lighthouse JSON reports)')
    }
    return pipelineCli(
        name: 'perf',
        reportDir: params.reportDir,
        attestKeyCredentialsId: params.attestKeyCredentialsId,
        env: [
            PIPELINE_PERF_REPORT: params.report,
            PIPELINE_PERF_SERVE: params.serve,
            PIPELINE_PERF_URL: params.url,
            PIPELINE_PERF_RUNS: params.runs?.toString(),
            PIPELINE_BUDGET: params.budget,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" perf' +
                ' ${PIPELINE_PERF_REPORT:+--report "$PIPELINE_PERF_REPORT"}' +
                ' ${PIPELINE_PERF_SERVE:+--serve "$PIPELINE_PERF_SERVE"}' +
                ' ${PIPELINE_PERF_URL:+--url "$PIPELINE_PERF_URL"}' +
                ' ${PIPELINE_PERF_RUNS:+--runs "$PIPELINE_PERF_RUNS"}' +
                ' --budget "$PIPELINE_BUDGET"'
    )
}
