"""Binding UDP and TCP on the same addresses and port, IPv4 and IPv6 alike.

Port 0 picks a free port once (for UDP on the first address) and uses it everywhere, so tests and
tools can ask for any free port and read the one chosen from the ready line.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import resource
import socket
from dataclasses import dataclass, field

from kdns.config import ServeConfig
from kdns.transport.exchange import Exchange
from kdns.transport.tcp import TcpConnections
from kdns.transport.udp import UdpProtocol

log = logging.getLogger(__name__)


class ListenError(OSError):
    """An address cannot be bound; the message names it."""


UDP_RECEIVE_BUFFER = 1 << 20  # bytes asked for; the kernel caps it at net.core.rmem_max
FILES_BESIDES_TCP = 256  # descriptors for everything but client connections: sockets, files, upstreams


def raise_file_limit(max_tcp_connections: int) -> int:
    """Let the process hold ``max_tcp_connections`` plus its own files: raise the soft limit on open
    files towards the hard one (many systems start services at 1024). Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_tcp_connections + FILES_BESIDES_TCP
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
        if soft < wanted:
            log.warning(
                "open files limited to %d: fewer than --max-tcp-connections %d needs (%d); raise the "
                "hard limit (ulimit -Hn) or lower --max-tcp-connections",
                soft,
                max_tcp_connections,
                wanted,
            )
    return soft


@dataclass
class Listeners:
    """A server's sockets, and the exchange that answers on all of them."""

    port: int
    exchange: Exchange
    connections: TcpConnections
    udp: list[asyncio.DatagramTransport] = field(default_factory=list)
    tcp: list[asyncio.Server] = field(default_factory=list)

    async def close(self) -> None:
        for server in self.tcp:
            server.close()
        self.connections.close_all()
        for server in self.tcp:
            await server.wait_closed()
        for transport in self.udp:
            transport.close()


def _socket(address: str, port: int, kind: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # "::" and "0.0.0.0" side by side
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:  # room for bursts: the default (about 270 queries) overflows under a few hundred at once
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        if reuse_port:  # several worker processes on one address: the kernel spreads the queries
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        proto = "TCP" if kind == socket.SOCK_STREAM else "UDP"
        raise ListenError(
            exc.errno, f"cannot listen on {address} port {port}/{proto}: {exc.strerror}"
        ) from None
    sock.setblocking(False)
    return sock


Bound = list[tuple[socket.socket, socket.socket]]  # (UDP, TCP) per address
Where = tuple[tuple[str, ...], int]  # a listener: its addresses and port
Shares = dict[Where, Bound]  # a worker's share of the sockets, by listener (``--workers``)


PORT_ATTEMPTS = 20  # port 0: free UDP ports tried until TCP is free on one as well


def bind(addresses: tuple[str, ...], port: int, *, reuse_port: bool = False) -> tuple[int, Bound]:
    """UDP and TCP sockets on every address, all on one port. Port 0 takes a free UDP port the
    kernel picks, and another when that port is taken for TCP (by a client connection, say)."""
    attempts = 1 if port else PORT_ATTEMPTS
    while True:
        try:
            return _bind_all(addresses, port, reuse_port)
        except ListenError as exc:
            attempts -= 1
            if exc.errno != errno.EADDRINUSE or not attempts:
                raise


def _bind_all(addresses: tuple[str, ...], port: int, reuse_port: bool) -> tuple[int, Bound]:
    bound: Bound = []
    try:
        for address in addresses:
            udp = _socket(address, port, socket.SOCK_DGRAM, reuse_port=reuse_port)
            port = udp.getsockname()[1]
            try:
                tcp = _socket(address, port, socket.SOCK_STREAM, reuse_port=reuse_port)
            except BaseException:
                udp.close()
                raise
            bound.append((udp, tcp))
    except BaseException:
        for pair in bound:
            for sock in pair:
                sock.close()
        raise
    return port, bound


async def listen(
    exchange: Exchange,
    config: ServeConfig,
    addresses: tuple[str, ...],
    port: int,
    *,
    bound: Bound | None = None,
) -> Listeners:
    """Serve ``exchange`` on ``addresses`` and ``port`` over UDP and TCP (with ``config``'s limits),
    on sockets bound here, or on ``bound`` ones (a worker's share)."""
    loop = asyncio.get_running_loop()
    raise_file_limit(config.max_tcp_connections)
    connections = TcpConnections(
        exchange, idle_timeout=config.tcp_idle_timeout, max_connections=config.max_tcp_connections
    )
    if bound is None:
        port, bound = bind(addresses, port)
    else:
        port = bound[0][0].getsockname()[1]
    listeners = Listeners(port, exchange, connections)
    try:
        for udp_sock, tcp_sock in bound:
            transport, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(exchange), sock=udp_sock)
            listeners.udp.append(transport)
            server = await loop.create_server(connections.protocol, sock=tcp_sock, backlog=1024)
            listeners.tcp.append(server)
    except BaseException:
        await listeners.close()
        raise
    return listeners
