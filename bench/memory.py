"""``python -m bench.memory --snapshot FILE``: where kdns's bytes go for a cluster, as JSON on stdout.

The snapshot is loaded into a zone as ``kdns serve --snapshot`` loads it, with ``tracemalloc`` counting
the Python allocations still held afterwards by the module that made them: the cluster state (the slim
objects), the zone (its index of names and records), the rest. Dividing by the objects held gives
bytes per Service, per endpoint and per name. (Resident memory is not read here: tracemalloc's own
records would count in it; ``bench.informer`` reads it from ``kdns serve``.)
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

AREAS = (
    ("kdns/cluster/", "cluster state"),
    ("kdns/zone/", "zone index"),
    ("kdns/sources/", "snapshot reader"),
)


def area_of(filename: str) -> str:
    for fragment, area in AREAS:
        if fragment in filename:
            return area
    return "other"


def breakdown(snapshot: Path) -> dict[str, object]:
    from kdns.app import build_zone  # noqa: PLC0415 (measured from an interpreter that has loaded nothing else)
    from kdns.cli import build_parser, config_from  # noqa: PLC0415

    parser = build_parser()
    config = config_from(parser.parse_args(["serve", "--snapshot", str(snapshot), "--no-forward"]), parser)
    gc.collect()
    tracemalloc.start()
    zone = build_zone(config)
    gc.collect()
    held = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by_area: Counter[str] = Counter()
    for stat in held.statistics("filename"):
        by_area[area_of(stat.traceback[0].filename)] += stat.size
    counts = zone.counts()
    state_bytes, zone_bytes = by_area["cluster state"], by_area["zone index"]
    return {
        "snapshot_mb": snapshot.stat().st_size / 2**20,
        "traced_mb": {area: size / 2**20 for area, size in by_area.most_common()},
        "counts": counts,
        "bytes_per": {
            "service_and_its_endpoints_in_state": state_bytes / max(1, counts["services"]),
            "endpoint_in_state": state_bytes / max(1, counts["endpoints"]),
            "name_in_index": zone_bytes / max(1, counts["names"]),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", type=Path, required=True, help="the cluster snapshot (JSON or YAML)")
    args = parser.parse_args(argv)
    json.dump(breakdown(args.snapshot), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
