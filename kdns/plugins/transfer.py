"""CoreDNS's ``transfer`` for the cluster zones: who may transfer which zone, and the zone's records
in AXFR order, sent as a series of messages on one TCP connection.

A server block with ``transfer`` answers AXFR and IXFR questions before its other plugins, as
CoreDNS's plugin order has it:

- over UDP they are REFUSED;
- a question outside the transfer's zones goes on to the next plugin (which refuses it);
- a client outside ``to`` is REFUSED; an IXFR whose authority section is not one SOA gets SERVFAIL;
- only an apex of the cluster's forward zones is transferred (CoreDNS's ``kubernetes`` transfers
  no reverse zone, and nothing below an apex); other names go on to the next plugin;
- the transfer is the SOA, every RRset of every name the zone holds, and the SOA again. There is no
  journal, so an IXFR for the current serial or a later one gets the SOA alone (the client is up to
  date) and one for an older serial (or 0) the whole zone, as an AXFR.

Records go out ``MAX_RECORDS`` to a message, as CoreDNS batches them, fewer when that many would not
fit the 64 KiB of a TCP message. They are read from the zone as the messages are made, not all at
once, so a large zone does not stop the server while it is read (the whole SOA-to-SOA transfer
carries one serial; a record changed meanwhile is sent as it is when its message is made, as
CoreDNS's transfer reads the cluster as it goes). ``zone_rrsets`` is also what ``kdns dump`` prints.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import chain

from kdns.codes import IN, IXFR, NOERROR, REFUSED, SERVFAIL, SOA, TCP_MAX_SIZE
from kdns.config import TRANSFER_TO_ANYONE, TransferSettings
from kdns.resolver import Answer, Resolver, RRset
from kdns.wire.packed import pack
from kdns.zone.names import labels_of, longest_zone, to_wire
from kdns.zone.records import PRESENCE

MAX_RECORDS = 501  # CoreDNS sends its batch of records once it holds more than 500
SOA_SERIAL = 2  # where the serial sits in a SOA's rdata
Outcome = int | Iterator[RRset] | None  # an rcode, the records to send, or None: the next plugin's


def zone_rrsets(resolver: Resolver, apex: bytes) -> Iterator[RRset]:
    """The SOA of the zone ``apex``, then every RRset of every other name and type it holds, names in
    DNSSEC's canonical order (by labels from the right), each RRset as the resolver answers it (SRV
    weights, the PTR a cluster IP wins, TTLs). Names holding no records (namespaces, empty
    non-terminals) give nothing; neither do pod names computed per query (``pods insecure``)."""
    index, layout = resolver.index, resolver.layout
    yield from resolver.resolve(apex, SOA).answer
    names = [name for name in index.nodes if layout.zone_of(name) == apex]
    names.sort(key=lambda name: labels_of(name)[::-1])
    for name in names:
        node = index.get(name)
        if node is None:
            continue
        for rtype in sorted(t for t in node.rrsets if t not in (PRESENCE, SOA)):
            answer = resolver.resolve(name, rtype)
            if answer is not None:
                yield from (rrset for rrset in answer.answer if rrset.name == name)


def batches(rrsets: Iterable[RRset], size: int = MAX_RECORDS) -> Iterator[tuple[RRset, ...]]:
    """``rrsets`` in runs of ``size`` records, in order; an RRset the end of a run falls in is split."""
    batch: list[RRset] = []
    count = 0
    for rrset in rrsets:
        rdatas = rrset.rdatas
        while rdatas:
            part, rdatas = rdatas[: size - count], rdatas[size - count :]
            batch.append(rrset if len(part) == len(rrset.rdatas) else replace(rrset, rdatas=part))
            count += len(part)
            if count == size:
                yield tuple(batch)
                batch, count = [], 0
    if batch:
        yield tuple(batch)


class Transfer:
    """One server block's ``transfer``: its zones, who may transfer, and the cluster it transfers."""

    def __init__(
        self, settings: TransferSettings, *, zones: tuple[bytes, ...], cluster: Resolver | None
    ) -> None:
        self.zones = tuple(to_wire(zone) for zone in settings.zones) or zones
        self.anyone = TRANSFER_TO_ANYONE in settings.to
        self.networks = tuple(ipaddress.ip_network(to) for to in settings.to if to != TRANSFER_TO_ANYONE)
        self.cluster = cluster

    def allows(self, client: str | None) -> bool:
        """Whether ``client`` (an IP address) is one ``to`` names."""
        if self.anyone:
            return True
        try:
            ip = ipaddress.ip_address(client or "")
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def answer(
        self, qname: bytes, qtype: int, qclass: int, *, tcp: bool, client: str | None, serial: int | None
    ) -> Outcome:
        """What an AXFR or IXFR (``qtype``) for ``qname`` (lowercase wire) gets: an rcode, the records
        to send, read as they are sent (the SOA first and last; the SOA alone for an IXFR that is up
        to date), or ``None`` when the next plugin answers. ``serial`` is the IXFR's (``None``: its
        authority section is not one SOA)."""
        if not tcp:
            return REFUSED
        if qclass != IN or longest_zone(qname, self.zones) is None:
            return None
        if not self.allows(client):
            return REFUSED
        if qtype == IXFR and serial is None:
            return SERVFAIL
        cluster = self.cluster
        if cluster is None or qname not in cluster.layout.forward:
            return None
        rrsets = zone_rrsets(cluster, qname)
        soa = next(rrsets)
        if qtype == IXFR and serial and serial >= soa.rdatas[0][SOA_SERIAL]:
            return iter((soa,))
        return chain((soa,), rrsets, (soa,))


@dataclass(slots=True, eq=False)
class ZoneTransfer:
    """A zone transfer for the exchange to send: its messages, each made as the one before has gone."""

    data: bytes  # the query as it came
    qid: int
    flags: int
    end: int  # where the question ends in ``data``
    opt: bytes  # our OPT record for each message, or b""
    qname: bytes  # lowercase wire
    records: Iterable[RRset]  # read once, as the messages are made
    recursion_available: bool
    sent: int = 0  # records in the messages made so far

    def messages(self) -> Iterator[bytes]:
        """The responses carrying the records, in order, each within 64 KiB."""
        for batch in batches(self.records):
            yield from self._fitted(batch)
            self.sent += sum(len(rrset.rdatas) for rrset in batch)

    def _fitted(self, batch: tuple[RRset, ...]) -> Iterator[bytes]:
        """``batch`` as one response, or as several when it would not fit one."""
        qtype_class = self.data[self.end - 4 : self.end]
        packed = pack(
            Answer(rcode=NOERROR, answer=batch),
            self.qname,
            qtype_class,
            recursion_available=self.recursion_available,
        )
        count = sum(len(rrset.rdatas) for rrset in batch)
        if self.end + len(packed.body) + len(self.opt) > TCP_MAX_SIZE and count > 1:
            for half in batches(batch, (count + 1) // 2):
                yield from self._fitted(half)
            return
        yield packed.render(self.data, self.qid, self.flags, self.end, TCP_MAX_SIZE, self.opt)
