"""Which kdns is running: its version, its source revision and the Python that runs it, as
``coredns_build_info`` reports them."""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

REVISION_ENV = "KDNS_REVISION"  # set by an image build; else read from the checkout, if any
SOURCE = Path(__file__).resolve().parents[2]


def python() -> str:
    """The Python implementation and version, e.g. ``CPython 3.11.7`` (CoreDNS's ``goversion``)."""
    return f"{platform.python_implementation()} {platform.python_version()}"


@cache
def revision() -> str:
    """The commit kdns runs from: ``$KDNS_REVISION``, else the checkout's HEAD, else ``unknown``."""
    given = os.environ.get(REVISION_ENV, "").strip()
    if given:
        return given
    try:
        return _head(SOURCE / ".git") or "unknown"
    except (OSError, UnicodeDecodeError):
        return "unknown"


def _head(git: Path) -> str | None:
    """The commit HEAD names in the git directory ``git`` (a worktree's ``.git`` file followed)."""
    if git.is_file():  # a worktree: "gitdir: PATH"
        git = Path(git.read_text().partition("gitdir:")[2].strip())
    head = (git / "HEAD").read_text().strip()
    if not head.startswith("ref:"):
        return head
    ref = head.partition("ref:")[2].strip()
    common = git / "commondir"
    roots = [git, (git / common.read_text().strip()).resolve()] if common.is_file() else [git]
    for root in roots:
        if (root / ref).is_file():
            return (root / ref).read_text().strip()
        packed = root / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                commit, _, name = line.partition(" ")
                if name == ref:
                    return commit
    return None
