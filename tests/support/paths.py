"""Where things are: the repository, the example cluster and the platform Corefiles."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "zones" / "example.yaml"
COREFILES = ROOT / "tests" / "corefiles"
