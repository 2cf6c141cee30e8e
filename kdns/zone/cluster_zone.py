"""The cluster state and the zone index kept in step: events in, changed names out.

This is where an event becomes DNS: the state says which owners it affects, the builder computes
each owner's records, the index applies the difference. Listeners (the answer cache) hear which
names changed, in the same synchronous step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from kdns.cluster.model import ClusterObject, Event, EventType, Owner, ServiceKind
from kdns.cluster.state import ClusterState
from kdns.config import ZoneSettings
from kdns.zone.index import ZoneIndex
from kdns.zone.records import APEX_OWNER, RecordBuilder

ChangeListener = Callable[[set[bytes]], None]


class ClusterZone:
    def __init__(self, settings: ZoneSettings) -> None:
        self.settings = settings
        self.state = ClusterState()
        self.builder = RecordBuilder(settings)
        self.layout = self.builder.layout
        self.index = ZoneIndex(self.layout.apexes)
        self._listeners: list[ChangeListener] = []
        self.rebuild([APEX_OWNER])

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def off_change(self, listener: ChangeListener) -> None:
        self._listeners.remove(listener)

    def objects(self) -> list[ClusterObject]:
        """Every stored object, namespaces first (to build a zone with other settings)."""
        state = self.state
        return [
            *state.namespaces.values(),
            *state.services.values(),
            *state.slices.values(),
            *state.pods.values(),
        ]

    def apply(self, event: Event) -> set[bytes]:
        return self.rebuild(self.state.apply(event))

    def load(self, objects: Iterable[ClusterObject]) -> set[bytes]:
        """Add objects (a snapshot); each owner is rebuilt once, after all its objects are in."""
        owners: dict[Owner, None] = {}
        for obj in objects:
            owners.update(dict.fromkeys(self.state.apply(Event(EventType.ADDED, obj))))
        return self.rebuild(owners)

    def replace(self, kind: str, objects: list[ClusterObject], *, step: int = 100) -> Iterator[int]:
        """Make the objects of ``kind`` exactly ``objects`` (a relist), ``step`` changes at a time.

        A generator: each step is applied whole (every owner it touches is rebuilt) before it yields
        the number of objects it changed, so the caller may let queries run between steps."""
        changes = self.state.changes_to(kind, objects)
        while batch := list(islice(changes, step)):
            owners: dict[Owner, None] = {}
            for event in batch:
                owners.update(dict.fromkeys(self.state.apply(event)))
            self.rebuild(owners)
            yield len(batch)

    def rebuild(self, owners: Iterable[Owner]) -> set[bytes]:
        touched: set[bytes] = set()
        for owner in owners:
            touched |= self.index.replace(owner, self.builder.records(owner, self.state))
        if touched:
            for listener in self._listeners:
                listener(touched)
        return touched

    def counts(self) -> dict[str, int]:
        """Object and name counts for the ready line and metrics."""
        state = self.state
        return {
            "services": len(state.services),
            "headless": sum(s.kind is ServiceKind.HEADLESS for s in state.services.values()),
            "endpoints": sum(len(s.endpoints) for s in state.slices.values()),
            "pods": len(state.pods),
            "namespaces": len({o.namespace for o in state.owners() if o.kind == "namespace"}),
            "names": len(self.index.nodes),
        }
