"""``pipeline validate PATH...``: check every input file without writing anything."""

from __future__ import annotations

import argparse
import os

from pipelinelib.context import Context

DESCRIPTION = """\
Validate input files the way the commands that use them would, before any of them runs:
Kubernetes manifests (a file, a directory, or a kustomize directory, built with kubectl's
kustomize), environment specs (environments/ENV.yaml; every app rendered, charts with
helm), an env-state repository (every environment and policy.yaml), promotion and scan
policies, performance budgets and gate configs. The kind of each PATH is detected from its
layout and first document. Every YAML file is read with limits (size, documents, depth,
aliases). All problems are printed together, each with file, line and field.
Offline by default: YAML limits, names, images pinned by digest, one namespace,
duplicate objects, object sizes. With --kubeconfig or --context the cluster is asked too
(read only): kinds from its discovery, fields against its OpenAPI schema, and every
ConfigMap/Secret/ServiceAccount/PVC a pod references shipped or present in NAMESPACE.
Exit 0: every input is valid; exit 2: problems (all listed).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument("--namespace", "-n", default=os.environ.get("NAMESPACE") or "default",
                        help="namespace manifests are meant for (default: default)")
    parser.add_argument("--app", default=os.environ.get("APP"),
                        help="app name the manifests deploy as (checked as a label)")
    parser.add_argument("--image", action="append", default=[], metavar="NAME=REF@DIGEST",
                        help="pin containers whose image is NAME, as `rollout --image`")
    parser.add_argument("--from-build", metavar="REPORT_DIR",
                        help="pin the images a `pipeline build` pushed, as `rollout`")
    parser.add_argument("--kubeconfig", help="check against this cluster (read only)")
    parser.add_argument("--context", help="kubeconfig context to check against (read only)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from pipelinelib.job import Job
    from pipelinelib.kube.images import pins_from
    from pipelinelib.steps.validate import validate_inputs

    with Job("validate", ctx, args.report_dir) as job:
        kube = (ctx.kube_for(args.kubeconfig, args.context)
                if args.kubeconfig or args.context else None)
        pins = pins_from(args.from_build, args.image)
        job.run(validate_inputs, ctx, args.paths, namespace=args.namespace, app=args.app,
                kube=kube, pins=pins)
    return job.exit_code
