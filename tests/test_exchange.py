"""The exchange, in process: what happens to a query after ``respond()``, decided once for UDP and TCP.

Real sockets on 127.0.0.1, bound by ``listen`` as ``kdns serve`` binds them, and dnspython as the
client (on a thread beside the loop that serves). Queries for names outside the zones become pending queries; the answerer behind them is the
real forwarder (against the fake upstream), or one that fails on purpose: a fault the forwarder
cannot be made to produce from outside.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import dns.flags
import dns.message
import dns.rcode

from kdns.config import ForwardSettings, ServeConfig
from kdns.transport.exchange import QueryLog, Via
from kdns.wire.packed import Packed
from kdns.wire.pending import PendingQuery
from tests.fake_upstream import upstream
from tests.support.client import HOST, ask
from tests.support.inprocess import forwarding, serving

AT_ONCE = 1.0  # seconds: an answer that comes later than this came from a client's timeout
CLIENT_TIMEOUT = 3.0


def config_for(upstream_address: str) -> ServeConfig:
    return forwarding(ForwardSettings(upstreams=(upstream_address,)))


async def timed_ask(port: int, name: str, *, tcp: bool) -> tuple[dns.message.Message, float]:
    """The reply to one question, asked from a thread (the server runs on this loop), and how long
    it took."""
    started = time.monotonic()
    reply = await asyncio.to_thread(ask, port, name, tcp=tcp, timeout=CLIENT_TIMEOUT)
    return reply, time.monotonic() - started


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


class Failing:
    """Takes every query on, and fails to answer it."""

    def __init__(self) -> None:
        self.asked: list[PendingQuery] = []

    def admits(self, query: PendingQuery) -> bool:
        return True

    async def answer(self, query: PendingQuery) -> Packed:
        self.asked.append(query)
        raise RuntimeError("the answer could not be made")


class Full:
    """Past its limit of queries in flight: takes nothing on."""

    def admits(self, query: PendingQuery) -> bool:
        return False

    async def answer(self, query: PendingQuery) -> Packed:
        raise AssertionError("a query past the limit was answered later")


def test_a_failing_forward_is_servfail_at_once_over_udp_and_tcp(caplog):
    failing = Failing()

    async def test() -> None:
        async with serving(config_for("127.0.0.1:9"), answerer=failing) as listeners:
            for tcp in (False, True):
                reply, seconds = await timed_ask(listeners.port, "Example.COM", tcp=tcp)
                assert reply.rcode() == dns.rcode.SERVFAIL, tcp
                assert str(reply.question[0].name) == "Example.COM."  # the client's question, its case
                assert reply.flags & dns.flags.RA
                assert seconds < AT_ONCE, (tcp, seconds)

    run(test)
    assert len(failing.asked) == 2
    failures = [r for r in caplog.records if "failed to answer a query for upstream" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)


def test_past_the_limit_clients_get_refused_at_once_over_udp_and_tcp():
    async def test() -> None:
        async with serving(config_for("127.0.0.1:9"), answerer=Full()) as listeners:
            for tcp in (False, True):
                reply, seconds = await timed_ask(listeners.port, "example.com", tcp=tcp)
                assert reply.rcode() == dns.rcode.REFUSED
                assert seconds < AT_ONCE
            assert listeners.exchange.in_flight == 0

    run(test)


def test_forwarded_answers_are_timed_and_logged_once_each_over_udp_and_tcp():
    lines: list[tuple[str, str, int]] = []

    def log(client: tuple, query: bytes, response: bytes, via: Via, seconds: float) -> None:
        lines.append((client[0], via.proto, via.local, dns.message.from_wire(response).rcode()))

    async def test() -> None:
        with upstream("example.com. 300 IN A 192.0.2.7") as fake:
            async with serving(config_for(fake.address)) as listeners:
                listeners.exchange.query_log = log
                for tcp in (False, True):
                    reply, _ = await timed_ask(listeners.port, "example.com", tcp=tcp)
                    assert [rdata.address for rdata in reply.answer[0]] == ["192.0.2.7"]
                    await timed_ask(listeners.port, "web.shop.svc.cluster.local", tcp=tcp)
                assert sum(h.count for h in listeners.exchange.durations) == 4
                assert fake.count("example.com") == 1  # the TCP query was a cache hit

    run(test)
    assert lines == [
        (HOST, "udp", HOST, 0),
        (HOST, "udp", HOST, 0),
        (HOST, "tcp", HOST, 0),
        (HOST, "tcp", HOST, 0),
    ]


def test_drain_answers_the_queries_in_flight():
    async def test() -> None:
        with upstream("slow.example.com. 60 IN A 192.0.2.9") as fake:
            fake.slow["slow.example.com"] = 0.5
            async with serving(config_for(fake.address)) as listeners:
                exchange = listeners.exchange
                asked = [
                    asyncio.ensure_future(timed_ask(listeners.port, "slow.example.com", tcp=tcp))
                    for tcp in (False, True)
                ]
                while exchange.in_flight < 2:
                    await asyncio.sleep(0.01)
                assert await exchange.drain() == 0
                for reply, _ in await asyncio.gather(*asked):
                    assert reply.answer[0][0].address == "192.0.2.9"

    run(test)


def test_a_reload_swaps_what_answers_while_queries_in_flight_finish():
    log: QueryLog = lambda *line: None  # noqa: E731

    async def test() -> None:
        with upstream("slow.example.com. 60 IN A 192.0.2.9") as fake:
            fake.slow["slow.example.com"] = 0.3
            config = config_for(fake.address)
            async with serving(config) as listeners:
                exchange = listeners.exchange
                pending = asyncio.ensure_future(timed_ask(listeners.port, "slow.example.com", tcp=False))
                while exchange.in_flight < 1:
                    await asyncio.sleep(0.01)
                exchange.use(exchange.responder, Full(), log)
                refused, _ = await timed_ask(listeners.port, "other.example.com", tcp=True)
                assert refused.rcode() == dns.rcode.REFUSED  # the new answerer
                reply, _ = await pending
                assert reply.answer[0][0].address == "192.0.2.9"  # the old one finished its query

    run(test)
