"""``python -m bench.fuzz``: pushes generated DNS packets through kdns's packet path and checks every reply.

``make fuzz`` (or ``.venv/bin/python -m bench.fuzz --packets 1000000 --jobs 2``) runs two fuzzers:

- the structure-aware generator of ``tests/support/generator.py`` (``make_query``): queries of any
  type, class, opcode and flags, EDNS with any version, size, options and DO bit, several questions,
  records in every section, compression pointers and reserved label types in the question, names at
  and past 255 octets and labels at and past 63, binary labels, counts that lie, truncated packets and
  trailing garbage;
- with ``--atheris-runs N`` (atheris installed), libFuzzer's coverage-guided mutation of raw bytes,
  seeded from ``tests/corpus/packets``, over instrumented kdns and dnslib code.

Each packet goes through ``Responder.respond`` over UDP and TCP for the two targets of
``tests/support/fuzz_targets.py`` (the example zone plus a large headless Service answered
authoritatively, and the same zone forwarding, with a forward cache, rotation and search paths), and
``check_packet`` of ``tests/support/oracle.py`` holds every reply to the RFC rules of ``verdict``: the
oracle the test suite applies too. ``--distill`` keeps a coverage-distilled set of the inputs seen in
``tests/corpus/packets`` (libFuzzer's merge), which ``tests/test_packet_corpus.py`` replays.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path

from tests.support.fuzz_targets import build_zone, make_targets, zone_names
from tests.support.generator import RandomChoices, Tally, fuzz, make_query
from tests.support.oracle import CORPUS, check_packet
from tests.support.paths import ROOT

OUT = ROOT / "bench" / "out" / "fuzz"


def _fuzz_job(args: tuple[int, int, float | None]) -> Tally:
    packets, seed, seconds = args
    return fuzz(packets, seed=seed, seconds=seconds)


def save(packet: bytes, directory: Path, prefix: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{prefix}{hashlib.sha1(packet).hexdigest()}"
    path.write_bytes(packet)
    return path


# -- atheris (libFuzzer) ------------------------------------------------------------------------------
def _libfuzzer(argv: list[str]) -> None:
    """Runs inside a child process: libFuzzer exits when done and on the first defect."""
    import atheris  # noqa: PLC0415 (only the fuzz target installs it)

    zone = build_zone()
    targets = make_targets(zone)
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith(("kdns.", "dnslib")):
            atheris.instrument_func(obj)

    def one_input(data: bytes) -> None:
        check_packet(targets, data)

    atheris.Setup([str(_relauncher()), *argv], one_input)
    atheris.Fuzz()


def _relauncher() -> Path:
    """An executable that starts this fuzz target again: libFuzzer's merge re-runs its own argv[0]."""
    path = OUT / "libfuzzer.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\ncd "{ROOT}" && exec "{sys.executable}" -m bench.fuzz --libfuzzer -- "$@"\n')
    path.chmod(0o755)
    return path


def run_atheris(
    runs: int, *, jobs: int = 1, max_len: int = 700, extra: Sequence[str] = ()
) -> tuple[int, float]:
    """``runs`` coverage-guided inputs per job; returns (inputs run, seconds) from libFuzzer's report."""
    work = OUT / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    (OUT / "artifacts").mkdir(parents=True, exist_ok=True)
    options = [
        f"-runs={runs}",
        f"-max_len={max_len}",
        f"-artifact_prefix={OUT / 'artifacts'}/",
        "-print_final_stats=1",
        *extra,
    ]
    commands = [
        [
            sys.executable,
            "-m",
            "bench.fuzz",
            "--libfuzzer",
            "--",
            *options,
            f"-seed={job + 1}",
            str(work),
            str(CORPUS),
        ]
        for job in range(jobs)
    ]
    started = time.perf_counter()
    processes = [subprocess.Popen(c, cwd=ROOT, stderr=subprocess.PIPE, text=True) for c in commands]
    total, failed = 0, False
    for process in processes:
        _, err = process.communicate(timeout=max(600, runs / 50))
        done = re.search(r"Done (\d+) runs in (\d+) second", err)
        total += int(done[1]) if done else 0
        if process.returncode:
            failed = True
            print(err[-4000:], file=sys.stderr)
    if failed:
        raise SystemExit("atheris found a defect; see the input in bench/out/fuzz/artifacts/")
    return total, time.perf_counter() - started


def distill(generated: int = 3000, seed: int = 7) -> int:
    """Merge what atheris found and ``generated`` structured packets into a minimal set covering the same
    kdns and dnslib code, written to tests/corpus/packets (files found by defects are kept)."""
    zone = build_zone()
    names = zone_names(zone)
    choices = RandomChoices(seed)
    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds"
        for _ in range(generated):
            save(make_query(choices, names), seeds)
        merged = Path(tmp) / "merged"
        merged.mkdir()
        sources = [d for d in (OUT / "corpus", CORPUS, seeds) if d.exists()]
        command = [
            sys.executable,
            "-m",
            "bench.fuzz",
            "--libfuzzer",
            "--",
            "-merge=1",
            "-max_len=700",
            str(merged),
        ]
        subprocess.run(
            [*command, *map(str, sources)], cwd=ROOT, check=True, timeout=1800, capture_output=True
        )
        kept = {p.name for p in CORPUS.glob("defect-*")} if CORPUS.exists() else set()
        for old in CORPUS.glob("*") if CORPUS.exists() else ():
            if old.name not in kept:
                old.unlink()
        for path in merged.iterdir():
            save(path.read_bytes(), CORPUS)
    return len(list(CORPUS.iterdir()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="structure-aware packets (all jobs)")
    parser.add_argument("--jobs", type=int, default=max(1, multiprocessing.cpu_count()), help="processes")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--seconds", type=float, default=None, help="stop each job after this long")
    parser.add_argument("--atheris-runs", type=int, default=0, help="coverage-guided raw inputs per job")
    parser.add_argument("--distill", action="store_true", help="rewrite tests/corpus/packets afterwards")
    parser.add_argument("--libfuzzer", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.libfuzzer:
        _libfuzzer([a for a in rest if a != "--"])
        return 0
    total, figures = Tally(), {"seed": args.seed, "jobs": args.jobs}
    if args.packets:
        share = -(-args.packets // args.jobs)
        jobs = [(share, args.seed + job, args.seconds) for job in range(args.jobs)]
        started = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for tally in pool.imap_unordered(_fuzz_job, jobs):
                total.add(tally)
        wall = time.perf_counter() - started
        print(
            f"structure-aware: {total.packets:,} packets in {wall:.1f} s "
            f"({total.packets / wall:,.0f} packets/s over {args.jobs} processes, seed {args.seed}); "
            f"each through 2 responders x UDP and TCP"
        )
        print("  verdicts: " + ", ".join(f"{k} {v:,}" for k, v in sorted(total.verdicts.items())))
        figures |= {"packets": total.packets, "seconds": wall, "verdicts": dict(total.verdicts)}
    raw = 0
    if args.atheris_runs:
        raw, seconds = run_atheris(args.atheris_runs, jobs=args.jobs)
        print(f"atheris: {raw:,} raw inputs in {seconds:.1f} s ({raw / seconds:,.0f}/s, coverage-guided)")
        figures |= {"atheris_inputs": raw, "atheris_seconds": seconds}
    if args.distill:
        print(f"distilled corpus: {distill()} files in {CORPUS.relative_to(ROOT)}")
    print(f"total: {total.packets + raw:,} packets, {len(total.defects)} defects")
    defects = []
    for packet, message in total.defects:
        path = save(packet, OUT / "defects")
        defects.append(f"{path.relative_to(ROOT)}: {message}")
        print(f"DEFECT {defects[-1]}")
    figures |= {"total": total.packets + raw, "defects": defects, "corpus": len(list(CORPUS.glob("*")))}
    readme = report_figures(figures, full=total.packets + raw >= 1_000_000)
    print(f"wrote {readme.relative_to(ROOT)}")
    return 1 if total.defects else 0


def report_figures(figures: dict, *, full: bool) -> Path:
    """The Fuzzing section of bench/README.md (bench/out/README.md for a run under a million)."""
    from bench import report  # noqa: PLC0415 (the libFuzzer children need none of the harness)
    from bench.run import machine  # noqa: PLC0415

    m, now = machine(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    names = {"rcode 1": "FORMERR", "rcode 4": "NOTIMP", "rcode 5": "REFUSED", "badvers": "BADVERS"}
    verdicts = ", ".join(
        f"{names.get(name, name)} {n:,}" for name, n in sorted(figures.get("verdicts", {}).items())
    )
    lines = [
        report.FUZZ_HEADING,
        "",
        f"Written by `python -m bench.fuzz` (`make fuzz`) on {now} ({m['cpu']}, {m['nproc']} CPUs), seed "
        f"{figures['seed']}, {figures['jobs']} processes. Every packet goes through an authoritative "
        "responder (the example cluster and a 140-endpoint headless Service) and a forwarding one (forward "
        "cache, rotation, search paths), over UDP and TCP, and is checked against the RFC rules of "
        "`verdict()`: no exception escapes, drops only where allowed, every reply parses with dnspython "
        "with the query's ID, error replies header-only, UDP replies within the client's size holding as "
        "many of the full reply's first records as fit, TC exactly when answer or authority records were "
        "cut, ANY one RRset, the fast path byte for byte the full parse.",
        "",
    ]
    if "packets" in figures:
        packets, seconds = figures["packets"], figures["seconds"]
        lines.append(
            f"- Structure-aware queries: {packets:,} in {seconds:.0f} s ({packets / seconds:,.0f}/s); "
            f"verdicts: {verdicts}."
        )
    if "atheris_inputs" in figures:
        raw, seconds = figures["atheris_inputs"], figures["atheris_seconds"]
        lines.append(
            f"- Coverage-guided raw bytes (atheris): {raw:,} in {seconds:.0f} s ({raw / seconds:,.0f}/s)."
        )
    found = "; ".join(figures["defects"]) or "none"
    lines += [
        f"- In all {figures['total']:,} packets; defects: {found}.",
        f"- The corpus replayed by `make test` (`tests/corpus/packets`): {figures['corpus']} files.",
        "",
    ]
    readme = ROOT / "bench" / ("README.md" if full else "out/README.md")
    report.write_section(readme, report.FUZZ_HEADING, "\n".join(lines))
    return readme


if __name__ == "__main__":
    sys.exit(main())
