"""Talking back to the CI servers: run a Jenkins job from outside, report into a build.

``pipelinelib.ci.remote``   run a Jenkins job (the release managers' promotion) as a step
``pipelinelib.ci.reporter`` write a deployment's outcome into the CI server running this job
"""
