// pipelinePerf: the performance budget, seed 003 (`pipeline perf`): check a Lighthouse (or
// coach) JSON report against the budget YAML; `report` may be a glob of several Lighthouse
// runs of one page (the median run is judged). See pipelinePerf.txt.

def call(Map params = [:]) {
    pipelineCli.checkParams('pipelinePerf', params, ['report', 'budget', 'attestKeyCredentialsId', 'reportDir'],
                            ['report', 'budget'])
    return pipelineCli(
        name: 'perf',
        reportDir: params.reportDir,
        attestKeyCredentialsId: params.attestKeyCredentialsId,
        env: [
            PIPELINE_PERF_REPORT: params.report,
            PIPELINE_BUDGET: params.budget,
        ],
        script: 'pipeline --report-dir "$PIPELINE_REPORT_DIR" perf --report "$PIPELINE_PERF_REPORT"' +
                ' --budget "$PIPELINE_BUDGET"'
    )
}
