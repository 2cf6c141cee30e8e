"""dnsperf query files built from a cluster snapshot, deterministic for a given seed.

The mix, exact up to rounding and shuffled:

- 70% hits on Service names, ``<svc>.<ns>.svc.cluster.local``: A for any Service, and AAAA
  for a fifth of them, asked of dual-stack Services;
- 10% SRV for a named port, ``_<port>._tcp.<svc>.<ns>.svc.cluster.local``;
- 20% NXDOMAIN from the search path of a pod resolving an outside name with ``ndots:5``:
  ``<name>.<ns>.svc.cluster.local``, ``<name>.svc.cluster.local`` and ``<name>.cluster.local``.

Usage: ``python -m bench.queries --snapshot FILE --out FILE``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HIT_SHARE = 0.70
SRV_SHARE = 0.10
AAAA_SHARE_OF_HITS = 0.20
ZONE = "cluster.local"
OUTSIDE_NAMES = (
    "example.com",
    "www.google.com",
    "api.github.com",
    "s3.amazonaws.com",
    "registry-1.docker.io",
    "login.microsoftonline.com",
    "pypi.org",
    "sts.amazonaws.com",
)


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    namespace: str
    name: str
    dual_stack: bool
    tcp_ports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    qtype: str
    kind: str  # "hit", "srv" or "nxdomain"

    def line(self) -> str:
        return f"{self.name} {self.qtype}"


def load_snapshot(path: Path) -> dict[str, Any]:
    """A JSON ``List``, or the first YAML document of a file that is not JSON."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        return json.loads(text)
    import yaml  # noqa: PLC0415  (only YAML snapshots need it)

    return next(d for d in yaml.safe_load_all(text) if d)


def services_of(snapshot: dict[str, Any]) -> list[ServiceInfo]:
    services = []
    for item in snapshot.get("items", []):
        if item.get("kind") != "Service":
            continue
        meta, spec = item["metadata"], item.get("spec") or {}
        ports = tuple(
            p["name"].lower()
            for p in spec.get("ports") or []
            if p.get("name") and p.get("protocol", "TCP") == "TCP" and spec.get("type") != "ExternalName"
        )
        dual = sum(1 for ip in spec.get("clusterIPs") or [] if ":" in ip) > 0
        services.append(ServiceInfo(meta["namespace"], meta["name"], dual, ports))
    return services


def _service_name(svc: ServiceInfo, zone: str) -> str:
    return f"{svc.name}.{svc.namespace}.svc.{zone}"


def build(snapshot: dict[str, Any], count: int, seed: int = 1, zone: str = ZONE) -> list[Query]:
    """``count`` queries in the documented mix, shuffled."""
    rng = random.Random(seed)
    services = services_of(snapshot)
    if not services:
        raise ValueError("the snapshot holds no Services")
    dual = [s for s in services if s.dual_stack]
    with_ports = [s for s in services if s.tcp_ports]
    namespaces = sorted({s.namespace for s in services})
    hits = round(count * HIT_SHARE)
    srv = round(count * SRV_SHARE) if with_ports else 0
    aaaa = round(hits * AAAA_SHARE_OF_HITS) if dual else 0
    queries = [Query(_service_name(rng.choice(services), zone), "A", "hit") for _ in range(hits - aaaa)]
    queries += [Query(_service_name(rng.choice(dual), zone), "AAAA", "hit") for _ in range(aaaa)]
    for _ in range(srv):
        svc = rng.choice(with_ports)
        name = f"_{rng.choice(svc.tcp_ports)}._tcp.{_service_name(svc, zone)}"
        queries.append(Query(name, "SRV", "srv"))
    for _ in range(count - len(queries)):
        outside = rng.choice(OUTSIDE_NAMES)
        suffix = rng.choice((f"{rng.choice(namespaces)}.svc.{zone}", f"svc.{zone}", zone))
        queries.append(Query(f"{outside}.{suffix}", rng.choice(("A", "AAAA")), "nxdomain"))
    rng.shuffle(queries)
    return queries


def write(queries: list[Query], path: Path) -> Path:
    return write_lines([q.line() for q in queries], path)


def write_lines(lines: Sequence[str], path: Path) -> Path:
    """A dnsperf query file of ``lines`` (``name type`` each)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queries", description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", type=Path, required=True, help="cluster snapshot (JSON or YAML)")
    parser.add_argument("--out", type=Path, required=True, help="dnsperf query file to write")
    parser.add_argument("--count", type=int, default=100_000, help="queries (default: 100000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = parser.parse_args(argv)
    queries = build(load_snapshot(args.snapshot), args.count, args.seed)
    write(queries, args.out)
    print(f"{args.out}: {len(queries)} queries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
