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

    def parse(self, argv: Sequence[str] | None) -> argparse.Namespace:
        """The options, with the quick or full default of each ``quick_default`` option not given."""
        args = self.parse_args(argv)
        for name, (full, quick) in self._quick_defaults.items():
            if getattr(args, name) is None:
                setattr(args, name, quick if args.quick else full)
        return args
