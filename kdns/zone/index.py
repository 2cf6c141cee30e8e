"""The zone as the resolver reads it: lowercase wire name -> ``Node``.

A node exists while it holds a record or has a child that exists, so empty non-terminals answer
NODATA and everything else NXDOMAIN, decided when the zone changes and never per query. Each owner's
records are kept so that ``replace`` applies only the difference, in one synchronous step: a query
never sees half of an owner's update. ``replace`` returns the names whose answers changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from kdns.cluster.model import Owner
from kdns.zone.names import parent
from kdns.zone.records import Record


class Node:
    """The records at one name, by type; ``refs`` counts records plus existing children."""

    __slots__ = ("refs", "rrsets")

    def __init__(self) -> None:
        self.rrsets: dict[int, list[object]] = {}
        self.refs = 0


class ZoneIndex:
    def __init__(self, apexes: Iterable[bytes]) -> None:
        self.nodes: dict[bytes, Node] = {}
        self.serial = int(time.time())
        self._owners: dict[Owner, frozenset[Record]] = {}
        for apex in apexes:
            node = self.nodes.setdefault(apex, Node())
            node.refs += 1  # pinned: an apex always exists

    def get(self, name: bytes) -> Node | None:
        return self.nodes.get(name)

    def owners(self) -> Iterator[tuple[Owner, frozenset[Record]]]:
        return iter(self._owners.items())

    def records_of(self, owner: Owner) -> frozenset[Record]:
        return self._owners.get(owner, frozenset())

    def replace(self, owner: Owner, records: frozenset[Record]) -> set[bytes]:
        """Make ``owner``'s records exactly ``records``; return the names whose answers changed."""
        old = self._owners.get(owner, frozenset())
        if old == records:
            return set()
        touched: set[bytes] = set()
        for name, rtype, rdata in old - records:
            self._remove(name, rtype, rdata, touched)
        for name, rtype, rdata in records - old:
            self._add(name, rtype, rdata, touched)
        if records:
            self._owners[owner] = records
        else:
            self._owners.pop(owner, None)
        self.serial = max(self.serial + 1, int(time.time()))
        return touched

    def _add(self, name: bytes, rtype: int, rdata: object, touched: set[bytes]) -> None:
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = Node()
            self._link_parent(name, touched)
        node.rrsets.setdefault(rtype, []).append(rdata)
        node.refs += 1
        touched.add(name)

    def _remove(self, name: bytes, rtype: int, rdata: object, touched: set[bytes]) -> None:
        node = self.nodes[name]
        rdatas = node.rrsets[rtype]
        rdatas.remove(rdata)
        if not rdatas:
            del node.rrsets[rtype]
        touched.add(name)
        self._unref(name, node, touched)

    def _link_parent(self, name: bytes, touched: set[bytes]) -> None:
        """A new node makes its parent exist (an empty non-terminal) up to an existing ancestor."""
        while True:
            name = parent(name)
            node = self.nodes.get(name)
            if node is not None:
                node.refs += 1
                return
            node = self.nodes[name] = Node()
            node.refs = 1
            touched.add(name)

    def _unref(self, name: bytes, node: Node, touched: set[bytes]) -> None:
        while True:
            node.refs -= 1
            if node.refs:
                return
            del self.nodes[name]
            touched.add(name)
            name = parent(name)
            node = self.nodes[name]
