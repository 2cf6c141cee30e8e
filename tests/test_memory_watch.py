"""kdns's warning before the OOM killer: its working set against its memory cgroup's limit, read from
the files the kernel keeps (a real cgroup made for the test, and laid-out copies for the v2 layout and
the hysteresis)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdns.ops.memory import CgroupFiles, MemoryWatch, own_cgroup
from tests.support.paths import EXAMPLE
from tests.support.polling import eventually
from tests.support.process import running

MIB = 1 << 20
WARNING = "of the container's limit"


def layout(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("proc", "where", "expected"),
    [
        # cgroup v2 inside a container: its own cgroup mounted as the root
        ("0::/\n", "", ("memory.max", "inactive_file")),
        # cgroup v2 on a host: the process's path below the root
        ("0::/kubepods/pod1/kdns\n", "kubepods/pod1/kdns", ("memory.max", "inactive_file")),
        # cgroup v1: the memory hierarchy, the process's path below it
        (
            "4:memory:/pod1/kdns\n3:cpu:/pod1\n",
            "memory/pod1/kdns",
            ("memory.limit_in_bytes", "total_inactive_file"),
        ),
    ],
)
def test_the_process_cgroup_is_found_in_either_layout(tmp_path, proc, where, expected):
    limit, inactive = expected
    directory = layout(tmp_path / "cgroup" / where, {limit: "1000\n", "memory.stat": ""})
    (tmp_path / "self-cgroup").write_text(proc)
    files = own_cgroup(tmp_path / "cgroup", tmp_path / "self-cgroup")
    assert files is not None
    assert (files.limit, files.inactive_file) == (directory / limit, inactive)


def test_no_memory_cgroup_is_no_watch(tmp_path):
    (tmp_path / "self-cgroup").write_text("3:cpu:/pod1\n")
    assert own_cgroup(tmp_path / "cgroup", tmp_path / "self-cgroup") is None


def v2_files(root: Path, *, limit: str, current: int, inactive: int) -> CgroupFiles:
    layout(
        root,
        {
            "memory.max": limit,
            "memory.current": str(current),
            "memory.stat": f"anon 1\ninactive_file {inactive}\nactive_file 5\n",
        },
    )
    return CgroupFiles(root / "memory.max", root / "memory.current", root / "memory.stat", "inactive_file")


def test_the_working_set_leaves_out_the_inactive_file_cache_and_no_limit_reads_none(tmp_path):
    assert v2_files(tmp_path, limit="1000\n", current=900, inactive=200).read() == (700, 1000)
    assert v2_files(tmp_path, limit="max\n", current=900, inactive=0).read() is None


def test_it_warns_once_until_the_working_set_has_fallen_back(tmp_path):
    def at(used: int) -> str | None:
        v2_files(tmp_path, limit=str(1000 * MIB), current=used * MIB, inactive=0)
        return watch.check()

    watch = MemoryWatch(v2_files(tmp_path, limit=str(1000 * MIB), current=0, inactive=0))
    assert at(790) is None
    warning = at(850)
    assert warning is not None and "working set 850 MiB is 85% of the container's limit 1000 MiB" in warning
    assert at(950) is None  # said once
    assert at(750) is None  # not yet below 70%
    assert at(850) is None
    assert at(600) is None  # fell back below 70%: the next crossing is said again
    assert at(810) is not None


# -- a real cgroup ----------------------------------------------------------------------------------------
@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A memory cgroup (v1 or v2, wherever the memory controller is) below this process's own."""
    files = own_cgroup()
    assert files is not None, "no memory cgroup to make one below"
    directory = files.limit.parent / f"kdns-test-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    try:
        yield directory
    finally:
        for _ in range(50):  # its processes have exited: the kernel lets it go once they are reaped
            try:
                directory.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def inside(directory: Path) -> tuple[str, ...]:
    """A launcher that moves kdns into ``directory``'s cgroup before it imports anything of its own."""
    procs = directory / "cgroup.procs"
    code = (
        f"import os, sys; open({str(procs)!r}, 'w').write(str(os.getpid())); "
        "from kdns.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return ("-c", code)


def set_limit(directory: Path, limit: int) -> None:
    name = "memory.max" if (directory / "memory.max").exists() else "memory.limit_in_bytes"
    (directory / name).write_text(str(limit))


@pytest.mark.slow
def test_kdns_warns_when_its_working_set_nears_its_cgroup_limit(cgroup):
    set_limit(cgroup, 2 << 30)
    with running("--snapshot", str(EXAMPLE), launcher=inside(cgroup)) as server:
        files = own_cgroup(proc_cgroup=Path(f"/proc/{server.process.pid}/cgroup"))
        assert files is not None and files.limit.parent == cgroup
        read = files.read()
        assert read is not None
        used = read[0]
    assert not any(WARNING in line for line in server.log)  # far below 2 GiB
    set_limit(cgroup, int(used / 0.9) // 4096 * 4096)  # the same kdns at about 90% of it
    with running("--snapshot", str(EXAMPLE), launcher=inside(cgroup)) as server:
        eventually(lambda: any(WARNING in line for line in server.log), timeout=15)
        line = next(line for line in server.log if WARNING in line)
        assert "raise the limit" in line
