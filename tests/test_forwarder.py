"""The forwarder and its cache, in process and fast: no ``kdns serve``, a real forwarder asking the fake
upstreams (UDP and TCP, or the TCP/TLS server of tests/support/dot.py) over loopback sockets, each
CoreDNS forward option in turn, and the answer cache on a clock the test moves. One test runs kdns's
own listeners in process, asked by dnspython, in front of a DNS-over-TLS upstream."""

from __future__ import annotations

import asyncio
import dataclasses
import struct

import dns.edns
import dns.message
import dns.rcode
import dnslib
import pytest

from kdns.app import build_answering, build_forwarder, forwarder_key
from kdns.codes import IN, NOERROR, NXDOMAIN, REFUSED, SERVFAIL, A
from kdns.config import (
    DEFAULT_MAX_UDP_SIZE,
    MAX_BACKGROUND_REFRESHES,
    CacheSettings,
    ForwardSettings,
    UpstreamAddress,
)
from kdns.plugins import rewrite
from kdns.upstream.cache import ResponseCache
from kdns.upstream.forward import Forwarder, PassToNext
from kdns.wire.packed import Packed, pack_records
from kdns.wire.pending import PendingQuery, forward_key
from kdns.wire.query import TCP4, TCP6, UDP4, UDP6
from kdns.zone.names import to_wire
from tests.fake_upstream import ECS, client_subnet, upstream
from tests.support.client import ask
from tests.support.dot import SERVER_NAME, Certificates, stream_upstream
from tests.support.inprocess import forwarding, serving
from tests.support.zone import example_zone


def question(name: str, qtype: int = A) -> bytes:
    return to_wire(name) + struct.pack("!HH", qtype, IN)


def forwarder_to(*addresses: str, **settings: object) -> Forwarder:
    """The forwarder ``kdns serve --upstream ADDRESS...`` builds, with these forward settings."""
    forward = ForwardSettings(upstreams=addresses, **settings)  # type: ignore[arg-type]
    return build_forwarder(forward, ResponseCache(CacheSettings()), udp_size=DEFAULT_MAX_UDP_SIZE)


def addresses(packed: Packed, name: str) -> list[str]:
    reply = dnslib.DNSRecord.parse(
        packed.render(
            b"\x00\x00\x01\x00" + bytes(8) + question(name), 0, 0, 12 + len(question(name)), 65535, b""
        )
    )
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == A]


def test_identical_questions_in_flight_share_one_upstream_query():
    async def test() -> None:
        with upstream("shared.example.com. 60 IN A 192.0.2.1") as fake:
            fake.slow["shared.example.com"] = 0.3
            forwarder = forwarder_to(fake.address)
            asked = question("shared.example.com")
            answers = await asyncio.gather(*(forwarder.lookup(asked, asked) for _ in range(5)))
            assert fake.count("shared.example.com") == 1
            assert all(addresses(packed, "shared.example.com") == ["192.0.2.1"] for packed in answers)
            again = await forwarder.lookup(asked, asked)  # from the cache now
            assert addresses(again, "shared.example.com") == ["192.0.2.1"]
            assert fake.count("shared.example.com") == 1

    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_silent_upstream_is_passed_over_marked_down_and_taken_back_when_it_answers():
    async def test() -> None:
        with (
            upstream("a.example.com. 60 IN A 192.0.2.1") as first,
            upstream("a.example.com. 60 IN A 192.0.2.2") as second,
        ):
            first.down = True
            forwarder = forwarder_to(
                first.address, second.address, policy="sequential", timeout=0.2, max_fails=2, health_check=0.1
            )
            forwarder.cache = None  # each lookup goes upstream
            asked = question("a.example.com")
            for _ in range(2):  # the first fails each time; the second answers
                assert addresses(await forwarder.lookup(asked, asked), "a.example.com") == ["192.0.2.2"]
            assert first.count("a.example.com") == 2
            assert forwarder.upstreams[0].fails == 2 and forwarder.upstreams[0].checking
            await forwarder.lookup(asked, asked)  # down: tried last, so not at all
            assert first.count("a.example.com") == 2
            label = forwarder.upstreams[0].label
            while not forwarder.stats.health_failures[label]:  # health checks (". IN NS") go unanswered
                await asyncio.sleep(0.05)
            first.down = False
            while forwarder.upstreams[0].fails:  # until one gets its reply
                await asyncio.sleep(0.05)
            assert addresses(await forwarder.lookup(asked, asked), "a.example.com") == ["192.0.2.1"]
            assert first.count(".", "NS") >= 2

    asyncio.run(asyncio.wait_for(test(), 20))


def transports(fake, name: str) -> set[str]:
    """How the fake upstream was asked for ``name``: ``{"udp"}``, ``{"tcp"}`` or both."""
    return {how for (asked, _, how) in fake.asked if asked == name}


@pytest.mark.parametrize(
    ("client_tcp", "options", "upstream_tcp"),
    [
        (False, {}, False),  # as the client asked
        (True, {}, True),
        (True, {"prefer_udp": True}, False),
        (False, {"force_tcp": True}, True),
        (True, {"force_tcp": True, "prefer_udp": True}, True),  # force_tcp wins, as in CoreDNS
        (False, {"prefer_udp": True}, False),
    ],
)
def test_queries_go_upstream_the_way_the_client_asked_unless_told_otherwise(
    client_tcp, options, upstream_tcp
):
    async def test() -> None:
        with upstream("way.example.com. 60 IN A 192.0.2.5") as fake:
            forwarder = forwarder_to(fake.address, **options)
            assert forwarder.over_tcp(client_tcp) is upstream_tcp
            asked = question("way.example.com")
            packed = await forwarder.lookup(asked, asked, tcp=client_tcp)
            assert addresses(packed, "way.example.com") == ["192.0.2.5"]
            assert transports(fake, "way.example.com") == {"tcp" if upstream_tcp else "udp"}

    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.mark.parametrize("options", [{}, {"prefer_udp": True}])
def test_a_truncated_udp_answer_is_asked_again_over_tcp(options):
    async def test() -> None:
        with upstream("big.example.com. 60 IN A 192.0.2.6") as fake:
            fake.truncate.add("big.example.com")
            forwarder = forwarder_to(fake.address, **options)
            asked = question("big.example.com")
            assert addresses(await forwarder.lookup(asked, asked), "big.example.com") == ["192.0.2.6"]
            assert transports(fake, "big.example.com") == {"udp", "tcp"}

    asyncio.run(asyncio.wait_for(test(), 20))


async def until(check, timeout: float = 5.0) -> None:
    """Wait, on the loop, until ``check()`` holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("still not so after the timeout")


def rcode(packed: Packed) -> int:
    return packed.flags & 0xF


RECORD = "kept.example.com. 60 IN A 192.0.2.8"


def test_tcp_connections_are_reused_one_query_at_a_time_and_closed_after_expire():
    async def test() -> None:
        with stream_upstream(RECORD) as server:
            forwarder = forwarder_to(server.address, force_tcp=True, expire=0.3)
            forwarder.cache = None  # each lookup goes upstream
            asked = question("kept.example.com")
            for _ in range(3):
                assert addresses(await forwarder.lookup(asked, asked), "kept.example.com") == ["192.0.2.8"]
            streams = forwarder.upstreams[0].streams
            assert (server.opened, streams.reused, server.count("kept.example.com")) == (1, 2, 3)
            other = question("other.example.com")
            await asyncio.gather(forwarder.lookup(asked, asked), forwarder.lookup(other, other))
            assert server.opened == 2  # queries at once: one connection each, side by side
            await until(lambda: server.open == 0)  # both closed by kdns after 0.3 s unused
            assert streams.idle == 0
            await forwarder.lookup(asked, asked)
            assert server.opened == 3
            forwarder.close()

    asyncio.run(asyncio.wait_for(test(), 20))


def test_with_expire_0_each_tcp_query_has_its_own_connection():
    async def test() -> None:
        with stream_upstream(RECORD) as server:
            forwarder = forwarder_to(server.address, force_tcp=True, expire=0)
            forwarder.cache = None
            asked = question("kept.example.com")
            for _ in range(2):
                await forwarder.lookup(asked, asked)
            assert server.opened == 2
            await until(lambda: server.open == 0)

    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_connection_the_upstream_closed_while_idle_is_replaced():
    async def test() -> None:
        with stream_upstream(RECORD) as server:
            server.idle_timeout = 0.1  # the upstream closes idle connections long before kdns would
            forwarder = forwarder_to(server.address, force_tcp=True, timeout=1)
            forwarder.cache = None
            asked = question("kept.example.com")
            await forwarder.lookup(asked, asked)
            await until(lambda: server.open == 0)
            assert addresses(await forwarder.lookup(asked, asked), "kept.example.com") == ["192.0.2.8"]
            assert server.opened == 2
            assert forwarder.upstreams[0].fails == 0
            forwarder.close()

    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.fixture
def certificates(tmp_path) -> Certificates:
    return Certificates(tmp_path)


def test_tls_upstreams_are_asked_over_tls_on_connections_kept_open(certificates):
    async def test() -> None:
        with stream_upstream(RECORD, tls=certificates.server_context()) as server:
            forwarder = forwarder_to(f"tls://{server.address}", tls_ca=certificates.ca_file)
            forwarder.cache = None
            asked = question("kept.example.com")
            for tcp in (False, True):  # a UDP client's query goes over TLS too
                assert addresses(await forwarder.lookup(asked, asked, tcp=tcp), "kept.example.com") == [
                    "192.0.2.8"
                ]
            assert (server.opened, server.count("kept.example.com")) == (1, 2)
            missing = question("missing.example.com")
            assert rcode(await forwarder.lookup(missing, missing)) == NXDOMAIN
            forwarder.close()
            await until(lambda: server.open == 0)

    asyncio.run(asyncio.wait_for(test(), 20))


def test_without_tls_options_the_system_roots_verify_the_upstream(certificates):
    """A certificate of a CA the system does not trust is refused: no query is sent."""

    async def test() -> None:
        with stream_upstream(RECORD, tls=certificates.server_context()) as server:
            forwarder = forwarder_to(f"tls://{server.address}", timeout=1)
            asked = question("kept.example.com")
            assert rcode(await forwarder.lookup(asked, asked)) == SERVFAIL
            assert server.count("kept.example.com") == 0
            assert forwarder.upstreams[0].fails == 1

    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.mark.parametrize(
    ("servername", "answered"),
    [
        (None, False),  # the certificate does not name 127.0.0.1
        (SERVER_NAME, True),
        ("other.test", False),
    ],
)
def test_tls_servername_is_the_name_the_certificate_must_have(certificates, servername, answered):
    async def test() -> None:
        context = certificates.server_context(SERVER_NAME)
        with stream_upstream(RECORD, tls=context) as server:
            forwarder = forwarder_to(
                f"tls://{server.address}", tls_ca=certificates.ca_file, tls_servername=servername, timeout=1
            )
            asked = question("kept.example.com")
            packed = await forwarder.lookup(asked, asked)
            assert rcode(packed) == (NOERROR if answered else SERVFAIL)
            assert server.count("kept.example.com") == (1 if answered else 0)
            forwarder.close()

    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_client_certificate_is_shown_to_upstreams_that_ask_for_one(certificates):
    async def test() -> None:
        context = certificates.server_context(client_certificates=True)
        cert, key = certificates.client_files()
        with stream_upstream(RECORD, tls=context) as server:
            asked = question("kept.example.com")
            without = forwarder_to(f"tls://{server.address}", tls_ca=certificates.ca_file, timeout=1)
            assert rcode(await without.lookup(asked, asked)) == SERVFAIL
            with_cert = forwarder_to(
                f"tls://{server.address}", tls_cert=cert, tls_key=key, tls_ca=certificates.ca_file
            )
            assert addresses(await with_cert.lookup(asked, asked), "kept.example.com") == ["192.0.2.8"]
            assert server.count("kept.example.com") == 1
            with_cert.close()

    asyncio.run(asyncio.wait_for(test(), 20))


def test_kdns_answers_clients_over_udp_and_tcp_from_a_tls_upstream(certificates):
    """End to end: dnspython asks kdns's own listeners; kdns asks the DoT server over one connection."""

    async def test() -> None:
        with stream_upstream(RECORD, tls=certificates.server_context(SERVER_NAME)) as server:
            forward = ForwardSettings(
                upstreams=(f"tls://{server.address}",),
                tls_servername=SERVER_NAME,
                tls_ca=certificates.ca_file,
            )
            async with serving(forwarding(forward)) as listeners:
                port = listeners.port
                over_udp = await asyncio.to_thread(ask, port, "kept.example.com")
                assert [rdata.address for rdata in over_udp.answer[0]] == ["192.0.2.8"]
                over_tcp = await asyncio.to_thread(ask, port, "missing.example.com", tcp=True)
                assert over_tcp.rcode() == dns.rcode.NXDOMAIN
                cluster = await asyncio.to_thread(ask, port, "web.shop.svc.cluster.local", tcp=True)
                assert [rdata.address for rdata in cluster.answer[0]] == ["10.96.100.10"]
            assert [q.name for q in server.queries] == ["kept.example.com", "missing.example.com"]
            assert server.opened == 1

    asyncio.run(asyncio.wait_for(test(), 20))


def test_tls_files_that_cannot_be_used_stop_the_forwarder_being_built(certificates, tmp_path):
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=f"forward: tls: cannot use CA file {missing}"):
        forwarder_to("tls://127.0.0.1", tls_ca=missing)
    not_a_key = certificates.ca_file
    with pytest.raises(ValueError, match="forward: tls: cannot use certificate"):
        forwarder_to("tls://127.0.0.1", tls_cert=certificates.ca_file, tls_key=not_a_key)
    assert forwarder_to("127.0.0.1", tls_ca=missing) is not None  # no tls:// upstream: no TLS files read


def test_with_max_fails_0_an_upstream_is_never_marked_down_nor_health_checked():
    async def test() -> None:
        with upstream(RECORD) as silent, upstream(RECORD) as answering:
            silent.down = True
            forwarder = forwarder_to(
                silent.address,
                answering.address,
                policy="sequential",
                timeout=0.2,
                max_fails=0,
                health_check=0.05,
            )
            forwarder.cache = None
            asked = question("kept.example.com")
            for _ in range(3):
                assert addresses(await forwarder.lookup(asked, asked), "kept.example.com") == ["192.0.2.8"]
            assert silent.count("kept.example.com") == 3  # first every time: never down
            await asyncio.sleep(0.2)
            assert silent.count(".", "NS") == 0 and not forwarder.upstreams[0].checking
            assert forwarder.stats.all_down == 0

    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.mark.parametrize(
    ("options", "name", "rd"),
    [
        ({}, ".", True),  # CoreDNS's ". IN NS", recursion desired
        ({"health_check_rd": False, "health_check_domain": "Example.ORG."}, "example.org.", False),
    ],
)
def test_health_checks_ask_the_configured_name_with_the_configured_rd_bit(options, name, rd):
    async def test() -> None:
        with upstream(RECORD) as fake:
            fake.down = True
            forwarder = forwarder_to(fake.address, timeout=0.2, max_fails=1, health_check=0.05, **options)
            asked = question("kept.example.com")
            assert rcode(await forwarder.lookup(asked, asked)) == SERVFAIL
            await until(lambda: fake.count(name, "NS") >= 2)  # checks go on while it stays silent
            fake.down = False
            await until(lambda: forwarder.upstreams[0].fails == 0)
            assert fake.rd_bits[(name.lower().rstrip("."), "NS", rd)] >= 3
            assert fake.rd_bits[(name.lower().rstrip("."), "NS", not rd)] == 0

    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.mark.parametrize("failfast", [False, True])
def test_failfast_all_unhealthy_upstreams_answers_servfail_without_asking_any(failfast):
    async def test() -> None:
        with upstream(RECORD) as fake:
            fake.down = True
            forwarder = forwarder_to(
                fake.address,
                timeout=0.2,
                max_fails=1,
                health_check=5,
                failfast_all_unhealthy_upstreams=failfast,
            )
            forwarder.cache = None
            asked = question("kept.example.com")
            await forwarder.lookup(asked, asked)  # fails once: down
            fake.down = False
            packed = await forwarder.lookup(asked, asked)
            if failfast:
                assert rcode(packed) == SERVFAIL
                assert fake.count("kept.example.com") == 1  # not asked again while down
            else:  # tried anyway, last (here: only), as CoreDNS tries one when all are down
                assert addresses(packed, "kept.example.com") == ["192.0.2.8"]
                assert fake.count("kept.example.com") == 2
            assert forwarder.stats.all_down == 1

    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.mark.parametrize(
    ("failover", "first", "last", "answer", "asked_last"),
    [
        ((), SERVFAIL, NOERROR, SERVFAIL, 0),  # an answer is an answer
        ((SERVFAIL,), SERVFAIL, NOERROR, NOERROR, 1),
        ((SERVFAIL, REFUSED), REFUSED, NOERROR, NOERROR, 1),
        ((SERVFAIL,), REFUSED, NOERROR, REFUSED, 0),  # not a failover rcode
        ((SERVFAIL, REFUSED), SERVFAIL, REFUSED, REFUSED, 1),  # the last upstream's answer stands
        ((SERVFAIL,), SERVFAIL, None, SERVFAIL, 1),  # the last one silent: the earlier answer stands
    ],
)
def test_failover_rcodes_send_the_query_to_the_next_upstream(failover, first, last, answer, asked_last):
    async def test() -> None:
        with upstream(RECORD) as one, upstream(RECORD) as two:
            if first != NOERROR:
                one.rcodes["kept.example.com"] = first
            if last is None:
                two.down = True
            elif last != NOERROR:
                two.rcodes["kept.example.com"] = last
            forwarder = forwarder_to(
                one.address, two.address, policy="sequential", timeout=0.2, failover_rcodes=failover
            )
            forwarder.cache = None
            asked = question("kept.example.com")
            assert rcode(await forwarder.lookup(asked, asked)) == answer
            assert (one.count("kept.example.com"), two.count("kept.example.com")) == (1, asked_last)
            assert forwarder.upstreams[0].fails == 0  # an upstream that answers is healthy

    asyncio.run(asyncio.wait_for(test(), 20))


def test_round_robin_starts_each_query_at_the_next_upstream_then_tries_the_rest_in_order():
    """As CoreDNS's round_robin: when the one whose turn it is fails, the first of the others is next."""

    async def test() -> None:
        with upstream(RECORD) as a, upstream(RECORD) as b, upstream(RECORD) as c:
            b.down = True
            forwarder = forwarder_to(
                a.address, b.address, c.address, policy="round_robin", timeout=0.2, max_fails=100
            )
            forwarder.cache = None
            asked = question("kept.example.com")
            for _ in range(3):
                assert addresses(await forwarder.lookup(asked, asked), "kept.example.com") == ["192.0.2.8"]
            counts = [fake.count("kept.example.com") for fake in (a, b, c)]
            assert counts == [2, 1, 1]  # a; b failed, then a (not c); c

    asyncio.run(asyncio.wait_for(test(), 20))


def test_random_policy_spreads_queries_over_every_upstream():
    async def test() -> None:
        with upstream(RECORD) as a, upstream(RECORD) as b, upstream(RECORD) as c:
            forwarder = forwarder_to(a.address, b.address, c.address, policy="random")
            forwarder.cache = None
            asked = question("kept.example.com")
            for _ in range(60):
                await forwarder.lookup(asked, asked)
            counts = [fake.count("kept.example.com") for fake in (a, b, c)]
            assert sum(counts) == 60 and all(counts)  # each first at least once: misses 1 in 10^10

    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_health_check_domain_that_is_no_domain_name_stops_the_forwarder_being_built():
    with pytest.raises(ValueError, match="invalid label"):
        forwarder_to("127.0.0.1", health_check_domain="bad..name")


def pending(forwarder: Forwarder, name: str, channel: int = UDP4) -> PendingQuery:
    """The pending query kdns's responder makes of a query for ``name`` that came by ``channel``."""
    stanza = dataclasses.replace(forwarder.settings, except_names=())  # the block routes every name
    config = forwarding(stanza)
    (server,) = config.servers
    forwarders = {forwarder_key(stanza, server): forwarder}
    responder = build_answering(config, config.servers, example_zone(), forwarders).responder
    made = responder.respond(dns.message.make_query(name, "A").to_wire(), channel)
    assert isinstance(made, PendingQuery)
    return made


@pytest.mark.parametrize(("channel", "tcp"), [(UDP4, False), (UDP6, False), (TCP4, True), (TCP6, True)])
def test_a_pending_query_says_whether_it_came_over_tcp(channel, tcp):
    forwarder = forwarder_to("127.0.0.1")
    assert pending(forwarder, "example.com", channel).tcp is tcp


def test_excepted_names_are_passed_to_the_next_plugin_and_never_asked_upstream():
    async def test() -> None:
        with upstream("kept.example.com. 60 IN A 192.0.2.8\nexample.org. 60 IN A 192.0.2.9") as fake:
            forwarder = forwarder_to(fake.address, except_names=("Example.COM.",))
            with pytest.raises(PassToNext) as passed:
                await forwarder.forward(pending(forwarder, "kept.example.com"))
            assert passed.value.packed is None
            last = await forwarder.answer(pending(forwarder, "kept.example.com"))
            assert rcode(last) == SERVFAIL  # no next plugin to take it, as CoreDNS answers
            assert fake.count("kept.example.com") == 0
            forwarded = await forwarder.forward(pending(forwarder, "example.org"))
            assert addresses(forwarded, "example.org") == ["192.0.2.9"]
            assert forwarder.stats.passed_on == 1

    asyncio.run(asyncio.wait_for(test(), 20))


def test_next_rcodes_pass_the_upstream_answer_to_the_next_plugin_uncached():
    async def test() -> None:
        with upstream(RECORD) as first, upstream("gone.example.com. 60 IN A 192.0.2.10") as second:
            forwarder = forwarder_to(first.address, next_rcodes=(NXDOMAIN,))
            after = forwarder_to(second.address)
            for _ in range(2):  # the caller's part: ask the next plugin (here, another forwarder)
                query = pending(forwarder, "gone.example.com")
                try:
                    packed = await forwarder.forward(query)
                except PassToNext as passed:
                    assert rcode(passed.packed) == NXDOMAIN  # the first upstream's own answer
                    packed = await after.answer(query)
                assert addresses(packed, "gone.example.com") == ["192.0.2.10"]
            assert first.count("gone.example.com") == 2  # NXDOMAIN passed on is not cached
            assert forwarder.stats.passed_on == 2
            kept = await forwarder.forward(pending(forwarder, "kept.example.com"))
            assert addresses(kept, "kept.example.com") == ["192.0.2.8"]  # NOERROR is this one's answer
            last = await forwarder.answer(pending(forwarder, "gone.example.com"))
            assert rcode(last) == NXDOMAIN  # as the last plugin, next does not apply

    asyncio.run(asyncio.wait_for(test(), 20))


def first_address(reply: dns.message.Message) -> list[str]:
    return [rdata.address for rrset in reply.answer for rdata in rrset]


def test_next_hands_a_query_to_the_next_stanza_that_takes_its_name_and_caches_that_answer():
    """CoreDNS chains a block's forward stanzas: 'next' moves on to the first later stanza whose FROM
    holds the name; with none, NextOrFailure has no plugin left and answers SERVFAIL."""

    async def test() -> None:
        with (
            upstream(RECORD) as first,
            upstream("gone.example.com. 60 IN A 192.0.2.10\ngone.example.org. 60 IN A 192.0.2.11") as second,
            upstream("gone.example.org. 60 IN A 192.0.2.12") as third,
        ):
            config = forwarding(
                ForwardSettings(upstreams=(first.address,), next_rcodes=(NXDOMAIN,)),
                ForwardSettings(upstreams=(second.address,), zone="example.com", next_rcodes=(NXDOMAIN,)),
                ForwardSettings(upstreams=(third.address,), zone="org"),
            )
            async with serving(config) as listeners:
                port = listeners.port

                async def asked(name: str) -> dns.message.Message:
                    return await asyncio.to_thread(ask, port, name)

                assert first_address(await asked("gone.example.com")) == ["192.0.2.10"]
                again = await asked("gone.example.com")
                assert first_address(again) == ["192.0.2.10"]  # the chain's answer, cached for the block
                assert (first.count("gone.example.com"), second.count("gone.example.com")) == (1, 1)
                # example.com's stanza does not take example.org: the one after it does
                assert first_address(await asked("gone.example.org")) == ["192.0.2.12"]
                assert second.count("gone.example.org") == 0
                # NXDOMAIN again with no later stanza for the name: SERVFAIL
                assert (await asked("missing.example.com")).rcode() == dns.rcode.SERVFAIL
                assert (await asked("missing.example.net")).rcode() == dns.rcode.SERVFAIL
                assert third.count("missing.example.com") == third.count("missing.example.net") == 0
                # an rcode not in next is the stanza's own answer
                assert first_address(await asked("kept.example.com")) == ["192.0.2.8"]
                assert second.count("kept.example.com") == 0
                # an answer handed on is not cached: the first upstream is asked each time
                assert first.count("missing.example.com") == 1
                await asked("missing.example.com")
                assert first.count("missing.example.com") == 2

    asyncio.run(asyncio.wait_for(test(), 20))


def test_next_in_the_last_stanza_of_a_block_is_not_acted_on():
    """CoreDNS's forward hands on only to another forward: the last stanza's upstream answer stands."""

    async def test() -> None:
        with upstream(RECORD) as only:
            config = forwarding(ForwardSettings(upstreams=(only.address,), next_rcodes=(NXDOMAIN, NOERROR)))
            async with serving(config) as listeners:
                reply = await asyncio.to_thread(ask, listeners.port, "missing.example.com")
                assert reply.rcode() == dns.rcode.NXDOMAIN
                kept = await asyncio.to_thread(ask, listeners.port, "kept.example.com")
                assert first_address(kept) == ["192.0.2.8"]

    asyncio.run(asyncio.wait_for(test(), 20))


def rules(*lines: str) -> tuple[rewrite.Rule, ...]:
    """A block's ``rewrite`` lines, as the Corefile loader reads them."""
    return tuple(rewrite.parse(line.split()) for line in lines)


def test_rewrite_edns0_subnet_sends_each_clients_subnet_and_caches_answers_per_subnet():
    """RFC 7871 section 7.3: an answer for one client subnet is not another's. CoreDNS's cache keys by
    question alone (coredns/coredns#7036); kdns keys forwarded answers by the options sent too."""

    async def test() -> None:
        with upstream() as fake:
            fake.by_subnet["where.example.com"] = {"127.0.0.0/24": "192.0.2.1", "127.0.1.0/24": "192.0.2.2"}
            config = forwarding(
                ForwardSettings(upstreams=(fake.address,)), rewrites=rules("edns0 subnet set 24 56")
            )
            async with serving(config) as listeners:

                async def asked(source: str, **options: object) -> dns.message.Message:
                    return await asyncio.to_thread(
                        ask, listeners.port, "where.example.com", source=source, **options
                    )

                assert first_address(await asked("127.0.0.1")) == ["192.0.2.1"]
                assert first_address(await asked("127.0.1.1", tcp=True)) == ["192.0.2.2"]
                # from the cache, each subnet's own answer: the same question, two entries
                assert first_address(await asked("127.0.0.9")) == ["192.0.2.1"]
                assert first_address(await asked("127.0.1.9", use_edns=0)) == ["192.0.2.2"]
                assert fake.count("where.example.com") == 2
                sent = [
                    client_subnet(data)
                    for _, options in fake.options
                    for code, data in options
                    if code == ECS
                ]
                assert sent == ["127.0.0.0/24", "127.0.1.0/24"]
                # the client gets kdns's own OPT record: the upstream's ECS echo is not passed on
                echoed = await asked("127.0.0.1", use_edns=0)
                assert echoed.edns == 0 and echoed.options == ()

    asyncio.run(asyncio.wait_for(test(), 20))


def test_rewrite_edns0_local_options_are_made_per_query_and_revert_gives_the_client_its_own_back():
    async def test() -> None:
        with upstream(RECORD) as fake:
            config = forwarding(
                ForwardSettings(upstreams=(fake.address,)),
                rewrites=rules(
                    "continue edns0 local replace 0xffee kdns revert",
                    "continue edns0 local set 0xfff0 {client_ip}",
                    "edns0 local set 0xfff1 {qname}",
                ),
            )
            async with serving(config) as listeners:
                own = [dns.edns.GenericOption(0xFFEE, b"mine"), dns.edns.GenericOption(65001, b"kept")]
                query = dns.message.make_query("Kept.Example.com", "A", use_edns=0, options=own)
                reply = await asyncio.to_thread(ask, listeners.port, query, source="127.0.1.1")
                assert first_address(reply) == ["192.0.2.8"]
                assert [(o.otype, o.data) for o in reply.options] == [(0xFFEE, b"mine")]  # restored
                plain = await asyncio.to_thread(ask, listeners.port, "kept.example.com", use_edns=0)
                assert first_address(plain) == ["192.0.2.8"] and plain.options == ()
        # the client's own options of codes no rule names (65001) are not sent upstream
        assert fake.options == [
            (
                "kept.example.com",
                ((0xFFEE, b"kdns"), (0xFFF0, bytes([127, 0, 1, 1])), (0xFFF1, b"kept.example.com.")),
            ),
            ("kept.example.com", ((0xFFF0, bytes([127, 0, 0, 1])), (0xFFF1, b"kept.example.com."))),
        ]

    asyncio.run(asyncio.wait_for(test(), 20))


def test_servfail_when_no_upstream_answers():
    async def test() -> None:
        with upstream() as fake:
            fake.down = True
            forwarder = forwarder_to(fake.address, timeout=0.2)
            asked = question("nobody.example.com")
            packed = await forwarder.lookup(asked, asked)
            assert packed.flags & 0xF == SERVFAIL

    asyncio.run(asyncio.wait_for(test(), 20))


# -- the cache, on a clock the test moves ------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def upstream_reply(name: str, rcode: int = NOERROR, zone_records: str = "") -> dnslib.DNSRecord:
    reply = dnslib.DNSRecord(dnslib.DNSHeader(qr=1, rcode=rcode), q=dnslib.DNSQuestion(name))
    for rr in dnslib.RR.fromZone(zone_records) if zone_records else []:
        (reply.add_auth if rr.rtype == dnslib.QTYPE.SOA else reply.add_answer)(rr)
    return reply


def cached(cache: ResponseCache, name: str, reply: dnslib.DNSRecord) -> Packed:
    key = question(name)
    packed = pack_records(reply.header.rcode, (reply.rr, reply.auth, reply.ar), key[:-4], key[-4:])
    return cache.put(key, packed, reply)


def ttls(packed: Packed, name: str) -> list[int]:
    end = 12 + len(question(name))
    reply = dnslib.DNSRecord.parse(packed.render(bytes(12) + question(name), 0, 0, end, 65535, b""))
    return [rr.ttl for rr in (*reply.rr, *reply.auth)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_cached_answers_count_their_ttls_down_and_expire(clock):
    cache = ResponseCache(CacheSettings(), clock=clock)
    first = cached(
        cache, "example.com", upstream_reply("example.com", zone_records="example.com. 300 IN A 192.0.2.1")
    )
    assert ttls(first, "example.com") == [300]
    clock.now += 1.1
    assert ttls(cache.get(question("example.com")), "example.com") == [299]
    clock.now += 250
    assert ttls(cache.get(question("example.com")), "example.com") == [49]
    clock.now += 49
    assert cache.get(question("example.com")) is None
    assert cache.hits["success"] == 2 and cache.misses == 1


def test_negative_answers_live_for_the_soa_minimum_and_caps_hold(clock):
    soa = "example.com. 600 IN SOA ns.example.com. h.example.com. 1 2 3 4 30"
    cache = ResponseCache(CacheSettings(success_ttl=60), clock=clock)
    negative = cached(cache, "nx.example.com", upstream_reply("nx.example.com", NXDOMAIN, soa))
    assert ttls(negative, "nx.example.com") == [30]  # min(SOA TTL, SOA minimum): RFC 2308
    long = cached(
        cache,
        "long.example.com",
        upstream_reply("long.example.com", zone_records="long.example.com. 86400 IN A 192.0.2.3"),
    )
    assert ttls(long, "long.example.com") == [60]  # capped as 'cache 60' caps it
    clock.now += 31
    assert cache.get(question("nx.example.com")) is None
    assert ttls(cache.get(question("long.example.com")), "long.example.com") == [29]


def test_servfail_is_cached_briefly_and_stale_answers_wait_for_failure(clock):
    cache = ResponseCache(CacheSettings(servfail_ttl=5, serve_stale=3600, stale_verify=True), clock=clock)
    cached(cache, "broken.example.com", upstream_reply("broken.example.com", SERVFAIL))
    assert cache.get(question("broken.example.com")) is not None
    clock.now += 6
    assert cache.get(question("broken.example.com")) is None
    cached(
        cache,
        "old.example.com",
        upstream_reply("old.example.com", zone_records="old.example.com. 10 IN A 192.0.2.4"),
    )
    clock.now += 100
    assert cache.get(question("old.example.com")) is None  # expired: a fresh answer is wanted first
    stale = cache.stale(question("old.example.com"))  # every upstream failed
    assert ttls(stale, "old.example.com") == [0]


def test_an_answer_of_nothing_but_opt_records_is_cached_for_the_minimum_ttl(clock):
    reply = upstream_reply("odd.example.com")
    reply.add_answer(dnslib.EDNS0(udp_len=1232))
    packed = cached(cache := ResponseCache(CacheSettings(min_ttl=5), clock=clock), "odd.example.com", reply)
    assert ttls(packed, "odd.example.com") == []  # the sender's OPT is not passed on
    clock.now += 4
    assert cache.get(question("odd.example.com")) is not None
    clock.now += 2
    assert cache.get(question("odd.example.com")) is None


def test_keepttl_answers_keep_the_ttl_they_were_stored_with(clock):
    cache = ResponseCache(CacheSettings(keep_ttl=True, serve_stale=60, stale_verify=True), clock=clock)
    reply = upstream_reply("kept.example.com", zone_records="kept.example.com. 300 IN A 192.0.2.1")
    assert ttls(cached(cache, "kept.example.com", reply), "kept.example.com") == [300]
    clock.now += 250
    assert ttls(cache.get(question("kept.example.com")), "kept.example.com") == [300]
    clock.now += 51
    assert cache.get(question("kept.example.com")) is None  # it still expires
    assert ttls(cache.stale(question("kept.example.com")), "kept.example.com") == [300]  # as CoreDNS


SOA_30 = "example.org. 600 IN SOA ns.example.org. h.example.org. 1 2 3 4 30"


@pytest.mark.parametrize(
    ("disable", "name", "reply", "kept"),
    [
        ({"disable_success": ("example.com",)}, "a.example.com", "A", False),
        ({"disable_success": ("example.com",)}, "example.com", "A", False),
        ({"disable_success": ("example.com",)}, "notexample.com", "A", True),  # on label boundaries
        ({"disable_success": ("example.com",)}, "a.example.com", "NXDOMAIN", True),  # success only
        ({"disable_denial": ("example.com",)}, "a.example.com", "NXDOMAIN", False),
        ({"disable_denial": ("example.com",)}, "a.example.com", "NODATA", False),
        ({"disable_denial": ("example.com",)}, "a.example.com", "SERVFAIL", False),  # as CoreDNS's
        ({"disable_denial": ("example.com",)}, "a.example.com", "A", True),
        ({"disable_denial": ("b.example.com", ".")}, "x.example.net", "NXDOMAIN", False),  # the root: all
    ],
)
def test_disabled_kinds_are_not_cached_within_their_zones(clock, disable, name, reply, kept):
    cache = ResponseCache(CacheSettings(**disable), clock=clock)
    made = {
        "A": lambda: upstream_reply(name, zone_records=f"{name}. 300 IN A 192.0.2.1"),
        "NXDOMAIN": lambda: upstream_reply(name, NXDOMAIN, SOA_30),
        "NODATA": lambda: upstream_reply(name, NOERROR, SOA_30),
        "SERVFAIL": lambda: upstream_reply(name, SERVFAIL),
    }[reply]()
    cached(cache, name, made)
    assert (cache.get(question(name)) is not None) is kept
    assert len(cache) == int(kept)


def test_the_do_bit_of_a_cache_key_does_not_hide_its_name_from_disable(clock):
    cache = ResponseCache(CacheSettings(disable_success=("example.com",)), clock=clock)
    key = forward_key(question("a.example.com"), do=True)
    reply = upstream_reply("a.example.com", zone_records="a.example.com. 300 IN A 192.0.2.1")
    cache.put(key, pack_records(NOERROR, (reply.rr, [], []), key[:-5], key[-5:-1]), reply)
    assert len(cache) == 0


def cache_forwarder(fake, clock: Clock, **cache: object) -> Forwarder:
    """A forwarder to ``fake`` whose cache (these settings) runs on ``clock``."""
    forward = ForwardSettings(
        upstreams=(fake.address,), **{k: cache.pop(k) for k in ("max_concurrent",) if k in cache}
    )
    return Forwarder(
        forward,
        [UpstreamAddress(fake.host, fake.port)],
        udp_size=DEFAULT_MAX_UDP_SIZE,
        cache=ResponseCache(CacheSettings(**cache), clock=clock),  # type: ignore[arg-type]
    )


def test_serve_stale_immediate_answers_at_once_and_refreshes_in_the_background(clock):
    async def test() -> None:
        with upstream("old.example.com. 10 IN A 192.0.2.1") as fake:
            forwarder = cache_forwarder(fake, clock, serve_stale=3600)
            asked = question("old.example.com")
            await forwarder.lookup(asked, asked)
            fake.records = dnslib.RR.fromZone("old.example.com. 10 IN A 192.0.2.2")
            fake.slow["old.example.com"] = 0.3
            clock.now += 20  # expired, within serve_stale
            stale = [forwarder.cache.get(asked) for _ in range(5)]  # the responder's lookup
            assert all(
                addresses(p, "old.example.com") == ["192.0.2.1"] and ttls(p, "old.example.com") == [0]
                for p in stale
            )
            await until(lambda: forwarder.refreshing == 0)
            assert fake.count("old.example.com") == 2  # one refresh for the five
            fresh = await forwarder.lookup(asked, asked)
            assert addresses(fresh, "old.example.com") == ["192.0.2.2"] and ttls(
                fresh, "old.example.com"
            ) == [10]
            assert fake.count("old.example.com") == 2 and forwarder.inflight == 0

    asyncio.run(asyncio.wait_for(test(), 20))


def test_serve_stale_verify_asks_upstream_first_and_answers_stale_only_when_it_fails(clock):
    async def test() -> None:
        with upstream("old.example.com. 10 IN A 192.0.2.1") as fake:
            forwarder = cache_forwarder(fake, clock, serve_stale=3600, stale_verify=True)
            forwarder.settings = dataclasses.replace(forwarder.settings, timeout=0.2)
            asked = question("old.example.com")
            await forwarder.lookup(asked, asked)
            clock.now += 20
            assert forwarder.cache.get(asked) is None  # a fresh answer is wanted first
            fake.records = dnslib.RR.fromZone("old.example.com. 10 IN A 192.0.2.2")
            assert addresses(await forwarder.lookup(asked, asked), "old.example.com") == ["192.0.2.2"]
            clock.now += 20
            fake.down = True
            stale = await forwarder.lookup(asked, asked)
            assert addresses(stale, "old.example.com") == ["192.0.2.2"] and ttls(
                stale, "old.example.com"
            ) == [0]
            assert forwarder.refreshing == 0 and fake.count("old.example.com") == 3

    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.mark.parametrize(
    ("prefetch", "hits", "refreshed_at"),
    [
        # (AMOUNT, DURATION, PERCENTAGE), seconds after the 100 s answer was stored: a hit at each
        ((2, 60, 10), [50, 85, 91], 91),  # asked twice within a minute: refreshed with <= 10 s left
        ((2, 60, 10), [50, 85, 89], None),  # 11 s left: not yet
        ((2, 60, 10), [95], None),  # asked once: not popular
        ((3, 60, 10), [10, 80, 91, 92], 92),  # a 70 s gap starts the count again
        ((1, 60, 50), [49, 50], 50),  # 50%: from 50 s left
        ((1, 60, 10), [91], 91),
    ],
)
def test_prefetch_refreshes_popular_entries_before_they_expire(clock, prefetch, hits, refreshed_at):
    amount, window, percentage = prefetch

    async def test() -> None:
        with upstream("hot.example.com. 100 IN A 192.0.2.1") as fake:
            forwarder = cache_forwarder(
                fake, clock, prefetch=amount, prefetch_window=window, prefetch_percentage=percentage
            )
            asked = question("hot.example.com")
            await forwarder.lookup(asked, asked)
            stored = clock.now
            fake.records = dnslib.RR.fromZone("hot.example.com. 100 IN A 192.0.2.2")
            for second in hits:
                clock.now = stored + second
                answer = forwarder.cache.get(asked)
                assert addresses(answer, "hot.example.com") == ["192.0.2.1"]  # the refresh comes after
                await until(lambda: forwarder.refreshing == 0)
                assert fake.count("hot.example.com") == (
                    2 if refreshed_at is not None and second >= refreshed_at else 1
                )
            if refreshed_at is not None:
                fresh = forwarder.cache.get(asked)
                assert addresses(fresh, "hot.example.com") == ["192.0.2.2"] and ttls(
                    fresh, "hot.example.com"
                ) == [100]
                assert forwarder.cache.prefetches == 1

    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_refreshed_entry_stays_popular(clock):
    async def test() -> None:
        with upstream("hot.example.com. 100 IN A 192.0.2.1") as fake:
            forwarder = cache_forwarder(fake, clock, prefetch=2, prefetch_window=100)
            asked = question("hot.example.com")
            stored = clock.now
            await forwarder.lookup(asked, asked)
            for second in (85, 91, 182):  # refreshed at 91 (stored anew, 2 queries on), so at 182 again
                clock.now = stored + second
                forwarder.cache.get(asked)
                await until(lambda: forwarder.refreshing == 0)
            assert fake.count("hot.example.com") == 3

    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_refresh_shares_the_upstream_query_of_an_identical_question_in_flight(clock):
    async def test() -> None:
        with upstream("hot.example.com. 100 IN A 192.0.2.1") as fake:
            forwarder = cache_forwarder(fake, clock, prefetch=1)
            asked = question("hot.example.com")
            await forwarder.lookup(asked, asked)
            fake.slow["hot.example.com"] = 0.3
            clock.now += 95
            client = asyncio.ensure_future(forwarder.lookup(asked, asked, cache_checked=True))
            await asyncio.sleep(0.05)  # the client's query is on its way upstream
            for _ in range(10):
                forwarder.cache.get(asked)  # popular and nearly expired, but asked for already
            assert forwarder.refreshing == 0
            await client
            await until(lambda: forwarder.refreshing == 0)
            assert fake.count("hot.example.com") == 2

    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.mark.parametrize(("max_concurrent", "at_once"), [(1000, MAX_BACKGROUND_REFRESHES), (4, 4)])
def test_background_refreshes_are_bounded(clock, max_concurrent, at_once):
    names = [f"n{i}.example.com" for i in range(MAX_BACKGROUND_REFRESHES + 8)]

    async def test() -> None:
        with upstream("".join(f"{name}. 10 IN A 192.0.2.1\n" for name in names)) as fake:
            forwarder = cache_forwarder(fake, clock, serve_stale=3600, max_concurrent=max_concurrent)
            for name in names:
                await forwarder.lookup(question(name), question(name))
            fake.delay = 0.5
            clock.now += 20
            for name in names:  # every one stale, and served
                assert forwarder.cache.get(question(name)) is not None
            assert forwarder.refreshing == at_once and forwarder.inflight == at_once
            await until(lambda: sum(fake.count(name) for name in names) == len(names) + at_once)
            await asyncio.sleep(0.1)
            assert sum(fake.count(name) for name in names) == len(names) + at_once
            await until(lambda: forwarder.refreshing == 0)
            assert forwarder.inflight == 0

    asyncio.run(asyncio.wait_for(test(), 20))


def test_a_stale_answer_is_the_latest_one_but_never_a_servfail_over_an_answer(clock):
    cache = ResponseCache(CacheSettings(serve_stale=3600, stale_verify=True), clock=clock)
    name = "flip.example.com"
    cached(cache, name, upstream_reply(name, zone_records=f"{name}. 10 IN A 192.0.2.1"))
    clock.now += 20
    cached(cache, name, upstream_reply(name, SERVFAIL))  # the upstream failed once
    clock.now += 20
    assert addresses(cache.stale(question(name)), name) == ["192.0.2.1"]
    cached(cache, name, upstream_reply(name, NXDOMAIN, SOA_30))  # then the name went away
    clock.now += 60
    assert rcode(cache.stale(question(name))) == NXDOMAIN
