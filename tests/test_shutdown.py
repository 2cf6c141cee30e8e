"""SIGTERM under load: a kdns process answering a steady stream of UDP and TCP queries (cluster names,
and forwarded names to a slow upstream on loopback, so some are always in flight) keeps answering
through its lameduck period with /health saying OK and /ready saying 503, answers every forwarded
query still in flight, and exits 0 within a bound. Every query sent is counted, and every one must
have been answered."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.rcode
import pytest

from tests.fake_upstream import FakeUpstream, upstream
from tests.support.client import HOST, ask
from tests.support.metrics import endpoint, get
from tests.support.polling import eventually
from tests.support.process import running

pytestmark = pytest.mark.slow  # each test holds kdns under load through its shutdown

DELAY = 0.4  # seconds the upstream takes to answer
LAMEDUCK = 1.5
CLUSTER = ("web.shop.svc.cluster.local", "10.96.100.10")


@dataclass
class Tally:
    """Queries sent and answered rightly, by kind, and how many were answered after SIGTERM."""

    sent: Counter = field(default_factory=Counter)
    answered: Counter = field(default_factory=Counter)
    after_signal: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    signalled: float = float("inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, reply: dns.message.Message | None, expected: tuple[int, str | None]) -> None:
        rcode, address = expected
        right = reply is not None and reply.rcode() == rcode
        if right and address is not None:
            right = [rdata.address for rrset in reply.answer for rdata in rrset] == [address]
        with self.lock:
            self.sent[kind] += 1
            if right:
                self.answered[kind] += 1
                if time.monotonic() > self.signalled:
                    self.after_signal[kind] += 1
            else:
                self.failures.append(f"{kind}: {reply and dns.rcode.to_text(reply.rcode())}")


def client(port: int, kind: str, number: int, until: list[float], tally: Tally) -> None:
    """Ask queries of one kind ("udp-cluster", "tcp-forward"...) one after another until ``until[0]``."""
    transport, what = kind.split("-")
    sock = socket.create_connection((HOST, port), timeout=5) if transport == "tcp" else None
    try:
        if what == "forward":  # spread out, so that some query is always on its way
            time.sleep(number * DELAY / KINDS[kind])
        n = 0
        while time.monotonic() < until[0]:
            n += 1
            if what == "cluster":
                name, expected = CLUSTER[0], (dns.rcode.NOERROR, CLUSTER[1])
            else:
                name, expected = f"{kind}-{number}-{n}.example.com", (dns.rcode.NXDOMAIN, None)
            try:
                reply = ask(port, name, tcp=sock is not None, sock=sock)
            except (OSError, EOFError, dns.exception.DNSException) as exc:  # EOF: TCP closed on it
                reply = None
                with tally.lock:
                    tally.failures.append(f"{kind}: {exc!r}")
            tally.record(kind, reply, expected)
            if what == "cluster":
                time.sleep(0.005)
    finally:
        if sock is not None:
            sock.close()


def status(url: str) -> int:
    return get(url, timeout=2)[0]


KINDS = {"udp-cluster": 1, "tcp-cluster": 1, "udp-forward": 4, "tcp-forward": 2}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_answers_everything_then_exits_cleanly(workers: int):
    with upstream() as fake:
        fake.delay = DELAY
        args = ("--upstream", fake.address, "--lameduck", str(LAMEDUCK), "--forward-timeout", "2")
        http = ("--health", "127.0.0.1:0", "--ready", "127.0.0.1:0", "--workers", str(workers))
        with running(*args, *http) as server:
            health, ready = (endpoint(server, name) + f"/{name}" for name in ("health", "ready"))
            assert (status(health), status(ready)) == (200, 200)
            tally, until = Tally(), [float("inf")]
            threads = [
                threading.Thread(target=client, args=(server.port, kind, n, until, tally))
                for kind, count in KINDS.items()
                for n in range(count)
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.6)
            assert fake.delay and sum(fake.asked.values()) > 0
            tally.signalled = signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            # stop asking shortly before the lameduck period ends: the last forwarded queries are then
            # still in flight upstream when it does
            until[0] = signalled + LAMEDUCK - 0.1
            eventually(lambda: server.logged("lameduck: answering"), timeout=3)
            probes = []
            while time.monotonic() < until[0]:
                probes.append((status(health), status(ready)))
                time.sleep(0.1)
            for thread in threads:
                thread.join(10)
            code = server.process.wait(LAMEDUCK + 10)
            exited = time.monotonic() - signalled
            server.reader.join(5)
    assert code == 0
    assert not tally.failures, tally.failures[:10]
    assert tally.sent == tally.answered and set(tally.sent) == set(KINDS)
    assert all(tally.after_signal[kind] > 0 for kind in KINDS), tally.after_signal
    assert probes and set(probes) == {(200, 503)}, probes
    assert server.logged("forwarded queries in flight"), server.log  # the last ones were waited for
    assert not server.logged("dropped")
    assert LAMEDUCK <= exited < LAMEDUCK + DELAY + 2.5, exited
    print(
        f"workers {workers}: sent {sum(tally.sent.values())}, answered {sum(tally.answered.values())} "
        f"({dict(tally.answered)}), {sum(tally.after_signal.values())} after SIGTERM; exit 0 after {exited:.2f} s"
    )


def test_forwarded_queries_in_flight_are_answered_without_lameduck(tmp_path):
    """With no lameduck period, SIGTERM still waits for the forwarded queries in flight."""
    with upstream() as fake:
        fake.delay = 0.6
        with running("--upstream", fake.address, "--forward-timeout", "2") as server:
            replies: list[dns.message.Message] = []

            def forward(n: int, tcp: bool) -> None:
                replies.append(ask(server.port, f"inflight-{n}.example.com", tcp=tcp))

            threads = [threading.Thread(target=forward, args=(n, n % 2 == 1)) for n in range(6)]
            for thread in threads:
                thread.start()
            eventually(lambda: _asked(fake) >= 6, timeout=5)
            started = time.monotonic()
            code = server.stop(signal.SIGTERM)
            exited = time.monotonic() - started
            for thread in threads:
                thread.join(5)
    assert code == 0 and exited < 0.6 + 1.5, exited
    assert [reply.rcode() for reply in replies] == [dns.rcode.NXDOMAIN] * 6
    assert server.logged("waiting for 6 forwarded queries in flight")


def _asked(fake: FakeUpstream) -> int:
    return sum(n for (name, _, _), n in fake.asked.items() if name.startswith("inflight-"))
