"""CoreDNS beside kdns on one real kube-apiserver, every question asked of both (``make compare``).

A dual-stack control plane of its own; the hand-made cluster of tests/support/differential.py (every
kind of object and its edge cases), then a generated cluster (bench/cluster.py, ``--services``) loaded
through the API beside it. Both servers run kubeadm's Corefile, forwarding to one loopback upstream.

1. The hand-made names: every question of ``base_questions`` over UDP and TCP, without EDNS, with EDNS
   512, 1232 and 4096, and with DO.
2. The generated cluster's names: each with every type, over UDP without EDNS.
3. ``--changes`` updates and deletions through the API, one after another; after each, both servers
   are asked in a loop until they give the new answer: the time each took (p50, p90, max).
4. Once both converged, the hand-made and generated names asked again.

The report (differences by kind, a count and an example each; documented ones with their reason) and
the raw numbers go to ``--out`` (bench/out/compare/: report.txt, result.json).

Usage: ``python -m bench.compare [--services 1000] [--changes 20] [--out DIR]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import cluster
from bench.real_api import SERVICE_RANGES, api_objects, load
from tests.support.control_plane import control_plane
from tests.support.differential import (
    DATA,
    EDGE,
    EDNS,
    EDNS_DO,
    TYPES,
    Pair,
    Question,
    Report,
    ask,
    base_questions,
    build_cluster,
    compare_all,
    dumped_names,
    name_kind,
    servers,
    settled,
    variants,
)
from tests.support.real_objects import core_api, discovery_api

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "compare"
LOOP_TIMEOUT = 30.0  # the longest a change is waited for, per server


# -- the questions ----------------------------------------------------------------------------------------
def generated_questions(text: str, hand_made: set[str]) -> list[Question]:
    """Each name of the generated cluster (those not in ``hand_made``) with every type, over UDP."""
    return [
        Question(name, qtype, name_kind(name))
        for name in sorted(set(dumped_names(text)) - hand_made)
        for qtype in TYPES
    ]


# -- changes and how soon each server reflects them ------------------------------------------------------
@dataclasses.dataclass
class Change:
    what: str
    apply: Callable[[], None]
    question: Question
    done: Callable[[Any], bool]  # the reply (tests.support.differential.Reply) shows the change


def _answers(reply: Any) -> set[str]:
    return {rdata for _, _, rdata in reply.sections.get("answer", ())}


def changes(kubeconfig: Path, text: str, count: int) -> list[Change]:
    """``count`` changes: new Services, an endpoint moved in a hand-written slice, generated Services
    deleted, in turn."""
    api, discovery = core_api(kubeconfig), discovery_api(kubeconfig)
    generated = [
        name
        for name in sorted(dumped_names(text))
        if name_kind(name) == "service" and name.split(".")[1] not in (DATA, EDGE, "apps", "default")
    ]
    made: list[Change] = []
    for index in range(count):
        step = index % 3
        if step == 0:
            name = f"burst-{index}"
            question = Question(f"{name}.{EDGE}.svc.cluster.local.", "A", "service")

            def create(name: str = name) -> None:
                api.create_namespaced_service(
                    EDGE,
                    client.V1Service(
                        metadata=client.V1ObjectMeta(name=name),
                        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="http", port=80)]),
                    ),
                )

            made.append(Change(f"create {EDGE}/{name}", create, question, lambda r: r.rcode == "NOERROR"))
        elif step == 1:
            address = f"10.251.9.{index}"
            question = Question(f"store.{DATA}.svc.cluster.local.", "A", "service")

            def move(address: str = address) -> None:
                discovery.patch_namespaced_endpoint_slice(
                    "store-b",
                    DATA,
                    {"endpoints": [{"addresses": [address], "conditions": {"ready": True}}]},
                )

            made.append(
                Change(
                    f"store-b's endpoint to {address}", move, question, lambda r, a=address: a in _answers(r)
                )
            )
        else:
            target = generated.pop(0)
            service, namespace = target.split(".")[:2]
            question = Question(target, "A", "service")
            made.append(
                Change(
                    f"delete {namespace}/{service}",
                    lambda s=service, n=namespace: api.delete_namespaced_service(s, n),
                    question,
                    lambda r: r.rcode == "NXDOMAIN",
                )
            )
    return made


def time_to_answer(pair: Pair, change: Change) -> dict[str, float | None]:
    """Apply ``change``, then ask both servers in turn until each shows it: seconds each took."""
    ports = {"coredns": pair.coredns, "kdns": pair.kdns}
    seen: dict[str, float | None] = dict.fromkeys(ports)
    change.apply()
    started = time.monotonic()
    while time.monotonic() - started < LOOP_TIMEOUT and None in seen.values():
        for server, port in ports.items():
            if seen[server] is None and change.done(ask(port, change.question, timeout=1)):
                seen[server] = time.monotonic() - started
        time.sleep(0.002)
    return seen


def _percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {}
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p90_ms": round(values[int(0.9 * (len(values) - 1))] * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
    }


# -- the run ------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"services": args.services, "changes": args.changes}
    with tempfile.TemporaryDirectory(prefix="kdns-compare-") as work:
        directory = Path(work)
        ranges = (f"--service-cluster-ip-range={SERVICE_RANGES}",)
        with control_plane(directory / "control-plane", apiserver_args=ranges) as plane:
            build_cluster(plane.kubeconfig, dual_stack=True)
            hand_made = set(dumped_names(settled(plane.kubeconfig)))
            if args.services:
                snapshot = cluster.generate(args.services, seed=args.seed)
                result["load"] = load(plane.kubeconfig, api_objects(snapshot["items"]))
            with servers(plane.kubeconfig, directory) as pair:
                text = settled(plane.kubeconfig, pair)
                time.sleep(2)  # the generated cluster's last objects reach both servers
                text = settled(plane.kubeconfig, pair)
                hand = base_questions(
                    "\n".join(line for line in text.splitlines() if _hand_made(line, hand_made))
                )
                every = variants(hand, (*EDNS, *EDNS_DO))
                generated = generated_questions(text, hand_made)
                reports: dict[str, Report] = {}
                started = time.monotonic()
                reports["hand-made cluster, every transport and EDNS variant"] = compare_all(pair, every)
                reports["generated cluster, UDP without EDNS"] = compare_all(pair, generated)
                result["ask_s"] = round(time.monotonic() - started, 1)
                timings = [
                    (c.what, time_to_answer(pair, c)) for c in changes(plane.kubeconfig, text, args.changes)
                ]
                result["changes_seen"] = [{"change": what, **seen} for what, seen in timings]
                for server in ("coredns", "kdns"):
                    values = [seen[server] for _, seen in timings if seen[server] is not None]
                    result[f"{server}_time_to_new_answer"] = {
                        **_percentiles(values),
                        "missed": sum(seen[server] is None for _, seen in timings),
                    }
                after = settled(plane.kubeconfig, pair)
                time.sleep(2)
                reports["after the changes, hand-made and generated, UDP without EDNS"] = compare_all(
                    pair, [*hand, *generated_questions(after, hand_made)]
                )
    lines = [
        f"CoreDNS v1.15.0 beside kdns, kubeadm's Corefile, one kube-apiserver; "
        f"{args.services} generated Services"
    ]
    for title, report in reports.items():
        lines += ["", f"== {title}", *report.lines()]
    lines += ["", "== time to the new answer after each change (both asked in a loop)"]
    for server in ("coredns", "kdns"):
        lines.append(f"{server}: {result[f'{server}_time_to_new_answer']}")
    for row in result["changes_seen"]:
        lines.append(f"    {row['change']}: coredns {_ms(row['coredns'])}, kdns {_ms(row['kdns'])}")
    result["reports"] = {
        title: {"asked": r.asked, "differences": dict(r.counts), "unexplained": r.unexplained()}
        for title, r in reports.items()
    }
    (out / "report.txt").write_text("\n".join(lines) + "\n")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _hand_made(line: str, names: set[str]) -> bool:
    return not line or line.startswith((";", "$")) or line.split(maxsplit=1)[0].lower() in names


def _ms(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds * 1000:.0f} ms"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000, help="Services in the generated cluster")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--changes", type=int, default=20, help="updates and deletions applied")
    parser.add_argument("--out", type=Path, default=OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print((args.out / "report.txt").read_text())
    unexplained = sum(len(r["unexplained"]) for r in result["reports"].values())
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main())
