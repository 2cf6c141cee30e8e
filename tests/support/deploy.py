"""The manifests in deploy/ and the Dockerfile, read as kubectl and Docker read them."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import ROOT

DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"

Manifest = dict[str, Any]


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest_files() -> list[Path]:
    """The plain manifests in deploy/ (not the kustomization), then those in deploy/optional/."""
    top = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    return top + sorted((DEPLOY / "optional").glob("*.yaml"))


@cache
def manifest_objects() -> tuple[Manifest, ...]:
    """Every object of the top-level manifests (what deploy/README.md applies), optional ones excluded."""
    return tuple(
        doc
        for path in sorted(DEPLOY.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_documents(path)
    )


def one(kind: str, name: str, docs: tuple[Manifest, ...] | list[Manifest] | None = None) -> Manifest:
    found = [
        d
        for d in (manifest_objects() if docs is None else docs)
        if d["kind"] == kind and d["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs: continuation lines joined, comment lines dropped (also inside a
    continued instruction, as Docker does)."""
    instructions: list[tuple[str, str]] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buffer):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, arguments = buffer.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued instruction"
    return instructions


@cache
def stages() -> tuple[tuple[tuple[str, str], ...], ...]:
    """The instructions of each build stage, each starting with its FROM (the ARGs before the first FROM
    are not in any)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return tuple(tuple(stage) for stage in result)
