"""The host's own addresses as the kernel lists them, read independently of how kdns reads them:
the addresses kdns names for itself when it listens on the wildcards (never sent anything in tests)."""

from __future__ import annotations

import ipaddress
from pathlib import Path


def local_addresses() -> set[str]:
    """IPv4 from the routing table's LOCAL entries, IPv6 from ``/proc/net/if_inet6``."""
    found, previous = set(), None
    for line in Path("/proc/net/fib_trie").read_text().splitlines():
        text = line.strip()
        if text.startswith("|-- "):
            previous = text[4:]
        elif text == "/32 host LOCAL" and previous is not None:
            found.add(previous)
    for line in Path("/proc/net/if_inet6").read_text().splitlines():
        found.add(str(ipaddress.ip_address(bytes.fromhex(line.split()[0]))))
    return found


def an_own_ipv4() -> str:
    """One of the host's IPv4 addresses that is not loopback (what a pod's address is to kdns)."""
    own = sorted(
        text
        for text in local_addresses()
        if ipaddress.ip_address(text).version == 4 and not ipaddress.ip_address(text).is_loopback
    )
    assert own, "the host has no IPv4 address but loopback"
    return own[0]
