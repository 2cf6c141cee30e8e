"""The zone as the resolver reads it: lowercase wire name -> its records.

A name exists while it holds a record or has a child that exists, so empty non-terminals answer
NODATA and everything else NXDOMAIN, decided when the zone changes and never per query. Only names
with children keep a count of them.

The index is built to be small, as a large cluster has hundreds of thousands of names. A name's
records are one flat tuple ``(rtype, rdata, rtype, rdata, ...)`` in the compact forms of ``records``
(``()`` for an empty non-terminal). Most names of a large cluster are endpoints', and cost little
beyond their own bytes: a name whose one record is an endpoint's PTR keeps the target name alone,
and records without data of their own (an address the name spells, SRVs to the name itself) are one
tuple shared by every name that has the same. ``get`` reads them back as a ``Node`` of RRsets.

No owner's records are kept. ``replace`` is given, for each owner that changed, its records as the
index holds them and as they are now (the cluster zone computes both from the cluster state), and
applies the difference in one synchronous step, so a query never sees half an update. It returns
the names whose records or existence changed.

An index is ``complete`` unless its source says the cluster is still being listed: until then a
name it lacks may yet exist, and answers that say so depend on ``UNLISTED``, a name no query has,
which the cluster zone reports changed once the listing is done.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from itertools import chain

from kdns.codes import AAAA, PTR, SRV, A
from kdns.zone.names import packed_of_dashed, parent
from kdns.zone.records import ADDRESS_OF_NAME, PTR_ENDPOINT, Record

Pair = tuple[int, object]
SHARED_LIMIT = 4096  # distinct shared records kept (a cluster has few: its lists of ports)
UNLISTED = b""  # what answers made while the index is incomplete depend on (no wire name is empty)


class Node:
    """The records at one name, by type, as the resolver reads them: SRV ``(port, target, copies)``
    (``copies``: how many records CoreDNS makes of it, see ``records``), PTR ``(target, rank)`` where
    rank 0 is a Service's cluster IP and rank 1 an endpoint."""

    __slots__ = ("rrsets",)

    def __init__(self, rrsets: dict[int, list[object]]) -> None:
        self.rrsets = rrsets


class ZoneIndex:
    def __init__(self, apexes: Iterable[bytes]) -> None:
        self.nodes: dict[bytes, tuple[object, ...] | bytes] = {}
        self.serial = int(time.time())
        self._children: dict[bytes, int] = {}  # names with existing children: how many
        self.complete = True  # False while the cluster is being listed for the first time
        self._pinned = frozenset(apexes)  # an apex always exists
        self._shared: dict[tuple[object, ...], tuple[object, ...]] = {}  # records without data
        for apex in self._pinned:
            self.nodes[apex] = ()

    def get(self, name: bytes) -> Node | None:
        value = self.nodes.get(name)
        if value is None:
            return None
        if isinstance(value, bytes):
            return Node({PTR: [(value, 1)]})
        rrsets: dict[int, list[object]] = {}
        flat = value
        for i in range(0, len(flat), 2):
            rtype, rdata = flat[i], flat[i + 1]
            if rtype == SRV:
                rdata = (rdata, name, 1) if type(rdata) is int else rdata if len(rdata) == 3 else (*rdata, 1)
            elif rtype == ADDRESS_OF_NAME:
                rdata = packed_of_dashed(name[1 : name[0] + 1])
                rtype = A if len(rdata) == 4 else AAAA
            elif rtype == PTR:
                rdata = (rdata, 0)
            elif rtype == PTR_ENDPOINT:
                rtype, rdata = PTR, (rdata, 1)
            rrsets.setdefault(rtype, []).append(rdata)
        return Node(rrsets)

    def replace(self, changes: Iterable[tuple[Iterable[Record], Iterable[Record]]]) -> set[bytes]:
        """Replace owners' records: ``changes`` holds, per owner, its records as the index holds them
        and as they are now. Return the names whose records or existence changed."""
        nodes = self.nodes
        changed: list[bytes] = []
        removals: list[tuple[bytes, list[Pair]]] = []
        touched: set[bytes] = set()
        # Every name gets its new records before any name is taken away, so a name that exists before
        # and after (an empty non-terminal above a name that moves) never disappears in between.
        for old, new in changes:
            held, now = dict.fromkeys(old), dict.fromkeys(new)  # an owner's records are a set
            if held.keys() == now.keys():
                continue
            gone = _by_name(r for r in held if r not in now)
            for name, pairs in _by_name((r for r in now if r not in held) if held else now).items():
                taken = gone.pop(name, ())
                value = nodes.get(name)
                if value is None:
                    self._store(name, _flat(pairs))
                    self._link_parent(name, touched)
                else:
                    self._store(name, _merged(value, taken, pairs))
                changed.append(name)
            removals.extend(gone.items())
        for name, pairs in removals:
            self._store(name, _merged(nodes[name], pairs, ()))
            changed.append(name)
        if not changed:
            return touched
        touched.update(changed)
        for name in changed:
            if not nodes.get(name, True) and name not in self._children and name not in self._pinned:
                self._remove(name, touched)
        self.serial = max(self.serial + 1, int(time.time()))
        return touched

    def _store(self, name: bytes, flat: tuple[object, ...]) -> None:
        """Keep a name's records in the smallest form that reads back the same."""
        if len(flat) == 2 and flat[0] == PTR_ENDPOINT:
            self.nodes[name] = flat[1]
        elif flat and all(rdata is None or type(rdata) is int for rdata in flat[1::2]):
            shared = self._shared.get(flat)
            if shared is None and len(self._shared) < SHARED_LIMIT:
                shared = self._shared[flat] = flat
            self.nodes[name] = flat if shared is None else shared
        else:
            self.nodes[name] = flat

    def _link_parent(self, name: bytes, touched: set[bytes]) -> None:
        """A new name makes its parent exist (an empty non-terminal) up to an existing ancestor."""
        children, nodes = self._children, self.nodes
        while True:
            name = parent(name)
            count = children.get(name)
            children[name] = 1 if count is None else count + 1
            if name in nodes:
                return
            nodes[name] = ()
            touched.add(name)

    def _remove(self, name: bytes, touched: set[bytes]) -> None:
        """Take away a name with neither records nor children, and ancestors left the same way."""
        children, nodes = self._children, self.nodes
        while True:
            del nodes[name]
            touched.add(name)
            name = parent(name)
            count = children[name] - 1
            if count:
                children[name] = count
                return
            del children[name]
            if nodes[name] or name in self._pinned:
                return


def _by_name(records: Iterable[Record]) -> dict[bytes, list[Pair]]:
    """Records grouped by name, in order."""
    out: dict[bytes, list[Pair]] = {}
    for name, rtype, rdata in records:
        pairs = out.get(name)
        if pairs is None:
            out[name] = [(rtype, rdata)]
        else:
            pairs.append((rtype, rdata))
    return out


def _flat(pairs: Iterable[Pair]) -> tuple[object, ...]:
    return tuple(chain.from_iterable(pairs))


def _unstored(value: tuple[object, ...] | bytes) -> tuple[object, ...]:
    return (PTR_ENDPOINT, value) if isinstance(value, bytes) else value


def _merged(
    value: tuple[object, ...] | bytes, removed: Iterable[Pair], added: Iterable[Pair]
) -> tuple[object, ...]:
    """A name's records without one copy of each removed record (the same record may come from two
    owners), with the added records after the rest."""
    flat = _unstored(value)
    if not removed:
        return flat + _flat(added)
    pending = set(removed)
    kept = []
    for i in range(0, len(flat), 2):
        pair = (flat[i], flat[i + 1])
        if pair in pending:
            pending.remove(pair)
        else:
            kept.append(pair)
    assert not pending, f"records missing from the index: {pending}"
    return _flat(kept) + _flat(added)
