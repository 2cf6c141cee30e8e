"""Asking a running kdns, as a client does: dnspython over UDP or TCP on loopback, or dig."""

from __future__ import annotations

import shutil
import socket
import subprocess

import dns.message
import dns.query
import dns.rcode

HOST = "127.0.0.1"


def ask(
    port: int,
    question: str | dns.message.Message,
    qtype: str = "A",
    *,
    tcp: bool = False,
    fallback: bool = False,
    sock: socket.socket | None = None,
    host: str = HOST,
    timeout: float = 5,
    use_edns: int | bool | None = None,
    payload: int | None = None,
    want_dnssec: bool = False,
    source: str | None = None,
) -> dns.message.Message:
    """Ask kdns at ``host``:``port`` for ``question`` (a name, or a query made beforehand) and return its
    reply: over UDP; over TCP with ``tcp`` (on the open connection ``sock`` if one is given); over UDP
    and again over TCP when truncated with ``fallback``, as stub resolvers do. ``use_edns``,
    ``payload`` and ``want_dnssec`` are ``dns.message.make_query``'s; ``source`` is the loopback
    address to ask from (``127.0.1.1``: another client subnet)."""
    if isinstance(question, dns.message.Message):
        query = question
    else:
        query = dns.message.make_query(
            question, qtype, use_edns=use_edns, payload=payload, want_dnssec=want_dnssec
        )
    if fallback:
        return dns.query.udp_with_fallback(query, host, port=port, timeout=timeout, source=source)[0]
    if tcp:
        return dns.query.tcp(query, host, port=port, timeout=timeout, sock=sock, source=source)
    return dns.query.udp(query, host, port=port, timeout=timeout, source=source)


def lookup(port: int, name: str, qtype: str = "A", **options) -> tuple[str, set[str]]:
    """``ask``, reduced to what most assertions compare: the rcode's name and the answer's records."""
    reply = ask(port, name, qtype, **options)
    return dns.rcode.to_text(reply.rcode()), {rdata.to_text() for rrset in reply.answer for rdata in rrset}


def udp_exchange(port: int, packet: bytes, timeout: float = 1.0, host: str = HOST) -> bytes | None:
    """Send raw bytes over UDP and return the raw reply, or ``None`` when none comes in ``timeout``:
    for packets dnspython would not send, and replies it would not read."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (host, port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def dig(port: int, *args: str, host: str = HOST) -> str:
    """dig's output for ``args``, asking kdns at ``host``:``port`` once, waiting 3 s at most."""
    assert shutil.which("dig"), "dig is installed by 'make test' (bind9-dnsutils)"
    result = subprocess.run(
        ["dig", f"@{host}", "-p", str(port), "+time=3", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return result.stdout
