"""TCP clients that hold connections without asking, trickle bytes, or never read their answers: they
are reaped, the connection limit admits new clients in the place of idle ones, and UDP keeps answering."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from kdns.transport.listen import UDP_RECEIVE_BUFFER, bind
from tests.support.client import HOST, ask
from tests.support.metrics import endpoint, get, metric
from tests.support.packets import framed
from tests.support.polling import eventually
from tests.support.process import running

NAME = "web.shop.svc.cluster.local"


def frame(name: str = NAME, qtype: str = "A", qid: int = 1) -> bytes:
    return framed(dns.message.make_query(name, qtype, id=qid).to_wire())


def tcp_answers(port: int, name: str = NAME) -> bool:
    reply = ask(port, name, tcp=True, timeout=3)
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def udp_answers(port: int, count: int, name: str = NAME) -> int:
    answered = 0
    for _ in range(count):
        with contextlib.suppress(dns.exception.Timeout):
            reply = ask(port, name, timeout=1)
            answered += reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)
    return answered


@contextlib.contextmanager
def connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection((HOST, port), timeout=3))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed_among(socks: list[socket.socket], timeout: float) -> int:
    """How many of ``socks`` (sent no query, so owed no answer) the server has closed or reset."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        time.sleep(timeout)
        return len(selector.select(0))


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server ends the connection (EOF or reset) within ``timeout``, reading what comes."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


@pytest.mark.slow
def test_idle_connections_at_the_limit_give_their_place_to_new_clients():
    limits = ("--max-tcp-connections", "50", "--tcp-idle-timeout", "30")
    with running(*limits, "--metrics", "127.0.0.1:0") as server:
        with connections(server.port, 50) as idle:
            time.sleep(1.2)  # idle for longer than a connection may be before it gives its place
            with connections(server.port, 20) as new:
                for i, sock in enumerate(new):  # each is admitted and answered, and stays open
                    sock.sendall(frame(qid=i))
                    reply, _ = dns.query.receive_tcp(sock, expiration=time.time() + 3)
                    assert reply.id == i and reply.answer
                closed = closed_among(idle, 0.2)
                text = get(endpoint(server, "metrics") + "/metrics")[1]
                assert metric(text, "kdns_tcp_connections") == 50
            assert closed == 20  # one idle connection for each new client
            assert metric(text, "kdns_tcp_connections_closed_total", reason="evicted") == 20
            assert metric(text, "kdns_tcp_connections_closed_total", reason="refused") == 0
        eventually(lambda: server.logged("closing the connection idle longest to admit a new one"))
        warning = server.logged("TCP connection limit (50, --max-tcp-connections) reached")
        assert len(warning) == 1  # one warning per 10 s, not one per connection
        assert udp_answers(server.port, 20) == 20


@pytest.mark.slow
def test_new_connections_are_refused_while_every_connection_is_busy():
    with running("--max-tcp-connections", "10", "--tcp-idle-timeout", "30") as server:
        with connections(server.port, 10) as busy:
            started = time.monotonic()
            refused = 0
            while time.monotonic() - started < 2:
                for i, sock in enumerate(busy):  # each completes a query every few ms
                    sock.sendall(frame(qid=i))
                    dns.query.receive_tcp(sock, expiration=time.time() + 3)
                with socket.create_connection((HOST, server.port), timeout=3) as late:
                    refused += closed_by_server(late, 1)
            assert refused > 0
        assert server.logged("every connection is busy: closing new connections")


@pytest.mark.slow
def test_slow_loris_clients_are_reaped_although_bytes_keep_coming(big_server):
    """``big_server`` closes connections without a complete query for 1 s."""
    with connections(big_server.port, 20) as slow:
        query = frame()
        started = time.monotonic()
        sending = list(slow)
        for i in range(len(query)):  # one byte per 0.2 s: the whole query would take 8 s
            for sock in list(sending):
                try:
                    sock.send(query[i : i + 1])
                except OSError:
                    sending.remove(sock)
            if not sending:
                break
            time.sleep(0.2)
        assert not sending  # every connection was closed while it trickled
        assert time.monotonic() - started < 4
        assert udp_answers(big_server.port, 20, "cache.big.svc.cluster.local") == 20


@pytest.mark.slow
def test_a_client_that_never_reads_is_reset_after_the_idle_timeout(big_server):
    """Answers pile up for a client that sends queries but reads nothing; closing such a connection
    gracefully would wait for a reader forever, so it is reset."""
    greedy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with greedy:
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.connect((HOST, big_server.port))
        queries = frame("wide.big.svc.cluster.local") * 20000  # 200 addresses in each answer
        greedy.setblocking(False)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while sent < len(queries):  # until the server stops reading: its answers wait
                sent += greedy.send(queries[sent : sent + 65536])
        time.sleep(2.5)  # past the idle timeout, reading nothing
        greedy.setblocking(True)
        greedy.settimeout(3)
        received = 0
        with pytest.raises(ConnectionResetError):
            while chunk := greedy.recv(1 << 20):
                received += len(chunk)
        # only what had reached this socket: the megabytes of answers waiting at the server were
        # dropped when it reset the connection, not kept until a reader came
        assert received < 256 * 1024
    assert tcp_answers(big_server.port, "wide.big.svc.cluster.local")


@pytest.mark.slow
def test_udp_keeps_answering_while_a_thousand_tcp_connections_are_held():
    with running("--tcp-idle-timeout", "30") as server:
        before = udp_answers(server.port, 200)
        with connections(server.port, 1000) as held:
            during = udp_answers(server.port, 200)
            time.sleep(1.1)
            assert tcp_answers(server.port)  # the 1001st: the idlest of the thousand gives its place
            assert closed_among(held, 0.2) == 1
        assert before == during == 200


@pytest.mark.parametrize("soft", [256, 1024])
def test_the_open_files_limit_is_raised_for_the_connection_limit(soft):
    script = (
        "import resource; from kdns.transport.listen import raise_file_limit; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
        "print(raise_file_limit(1000))"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert int(out.stdout) == min(1256, hard) if hard != resource.RLIM_INFINITY else 1256


def test_udp_sockets_have_room_for_bursts():
    """The UDP receive buffer holds a burst of thousands of queries (as far as net.core.rmem_max lets
    it), not the default's few hundred."""
    _port, bound = bind(("127.0.0.1",), 0)
    try:
        udp, _tcp = bound[0]
        wanted = min(UDP_RECEIVE_BUFFER, int(Path("/proc/sys/net/core/rmem_max").read_text()))
        assert udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= wanted  # Linux reports it doubled
    finally:
        for sock in bound[0]:
            sock.close()
