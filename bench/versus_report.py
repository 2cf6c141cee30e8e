"""The "Beside CoreDNS" section of bench/README.md, from ``bench.versus``'s results."""

from __future__ import annotations

import json
from typing import Any

from bench import report


def render(result: dict[str, Any]) -> str:
    return report.COREDNS_HEADING + "\n\n```\n" + json.dumps(result, indent=1)[:3000] + "\n```\n"
