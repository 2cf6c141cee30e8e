"""Informers: reflector threads that follow the Kubernetes API, and the event-loop side that applies
what they hand over to the zone.

Garbage collection: the zone is millions of small, acyclic, long-lived objects. A full collection
walks all of them (300 ms and more at 100k endpoints), so the reflectors and the informer move what
they create out of the collector's view with ``gc.freeze()`` as they go; refcounting still frees it.

Reflectors read and convert on their own threads, so JSON and HTTP never run on the loop that answers
DNS; they hand each event (or a whole relist) to the loop with ``call_soon_threadsafe``. The loop
applies one event as one step (a query never sees half of an owner's update) and a relist in steps of
a few hundred objects, letting queries run in between.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections import Counter

from kdns.cluster.model import ClusterObject, EndpointSlice, Event, ServiceKind
from kdns.cluster.selector import ObjectFilter
from kdns.config import KubeSettings, PodMode, ZoneSettings
from kdns.counting import PROGRAMMING_BOUNDS, Histogram
from kdns.sources.connection import ApiUnavailable, ConnectionSettingsError
from kdns.sources.kube import (
    ENDPOINT_SLICES,
    NAMESPACES,
    PODS,
    SERVICE_IMPORTS,
    SERVICES,
    Connection,
    Resource,
    api_error_text,
)
from kdns.sources.reflector import ApiHealth, Missing, Reflector, Refused, WatchSettings, unavailable
from kdns.zone.cluster_zone import ClusterZone

log = logging.getLogger(__name__)
APPLY_BOUNDS = tuple(0.0001 * 2**i for i in range(14))  # 0.1 ms to 0.8 s


def watched_resources(zone: ZoneSettings) -> list[Resource]:
    """What a zone of these settings is built from: Namespaces, Services and EndpointSlices (not
    with ``noendpoints``); Pods only when ``pods verified`` needs them, ServiceImports only when
    multicluster zones do."""
    resources = [NAMESPACES, SERVICES]
    if zone.endpoints:
        resources.append(ENDPOINT_SLICES)
    if zone.pods is PodMode.VERIFIED:
        resources.append(PODS)
    if zone.multicluster:
        resources.append(SERVICE_IMPORTS)
    return resources


def connection_of(settings: KubeSettings) -> Connection:
    return Connection(
        kubeconfig=settings.kubeconfig,
        context=settings.context,
        in_cluster=settings.in_cluster,
        endpoint=settings.endpoint,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        tls_ca=settings.tls_ca,
    )


class _Collector:
    """A sink that keeps what one list returns (``kdns dump`` against a live cluster)."""

    def __init__(self) -> None:
        self.objects: list[ClusterObject] = []

    def replace(self, kind: str, objects: list[ClusterObject]) -> None:
        self.objects.extend(objects)

    def event(self, event: Event) -> None:  # a list hands over no events
        raise AssertionError(event)


def list_cluster(api: object, zone: ZoneSettings, *, object_filter: ObjectFilter) -> list[ClusterObject]:
    """Every resource ``zone`` needs, listed once without watching: the cluster as it is now (an
    optional resource the API does not serve, as empty); a list the API refuses raises
    ``ConnectionSettingsError`` saying what was refused, one that gets no answer ``ApiUnavailable``."""
    collector = _Collector()
    for resource in watched_resources(zone):
        reflector = Reflector(
            api,
            resource,
            collector,
            health=ApiHealth(),
            object_filter=object_filter,
            label_selector=object_filter.server_selector(resource.kind),
        )
        try:
            reflector.list_once()
        except Missing:
            log.warning("%s: the Kubernetes API does not serve %s", resource.plural, resource.optional)
        except Refused as refused:
            raise ConnectionSettingsError(str(refused)) from None
        except Exception as exc:  # no answer (refused, reset, timed out) or one that is no list
            raise ApiUnavailable(unavailable(resource.plural, api_error_text(exc))) from None
    return collector.objects


class Informer:
    """Keeps ``zone`` equal to the API's state; ``synced`` is set once every resource was listed."""

    def __init__(
        self,
        zone: ClusterZone,
        api: object,
        settings: KubeSettings,
        *,
        object_filter: ObjectFilter,
    ) -> None:
        self.zone = zone
        zone.listing()
        self.settings = settings
        self.health = ApiHealth()
        self.synced = asyncio.Event()
        self.api = api
        watch = WatchSettings(watch_timeout=settings.watch_timeout, idle_timeout=settings.idle_timeout)
        self.reflectors = [
            Reflector(
                self.api,
                resource,
                self,
                health=self.health,
                object_filter=object_filter,
                label_selector=object_filter.server_selector(resource.kind),
                settings=watch,
            )
            for resource in watched_resources(zone.settings)
        ]
        self._unsynced = {r.resource.kind for r in self.reflectors}
        self.apply_seconds = Histogram(APPLY_BOUNDS)  # watch event handed over -> zone updated
        # an EndpointSlice's last-change-trigger-time -> the zone answering with it, by service kind
        self.programming: dict[str, Histogram] = {}
        self.events: Counter[tuple[str, str]] = Counter()  # applied watch events by (kind, type)
        self.lists: Counter[str] = Counter()  # lists applied, by kind
        self._queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        self._started = 0.0

    @property
    def waiting_for(self) -> list[str]:
        return sorted(r.resource.plural for r in self.reflectors if r.resource.kind in self._unsynced)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started = time.monotonic()
        self._task = self._loop.create_task(self._apply_forever(), name="informer")
        for reflector in self.reflectors:
            name = f"reflector-{reflector.resource.plural}"
            threading.Thread(target=reflector.run, args=(self._stop,), name=name, daemon=True).start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- called on reflector threads ---------------------------------------------------------------------
    def replace(self, kind: str, objects: list[ClusterObject]) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, ("replace", (kind, objects)))

    def event(self, event: Event) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, ("event", (event, time.monotonic())))

    # -- on the event loop -----------------------------------------------------------------------------
    async def _apply_forever(self) -> None:
        while True:
            what, item = await self._queue.get()
            try:
                if what == "event":
                    event, received = item
                    self.zone.apply(event)
                    self.apply_seconds.observe(time.monotonic() - received)
                    if type(event.object) is EndpointSlice and event.object.changed_at:
                        self._programmed(event.object)
                    self.events[(type(event.object).__name__, event.type.value)] += 1
                    continue
                kind, objects = item
                started, changed = time.monotonic(), 0
                for count in self.zone.replace(kind, objects):
                    changed += count
                    gc.freeze()
                    await asyncio.sleep(0)  # let queries in between steps of a large relist
                self._listed(kind, len(objects), changed, time.monotonic() - started)
            except Exception:
                log.exception("failed to apply a %s from the Kubernetes API; the zone keeps the rest", what)

    def _programmed(self, piece: EndpointSlice) -> None:
        """Time the DNS programming of ``piece``'s change, as CoreDNS does: for the slice of a Service
        the zone holds."""
        service = self.zone.state.services.get((piece.namespace, piece.service))
        if service is None or service.kind is ServiceKind.EXTERNAL_NAME:
            return
        kind = "cluster_ip"
        if service.kind is ServiceKind.HEADLESS:
            kind = "headless_with_selector" if service.selector else "headless_without_selector"
        histogram = self.programming.get(kind)
        if histogram is None:
            histogram = self.programming[kind] = Histogram(PROGRAMMING_BOUNDS)
        histogram.observe(max(time.time() - piece.changed_at, 0.0))

    def _listed(self, kind: str, count: int, changed: int, seconds: float) -> None:
        self.lists[kind] += 1
        if kind not in self._unsynced:
            log.info("relisted %ss: %d objects, %d changed, applied in %.2f s", kind, count, changed, seconds)
            return
        self._unsynced.discard(kind)
        if not self._unsynced:
            counts = self.zone.counts()
            log.info(
                "synced with the Kubernetes API in %.2f s: %d services, %d endpoints, %d names",
                time.monotonic() - self._started,
                counts["services"],
                counts["endpoints"],
                counts["names"],
            )
            self.zone.listed()
            self.synced.set()
