"""Zone transfers (CoreDNS's ``transfer`` for the cluster zones): what one holds, and how it is cut
into messages."""

from __future__ import annotations

import re

import dns.message
import dns.name
import dns.rrset
import pytest

from kdns.codes import IXFR, SOA, TCP_MAX_SIZE, TXT
from kdns.plugins.transfer import ZoneTransfer, batches, zone_rrsets
from kdns.resolver import Resolver, RRset
from kdns.wire.query import ixfr_serial
from kdns.wire.records import rrset_lines
from kdns.zone.names import to_wire
from tests.support.zone import example_zone


def query(name: str = "cluster.local", qtype: str = "AXFR", serial: int | None = None) -> bytes:
    message = dns.message.make_query(name, qtype)
    if serial is not None:  # an IXFR names the version the client holds (RFC 1995)
        soa = f". . {serial} 0 0 0 0"
        message.authority.append(dns.rrset.from_text(dns.name.from_text(name), 0, "IN", "SOA", soa))
    return message.to_wire()


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
