"""Render deploy/ kustomizations in Python, for the subset of kustomize they use.

No kustomize binary is assumed on CI machines, yet the tests must check what `kubectl apply -k`
would apply (the generated ConfigMap, its hashed name in the Deployment, the overlay's image).
Any kustomization field outside that subset is refused, so the renderer cannot silently differ;
where kubectl is installed, tests/test_deploy.py compares this render with `kubectl kustomize`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Doc", "load_yaml", "pod_spec", "render"]

Doc = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images"}
CLUSTER_SCOPED = {"Namespace"}


def load_yaml(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def pod_spec(doc: Doc) -> Doc | None:
    """The pod spec of a workload, or None for other kinds."""
    spec: Doc | None = doc.get("spec", {}).get("template", {}).get("spec")
    return spec


def render(folder: Path) -> list[Doc]:
    """The documents `kubectl kustomize folder` produces (up to the generated-name hash)."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{folder}: kustomization fields this renderer lacks: {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        docs += render(path) if path.is_dir() else load_yaml(path)
    renames: dict[str, str] = {}
    for generator in spec.get("configMapGenerator", []):
        if set(generator) - {"name", "files"}:
            raise ValueError(f"{folder}: configMapGenerator fields beyond name and files")
        data = {Path(f).name: (folder / f).read_text() for f in generator["files"]}
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
        renames[generator["name"]] = name = f"{generator['name']}-{digest}"
        docs.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        )
    for doc in docs:
        if spec.get("namespace") and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = spec["namespace"]
        pod = pod_spec(doc)
        if pod is not None:
            _rename_config_maps(pod, renames)
            _set_images(pod, spec.get("images", []))
    return docs


def _rename_config_maps(pod: Doc, renames: dict[str, str]) -> None:
    for volume in pod.get("volumes", []):
        ref = volume.get("configMap")
        if ref is not None:
            ref["name"] = renames.get(ref["name"], ref["name"])
    for container in pod["containers"]:
        refs = [e["configMapRef"] for e in container.get("envFrom", []) if "configMapRef" in e]
        refs += [
            e["valueFrom"]["configMapKeyRef"]
            for e in container.get("env", [])
            if "configMapKeyRef" in e.get("valueFrom", {})
        ]
        for ref in refs:
            ref["name"] = renames.get(ref["name"], ref["name"])


def _set_images(pod: Doc, images: list[Doc]) -> None:
    for container in pod["containers"]:
        name, _, tag = container["image"].partition(":")
        for image in images:
            if image["name"] == name:
                new_tag = image.get("newTag", tag)
                container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")
