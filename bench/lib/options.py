"""The command line of a benchmark command: ``--quick`` and the options the commands share, each with
one wording and one default."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


class Parser(argparse.ArgumentParser):
    """The parser of ``python -m bench.NAME``, described by the first paragraph of its docstring.

    An option added with ``quick_default`` takes its ``full`` default, or its ``quick`` one under
    ``--quick``, when it is not given."""

    def __init__(self, module: str, doc: str | None, *, quick: str) -> None:
        super().__init__(prog=f"python -m {module}", description=(doc or "").split("\n\n")[0])
        self._quick_defaults: dict[str, tuple[Any, Any]] = {}
        self._following = False
        self.add_argument("--quick", action="store_true", help=quick)

    def quick_default(self, flag: str, *, full: float, quick: float, help: str, kind: type = float) -> None:
        self._quick_defaults[flag.removeprefix("--").replace("-", "_")] = (full, quick)
        self.add_argument(flag, type=kind, help=f"{help} (default: {full:g}; quick: {quick:g})")

    def cluster(
        self, *, queries: str | None = "queries in the file", seed: str = "cluster and queries"
    ) -> None:
        """``--services``, ``--queries`` (unless ``queries`` is None; its help) and ``--seed``."""
        self.add_argument(
            "--services", type=int, default=1000, help="Services in the cluster (default: 1000)"
        )
        if queries is not None:
            self.add_argument("--queries", type=int, default=100_000, help=f"{queries} (default: 100000)")
        self.add_argument("--seed", type=int, default=1, help=f"seed of {seed} (default: 1)")

    def runs(self, *, seconds: tuple[float, float], repeats: str | None) -> None:
        """``--seconds`` of each dnsperf run and ``--repeats`` (its help, unless None), full and quick."""
        full, quick = seconds
        self.quick_default("--seconds", full=full, quick=quick, help="length of each dnsperf run")
        if repeats is not None:
            self.quick_default("--repeats", full=3, quick=1, help=repeats, kind=int)

    def dnsperf(self) -> None:
        """``--clients`` and ``--outstanding``: dnsperf's ``-c`` and ``-q``."""
        self.add_argument("--clients", type=int, default=8, help="dnsperf -c (default: 8)")
        self.add_argument("--outstanding", type=int, default=100, help="dnsperf -q (default: 100)")

    def following(self, *, updates: str, gap: float) -> None:
        """The options of kdns following a generated cluster through the API: ``--services``,
        ``--endpoints-per-service``, ``--updates`` (what is updated: ``updates``), ``--gap`` between
        them, ``--baseline``, ``--timeout`` and ``--seed``; checked by ``parse``."""
        self.quick_default("--services", full=10_000, quick=1000, help="Services in the cluster", kind=int)
        self.add_argument(
            "--endpoints-per-service",
            type=int,
            default=11,
            help="endpoints of each ClusterIP Service (default: 11)",
        )
        self.quick_default("--updates", full=200, quick=30, help=f"{updates} timed", kind=int)
        self.add_argument(
            "--gap", type=float, default=gap, help=f"seconds between updates (default: {gap:g})"
        )
        self.quick_default("--baseline", full=3, quick=1, help="seconds of queries before the relist")
        self.add_argument(
            "--timeout", type=float, default=600.0, help="longest wait for a sync (default: 600)"
        )
        self.add_argument("--seed", type=int, default=1, help="seed of the generated cluster (default: 1)")
        self._following = True

    def parse(self, argv: Sequence[str] | None) -> argparse.Namespace:
        """The options, with the quick or full default of each ``quick_default`` option not given."""
        args = self.parse_args(argv)
        for name, (full, quick) in self._quick_defaults.items():
            if getattr(args, name) is None:
                setattr(args, name, quick if args.quick else full)
        if self._following and (
            args.services < 100
            or not 1 <= args.endpoints_per_service <= 100
            or not 1 <= args.updates <= 10_000
        ):
            self.error("--services must be at least 100, --endpoints-per-service 1-100, --updates 1-10000")
        return args
