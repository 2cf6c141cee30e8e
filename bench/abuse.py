"""``python -m bench.abuse``: kdns's UDP service while TCP clients abuse it, and under more queries than it
can answer.

kdns serves the 1000-Service cluster of ``bench.run`` on CPU 1; dnsperf and the abusive clients run on
CPU 0. Three scenes, each measured against a baseline in the same run:

1. **TCP abuse**: 1,000 idle TCP connections (the default ``--max-tcp-connections``), 100 slow-loris
   clients sending one byte a second, 20 clients that send thousands of queries and never read, each
   opened again as soon as kdns closes it. dnsperf's cluster mix measures UDP before and during; a
   TCP client asks one question every 100 ms throughout and counts the answers it gets.
2. **Random-name flood**: dnsperf sends names that exist nowhere (each an answer-cache miss that the
   resolver answers with NXDOMAIN) as fast as it can, while a second dnsperf asks the cluster mix at a
   fixed rate: the cluster mix's answers and latency during the flood, kdns's memory before and after.
3. **Forwarded flood**: a kdns whose only upstream is a loopback socket that never answers gets a
   flood of outside names: how quickly clients get REFUSED past ``--max-concurrent``, and memory.

Raw data go to bench/out/abuse/; the figures to the "Abuse and overload" section of bench/README.md
(``--quick``: bench/out/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode

from bench import cluster, queries, report
from bench.lib import dnsperf, harness, host, kdns, options, stats
from bench.lib.dnsperf import Load
from bench.lib.harness import say
from bench.lib.kdns import Kdns
from bench.lib.measure import measure
from bench.lib.processes import CLIENT_CPU, SERVER_CPU, cpu_set
from bench.lib.servers import HOST
from bench.lib.tables import codes, table
from kdns.transport.listen import bind

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "abuse"
SECTION = report.ABUSE_HEADING


# -- the abusive TCP clients ----------------------------------------------------------------------------
def query_frame(name: str, qid: int = 0) -> bytes:
    wire = dns.message.make_query(name, "A").to_wire()
    wire = qid.to_bytes(2, "big") + wire[2:]
    return len(wire).to_bytes(2, "big") + wire


@dataclass
class Abusers(harness.Background):
    """Idle, slow-loris and never-reading TCP clients of one server, each reopened when closed, on a
    thread of their own until ``stop``."""

    port: int
    idle: int
    slow: int
    greedy: int
    name: str
    stop_at: float
    opened: dict[str, int] = field(default_factory=lambda: {"idle": 0, "slow": 0, "greedy": 0})
    closed: dict[str, int] = field(default_factory=lambda: {"idle": 0, "slow": 0, "greedy": 0})
    held: dict[str, int] = field(default_factory=dict)
    refused: int = 0

    def __post_init__(self) -> None:
        harness.Background.__init__(self, "abusers")

    def _connect(self, kind: str) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if kind == "greedy":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        try:
            sock.connect((HOST, self.port))
        except OSError:
            sock.close()
            self.refused += 1
            return None
        sock.setblocking(False)
        self.opened[kind] += 1
        return sock

    def _run(self) -> None:
        frame = query_frame(self.name)
        pipeline = frame * 5000
        socks: dict[str, list[socket.socket]] = {"idle": [], "slow": [], "greedy": []}
        wanted = {"idle": self.idle, "slow": self.slow, "greedy": self.greedy}
        sent_bytes: dict[socket.socket, int] = {}
        try:
            while not self._stop.is_set() and time.monotonic() < self.stop_at:
                for kind, group in socks.items():
                    for sock in list(group):
                        if _closed(sock):
                            group.remove(sock)
                            sent_bytes.pop(sock, None)
                            sock.close()
                            self.closed[kind] += 1
                    while len(group) < wanted[kind] and not self._stop.is_set():
                        sock = self._connect(kind)
                        if sock is None:
                            break
                        group.append(sock)
                for sock in socks["slow"]:  # one byte a second, the query never complete
                    at = sent_bytes.get(sock, 0)
                    with contextlib.suppress(OSError):
                        sent_bytes[sock] = at + sock.send(frame[at % len(frame) : at % len(frame) + 1])
                for sock in socks["greedy"]:  # thousands of queries, once; answers never read
                    if sock not in sent_bytes:
                        with contextlib.suppress(OSError):
                            sent_bytes[sock] = sock.send(pipeline)
                self.held = {kind: len(group) for kind, group in socks.items()}
                self._stop.wait(1.0)
        finally:
            for group in socks.values():
                for sock in group:
                    sock.close()


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed or reset ``sock`` (its pending answers are read and dropped)."""
    try:
        while True:
            if not sock.recv(1 << 20):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


@dataclass
class TcpProbe(harness.Background):
    """One TCP question every ``interval`` seconds on a new connection; answers and failures counted."""

    port: int
    name: str
    interval: float = 0.1
    answered: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        harness.Background.__init__(self, "tcp-probe")

    def _run(self) -> None:
        query = dns.message.make_query(self.name, "A")
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            try:
                reply = dns.query.tcp(query, HOST, port=self.port, timeout=2)
                outcome = "answered" if reply.rcode() == dns.rcode.NOERROR and reply.answer else "wrong"
            except (OSError, EOFError, dns.exception.DNSException) as exc:  # EOFError: closed unanswered
                outcome = type(exc).__name__
            if outcome == "answered":
                self.answered += 1
                self.latencies.append(time.monotonic() - started)
            else:
                self.failed += 1
                self.failures[outcome] += 1


# -- a black-hole upstream ------------------------------------------------------------------------------
@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A UDP and TCP port on 127.0.0.1 that takes queries and never answers."""
    port, [(udp, tcp)] = bind((HOST,), 0)  # kdns's own: one port free for both UDP and TCP
    tcp.listen(64)
    stop = threading.Event()

    def drain() -> None:
        udp.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                udp.recv(65535)

    thread = threading.Thread(target=drain, name="black-hole", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        udp.close()
        tcp.close()


# -- measuring ------------------------------------------------------------------------------------------
def start(snapshot: Path, log: Path, *extra: str, upstream: str | None = None) -> Kdns:
    server = kdns.start(snapshot=snapshot, log=log, cpus=SERVER_CPU, upstream=upstream, extra=extra)
    server.pin(SERVER_CPU)
    return server


def measured(server: Kdns, load: Load, output: Path) -> dict[str, Any]:
    return measure(server, load, output) | {"rss_mb": server.rss_mb()}


def service_name(cluster_queries: Path) -> str:
    """A Service name the query file asks for with type A (an answer with addresses)."""
    for line in cluster_queries.read_text(encoding="utf-8").splitlines():
        name, qtype = line.split()[:2]
        if qtype == "A" and name.endswith(".svc.cluster.local") and not name.startswith("_"):
            return name
    raise ValueError(f"{cluster_queries} asks for no Service's A records")


def tcp_abuse(args: argparse.Namespace, snapshot: Path, cluster_queries: Path, out: Path) -> dict[str, Any]:
    load = Load(cluster_queries, args.clients, args.outstanding, args.seconds, CLIENT_CPU)
    server = start(snapshot, out / "kdns-tcp.log", "--tcp-idle-timeout", "10")
    try:
        dnsperf.run(load, server.port, out / "dnsperf-tcp-warmup.txt", once=True, timeout=120)
        before = [measured(server, load, out / f"dnsperf-tcp-before-{i}.txt") for i in range(args.repeats)]
        rss_before = server.rss_mb()
        limit = time.monotonic() + args.seconds * args.repeats * 3 + 120
        name = service_name(cluster_queries)
        abusers = Abusers(server.port, args.idle, args.slow, args.greedy, name, limit).start()
        probe = TcpProbe(server.port, name)
        try:
            time.sleep(args.settle)  # the connections are opened and the pipelines sent
            probe.start()
            held_at_start = dict(abusers.held)
            during = [
                measured(server, load, out / f"dnsperf-tcp-during-{i}.txt") for i in range(args.repeats)
            ]
            held_at_end = dict(abusers.held)
            rss_during = server.rss_mb()
        finally:
            probe.stop()
            abusers.stop()
        time.sleep(1)
        after = [measured(server, load, out / f"dnsperf-tcp-after-{i}.txt") for i in range(args.repeats)]
    finally:
        server.stop()
    qps_before, qps_during = stats.median_of(before, "qps"), stats.median_of(during, "qps")
    return {
        "load": load.flags(),
        "abusers": {"idle": args.idle, "slow": args.slow, "greedy": args.greedy},
        "held_at_start": held_at_start,
        "held_at_end": held_at_end,
        "opened": abusers.opened,
        "closed_by_kdns": abusers.closed,
        "refused_connects": abusers.refused,
        "qps_before": qps_before,
        "qps_during": qps_during,
        "qps_after": stats.median_of(after, "qps"),
        "ratio": stats.ratio(qps_during, qps_before),
        "cpu_us_before": stats.median_of(before, "cpu_us_per_query"),
        "cpu_us_during": stats.median_of(during, "cpu_us_per_query"),
        "lost_during": sum(r["lost"] for r in during),
        "sent_during": sum(r["sent"] for r in during),
        "rss_before_mb": rss_before,
        "rss_during_mb": rss_during,
        "probe": {
            "answered": probe.answered,
            "failed": probe.failed,
            "failures": dict(probe.failures),
            "p50_ms": stats.median(probe.latencies) * 1e3 if probe.latencies else float("nan"),
            "max_ms": max(probe.latencies) * 1e3 if probe.latencies else float("nan"),
        },
    }


def random_names(count: int, seed: int) -> list[str]:
    """Names under a namespace's search path that exist nowhere: every one a cache miss."""
    rng = random.Random(seed)
    return [
        f"{rng.getrandbits(48):012x}.example.ns-{rng.randrange(50)}.svc.cluster.local A" for _ in range(count)
    ]


def random_flood(
    args: argparse.Namespace, snapshot: Path, cluster_queries: Path, out: Path
) -> dict[str, Any]:
    flood_file = queries.write_lines(random_names(args.flood_names, args.seed), out / "random-names.txt")
    steady = Load(cluster_queries, 2, 20, args.seconds, CLIENT_CPU, rate=args.steady_rate)
    flood = Load(flood_file, args.clients, args.flood_outstanding, args.seconds, CLIENT_CPU)
    server = start(snapshot, out / "kdns-flood.log")
    try:
        dnsperf.run(
            replace(steady, rate=None), server.port, out / "dnsperf-flood-warmup.txt", once=True, timeout=120
        )
        alone = dnsperf.parse(dnsperf.run(steady, server.port, out / "dnsperf-steady-alone.txt").text)
        rss_before = server.rss_mb()
        cpu_before = server.cpu_times()
        steady_out, flood_out = harness.concurrently(
            (steady, server.port, out / "dnsperf-steady-during.txt", ()),
            (flood, server.port, out / "dnsperf-flood.txt", ()),
        )
        cpu_after = server.cpu_times()
        rss_after_flood = server.rss_mb()
        flood2 = dnsperf.parse(dnsperf.run(flood, server.port, out / "dnsperf-flood-2.txt").text)
        rss_after_second = server.rss_mb()
        recovered = dnsperf.parse(dnsperf.run(steady, server.port, out / "dnsperf-steady-after.txt").text)
    finally:
        server.stop()
    during, flooded = dnsperf.parse(steady_out.text), dnsperf.parse(flood_out.text)
    cpu = sum(cpu_after) - sum(cpu_before)
    return {
        "steady": steady.flags(),
        "flood": flood.flags(),
        "flood_names": args.flood_names,
        "steady_alone": alone.brief(),
        "steady_during": during.brief(),
        "steady_after": recovered.brief(),
        "flood_answered": flooded.brief(),
        "second_flood": flood2.brief(),
        "server_busy": cpu / max(steady_out.wall, flood_out.wall),
        "rss_before_mb": rss_before,
        "rss_after_flood_mb": rss_after_flood,
        "rss_after_second_flood_mb": rss_after_second,
    }


def forwarded_flood(
    args: argparse.Namespace, snapshot: Path, cluster_queries: Path, out: Path
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    lines = [f"{rng.getrandbits(48):012x}.example.net A" for _ in range(args.flood_names)]
    names = queries.write_lines(lines, out / "outside-names.txt")
    flood = Load(names, args.clients, args.forward_outstanding, args.seconds, CLIENT_CPU)
    with black_hole() as port:
        server = start(
            snapshot, out / "kdns-forward.log", "--max-concurrent", str(args.max_concurrent),
            "--forward-timeout", "2", upstream=f"{HOST}:{port}",
        )  # fmt: skip
        try:
            rss_before = server.rss_mb()
            result = measured(server, flood, out / "dnsperf-forwarded-flood.txt")
            rss_after = server.rss_mb()
            time.sleep(3)  # the queries in flight time out
            rss_settled = server.rss_mb()
            question = dns.message.make_query(service_name(cluster_queries), "A")
            probe = dns.query.udp(question, HOST, port=server.port, timeout=2)
        finally:
            server.stop()
    return {
        "load": flood.flags(),
        "max_concurrent": args.max_concurrent,
        "qps": result["qps"],
        "completed": result["completed"],
        "lost": result["lost"],
        "rcodes": result["rcodes"],
        "avg_latency_ms": result["avg_latency"] * 1e3,
        "cpu_us_per_query": result["cpu_us_per_query"],
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_settled_mb": rss_settled,
        "cluster_answer_after": dns.rcode.to_text(probe.rcode()),
    }


# -- report ---------------------------------------------------------------------------------------------
def render(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        SECTION,
        "",
        f"Written by `python -m bench.abuse` on {result['date']} ({machine['cpu']}, {machine['nproc']} "
        f"CPUs): kdns on CPU {SERVER_CPU}, dnsperf and the abusive clients on CPU {CLIENT_CPU}, the "
        f"{result['services']:,}-Service cluster of `bench.run`.",
        "",
        *_tcp_lines(result["tcp"], result["repeats"]),
        *_flood_lines(result["random_flood"]),
        *_forwarded_lines(result["forwarded_flood"], result["random_flood"]["flood_names"]),
    ]
    return "\n".join(lines)


def _tcp_lines(tcp: dict[str, Any], repeats: int) -> list[str]:
    abusers, probe = tcp["abusers"], tcp["probe"]
    return [
        "### TCP abuse",
        "",
        f"{abusers['idle']:,} idle TCP connections, {abusers['slow']} slow-loris clients (one byte a second) "
        f"and {abusers['greedy']} clients that send thousands of queries and never read, each reopened as "
        "soon as kdns closes it (`--tcp-idle-timeout 10`, `--max-tcp-connections 1000`). UDP measured "
        f"with `dnsperf {tcp['load']}`, medians of {repeats} runs.",
        "",
        *table(
            ["", "UDP QPS", "CPU us/query", "RSS MB"],
            [
                [
                    "Before",
                    f"{tcp['qps_before']:,.0f}",
                    f"{tcp['cpu_us_before']:.2f}",
                    f"{tcp['rss_before_mb']:.1f}",
                ],
                [
                    "During",
                    f"{tcp['qps_during']:,.0f}",
                    f"{tcp['cpu_us_during']:.2f}",
                    f"{tcp['rss_during_mb']:.1f}",
                ],
                ["After", f"{tcp['qps_after']:,.0f}", "", ""],
            ],
        ),
        "",
        f"- UDP during abuse: {tcp['ratio']:.2f} of before; {tcp['lost_during']:,} of "
        f"{tcp['sent_during']:,} queries lost.",
        f"- Connections held when the measurement started: {_held(tcp['held_at_start'])}; when it "
        f"ended: {_held(tcp['held_at_end'])}.",
        f"- Closed by kdns over the scene (idle timeout, or to admit another at the limit): "
        f"{_held(tcp['closed_by_kdns'])}, of {_held(tcp['opened'])} opened; connects that failed: "
        f"{tcp['refused_connects']}.",
        f"- A TCP client asking every 100 ms while the dnsperf runs: {probe['answered']} answered, "
        f"{probe['failed']} failed ({codes(probe['failures'])}); latency p50 {probe['p50_ms']:.2f} ms, "
        f"max {probe['max_ms']:.1f} ms.",
        "",
    ]


def _flood_lines(flood: dict[str, Any]) -> list[str]:
    return [
        "### Random-name flood",
        "",
        f"dnsperf sends {flood['flood_names']:,} names that exist nowhere "
        "(`<random>.example.<ns>.svc.cluster.local`, each a miss answered NXDOMAIN by the resolver) with "
        f"`{flood['flood']}`, while a second dnsperf asks the cluster mix at `{flood['steady']}`.",
        "",
        *table(
            ["", "QPS", "Lost", "Avg latency (ms)"],
            [
                _row("Cluster mix alone", flood["steady_alone"]),
                _row("Cluster mix during the flood", flood["steady_during"]),
                _row("The flood (answered)", flood["flood_answered"]),
                _row("Cluster mix after", flood["steady_after"]),
            ],
        ),
        "",
        f"- kdns CPU busy during the flood: {flood['server_busy']:.0%}. RSS: "
        f"{flood['rss_before_mb']:.1f} MB before, {flood['rss_after_flood_mb']:.1f} MB after the flood, "
        f"{flood['rss_after_second_flood_mb']:.1f} MB after a second one (the answer cache is bounded, "
        "and the answers still asked for stay in it).",
        "",
    ]


def _forwarded_lines(fwd: dict[str, Any], names: int) -> list[str]:
    return [
        "### Forwarded flood",
        "",
        f"kdns's only upstream is a loopback port that never answers; dnsperf sends {names:,} outside "
        f"names with `{fwd['load']}`, `--max-concurrent {fwd['max_concurrent']}`, `--forward-timeout 2`.",
        "",
        f"- Answered {fwd['qps']:,.0f} QPS ({fwd['completed']:,} answers, {fwd['lost']:,} lost), "
        f"response codes {codes(fwd['rcodes'])}; average latency {fwd['avg_latency_ms']:.2f} ms; "
        f"{fwd['cpu_us_per_query']:.1f} us of kdns CPU per answer.",
        f"- RSS {fwd['rss_before_mb']:.1f} MB before, {fwd['rss_after_mb']:.1f} MB after, "
        f"{fwd['rss_settled_mb']:.1f} MB once the queries in flight timed out; a cluster name right "
        f"after: {fwd['cluster_answer_after']}.",
        "",
    ]


def _held(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in counts.items())


def _row(label: str, run: dict[str, Any]) -> list[str]:
    return [
        label,
        f"{run['qps']:,.0f}",
        f"{run['lost']:,} of {run['sent']:,}",
        f"{run['avg_latency_ms']:.3f}",
    ]


# -- command line ---------------------------------------------------------------------------------------
def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    snapshot = cluster.generate(args.services, seed=args.seed)
    snapshot_path, query_path = out / "cluster.json", out / "queries.txt"
    cluster.write(snapshot, snapshot_path)
    queries.write(queries.build(snapshot, args.queries, seed=args.seed), query_path)
    machine = host.machine()
    os.sched_setaffinity(0, cpu_set(CLIENT_CPU))  # the abusive clients share dnsperf's CPU
    say("-- TCP abuse")
    tcp = tcp_abuse(args, snapshot_path, query_path, out)
    say(f"UDP {tcp['qps_before']:,.0f} qps before, {tcp['qps_during']:,.0f} during ({tcp['ratio']:.2f})")
    say("-- random-name flood")
    flood = random_flood(args, snapshot_path, query_path, out)
    say(f"cluster mix during the flood: {flood['steady_during']['qps']:,.0f} qps")
    say("-- forwarded flood")
    fwd = forwarded_flood(args, snapshot_path, query_path, out)
    say(f"forwarded flood: {fwd['qps']:,.0f} qps answered, {fwd['rcodes']}")
    return {
        "date": host.date(),
        "machine": machine,
        "services": args.services,
        "repeats": args.repeats,
        "tcp": tcp,
        "random_flood": flood,
        "forwarded_flood": fwd,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.Parser("bench.abuse", __doc__, quick="2-second runs, once; writes bench/out/ only")
    parser.cluster(queries="queries in the cluster mix", seed="cluster and names")
    parser.runs(seconds=(5, 2), repeats="runs before and during")
    parser.dnsperf()
    parser.add_argument("--idle", type=int, default=900, help="idle TCP connections (default: 900)")
    parser.add_argument("--slow", type=int, default=80, help="slow-loris clients (default: 80)")
    parser.add_argument("--greedy", type=int, default=20, help="clients that never read (default: 20)")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds to open the connections (default: 3)"
    )
    parser.add_argument("--flood-names", type=int, default=300_000, help="random names (default: 300000)")
    parser.add_argument(
        "--steady-rate", type=int, default=20_000, help="cluster mix QPS in the flood (default: 20000)"
    )
    parser.add_argument(
        "--max-concurrent", type=int, default=100, help="kdns --max-concurrent (default: 100)"
    )
    parser.add_argument(
        "--flood-outstanding",
        type=int,
        default=500,
        help="dnsperf -q of the random-name flood (default: 500)",
    )
    parser.add_argument(
        "--forward-outstanding",
        type=int,
        default=2000,
        help="dnsperf -q of the forwarded flood (default: 2000)",
    )
    args = parser.parse(argv)
    if args.quick:
        args.flood_names = min(args.flood_names, 100_000)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    limit = int(600 + 20 * args.seconds * args.repeats)
    result = harness.run_exclusively(OUT, limit, lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick)
    report.write_section(readme, SECTION, render(result))
    say(f"wrote {readme} and {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
