"""The nameservers of a resolv.conf, as the default upstreams (CoreDNS's ``forward . /etc/resolv.conf``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path


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
                found.append((str(ipaddress.ip_address(address)), 53))
            except ValueError:
                raise ResolvConfError(f"{path}:{number}: {words[1]!r} is not an IP address") from None
    if not found:
        raise ResolvConfError(f"{path}: no nameserver lines")
    return found


def parse_upstream(text: str, default_port: int = 53) -> tuple[str, int]:
    """``"10.0.0.1"``, ``"10.0.0.1:5353"``, ``"[fd00::1]:53"``, ``"fd00::1"`` or ``"dns://IP[:PORT]"``."""
    text = text.removeprefix("dns://")
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, text)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address with an optional port") from None


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r}: {text!r} is not a port")
    return int(text)


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
