"""The cluster state and the zone index kept in step: events in, changed names out.

This is where an event becomes DNS: the state says which owners it affects, the builder computes
each owner's records as they were (before the state changes) and as they are, the index applies the
difference. The index keeps no owner's records, so they are computed twice per change rather than
held in memory. Listeners (the answer cache) hear which names changed, in the same synchronous step.

Other zones made of the same cluster (k8s_external's) are ``Derived``: an index of their own and a
builder of each owner's records in it, kept current in the same step as the cluster's names, their
changed names heard by the same listeners. The zone holds them only while something else does.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator
from itertools import islice
from typing import Protocol

from kdns.cluster.model import ClusterObject, Event, EventType, Owner, ServiceKind
from kdns.cluster.state import ClusterState
from kdns.config import ZoneSettings
from kdns.zone.index import UNLISTED, ZoneIndex
from kdns.zone.records import APEX_OWNER, Record, RecordBuilder

log = logging.getLogger(__name__)
ChangeListener = Callable[[set[bytes]], None]
# Owners whose records go to the index at a time: a snapshot's 100,000 records built all at once would
# be garbage spread through the heap that the records kept pin (queries see only the whole rebuild).
REBUILD_STEP = 500


class Derived(Protocol):
    """A zone built of the cluster's objects beside the cluster zone: its index, and its records of
    one owner as the state holds it."""

    index: ZoneIndex

    def records(self, owner: Owner, state: ClusterState) -> list[Record]: ...


class ClusterZone:
    def __init__(self, settings: ZoneSettings) -> None:
        self.settings = settings
        self.state = ClusterState(selected_namespaces=settings.namespace_labels is not None)
        self.builder = RecordBuilder(settings)
        self.layout = self.builder.layout
        self.index = ZoneIndex(self.layout.apexes)
        self._listeners: list[ChangeListener] = []
        self._held: dict[Owner, list[Record]] = {}  # the index's records of owners that failed to build
        self._derived: weakref.WeakValueDictionary[Hashable, Derived] = weakref.WeakValueDictionary()
        self._derived_before: dict[Derived, dict[Owner, list[Record]]] = {}
        self._rebuild({APEX_OWNER: []})

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def off_change(self, listener: ChangeListener) -> None:
        self._listeners.remove(listener)

    def derived(self, key: Hashable, build: Callable[[], Derived]) -> Derived:
        """The derived zone of ``key`` (its settings), built with ``build`` and loaded with every
        owner the first time it is asked for; kept current while its caller holds it."""
        zone = self._derived.get(key)
        if zone is None:
            zone = build()
            owners = (APEX_OWNER, *self.state.owners())
            zone.index.replace([([], zone.records(owner, self.state)) for owner in owners])
            self._derived[key] = zone
        return zone

    def objects(self) -> list[ClusterObject]:
        """Every stored object, namespaces first (to build a zone with other settings)."""
        state = self.state
        return [
            *state.namespaces.values(),
            *state.services.values(),
            *state.slices.values(),
            *state.pods.values(),
            *state.imports.values(),
        ]

    def listing(self) -> None:
        """The cluster is being listed: a name not held yet may exist (see ``ZoneIndex.complete``)."""
        self.index.complete = False

    def listed(self) -> None:
        """Every collection is listed: answers made while it was not are dropped by the listeners."""
        if self.index.complete:
            return
        self.index.complete = True
        for listener in self._listeners:
            listener({UNLISTED})

    def apply(self, event: Event) -> set[bytes]:
        return self._apply((event,))

    def load(self, objects: Iterable[ClusterObject]) -> set[bytes]:
        """Add objects (a snapshot); each owner is rebuilt once, after all its objects are in."""
        return self._apply(Event(EventType.ADDED, obj) for obj in objects)

    def replace(self, kind: str, objects: list[ClusterObject], *, step: int = 100) -> Iterator[int]:
        """Make the objects of ``kind`` exactly ``objects`` (a relist), ``step`` changes at a time.

        A generator: each step is applied whole (every owner it touches is rebuilt) before it yields
        the number of objects it changed, so the caller may let queries run between steps."""
        changes = self.state.changes_to(kind, objects)
        while batch := list(islice(changes, step)):
            self._apply(batch)
            yield len(batch)

    def _apply(self, events: Iterable[Event]) -> set[bytes]:
        """Store events, then rebuild each owner they affect once, from its records before the first.

        The index follows whatever the state took in, even when ``events`` fails part way."""
        state, builder = self.state, self.builder
        before: dict[Owner, list[Record]] = {}
        derived = self._derived_before = {zone: {} for zone in self._derived.values()}
        try:
            for event in events:
                for owner in state.affected(event):
                    if owner not in before:
                        held = self._held.pop(owner, None)
                        before[owner] = builder.records(owner, state, quiet=True) if held is None else held
                        for zone, records in derived.items():
                            records[owner] = _records_of(zone, owner, state, [])
                state.apply(event)
        finally:
            touched = self._rebuild(before)
        return touched

    def _rebuild(self, before: dict[Owner, list[Record]]) -> set[bytes]:
        """Give the index each owner's records as they are now. An owner whose records cannot be built
        keeps the ones the index holds, and they are remembered (the state no longer tells them)."""
        changes, failure, touched = [], None, set()
        for owner, old in before.items():
            try:
                changes.append((old, self.builder.records(owner, self.state)))
            except Exception as exc:  # raised below, once the index is whole
                self._held[owner] = old
                failure = failure or exc
            if len(changes) >= REBUILD_STEP:
                touched |= self.index.replace(changes)
                changes.clear()
        touched |= self.index.replace(changes)
        for zone, held in self._derived_before.items():
            touched |= zone.index.replace(
                (old, _records_of(zone, owner, self.state, old)) for owner, old in held.items()
            )
        self._derived_before = {}
        if touched:
            for listener in self._listeners:
                listener(touched)
        if failure is not None:
            raise failure
        return touched

    def counts(self) -> dict[str, int]:
        """Object and name counts for the ready line and metrics."""
        state = self.state
        return {
            "services": len(state.services),
            "headless": sum(s.kind is ServiceKind.HEADLESS for s in state.services.values()),
            "endpoints": sum(len(s.endpoints) for s in state.slices.values()),
            "pods": len(state.pods),
            "namespaces": len(state.namespace_names()),
            "names": len(self.index.nodes),
        }


def _records_of(zone: Derived, owner: Owner, state: ClusterState, failed: list[Record]) -> list[Record]:
    """A derived zone's records of ``owner``; ``failed`` (the records it keeps) when they cannot be
    built, which is logged: one zone's fault must not stop the cluster's names."""
    try:
        return zone.records(owner, state)
    except Exception:
        log.exception(
            "records of %s %s/%s not built; the last ones are kept", owner.kind, owner.namespace, owner.name
        )
        return failed
