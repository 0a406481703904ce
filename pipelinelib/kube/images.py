"""Pin a workload's images to the digests a build produced.

Manifests in an app's repository name their images without a digest
(``image: littleman-co/hello-web``); the build step knows the digest it pushed. The
rollout pins them just before validation, like ``kustomize edit set image`` or kbld:

    --image littleman-co/hello-web=127.0.0.1:5001/littleman-co/hello-web@sha256:…
    --image 127.0.0.1:5001/littleman-co/hello-web@sha256:…   (the key is its repository)
    --from-build reports/build                                (the build's summary.json)

A container matches a pin when its image's repository (registry, tag and digest aside)
equals the key, or its full name does. A pin that matches no container is bad input: a
typo would otherwise deploy the old image silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipelinelib import imageref
from pipelinelib.errors import BadInput
from pipelinelib.kube.manifests import Manifest, pod_spec

CONTAINER_GROUPS = ("initContainers", "containers")


def parse_pins(values: Iterable[str], source: str = "--image") -> dict[str, imageref.ImageRef]:
    """``NAME=REF@sha256:…`` or ``REF@sha256:…`` values as {name: pinned reference}."""
    pins: dict[str, imageref.ImageRef] = {}
    for value in values:
        key, _, ref_text = value.rpartition("=") if "=" in value else ("", "", value)
        ref = imageref.parse(ref_text, source=source)
        if not ref.digest:
            raise BadInput(f"{value!r} is not pinned by digest", source=source,
                           expected="NAME=REGISTRY/REPOSITORY@sha256:<64 hex> (the build's digest)")
        key = key or ref.repository
        if key in pins and pins[key] != ref:
            raise BadInput(f"{key} is pinned twice ({pins[key]} and {ref})", source=source,
                           expected="one digest per image")
        pins[key] = ref
    return pins


def pins_from_build(report_dir: str | Path) -> dict[str, imageref.ImageRef]:
    """The images ``report_dir/summary.json`` records as pushed (``REPO@sha256:…``; the
    validate step's tag names are not pins), keyed by repository."""
    path = Path(report_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text())
        pushed = [step["outputs"]["image"] for step in summary.get("steps", [])
                  if "@" in str((step.get("outputs") or {}).get("image") or "")]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadInput(f"cannot read the build's result: {exc}"[:200], source=str(path),
                       expected="the --report-dir of a finished `pipeline build`") from exc
    if not pushed:
        raise BadInput("no pushed image in the build's result", source=str(path),
                       field="steps[].outputs.image", expected="a build that pushed its image")
    return parse_pins(pushed, source=str(path))


def pins_from(from_build: str | Path | None, images: Iterable[str] = ()
              ) -> dict[str, imageref.ImageRef]:
    """The pins of ``--from-build`` (if given), overridden by each ``--image``."""
    pins = pins_from_build(from_build) if from_build else {}
    pins.update(parse_pins(images))
    return pins


def pin(manifests: list[Manifest], pins: Mapping[str, imageref.ImageRef]) -> list[str]:
    """Set every matching container's image to its pinned reference (in place).

    Returns one line per container changed; raises BadInput for a pin nothing matched.
    """
    todo, used = [], set()
    for m in manifests:
        spec = pod_spec(m.obj)
        if not isinstance(spec, dict):
            continue
        for group in CONTAINER_GROUPS:
            for container in spec.get(group) or []:
                image = (container or {}).get("image")
                key = _match(image, pins) if isinstance(image, str) else None
                if key is not None:
                    used.add(key)
                    if image != str(pins[key]):
                        todo.append((m, container, str(pins[key])))
    unused = sorted(set(pins) - used)
    if unused:
        raise BadInput(f"no container image matches {', '.join(unused)}", source="--image",
                       expected="the repository a container's image names, e.g. "
                       + _example(manifests))
    changed = []
    for m, container, pinned in todo:
        changed.append(f"{m.ref} {container.get('name', '?')}: {container['image']} -> {pinned}")
        container["image"] = pinned
    return changed

def _match(image: str, pins: Mapping[str, imageref.ImageRef]) -> str | None:
    try:
        ref = imageref.parse(image)
    except BadInput:
        return None  # the rollout's validation reports a malformed image with its field
    for key in (ref.repository, ref.name):
        if key in pins:
            return key
    return None


def _example(manifests: list[Manifest]) -> str:
    for m in manifests:
        for group in CONTAINER_GROUPS:
            for container in (pod_spec(m.obj) or {}).get(group) or []:
                image = (container or {}).get("image")
                if isinstance(image, str):
                    return image.split("@")[0]
    return "littleman-co/hello-web"

