"""The nameservers of a resolv.conf, as the default upstreams (CoreDNS's ``forward . /etc/resolv.conf``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from kdns.codes import PORT as DNS_PORT


class ResolvConfError(Exception):
    """The file cannot be read or names no usable nameserver."""


def nameservers(path: Path) -> list[tuple[str, int]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ResolvConfError(f"{path}: cannot read: {exc.strerror}") from None
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            address = words[1].split("%", 1)[0]  # drop an IPv6 scope
            try:
                found.append((str(ipaddress.ip_address(address)), DNS_PORT))
            except ValueError:
                raise ResolvConfError(f"{path}:{number}: {words[1]!r} is not an IP address") from None
    if not found:
        raise ResolvConfError(f"{path}: no nameserver lines")
    return found


def search_domains(path: Path) -> list[str]:
    """The ``search`` domains of a resolv.conf (the last search line wins, as in glibc).

    None when the file cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    domains: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] in ("search", "domain"):
            domains = words[1:]
    return domains
