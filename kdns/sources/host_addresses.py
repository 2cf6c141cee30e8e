"""The addresses this server answers on, as the zone names them for ``ns.dns.<zone>``.

CoreDNS answers ``ns.dns.<zone>`` (and the apex NS answer's glue) with the addresses it is bound
to when it finds no Service of its own: its ``bind`` addresses, or every interface's address when it
binds the wildcard, loopback left out. kdns does the same with its listen addresses, and also leaves
out link-local addresses (169.254/16, fe80::/10), which mean nothing off their link (RFC 4472
section 2.1). The interfaces are read with the C library's ``getifaddrs``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import logging
import socket
import sys
from collections.abc import Iterable

log = logging.getLogger(__name__)

_BSD_SOCKADDR = sys.platform != "linux"  # sa_len, then a one-byte sa_family
_IPV4_ADDRESS_AT = 4  # in a sockaddr_in: family, port, then the address
_IPV6_ADDRESS_AT = 8  # in a sockaddr_in6: family, port, flow info, then the address


class _IfAddrs(ctypes.Structure):
    pass


_IfAddrs._fields_ = [  # set after the class: the structure points at its own kind
    ("ifa_next", ctypes.POINTER(_IfAddrs)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.c_void_p),
    ("ifa_netmask", ctypes.c_void_p),
    ("ifa_ifu", ctypes.c_void_p),
    ("ifa_data", ctypes.c_void_p),
]


def interface_addresses() -> list[str]:
    """Every IPv4 and IPv6 address of the host's interfaces, in text form; empty when they cannot be
    read (a platform without ``getifaddrs``), with a log line."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        getifaddrs, freeifaddrs = libc.getifaddrs, libc.freeifaddrs
    except (OSError, AttributeError) as exc:
        log.warning("cannot list the host's interface addresses: %s", exc)
        return []
    head = ctypes.POINTER(_IfAddrs)()
    if getifaddrs(ctypes.byref(head)) != 0:
        log.warning("cannot list the host's interface addresses: %s", ctypes.get_errno())
        return []
    found = []
    try:
        entry = head
        while entry:
            address = entry.contents.ifa_addr
            if address:
                text = _address_text(address)
                if text is not None:
                    found.append(text)
            entry = entry.contents.ifa_next
    finally:
        freeifaddrs(head)
    return found


def _address_text(sockaddr: int) -> str | None:
    if _BSD_SOCKADDR:
        family = ctypes.c_uint8.from_address(sockaddr + 1).value
    else:
        family = ctypes.c_ushort.from_address(sockaddr).value
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, ctypes.string_at(sockaddr + _IPV4_ADDRESS_AT, 4))
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, ctypes.string_at(sockaddr + _IPV6_ADDRESS_AT, 16))
    return None


def serving_addresses(listen: Iterable[str], interfaces: Iterable[str] | None = None) -> tuple[str, ...]:
    """The addresses that answer for ``ns.dns.<zone>``: each listen address, and for a wildcard
    (``0.0.0.0``, ``::``) every interface address of its family (``interfaces``, default the host's);
    loopback and link-local addresses are left out."""
    listen = [ipaddress.ip_address(address) for address in listen]
    wildcard_versions = {address.version for address in listen if address.is_unspecified}
    candidates = [address for address in listen if not address.is_unspecified]
    if wildcard_versions:
        host = interface_addresses() if interfaces is None else list(interfaces)
        candidates += [
            address for address in map(ipaddress.ip_address, host) if address.version in wildcard_versions
        ]
    kept = (a for a in candidates if not a.is_loopback and not a.is_link_local)
    return tuple(dict.fromkeys(str(address) for address in kept))
