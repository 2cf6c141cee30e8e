"""Static names from a hosts file (CoreDNS's ``hosts``; k3s's NodeHosts): name -> addresses, and the
reverse names of those addresses -> names. Pure data, built from ``(ip, name)`` pairs."""

from __future__ import annotations

from collections.abc import Iterable

from kdns.codes import AAAA, PTR, A
from kdns.zone.names import BadName, pack_ip, reverse_wire, to_wire


class HostsTable:
    """Answers for the names of a hosts file: A/AAAA by name, PTR by reverse name."""

    def __init__(self, entries: Iterable[tuple[str, str]], *, ttl: int) -> None:
        self.ttl = ttl
        self.names: dict[bytes, dict[int, list[object]]] = {}
        for ip, name in entries:
            try:
                wire, packed = to_wire(name), pack_ip(ip)
            except (BadName, OSError, ValueError):
                continue
            rtype = A if len(packed) == 4 else AAAA
            addresses = self.names.setdefault(wire, {}).setdefault(rtype, [])
            if packed not in addresses:
                addresses.append(packed)
            ptrs = self.names.setdefault(reverse_wire(ip), {}).setdefault(PTR, [])
            if wire not in ptrs:
                ptrs.append(wire)

    def __len__(self) -> int:
        return len(self.names)

    def get(self, name: bytes) -> dict[int, list[object]] | None:
        return self.names.get(name)
