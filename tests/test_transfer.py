"""Zone transfers (CoreDNS's ``transfer`` for the cluster zones): who gets one, what it holds, and how
it is cut into messages; in process through the responder ``kdns serve`` builds, then end to end with
dig and dnspython against a running kdns."""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from kdns.codes import AXFR, IXFR, NOERROR, REFUSED, SOA, TCP_MAX_SIZE, TXT
from kdns.config import ServeConfig, ServerSettings, TransferSettings
from kdns.plugins.transfer import MAX_RECORDS, ZoneTransfer, batches, zone_rrsets
from kdns.resolver import Resolver, RRset
from kdns.responder import Responder
from kdns.wire.query import TCP4, TCP6, UDP4, ixfr_serial
from kdns.wire.records import rrset_lines
from kdns.zone.names import to_wire
from tests.support.client import ask, dig
from tests.support.objects import big_namespace, endpoint_slice, namespace, service
from tests.support.packets import framed
from tests.support.paths import EXAMPLE
from tests.support.polling import eventually
from tests.support.process import run_kdns, running
from tests.support.zone import example_zone, responder_of, zone_of

ALLOWED = "127.0.0.2"  # the end-to-end server lets this address transfer, and no other
OTHER = "127.0.0.1"


def transferring(*to: str, zones: tuple[str, ...] = ()) -> Responder:
    """The responder of ``kdns serve`` for the example cluster with ``transfer`` to ``to``."""
    server = ServerSettings(transfer=TransferSettings(to=to, zones=zones))
    return responder_of(example_zone(), ServeConfig(servers=(server,)))


def query(name: str = "cluster.local", qtype: str = "AXFR", serial: int | None = None) -> bytes:
    message = dns.message.make_query(name, qtype)
    if serial is not None:  # an IXFR names the version the client holds (RFC 1995)
        soa = f". . {serial} 0 0 0 0"
        message.authority.append(dns.rrset.from_text(dns.name.from_text(name), 0, "IN", "SOA", soa))
    return message.to_wire()


def current_serial(responder: Responder) -> int:
    reply = dns.message.from_wire(responder.respond(query(qtype="SOA"), TCP4, (ALLOWED, 50000)))
    return reply.answer[0][0].serial


def outcome(responder: Responder, data: bytes, channel: int, client: str) -> str | list[dns.message.Message]:
    """The rcode's name of a one-message reply, or the messages of a transfer."""
    reply = responder.respond(data, channel, (client, 50000))  # the client's socket address
    if isinstance(reply, ZoneTransfer):
        return [dns.message.from_wire(message, one_rr_per_rrset=True) for message in reply.messages()]
    return dns.rcode.to_text(dns.message.from_wire(reply).rcode())


def records(messages: list[dns.message.Message]) -> list[str]:
    return [line for message in messages for rrset in message.answer for line in rrset.to_text().splitlines()]


# -- who gets a transfer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "zones", "data", "channel", "client", "expected"),
    [
        (("127.0.0.2/32",), (), query(), TCP4, ALLOWED, "transfer"),
        (("127.0.0.0/8",), (), query(), TCP4, ALLOWED, "transfer"),
        (("127.0.0.0/8",), (), query(), TCP6, f"::ffff:{ALLOWED}", "transfer"),  # dual-stack socket
        (("*",), (), query(), TCP6, "fd00::9", "transfer"),
        (("*",), (), query("CLUSTER.Local"), TCP4, OTHER, "transfer"),
        (("127.0.0.2/32",), (), query(), UDP4, ALLOWED, "REFUSED"),  # only over TCP, as CoreDNS
        (("*",), (), query(qtype="IXFR", serial=1), UDP4, ALLOWED, "REFUSED"),
        (("127.0.0.2/32",), (), query(), TCP4, OTHER, "REFUSED"),  # not in 'to'
        (("10.0.0.0/8", "fd00::/8"), (), query(), TCP4, ALLOWED, "REFUSED"),
        (("*",), (), query("in-addr.arpa"), TCP4, ALLOWED, "REFUSED"),  # no reverse zone, as CoreDNS
        (("*",), (), query("svc.cluster.local"), TCP4, ALLOWED, "REFUSED"),  # only an apex
        (("*",), (), query("example.com"), TCP4, ALLOWED, "REFUSED"),  # outside the block
        (("*",), ("example.org",), query(), TCP4, ALLOWED, "REFUSED"),  # outside the transfer's zones
        (("*",), ("cluster.local",), query(), TCP4, ALLOWED, "transfer"),
        (("*",), (), query(qtype="IXFR"), TCP4, ALLOWED, "SERVFAIL"),  # no SOA to say what it holds
        (("127.0.0.2/32",), (), query(qtype="IXFR"), TCP4, OTHER, "REFUSED"),  # 'to' is checked first
    ],
)
def test_who_gets_a_transfer(to, zones, data, channel, client, expected):
    got = outcome(transferring(*to, zones=zones), data, channel, client)
    assert (got if isinstance(got, str) else "transfer") == expected


@pytest.mark.parametrize("channel", [UDP4, TCP4])
def test_without_transfer_every_zone_transfer_is_refused(channel):
    responder = responder_of(example_zone())
    for data in (query(), query(qtype="IXFR", serial=1), query("in-addr.arpa")):
        assert outcome(responder, data, channel, ALLOWED) == "REFUSED"


def test_the_client_decides_each_time_and_nothing_is_kept():
    """An answer to one client is never served to the next from the answer cache."""
    responder = transferring("127.0.0.2/32")
    before = len(responder)
    assert outcome(responder, query(), TCP4, OTHER) == "REFUSED"
    assert outcome(responder, query(), UDP4, ALLOWED) == "REFUSED"
    assert outcome(responder, query(), TCP4, ALLOWED) != "REFUSED"
    assert outcome(responder, query(), TCP4, OTHER) == "REFUSED"
    assert len(responder) == before


def test_transfers_count_as_queries_for_the_metrics():
    responder = transferring("127.0.0.2/32")
    outcome(responder, query(), TCP4, OTHER)
    outcome(responder, query(), TCP4, ALLOWED)
    counts = responder.query_counts()
    assert counts[(TCP4, AXFR, REFUSED)] == 1
    assert counts[(TCP4, AXFR, NOERROR)] == 1


def test_ixfr_without_a_journal():
    """CoreDNS keeps no history: a client as new as the zone (or newer) gets the SOA alone, an older
    one (or serial 0) the whole zone, in the form of an AXFR."""
    responder = transferring("*")
    serial = current_serial(responder)
    axfr = records(outcome(responder, query(), TCP4, ALLOWED))
    for held in (serial, serial + 1):
        messages = outcome(responder, query(qtype="IXFR", serial=held), TCP4, ALLOWED)
        assert len(messages) == 1
        assert [rrset.rdtype for rrset in messages[0].answer] == [dns.rdatatype.SOA]
        assert messages[0].answer[0][0].serial == serial
    for held in (serial - 1, 0):
        assert records(outcome(responder, query(qtype="IXFR", serial=held), TCP4, ALLOWED)) == axfr


# -- what a transfer holds ----------------------------------------------------------------------


def test_a_transfer_is_the_zone_between_two_soas():
    responder = transferring("*")
    data = query("Cluster.LOCAL")
    messages = outcome(responder, data, TCP4, ALLOWED)
    soa = [rrset for rrset in messages[0].answer if rrset.rdtype == dns.rdatatype.SOA]
    lines = records(messages)
    assert lines[0] == lines[-1] == soa[0].to_text()
    assert sum(line.split()[3] == "SOA" for line in lines) == 2
    zone = example_zone()
    resolver = Resolver(zone.index, zone.layout, zone.settings)
    walked = [
        line for rrset in zone_rrsets(resolver, to_wire("cluster.local")) for line in rrset_lines(rrset)
    ]
    assert Counter(_normalised(lines[:-1])) == Counter(_normalised(walked))
    query_id = dns.message.from_wire(data).id
    for message in messages:
        assert message.id == query_id
        assert message.flags & dns.flags.AA
        assert message.rcode() == dns.rcode.NOERROR
        assert message.question[0].name.to_text() == "Cluster.LOCAL."  # the client's own case


def test_the_zone_is_walked_in_canonical_order_with_the_soa_first():
    zone = example_zone()
    resolver = Resolver(zone.index, zone.layout, zone.settings)
    rrsets = list(zone_rrsets(resolver, to_wire("cluster.local")))
    assert (rrsets[0].name, rrsets[0].rtype) == (to_wire("cluster.local"), SOA)
    owners = [dns.name.from_wire(rrset.name, 0)[0] for rrset in rrsets]
    assert owners == sorted(owners)  # dnspython orders names as DNSSEC does (RFC 4034 6.1)
    keys = [(rrset.name, rrset.rtype) for rrset in rrsets]
    assert len(keys) == len(set(keys))
    # names that exist without records of their own (a namespace, _tcp) give nothing
    assert to_wire("shop.svc.cluster.local") not in {rrset.name for rrset in rrsets}
    expected = "web.shop.svc.cluster.local. 5 in a 10.96.100.10"  # the README's tour
    assert expected in _normalised(line for rrset in rrsets for line in rrset_lines(rrset))


def test_kdns_dump_prints_what_a_transfer_holds():
    """Both read the zone with one walk: the dump's cluster.local section is the transfer's records."""
    result = run_kdns("dump", "--snapshot", str(EXAMPLE))
    section = result.stdout.split("$ORIGIN cluster.local.")[1].split("$ORIGIN")[0]
    messages = outcome(transferring("*"), query(), TCP4, ALLOWED)
    assert Counter(_normalised(section.splitlines())) == Counter(_normalised(records(messages)[:-1]))


# -- how it is cut into messages ------------------------------------------------------------------


def _rrset(name: str, count: int, size: int = 10) -> RRset:
    """TXT records of ``size`` bytes each, all different."""
    return RRset(to_wire(name), TXT, 5, tuple((b"%0*d" % (size, i),) for i in range(count)))


@pytest.mark.parametrize(
    ("sizes", "size", "shapes"),
    [
        ([1, 2], 501, [[1, 2]]),
        ([501], 501, [[501]]),
        ([500, 2], 501, [[500, 1], [1]]),  # an RRset the end of a message falls in is split
        ([1200], 501, [[501], [501], [198]]),
        ([3, 3, 3], 2, [[2], [1, 1], [2], [2], [1]]),
        ([], 501, []),
    ],
)
def test_records_go_out_in_batches_of_a_fixed_count(sizes, size, shapes):
    rrsets = [_rrset(f"n{i}.cluster.local", count) for i, count in enumerate(sizes)]
    got = list(batches(rrsets, size))
    assert [[len(rrset.rdatas) for rrset in batch] for batch in got] == shapes
    assert [rdata for batch in got for rrset in batch for rdata in rrset.rdatas] == [
        rdata for rrset in rrsets for rdata in rrset.rdatas
    ]


def test_coredns_sends_501_records_a_message():
    """CoreDNS's transfer sends its batch once it holds more than 500 records."""
    zone = zone_of(big_namespace())
    server = ServerSettings(transfer=TransferSettings(to=("*",)))
    responder = responder_of(zone, ServeConfig(servers=(server,)))
    messages = outcome(responder, query(), TCP4, ALLOWED)
    counts = [sum(len(rrset) for rrset in message.answer) for message in messages]
    assert len(counts) >= 3
    assert counts[:-1] == [MAX_RECORDS] * (len(counts) - 1)
    assert 0 < counts[-1] <= MAX_RECORDS


def test_messages_never_pass_64_kib():
    """501 records of 200 bytes would not fit one TCP message: the batch is cut until it does."""
    big = [_rrset("big.cluster.local", 1200, size=200)]
    first = _rrset("cluster.local", 1)
    data = query()
    transfer = ZoneTransfer(data, 7, 0x0100, len(data), b"", to_wire("cluster.local"), [first, *big], False)
    wires = list(transfer.messages())
    assert all(len(wire) <= TCP_MAX_SIZE for wire in wires)
    messages = [dns.message.from_wire(wire, one_rr_per_rrset=True) for wire in wires]
    assert not any(message.flags & dns.flags.TC for message in messages)
    texts = [rdata.to_text() for message in messages for rrset in message.answer for rdata in rrset]
    assert len(texts) == 1201
    expected = [f'"{i:0200d}"' for i in range(1200)]
    assert texts[1:] == expected  # every record, in order


@pytest.mark.parametrize(
    ("wire", "serial"),
    [
        (query(qtype="IXFR", serial=42), 42),  # dnspython compresses the SOA's owner to the question
        (query(qtype="IXFR", serial=2**32 - 1), 2**32 - 1),
        (query(qtype="IXFR"), None),
        (query(qtype="IXFR", serial=42)[:-3], None),  # the SOA's RDATA cut short
        (query(qtype="IXFR", serial=42)[:-18], None),  # and its serial too
    ],
)
def test_the_serial_an_ixfr_holds(wire, serial):
    assert ixfr_serial(wire, _question_end(wire)) == serial


def test_an_ixfr_authority_that_is_no_single_soa_has_no_serial():
    for records_ in (
        [dns.rrset.from_text("cluster.local.", 0, "IN", "NS", "ns.dns.cluster.local.")],
        [dns.rrset.from_text("cluster.local.", 0, "IN", "SOA", ". . 1 0 0 0 0")] * 2,
    ):
        message = dns.message.make_query("cluster.local", "IXFR")
        message.authority.extend(records_)
        wire = message.to_wire()
        assert ixfr_serial(wire, _question_end(wire)) is None


def _question_end(wire: bytes) -> int:
    end = wire.index(0, 12) + 5
    assert wire[end - 4 : end - 2] == IXFR.to_bytes(2, "big")
    return end


def _normalised(lines) -> list[str]:
    """Zone-file lines compared by their fields, the SOA serial as SERIAL (two zones built apart), in
    lowercase (names are compared without regard to case, and the zone's texts have no capitals)."""
    out = []
    for line in lines:
        if line.strip() and not line.startswith(";"):
            fields = " ".join(line.lower().split())
            out.append(re.sub(r" soa (\S+ \S+) \d+ ", r" soa \1 SERIAL ", fields))
    return out


# -- end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transfer_server(big_cluster):
    """kdns on the example cluster and ``big`` (enough records for several messages), letting only
    ``ALLOWED`` transfer."""
    with running("--snapshot", str(EXAMPLE), str(big_cluster), "--transfer-to", ALLOWED) as server:
        yield server


@pytest.fixture(scope="module")
def dumped(big_cluster) -> list[str]:
    """``kdns dump``'s cluster.local records for the same snapshots."""
    result = run_kdns("dump", "--snapshot", str(EXAMPLE), str(big_cluster))
    assert result.returncode == 0, result.stderr
    return _normalised(result.stdout.split("$ORIGIN cluster.local.")[1].split("$ORIGIN")[0].splitlines())


@pytest.mark.slow
def test_dig_axfr_shows_what_kdns_dump_prints(transfer_server, dumped):
    out = dig(transfer_server.port, "-b", ALLOWED, "axfr", "cluster.local")
    lines = _normalised(out.splitlines())
    assert lines[0] == lines[-1] and " soa " in lines[0]
    assert Counter(lines[:-1]) == Counter(dumped)
    size = re.search(r"XFR size: (\d+) records \(messages (\d+)", out)
    assert int(size[1]) == len(dumped) + 1
    assert int(size[2]) == -(-(len(dumped) + 1) // MAX_RECORDS)  # CoreDNS's batches


@pytest.mark.slow
def test_dnspython_inbound_xfr_builds_the_dumped_zone(transfer_server, dumped):
    origin = dns.name.from_text("cluster.local")
    received = dns.zone.Zone(origin)
    dns.query.inbound_xfr("127.0.0.1", received, port=transfer_server.port, source=ALLOWED, timeout=10)
    serial = received.get_soa().serial
    text = "\n".join(line.replace(" SERIAL ", f" {serial} ") for line in dumped)
    assert received == dns.zone.from_text(text, origin, relativize=True)


@pytest.mark.slow
def test_ixfr_end_to_end(transfer_server):
    port = transfer_server.port
    serial = ask(port, "cluster.local", "SOA").answer[0][0].serial
    up_to_date = list(
        dns.query.xfr(
            "127.0.0.1", "cluster.local", "IXFR", port=port, source=ALLOWED, serial=serial, timeout=10
        )
    )
    assert [[rrset.rdtype for rrset in m.answer] for m in up_to_date] == [[dns.rdatatype.SOA]]
    older = dns.query.xfr("127.0.0.1", "cluster.local", "IXFR", port=port, source=ALLOWED, serial=serial - 1)
    axfr = dns.query.xfr("127.0.0.1", "cluster.local", port=port, source=ALLOWED)
    assert records(list(older)) == records(list(axfr))


@pytest.mark.slow
def test_refused_to_others_and_over_udp(transfer_server):
    port = transfer_server.port
    assert "Transfer failed." in dig(port, "-b", OTHER, "axfr", "cluster.local")
    axfr = dns.message.make_query("cluster.local", "AXFR")
    reply = dns.query.tcp(axfr, "127.0.0.1", port=port, source=OTHER, timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED
    reply = dns.query.udp(axfr, "127.0.0.1", port=port, source=ALLOWED, timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED
    reverse = dns.message.make_query("in-addr.arpa", "AXFR")
    assert dns.query.tcp(reverse, "127.0.0.1", port=port, source=ALLOWED).rcode() == dns.rcode.REFUSED


@pytest.mark.slow
def test_queries_on_the_connection_are_answered_during_a_transfer(transfer_server):
    axfr = dns.message.make_query("cluster.local", "AXFR")
    lookup = dns.message.make_query("web.shop.svc.cluster.local", "A")
    with _connection(transfer_server.port) as sock:
        sock.sendall(framed(axfr.to_wire()))
        first = dns.message.from_wire(_read_message(sock))
        assert first.id == axfr.id and first.answer[0].rdtype == dns.rdatatype.SOA
        sock.sendall(framed(lookup.to_wire()))
        seen, soas = [], 1
        for _ in range(100):  # a few messages of the transfer and the lookup's answer
            reply = dns.message.from_wire(_read_message(sock))
            seen.append(reply.id)
            soas += sum(rrset.rdtype == dns.rdatatype.SOA for rrset in reply.answer)
            if lookup.id in seen and (soas == 2 or reply.rcode() != NOERROR):
                break
        assert lookup.id in seen


@pytest.mark.slow
def test_a_client_leaving_mid_transfer_harms_nothing(transfer_server):
    axfr = dns.message.make_query("cluster.local", "AXFR")
    for _ in range(3):
        with _connection(transfer_server.port) as sock:
            sock.sendall(framed(axfr.to_wire()))
            sock.recv(100)
    assert ask(transfer_server.port, "web.shop.svc.cluster.local").rcode() == dns.rcode.NOERROR
    assert not transfer_server.logged("Traceback")


def _connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(ALLOWED, 0))


def _read_message(sock: socket.socket) -> bytes:
    length = int.from_bytes(_read_exactly(sock, 2))
    return _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


@pytest.fixture(scope="module")
def crowded(tmp_path_factory) -> Path:
    """A snapshot whose transfer is far more than a connection's buffers hold: a headless Service of
    3000 named endpoints (about 12,000 records)."""
    members = [
        {"addresses": [f"10.50.{i // 250}.{i % 250 + 1}"], "hostname": f"m{i}", "conditions": {"ready": True}}
        for i in range(3000)
    ]
    http = [("http", 80, "TCP")]
    objects = [
        namespace("crowd"),
        service("many", "crowd", ip="None", ports=http),
        endpoint_slice("many-1", "many", "crowd", addresses=members, ports=http),
    ]
    path = tmp_path_factory.mktemp("snapshots") / "crowd.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    return path


@pytest.mark.slow
def test_a_client_that_stops_reading_is_closed_and_the_transfer_ends(crowded):
    """Messages are made as the client takes them; one that takes nothing more is closed after the
    idle timeout, as any connection whose answers go unread, and its transfer goes with it."""
    args = ("--snapshot", str(crowded), "--transfer-to", ALLOWED, "--tcp-idle-timeout", "1")
    with running(*args) as server:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((ALLOWED, 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(framed(dns.message.make_query("cluster.local", "AXFR").to_wire()))
            assert _read_message(sock)  # the first message, then nothing more is read
            eventually(lambda: server.logged("zone transfer of cluster.local. to"), timeout=10)
        assert server.logged("the client left")
        assert ask(server.port, "many.crowd.svc.cluster.local").rcode() == dns.rcode.NOERROR
        axfr = dns.query.xfr("127.0.0.1", "cluster.local", port=server.port, source=ALLOWED, timeout=10)
        assert sum(len(rrset) for message in axfr for rrset in message.answer) > 12000
