"""Hosts files (``/etc/hosts`` syntax): ``IP name [name...]`` lines, ``#`` comments."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def read_hosts(path: Path) -> list[tuple[str, str]] | None:
    """The ``(ip, name)`` pairs of the file; ``None`` when it cannot be read (logged, not fatal: CoreDNS
    keeps serving, and the file may appear later)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("hosts file %s: cannot read: %s", path, exc.strerror)
        return None
    return parse_hosts(text, str(path))


def parse_hosts(text: str, origin: str = "hosts") -> list[tuple[str, str]]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        address = words[0].split("%", 1)[0]
        try:
            ip = str(ipaddress.ip_address(address))
        except ValueError:
            log.warning("%s:%d: %r is not an IP address; line skipped", origin, number, words[0])
            continue
        entries.extend((ip, name.lower().rstrip(".")) for name in words[1:])
    return entries
