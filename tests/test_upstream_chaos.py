"""Upstream chaos: ``kdns serve --upstream`` in front of fake upstreams on loopback that time out, send
garbage, forge replies (another ID, another question, another source address or port), cut replies
short, send absurd TTLs or records of other names. Asked by dnspython over UDP and TCP, kdns must only
ever hand out (and cache) the real upstream's answer to the question asked, fail over, and answer
SERVFAIL or REFUSED within a bound when it cannot do better."""

from __future__ import annotations

import itertools
import socket
import statistics
import threading
import time

import dns.message
import dns.rcode
import pytest

from tests.fake_upstream import FORGED, FakeUpstream, upstream
from tests.support.client import HOST, ask
from tests.support.process import running

TIMEOUT = 0.3  # --forward-timeout of these tests
RECORDS = """
example.com. 300 IN A 93.184.216.34
id.example.com. 300 IN A 192.0.2.1
question.example.com. 300 IN A 192.0.2.2
race.example.com. 300 IN A 192.0.2.3
bait.example.com. 300 IN A 192.0.2.4
silent.example.com. 300 IN A 192.0.2.5
garbage.example.com. 300 IN A 192.0.2.6
cut.example.com. 300 IN A 192.0.2.7
tc-cut.example.com. 300 IN A 192.0.2.8
huge.example.com. 300 IN A 192.0.2.9
negative.example.com. 300 IN A 192.0.2.10
minus-one.example.com. 300 IN A 192.0.2.11
"""


def addresses(reply: dns.message.Message) -> list[str]:
    """Every address in every section of ``reply``."""
    return [
        rdata.address
        for section in (reply.answer, reply.authority, reply.additional)
        for rrset in section
        for rdata in rrset
        if hasattr(rdata, "address")
    ]


def timed(port: int, name: str, **kwargs: object) -> tuple[dns.message.Message, float]:
    started = time.monotonic()
    reply = ask(port, name, **kwargs)
    return reply, time.monotonic() - started


def second_loopback_address() -> str:
    """127.0.0.2 where it can be bound (Linux routes all of 127/8 to lo), else 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.2", 0))
        except OSError:
            return HOST
    return "127.0.0.2"


@pytest.fixture
def fake():
    with upstream(RECORDS) as fake:
        yield fake


def test_forged_replies_never_reach_a_client_or_the_cache(fake: FakeUpstream):
    """A wrong ID, another question, and a reply with the right ID and question from another address
    and from another port (both sent before the real one): only the real answer is used, and it is
    what the cache keeps."""
    fake.spoof_first.add("id.example.com")
    fake.wrong_question.add("question.example.com")
    fake.race["race.example.com"] = (second_loopback_address(), HOST)
    expected = {
        "id.example.com": "192.0.2.1",
        "question.example.com": "192.0.2.2",
        "race.example.com": "192.0.2.3",
    }
    with running("--upstream", fake.address, "--forward-timeout", "1") as server:
        for name, address in expected.items():
            for tcp in (False, True, False):  # asked upstream, then answered from the cache
                assert addresses(ask(server.port, name, tcp=tcp)) == [address], name
            assert fake.count(name) == 1, name
        # the forged reply's own question was never cached: it is asked upstream, which knows nothing
        reply = ask(server.port, "other.question.example.com")
        assert reply.rcode() == dns.rcode.NXDOMAIN and FORGED not in addresses(reply)
        assert fake.count("other.question.example.com") == 1
        assert not any(FORGED in line for line in server.log)


def test_records_of_other_names_answer_no_other_question(fake: FakeUpstream):
    """Records an upstream adds for names it was not asked about stay with the answer they came in:
    the cache is keyed by question, so they never answer a question of their own."""
    fake.add_extra(
        "bait.example.com", f"example.com. 86400 IN A {FORGED}\nvictim.example.net. 86400 IN A {FORGED}"
    )
    with running("--upstream", fake.address) as server:
        bait = ask(server.port, "bait.example.com")
        assert "192.0.2.4" in addresses(bait)
        for tcp in (False, True):
            assert addresses(ask(server.port, "example.com", tcp=tcp)) == ["93.184.216.34"]
            victim = ask(server.port, "victim.example.net", tcp=tcp)
            assert victim.rcode() == dns.rcode.NXDOMAIN and not addresses(victim)
        assert fake.count("example.com") == fake.count("victim.example.net") == 1


@pytest.mark.parametrize(
    ("name", "ttl", "most"),
    [
        ("huge.example.com", 2**31 - 1, 3600),  # the largest legal TTL: capped at --cache-ttl's default
        ("negative.example.com", 2**31, 5),  # top bit set: 0 (RFC 2181 section 8), then the cache's floor
        ("minus-one.example.com", 2**32 - 1, 5),
    ],
)
def test_absurd_ttls_are_capped_from_the_first_answer(fake: FakeUpstream, name: str, ttl: int, most: int):
    fake.ttl[name] = ttl
    fake.ttl["missing-" + name] = ttl  # the NXDOMAIN's SOA
    with running("--upstream", fake.address) as server:
        for tcp in (False, True):
            reply = ask(server.port, name, tcp=tcp)
            assert [rrset.ttl for rrset in reply.answer] and all(rrset.ttl <= most for rrset in reply.answer)
            denial = ask(server.port, "missing-" + name, tcp=tcp)
            assert denial.rcode() == dns.rcode.NXDOMAIN
            assert all(rrset.ttl <= min(most, 1800) for rrset in denial.authority)
        assert fake.count(name) == 1


def test_absurd_ttls_without_the_cache(fake: FakeUpstream):
    """With --no-cache TTLs pass through, but one with its top bit set still means 0."""
    fake.ttl["huge.example.com"] = 2**31 - 1
    fake.ttl["negative.example.com"] = 2**31
    with running("--upstream", fake.address, "--no-cache") as server:
        assert ask(server.port, "huge.example.com").answer[0].ttl == 2**31 - 1
        assert ask(server.port, "negative.example.com").answer[0].ttl == 0


@pytest.mark.slow
def test_failover_from_an_upstream_that_times_out_sends_garbage_or_cuts_replies():
    """The first upstream fails each name its own way; the second answers, about one timeout later.
    A reply that says TC and then comes cut short over TCP fails over too."""
    with upstream(RECORDS) as bad, upstream(RECORDS) as good:
        bad.silent.add("silent.example.com")
        bad.garbage.add("garbage.example.com")
        bad.cut["cut.example.com"] = ("udp", "tcp")
        bad.truncate.add("tc-cut.example.com")
        bad.cut["tc-cut.example.com"] = ("tcp",)
        args = ("--forward-policy", "sequential", "--forward-timeout", str(TIMEOUT), "--max-fails", "100")
        with running("--upstream", bad.address, good.address, *args) as server:
            cases = {
                "silent.example.com": "192.0.2.5",
                "garbage.example.com": "192.0.2.6",
                "cut.example.com": "192.0.2.7",
                "tc-cut.example.com": "192.0.2.8",
            }
            for name, address in cases.items():
                reply, seconds = timed(server.port, name)
                assert addresses(reply) == [address], name
                assert seconds < TIMEOUT + 1, (name, seconds)  # slack for a loaded machine
                assert bad.count(name) >= 1 and good.count(name) == 1, name
                assert addresses(ask(server.port, name)) == [address]  # the cache holds the good answer
            assert bad.asked[("tc-cut.example.com", "A", "tcp")] == 1


@pytest.mark.slow
def test_servfail_within_a_bound_when_every_upstream_fails():
    """Two upstreams, one silent and one sending garbage: SERVFAIL after about one timeout each."""
    with upstream(RECORDS) as silent, upstream(RECORDS) as garbage:
        silent.down = True
        names = [f"fail-{n}.example.com" for n in range(6)]
        garbage.garbage.update(names)
        args = ("--forward-timeout", str(TIMEOUT), "--forward-policy", "random")
        with running("--upstream", silent.address, garbage.address, *args) as server:
            latencies = []
            for name in names:
                reply, seconds = timed(server.port, name, tcp=name.endswith("5.example.com"))
                assert reply.rcode() == dns.rcode.SERVFAIL
                assert not addresses(reply)
                latencies.append(seconds)
            bound = 2 * TIMEOUT + 1  # slack for a loaded machine
            assert max(latencies) < bound, latencies
            assert min(latencies) >= 2 * TIMEOUT * 0.9, latencies  # both were tried
            print(f"SERVFAIL after {min(latencies):.3f}-{max(latencies):.3f} s (bound {bound:.1f} s)")


def test_source_ports_and_ids_are_random(fake: FakeUpstream):
    """Each upstream query comes from its own port with its own ID (RFC 5452), seen at the upstream."""
    count = 200
    names = [f"r{n}.example.com" for n in range(count)]
    with running("--upstream", fake.address, "--no-cache") as server:
        for name in names:
            assert ask(server.port, name).rcode() == dns.rcode.NXDOMAIN
    seen = [(port, qid) for _, port, qid, name in fake.sources if name in set(names)]
    assert len(seen) == count
    ports, ids = [p for p, _ in seen], [i for _, i in seen]
    steps = sum(1 for a, b in itertools.pairwise(ports) if abs(a - b) <= 1)
    assert len(set(ports)) >= count - 5, len(set(ports))
    assert len(set(ids)) >= count - 5, len(set(ids))
    assert steps <= 5, "source ports follow one another"
    assert max(ids) - min(ids) > 50_000 and max(ports) - min(ports) > 5_000
    print(f"{count} upstream queries: {len(set(ports))} source ports, {len(set(ids))} IDs")


@pytest.mark.slow
def test_refused_quickly_past_max_concurrent(fake: FakeUpstream):
    """With --max-concurrent 8 and 8 slow queries in flight, the next ones get REFUSED at once."""
    slow = [f"slow-{n}.example.com" for n in range(8)]
    for name in slow:
        fake.add(f"{name}. 300 IN A 192.0.2.99")
        fake.slow[name] = 1.5
    with running("--upstream", fake.address, "--max-concurrent", "8", "--forward-timeout", "3") as server:
        replies: dict[str, dns.message.Message] = {}
        threads = [
            threading.Thread(target=lambda n=name: replies.update({n: ask(server.port, n)})) for name in slow
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while sum(fake.count(name) for name in slow) < len(slow) and time.monotonic() < deadline:
            time.sleep(0.01)
        latencies = []
        for n in range(50):
            reply, seconds = timed(server.port, f"more-{n}.example.com", tcp=n % 5 == 0)
            assert reply.rcode() == dns.rcode.REFUSED
            latencies.append(seconds)
        for thread in threads:
            thread.join(5)
        assert {name: addresses(reply) for name, reply in replies.items()} == {
            n: ["192.0.2.99"] for n in slow
        }
        assert max(latencies) < 0.5, latencies
        assert sum(fake.count(f"more-{n}.example.com") for n in range(50)) == 0
        print(
            f"REFUSED past max_concurrent: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
