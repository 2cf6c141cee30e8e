"""A TCP relay on loopback in front of a server, as a load balancer stands in front of an API server
(TLS passes through: the API server's certificate names 127.0.0.1).

Its port is handed out at once; it listens from ``open()`` (until then a client finds nothing there:
connection refused, as when the server is down). ``reset()`` resets every connection it carries on
both sides, as a load balancer that drops its flows does."""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.support.client import HOST
from tests.support.process import free_port

CHUNK = 65536
POLL = 0.1  # seconds a relaying thread waits before it looks for a reset or a close again


class Relay:
    """Relays ``HOST:port`` (free now, listening from ``open``) to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"https://{HOST}:{self.port}"
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._lock = threading.Lock()
        self._flows: list[_Flow] = []

    def open(self) -> Relay:
        self._listener = socket.create_server((HOST, self.port))
        self._acceptor = threading.Thread(target=self._accept, args=(self._listener,), daemon=True)
        self._acceptor.start()
        return self

    def reset(self) -> int:
        """Reset every relayed connection (an RST to both ends); return how many were open, once the
        resets are sent."""
        with self._lock:
            flows, self._flows = self._flows, []
        for flow in flows:
            flow.resetting.set()
        for flow in flows:
            flow.thread.join(5)
        return sum(flow.was_reset for flow in flows)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._acceptor is not None:
            self._acceptor.join(5)
        self.reset()

    def _accept(self, listener: socket.socket) -> None:
        while True:  # until close() closes the listener
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            flow = _Flow(client, upstream)
            with self._lock:
                self._flows = [f for f in self._flows if f.thread.is_alive()]
                self._flows.append(flow)
            flow.thread.start()


class _Flow:
    """One relayed connection: bytes copied both ways on a thread of its own until both ends have
    closed, or until ``resetting`` is set, when both are reset."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.resetting = threading.Event()
        self.was_reset = False
        self.thread = threading.Thread(target=self._relay, daemon=True)

    def _relay(self) -> None:
        peers = {self.client: self.upstream, self.upstream: self.client}
        try:
            while peers and not self.resetting.is_set():
                readable, _, _ = select.select(list(peers), [], [], POLL)
                for source in readable:
                    data = source.recv(CHUNK)
                    if data:
                        peers[source].sendall(data)
                    else:
                        peers.pop(source).shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if self.resetting.is_set() and peers:
            self.was_reset = True
            for sock in peers:  # closing with a zero linger sends an RST
                with suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.client.close()
        self.upstream.close()


@contextmanager
def relay(target: tuple[str, int], *, opened: bool = True) -> Iterator[Relay]:
    """A ``Relay`` to ``target`` (listening at once unless not ``opened``), closed with every
    connection it carries when the block ends."""
    front = Relay(target)
    try:
        yield front.open() if opened else front
    finally:
        front.close()
