"""Tiny real images pushed straight to the testbed's open registry (Registry HTTP API v2)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import uuid

import requests

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def _upload(registry: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"http://{registry}/v2/{repo}/blobs/uploads/", timeout=10)
    start.raise_for_status()
    location = start.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    put = requests.put(f"{location}{sep}digest={digest}", data=data, timeout=10,
                       headers={"Content-Type": "application/octet-stream"})
    put.raise_for_status()
    return digest


def push_image(registry: str, repo: str, tag: str, revision: str | None,
               version: str = "1.0.0", payload: str = "") -> str:
    """Push a tiny real image (one layer, labelled like `pipeline build` does); its digest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        body = (payload or uuid.uuid4().hex).encode()
        info = tarfile.TarInfo("app.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    layer_tar = buf.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    labels = {"org.opencontainers.image.version": version}
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": labels, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
    }).encode()
    config_digest = _upload(registry, repo, config)
    layer_digest = _upload(registry, repo, layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer), "digest": layer_digest}],
    }).encode()
    put = requests.put(f"http://{registry}/v2/{repo}/manifests/{tag}", data=manifest,
                       headers={"Content-Type": MANIFEST_V2}, timeout=10)
    put.raise_for_status()
    return put.headers["Docker-Content-Digest"]
