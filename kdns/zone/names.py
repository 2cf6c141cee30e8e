"""Domain names as the zone keeps them: lowercase wire format (``b"\\x03web\\x07default..."``).

Wire form is what the hot path sees in a query, so the index is keyed by it and no query needs a
conversion to text. This module also holds the name grammar helpers: dashed-IP labels, reverse names
and the zone layout (which zones are forward, which reverse, which is primary).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from kdns.codes import MAX_LABEL_LENGTH, MAX_NAME_LENGTH

ROOT = b"\x00"
_IN_ADDR_ARPA = b"\x07in-addr\x04arpa\x00"
_IP6_ARPA = b"\x03ip6\x04arpa\x00"


class BadName(ValueError):
    """The text is not a valid domain name."""


def to_wire(text: str) -> bytes:
    """``"Web.Default.svc."`` -> lowercase wire bytes; raises ``BadName``."""
    text = text.rstrip(".")
    if not text:
        return ROOT
    out = bytearray()
    for label in text.lower().split("."):
        raw = label.encode("ascii", "strict") if label.isascii() else None
        if raw is None or not 0 < len(raw) <= MAX_LABEL_LENGTH:
            raise BadName(f"invalid label {label!r} in {text!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > MAX_NAME_LENGTH:
        raise BadName(f"name {text!r} is longer than {MAX_NAME_LENGTH} octets")
    return bytes(out)


def join(labels: Iterable[str], suffix: bytes) -> bytes:
    """Prepend text labels (already lowercase and valid) to a wire name."""
    out = bytearray()
    for label in labels:
        raw = label.encode("ascii")
        out.append(len(raw))
        out += raw
    out += suffix
    return bytes(out)


def prepend(label: str, suffix: bytes) -> bytes:
    """Prepend one text label (already lowercase and valid) to a wire name: ``join`` made quick."""
    raw = label.encode("ascii")
    return b"%c%b%b" % (len(raw), raw, suffix)


def labels_of(wire: bytes) -> list[bytes]:
    """Labels of a wire name, without the root."""
    out, i = [], 0
    while wire[i]:
        out.append(wire[i + 1 : i + 1 + wire[i]])
        i += wire[i] + 1
    return out


def parent(wire: bytes) -> bytes:
    return wire[wire[0] + 1 :] if wire != ROOT else ROOT


def is_within(wire: bytes, zone: bytes) -> bool:
    """Whether ``wire`` is ``zone`` or below it, comparing on label boundaries."""
    if not wire.endswith(zone):
        return False
    cut, i = len(wire) - len(zone), 0
    while i < cut:
        i += wire[i] + 1
    return i == cut


def longest_zone(wire: bytes, zones: Iterable[bytes]) -> bytes | None:
    """The longest of ``zones`` that holds ``wire`` (CoreDNS's rule for server blocks and for
    plugins' zones); ``None`` when none does. The root (``ROOT``) holds every name."""
    best = None
    for zone in zones:
        if (best is None or len(zone) > len(best)) and is_within(wire, zone):
            best = zone
    return best


def to_text(wire: bytes) -> str:
    """Presentation form with a trailing dot, escaping as zone files do."""
    parts = []
    for label in labels_of(wire):
        chars = []
        for byte in label:
            ch = chr(byte)
            if ch in '.\\"();@$':
                chars.append("\\" + ch)
            elif 33 <= byte <= 126:
                chars.append(ch)
            else:
                chars.append(f"\\{byte:03d}")
        parts.append("".join(chars))
    return ".".join(parts) + "."


def dashed_ip(ip: str) -> str:
    """``10.0.0.1`` -> ``10-0-0-1``; ``fd00::1`` -> ``fd00--1`` (the endpoint and pod label form)."""
    return ip.replace(".", "-").replace(":", "-")


def ip_of_dashed(label: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP a pod label names, read as CoreDNS reads it; ``None`` when it names none."""
    text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label else label.replace("-", ":")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def packed_of_dashed(label: bytes) -> bytes:
    """The address bytes of a label that ``dashed_ip`` wrote (C speed, for the zone's reads)."""
    if label.count(b"-") == 3 and b"--" not in label:
        return socket.inet_pton(socket.AF_INET, label.replace(b"-", b".").decode("ascii"))
    return socket.inet_pton(socket.AF_INET6, label.replace(b"-", b":").decode("ascii"))


def pack_ip(ip: str) -> bytes:
    """The 4 or 16 address bytes of an IP in text form (C speed; the zone packs many)."""
    return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)


def ip_text(packed: bytes) -> str:
    """The canonical text form (as ``ipaddress`` prints it) of 4 or 16 address bytes."""
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    text = socket.inet_ntop(socket.AF_INET6, packed)
    # the C library writes an embedded IPv4 address in dotted form, ipaddress in hex groups
    return str(ipaddress.IPv6Address(packed)) if "." in text else text


def reverse_wire(ip: str) -> bytes:
    """The in-addr.arpa or ip6.arpa name of an IP, in wire form."""
    return reverse_packed(pack_ip(ip))


def reverse_packed(packed: bytes) -> bytes:
    """The in-addr.arpa or ip6.arpa name of an IP's 4 or 16 address bytes, in wire form."""
    if len(packed) == 4:
        return b"".join((*map(_OCTET_LABELS.__getitem__, packed[::-1]), _IN_ADDR_ARPA))
    return b"".join((*map(_NIBBLE_LABELS.__getitem__, packed[::-1]), _IP6_ARPA))


_OCTET_LABELS = [b"%c%d" % (len(str(octet)), octet) for octet in range(256)]  # 10 -> b"\x0210"
_NIBBLE_LABELS = [b"\x01%x\x01%x" % (byte & 15, byte >> 4) for byte in range(256)]  # low nibble first


def zone_names(text: str) -> list[str]:
    """The zones a Corefile argument names, as CoreDNS's plugins read one: a name (``dns://`` allowed)
    or a CIDR, whose reverse zones it stands for (a prefix between label boundaries gives several).
    Lowercase, no final dot, ``.`` for the root; raises ``BadName``."""
    text = text.removeprefix("dns://")
    if text == ".":
        return ["."]
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise BadName(f"{text!r} is neither a zone nor a CIDR") from None
        bits, suffix = (8, "in-addr.arpa") if network.version == 4 else (4, "ip6.arpa")
        prefix = -(-network.prefixlen // bits) * bits
        zones = []
        for subnet in network.subnets(new_prefix=prefix):
            digits = subnet.network_address.packed
            labels = [str(b) for b in digits] if bits == 8 else list(digits.hex())
            zones.append(".".join([*reversed(labels[: prefix // bits]), suffix]))
        return zones
    name = text.rstrip(".").lower()
    if not _ZONE_NAME.fullmatch(name):
        raise BadName(f"{text!r} is not a valid zone name")
    to_wire(name)
    return [name]


_ZONE_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


def is_reverse_zone(zone: str) -> bool:
    return zone.rstrip(".").lower().endswith(("in-addr.arpa", "ip6.arpa"))


@dataclass(frozen=True, slots=True)
class ZoneLayout:
    """The authoritative zones in wire form; the primary zone names the targets of PTR records."""

    forward: tuple[bytes, ...]
    reverse: tuple[bytes, ...]

    @classmethod
    def of(cls, zones: Iterable[str]) -> ZoneLayout:
        zones = list(dict.fromkeys(to_wire(z) for z in zones))
        forward = tuple(z for z in zones if not is_reverse_zone(to_text(z)))
        reverse = tuple(z for z in zones if is_reverse_zone(to_text(z)))
        if not forward:
            raise BadName("at least one forward zone (such as cluster.local) is needed")
        return cls(forward=forward, reverse=reverse)

    @property
    def primary(self) -> bytes:
        return self.forward[0]

    @property
    def apexes(self) -> tuple[bytes, ...]:
        return self.forward + self.reverse

    def zone_of(self, wire: bytes) -> bytes | None:
        """The most specific authoritative zone holding ``wire``."""
        return longest_zone(wire, self.apexes)
