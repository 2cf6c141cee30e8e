"""A warning before the kernel's OOM killer: kdns's memory against its cgroup's limit.

kdns reads its container's memory cgroup (v2: ``memory.max``, ``memory.current``; v1:
``memory.limit_in_bytes``, ``memory.usage_in_bytes``) and counts the working set as kubelet does,
usage less the inactive file cache (``memory.stat``), since the kernel reclaims that cache before it
kills. Past ``WARN_SHARE`` of the limit it logs one warning with both figures; it warns again only
after the working set has fallen below ``CLEAR_SHARE`` and risen past it once more. All replicas
relist together after the API server restarts or answers 410 Gone, and a relist's peak must fit:
deploy/README.md gives the sizes measured.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
WARN_SHARE = 0.8  # of the limit: warn past it
CLEAR_SHARE = 0.7  # ... and again only once the working set fell below this
CHECK_EVERY = 10.0  # seconds
NO_LIMIT = 1 << 60  # cgroup v1 writes about 2**63 for "no limit"; v2 writes "max"
MIB = 1 << 20


@dataclass(frozen=True)
class CgroupFiles:
    """Where one memory cgroup keeps its limit, usage and statistics, and the statistic that counts
    the inactive file cache there."""

    limit: Path
    usage: Path
    stat: Path
    inactive_file: str

    def read(self) -> tuple[int, int] | None:
        """(working set, limit) in bytes; ``None`` when there is no limit or the files cannot be read."""
        try:
            limit_text = self.limit.read_text().strip()
            if limit_text == "max" or int(limit_text) >= NO_LIMIT:
                return None
            usage = int(self.usage.read_text())
            inactive = 0
            for line in self.stat.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == self.inactive_file:
                    inactive = int(value)
                    break
        except (OSError, ValueError):
            return None
        return max(0, usage - inactive), int(limit_text)


def own_cgroup(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> CgroupFiles | None:
    """This process's memory cgroup: v2 (``0::PATH``) or v1 (``N:memory:PATH``), looked for at its path
    under ``root`` and, inside a container whose cgroup is mounted as the root, at ``root`` itself."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":
            candidates = [root / relative, root]
            names = ("memory.max", "memory.current", "memory.stat", "inactive_file")
        elif "memory" in controllers.split(","):
            candidates = [root / "memory" / relative, root / "memory"]
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat", "total_inactive_file")
        else:
            continue
        for directory in candidates:
            if (directory / names[0]).exists():
                limit, usage, stat, inactive = names
                return CgroupFiles(directory / limit, directory / usage, directory / stat, inactive)
    return None


class MemoryWatch:
    """Says once when the working set passes ``WARN_SHARE`` of the limit (``check``, every
    ``CHECK_EVERY`` seconds in ``run``)."""

    def __init__(self, files: CgroupFiles) -> None:
        self.files = files
        self.warned = False

    def check(self) -> str | None:
        """The warning to log now, if any."""
        read = self.files.read()
        if read is None:
            return None
        used, limit = read
        if self.warned:
            self.warned = used >= CLEAR_SHARE * limit
            return None
        if used < WARN_SHARE * limit:
            return None
        self.warned = True
        return (
            f"memory: working set {used / MIB:.0f} MiB is {used / limit:.0%} of the container's limit "
            f"{limit / MIB:.0f} MiB: a relist of every resource (after the API server restarts or "
            "answers 410 Gone) may pass it and have kdns killed; raise the limit (deploy/README.md, "
            "Sizing)"
        )

    async def run(self) -> None:
        while True:
            warning = self.check()
            if warning is not None:
                log.warning("%s", warning)
            await asyncio.sleep(CHECK_EVERY)


def watch_memory() -> MemoryWatch | None:
    """A watch on this process's memory cgroup, or ``None`` when it has no limit kdns can read."""
    files = own_cgroup()
    if files is None or files.read() is None:
        return None
    return MemoryWatch(files)
