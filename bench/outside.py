"""The outside world of the forwarding benchmarks (``bench.forwarded``, ``bench.soak``): the zones Knot
DNS serves as kdns's only upstream, and dnsperf lines asking them.

Knot serves ``OUTSIDE_ZONES`` (``example.com`` and ``example.org``, generated names with an A and an
AAAA each, TTL 3600), the targets of the cluster's ExternalName Services, and ``MISS_ZONE``, a wildcard
zone in which every new name is a cache miss.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

OUTSIDE_ZONES = ("example.com", "example.org")
MISS_ZONE = "misses.example"  # every name answered by a wildcard: each new name is a cache miss
TTL = 3600
WORDS = ("www", "api", "cdn", "img", "login", "static", "mail", "auth", "assets", "status")


def outside_names(per_zone: int) -> list[str]:
    """``per_zone`` names in each of ``OUTSIDE_ZONES``, e.g. ``api-3.example.com``."""
    return [
        f"{WORDS[i % len(WORDS)]}-{i // len(WORDS)}.{apex}" for apex in OUTSIDE_ZONES for i in range(per_zone)
    ]


def external_targets(snapshot: dict[str, Any]) -> list[str]:
    """The ExternalName targets of the cluster's Services (kdns follows them upstream)."""
    return sorted({
        item["spec"]["externalName"].rstrip(".").lower()
        for item in snapshot["items"]
        if item["kind"] == "Service" and item["spec"].get("type") == "ExternalName"
    })  # fmt: skip


def apex_of(name: str) -> str:
    return ".".join(name.split(".")[-2:])


def zone_text(apex: str, names: Sequence[str]) -> str:
    """A zone file: SOA, NS, and an A and an AAAA for each of ``names`` (``*`` for a wildcard)."""
    lines = [
        f"$ORIGIN {apex}.",
        f"$TTL {TTL}",
        f"@ SOA ns.{apex}. hostmaster.{apex}. 1 7200 1800 86400 {TTL}",
        "@ NS ns",
        "ns A 192.0.2.53",
    ]
    for i, name in enumerate(names):
        owner = name.removesuffix("." + apex) if name != "*" else "*"
        lines += [f"{owner} A 198.51.{i // 250}.{i % 250 + 1}", f"{owner} AAAA 2001:db8::{i + 1:x}"]
    return "\n".join(lines) + "\n"


def upstream_zones(names: list[str], targets: list[str]) -> dict[str, str]:
    """Apex -> zone-file text: the outside names, the ExternalName targets and the wildcard zone."""
    by_apex: dict[str, list[str]] = {}
    for name in [*names, *targets]:
        by_apex.setdefault(apex_of(name), []).append(name)
    zones = {apex: zone_text(apex, sorted(set(owners))) for apex, owners in sorted(by_apex.items())}
    zones[MISS_ZONE] = zone_text(MISS_ZONE, ["*"])
    return zones


def forwarded_queries(names: list[str], count: int, seed: int) -> list[str]:
    """``count`` dnsperf lines over ``names``: 80% A, 20% AAAA."""
    rng = random.Random(seed)
    return [f"{rng.choice(names)} {'AAAA' if rng.random() < 0.2 else 'A'}" for _ in range(count)]


def miss_queries(count: int, seed: int) -> list[str]:
    """``count`` distinct names under the wildcard zone, none of them asked before in this run."""
    return [f"q{i}-{seed}.{MISS_ZONE} A" for i in range(count)]
