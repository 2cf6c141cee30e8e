"""The cluster as last seen: slim objects by key, EndpointSlices grouped under their Service (and
under their ServiceImport, for the slices of imported services).

``apply`` stores one event and returns the owners whose DNS names it affects; ``affected`` names them
before the event is applied, while the state still holds what the zone was built from. ``changes_to``
turns a whole relist of one kind into events, so objects that vanished during a gap are deleted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from kdns.cluster.model import (
    ClusterObject,
    EndpointSlice,
    Event,
    EventType,
    Namespace,
    Owner,
    Pod,
    Service,
    ServiceImport,
)

Key = tuple[str, str]


class ClusterState:
    """Objects by ``(namespace, name)``; namespaces by name.

    With ``selected_namespaces`` (CoreDNS's ``namespace_labels``: the source hands over only the
    Namespaces whose labels match), a namespace exists only while its object is held, and what lives
    in any other namespace is held but not ``served``: a namespace coming or going affects everything
    in it."""

    def __init__(self, *, selected_namespaces: bool = False) -> None:
        self.selected_namespaces = selected_namespaces
        self.namespaces: dict[str, Namespace] = {}
        self.services: dict[Key, Service] = {}
        self.slices: dict[Key, EndpointSlice] = {}
        self.pods: dict[Key, Pod] = {}
        self.pods_by_ip: dict[str, Pod] = {}  # the client's pod, for autopath
        self.imports: dict[Key, ServiceImport] = {}
        self._slices_by_service: dict[Key, tuple[EndpointSlice, ...]] = {}  # in the order last changed
        self._slices_by_import: dict[Key, tuple[EndpointSlice, ...]] = {}
        self._services_by_namespace: dict[str, int] = {}  # how many
        self._members: dict[str, set[Owner]] = {}  # with selected_namespaces: the owners in each

    # -- queries -------------------------------------------------------------------------------------
    def slices_of(self, namespace: str, service: str) -> Iterable[EndpointSlice]:
        return self._slices_by_service.get((namespace, service), ())

    def imported_slices_of(self, namespace: str, name: str) -> Iterable[EndpointSlice]:
        return self._slices_by_import.get((namespace, name), ())

    def namespace_exists(self, namespace: str) -> bool:
        """A namespace exists when its object does, or (unless ``selected_namespaces``) when a
        Service lives in it."""
        if namespace in self.namespaces:
            return True
        return not self.selected_namespaces and namespace in self._services_by_namespace

    def serves(self, namespace: str) -> bool:
        """Whether the objects of ``namespace`` have names: always, unless ``selected_namespaces``
        and its Namespace is not held."""
        return not self.selected_namespaces or namespace in self.namespaces

    def namespace_names(self) -> set[str]:
        """Every namespace that exists (see ``namespace_exists``)."""
        if self.selected_namespaces:
            return set(self.namespaces)
        return self.namespaces.keys() | self._services_by_namespace.keys()

    def owners(self) -> Iterator[Owner]:
        """Every owner the state holds, namespaces first."""
        for ns in self.namespace_names():
            yield Owner("namespace", ns)
        for ns, name in self.services.keys() | self._slices_by_service.keys():
            yield Owner("service", ns, name)
        for ns, name in self.pods:
            yield Owner("pod", ns, name)
        for ns, name in self.imports.keys() | self._slices_by_import.keys():
            yield Owner("import", ns, name)

    # -- updates -------------------------------------------------------------------------------------
    def affected(self, event: Event) -> tuple[Owner, ...]:
        """The owners whose names ``apply(event)`` would change, read before it is applied."""
        obj = event.object
        match obj:
            case Namespace(name=name):
                served = event.type is not EventType.DELETED
                if self.selected_namespaces and served != (name in self.namespaces):
                    return (Owner("namespace", name), *self._members.get(name, ()))
                return (Owner("namespace", name),)
            case Service(namespace=ns, name=name):
                return (Owner("service", ns, name), Owner("namespace", ns))
            case EndpointSlice(namespace=ns, name=name):
                old = self.slices.get((ns, name))
                owners = [] if old is None else _slice_owners(old)
                if event.type is not EventType.DELETED:
                    owners.extend(_slice_owners(obj))
                return tuple(dict.fromkeys(owners))
            case Pod(namespace=ns, name=name):
                return (Owner("pod", ns, name),)
            case ServiceImport(namespace=ns, name=name):
                return (Owner("import", ns, name),)
        raise TypeError(f"not a cluster object: {obj!r}")

    def apply(self, event: Event) -> tuple[Owner, ...]:
        """Store one event; return the owners whose names must be rebuilt (``affected``)."""
        owners = self.affected(event)
        obj, deleted = event.object, event.type is EventType.DELETED
        if self.selected_namespaces and not isinstance(obj, Namespace | EndpointSlice):
            self._count_member(owners[0], deleted)
        match obj:
            case Namespace(name=name):
                if deleted:
                    self.namespaces.pop(name, None)
                else:
                    self.namespaces[name] = obj
            case Service(namespace=ns, name=name):
                present, counts = (ns, name) in self.services, self._services_by_namespace
                if deleted and present:
                    del self.services[(ns, name)]
                    counts[ns] -= 1
                    if not counts[ns]:
                        del counts[ns]
                elif not deleted:
                    self.services[(ns, name)] = obj
                    if not present:
                        counts[ns] = counts.get(ns, 0) + 1
            case EndpointSlice():
                self._apply_slice(obj, deleted)
            case Pod(namespace=ns, name=name):
                old = self.pods.pop((ns, name), None)
                for ip in old.ips if old is not None else ():
                    if self.pods_by_ip.get(ip) is old:
                        del self.pods_by_ip[ip]
                if not deleted:
                    self.pods[(ns, name)] = obj
                    for ip in obj.ips:
                        self.pods_by_ip[ip] = obj
            case ServiceImport(namespace=ns, name=name):
                if deleted:
                    self.imports.pop((ns, name), None)
                else:
                    self.imports[(ns, name)] = obj
        return owners

    def _count_member(self, owner: Owner, deleted: bool) -> None:
        """Keep ``_members`` (an owner is a Service, Pod or ServiceImport)."""
        if deleted:
            members = self._members.get(owner.namespace)
            if members is not None:
                members.discard(owner)
                if not members:
                    del self._members[owner.namespace]
        else:
            self._members.setdefault(owner.namespace, set()).add(owner)

    def _apply_slice(self, new: EndpointSlice, deleted: bool) -> None:
        key = (new.namespace, new.name)
        old = self.slices.pop(key, None)
        if old is not None:
            for groups, owner in self._groups_of(old):
                group = tuple(s for s in groups[owner] if s.name != old.name)
                if group:
                    groups[owner] = group
                else:
                    del groups[owner]
        if not deleted:
            self.slices[key] = new
            for groups, owner in self._groups_of(new):
                groups[owner] = (*groups.get(owner, ()), new)

    def _groups_of(self, piece: EndpointSlice) -> Iterator[tuple[dict[Key, tuple[EndpointSlice, ...]], Key]]:
        """The groups of slices that ``piece`` is in, with its key in each."""
        if piece.service:
            yield self._slices_by_service, (piece.namespace, piece.service)
        if piece.imported:
            yield self._slices_by_import, (piece.namespace, piece.imported)

    def table(self, kind: str) -> dict:
        """The stored objects of one kind (``"Service"``...) by key."""
        return {
            "Namespace": self.namespaces,
            "Service": self.services,
            "EndpointSlice": self.slices,
            "Pod": self.pods,
            "ServiceImport": self.imports,
        }[kind]

    def changes_to(self, kind: str, objects: list[ClusterObject]) -> Iterator[Event]:
        """The events that make the stored objects of ``kind`` exactly ``objects`` (a relist).

        Deletions come first, computed at once; additions and updates are compared one by one as the
        caller takes them, so a caller may apply them in steps."""
        table = self.table(kind)
        fresh = {key_of(obj) for obj in objects}
        gone = [obj for key, obj in table.items() if key not in fresh]
        for obj in gone:
            yield Event(EventType.DELETED, obj)
        for obj in objects:
            if table.get(key_of(obj)) != obj:
                yield Event(EventType.ADDED, obj)


def _slice_owners(piece: EndpointSlice) -> list[Owner]:
    """The owners a slice belongs to: its Service, its ServiceImport, or both."""
    owners = [Owner("service", piece.namespace, piece.service)] if piece.service else []
    if piece.imported:
        owners.append(Owner("import", piece.namespace, piece.imported))
    return owners


def key_of(obj: ClusterObject) -> str | Key:
    return obj.name if isinstance(obj, Namespace) else (obj.namespace, obj.name)
