"""A TCP relay on loopback that can be opened after its port is handed out: a client pointed at it
finds nothing listening (connection refused, as when a server is down) until ``open`` starts passing
bytes both ways to the real server behind it."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.client import HOST
from tests.support.process import free_port

CHUNK = 65536
IDLE_POLL = 0.5  # seconds between checks that the relay is still open


class Relay:
    """Relays ``HOST:port`` (free now, unbound until ``open``) to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def open(self) -> None:
        listener = socket.create_server((HOST, self.port))
        listener.settimeout(IDLE_POLL)
        self._listener = listener
        self._spawn(self._accept, listener)

    def close(self) -> None:
        self._closed.set()
        for thread in self._threads:
            thread.join(5)
        if self._listener is not None:
            self._listener.close()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                accepted, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                accepted.close()
                continue
            self._spawn(self._pump, accepted, upstream)

    def _pump(self, one: socket.socket, other: socket.socket) -> None:
        """Copy bytes both ways until either side closes or the relay does."""
        peer = {one: other, other: one}
        with selectors.DefaultSelector() as selector, one, other:
            for sock in peer:
                sock.setblocking(True)
                selector.register(sock, selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in selector.select(IDLE_POLL):
                    try:
                        data = key.fileobj.recv(CHUNK)
                        if not data:
                            return
                        peer[key.fileobj].sendall(data)
                    except OSError:
                        return


@contextmanager
def relay(target: tuple[str, int]) -> Iterator[Relay]:
    """A ``Relay`` to ``target``, closed with every connection it carries when the block ends."""
    opened = Relay(target)
    try:
        yield opened
    finally:
        opened.close()
