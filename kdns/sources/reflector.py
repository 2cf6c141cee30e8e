"""List-then-watch of one collection, with client-go reflector semantics, on a thread of its own.

- the current state comes as a watch list where the API server serves it (KEP-3157: a WATCH with
  ``sendInitialEvents``, ``resourceVersionMatch=NotOlderThan`` and bookmarks): ADDED events ended by
  a bookmark annotated ``k8s.io/initial-events-end``, gathered and handed over as one replacement at
  that bookmark, so objects deleted while nobody watched disappear; the same stream then goes on as
  the watch. A server that refuses it (``422``/``400``: the WatchList feature is off, or too old; or
  ``401``/``403``: the role grants list but not watch) gets a paged LIST instead, every time the state
  is needed again, as client-go; so does a resource whose client call cannot ask for it (a custom
  resource);
- LIST in pages (``limit``/``continue``) and hand the whole result over as a replacement;
- a continue token that expires mid-list (``410``) means one unpaginated LIST, as client-go's pager;
- WATCH from the list's resourceVersion with bookmarks and a server-side timeout of 5-10 minutes,
  resuming from the last resourceVersion seen after the stream ends or drops: at once when the stream
  carried something or lasted a second, with backoff when it ended as soon as it began; a watch list
  cut before its initial state was complete counts as a list cut short, and starts over;
- ``410 Gone`` (the version was compacted away) means getting the state again;
- errors back off from 0.8 s, doubling to 30 s, with jitter, honouring Retry-After; the backoff resets
  after two healthy minutes; a watch that stays silent past ``idle_timeout`` is restarted;
- bad objects are logged and skipped, never handed on;
- a custom resource the cluster does not serve (``404``: its CRD is not installed) is said once, held
  as empty (so the reflector counts as synced) and looked for again with backoff;
- a request the API refuses (``401``: credentials not accepted, ``403``: not granted by RBAC, which
  the API server decides before it looks for the resource, so a missing grant is never taken for a
  missing CRD) is no outage: the reflector says once which verb of which resource was refused and
  why, as the server put it, and tries again with backoff.

Each reflector counts what it did for the metrics: requests by verb (``list``, ``watch``, and
``watchlist`` for a watch that streams the initial state) and status, how watches ended, whether one
is open, and when the API last confirmed the collection (a list, an event, a bookmark).

The thread only reads and converts; the sink applies changes on the event loop.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from urllib3.exceptions import ProtocolError, ReadTimeoutError

from kdns.cluster.convert import (
    InvalidObject,
    SkippedObject,
    UnservedObject,
    object_identity,
    to_object,
    tombstone,
)
from kdns.cluster.model import ClusterObject, Event, EventType
from kdns.cluster.selector import ObjectFilter
from kdns.config import DEFAULT_WATCH_IDLE_TIMEOUT, DEFAULT_WATCH_TIMEOUT
from kdns.sources.kube import Resource, api_error_text, retry_after, status_code

log = logging.getLogger(__name__)
GONE = 410
NOT_FOUND = 404
UNAUTHORIZED, FORBIDDEN = 401, 403
SHORT_WATCH = 1.0  # a watch that ends within this long having carried nothing is a failure (client-go)
NO_RESPONSE = "<error>"  # the status of a request that got no HTTP response, as client-go's metrics say
REFUSED = (400, 422)  # how an API server without watch list answers sendInitialEvents (422: Invalid)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"  # the annotation of the bookmark ending a watch list
Clock = Callable[[], float]


class Sink(Protocol):
    """Where a reflector hands its results; called from the reflector's thread."""

    def replace(self, kind: str, objects: list[ClusterObject]) -> None: ...

    def event(self, event: Event) -> None: ...


def unavailable(what: str, error: str) -> str:
    """How an API request that got no answer is told: the resource asked for and what went wrong."""
    return f"Kubernetes API unavailable ({what}: {error})"


class ApiHealth:
    """Logs an API outage once when it starts and once when it ends, whichever reflector sees it."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, what: str, error: str) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = self.clock()
                log.warning("%s; serving the last good zone and retrying", unavailable(what, error))
            else:
                log.debug("still %s", unavailable(what, error))

    def succeeded(self) -> None:
        with self._lock:
            if self._down_since is not None:
                log.warning("Kubernetes API available again after %.1f s", self.clock() - self._down_since)
                self._down_since = None


ROUTINE_WINDOW = 10.0
BROKEN_IS_OUTAGE = 3  # requests in a row cut short before the API counts as unavailable


class Backoff:
    """client-go's reflector backoff: 0.8 s doubling to 30 s, jitter 1.0, reset after 2 healthy minutes."""

    def __init__(
        self,
        initial: float = 0.8,
        cap: float = 30.0,
        reset_after: float = 120.0,
        *,
        clock: Clock = time.monotonic,
        jitter: Clock = random.random,
    ) -> None:
        self.initial, self.cap, self.reset_after = initial, cap, reset_after
        self.clock, self.jitter = clock, jitter
        self._current = 0.0
        self._last = -reset_after
        self._last_routine: dict[str, float] = {}

    def next(self, at_least: float | None = None) -> float:
        now = self.clock()
        if now - self._last > self.reset_after or not self._current:
            self._current = self.initial
        else:
            self._current = min(self.cap, self._current * 2)
        self._last = now
        delay = self._current * (1 + self.jitter())  # jitter 1.0: up to twice the step
        return max(delay, at_least or 0.0)

    def routine(self, event: str) -> float:
        """For what a healthy API does now and then (``"gone"``: a 410, ``"dropped"``: a broken
        stream): no wait the first time, backing off when the same event repeats within
        ``ROUTINE_WINDOW`` seconds."""
        now = self.clock()
        last = self._last_routine.get(event, -ROUTINE_WINDOW)
        self._last_routine[event] = now
        return 0.0 if now - last > ROUTINE_WINDOW else self.next()


class Gone(Exception):
    """The resourceVersion we hold is too old: list again."""


class Missing(Exception):
    """The API does not serve an optional resource (its CRD is not installed)."""


class Refused(Exception):
    """The API answered a ``verb`` of ``plural`` with 401 or 403: kdns's identity is not accepted, or
    not allowed; ``str()`` says which and what the server said."""

    def __init__(self, plural: str, verb: str, error: BaseException) -> None:
        super().__init__(plural, verb, error)
        self.plural, self.verb, self.error = plural, verb, error

    def __str__(self) -> str:
        said = api_error_text(self.error)
        if status_code(self.error) == FORBIDDEN:
            return (
                f"{self.plural}: forbidden to {self.verb} them ({said}); kdns needs list and watch on "
                f"{self.plural}: grant them in the role bound to its service account or user"
            )
        return (
            f"{self.plural}: the Kubernetes API did not accept kdns's credentials to {self.verb} them "
            f"({said})"
        )


class NoWatchList(Exception):
    """The API server does not serve a watch list (sendInitialEvents): list instead."""


@dataclass(frozen=True, slots=True)
class WatchSettings:
    page_size: int = 500
    watch_timeout: float = DEFAULT_WATCH_TIMEOUT  # server-side timeoutSeconds is this times 1 to 2
    idle_timeout: float = (
        DEFAULT_WATCH_IDLE_TIMEOUT  # no byte (not even a bookmark) for this long: the watch is dead
    )
    connect_timeout: float = 10.0
    list_timeout: float = 60.0


class Reflector:
    def __init__(
        self,
        api: Any,
        resource: Resource,
        sink: Sink,
        *,
        health: ApiHealth,
        object_filter: ObjectFilter | None = None,
        label_selector: str | None = None,
        settings: WatchSettings | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.api = api
        self.clock = clock
        self.resource = resource
        self.sink = sink
        self.health = health
        self.filter = object_filter or ObjectFilter()
        self.label_selector = label_selector
        self.settings = settings or WatchSettings()
        self.backoff = Backoff(clock=clock)
        self.resource_version: str | None = None
        self.lists = 0
        self.watches = 0
        self.requests: Counter[tuple[str, str]] = Counter()  # (verb, HTTP status) of every request
        self.watch_ends: Counter[str] = Counter()  # closed, dropped, silent, expired, error
        self.watching = False  # a watch stream is open
        self.last_sync = 0.0  # time.time() of the last list, event or bookmark; 0 before the first
        self.broken = 0  # requests in a row cut short without a response
        self.missing = False  # an optional resource the API does not serve
        self.refusals: dict[str, str] = {}  # by verb: what the API said refusing it, until one passes
        self.no_watch_list = 0  # watch lists the API server did not serve
        self._skip_reasons: set[str] = set()
        self._initial: dict[tuple[str, str], ClusterObject] | None = None  # a watch list's, until its end
        self._streams: bool | None = None  # whether the resource's client call takes sendInitialEvents

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """List and watch until ``stop`` is set; never raises."""
        while not stop.is_set():
            try:
                outcome = None
                if self.resource_version is None and self.streams_initial_state:
                    started = self.clock()
                    outcome = self._watch_list(stop)
                if outcome is None:
                    if self.resource_version is None:
                        self.resource_version = self.list_once()
                    started = self.clock()
                    outcome = self.watch_once(self.resource_version, stop)
                received, ended = outcome
                if received or self.clock() - started > SHORT_WATCH:
                    continue  # a watch that ran resumes at once, however it ended
                # ended as soon as it began, with nothing: do not spin
                delay = self.backoff.next() if ended == "closed" else self.backoff.routine("dropped")
            except Missing:
                self._missing()
                delay = self.backoff.next()
            except Refused as refused:
                self._refused(refused)
                delay = self.backoff.next(at_least=retry_after(refused.error))
            except Gone:
                log.info(
                    "%s: resourceVersion %s expired; listing again",
                    self.resource.plural,
                    self.resource_version,
                )
                self.resource_version = None
                delay = self.backoff.routine("gone")
            except (ReadTimeoutError, ProtocolError) as exc:  # a connection cut short, not (yet) the API
                self.broken += 1
                if self.broken < BROKEN_IS_OUTAGE:
                    log.info(
                        "%s: request broke (%s); trying again", self.resource.plural, api_error_text(exc)
                    )
                else:  # every request breaks: the API (or what is in front of it) is down
                    self.health.failed(self.resource.plural, api_error_text(exc))
                delay = self.backoff.routine("dropped")
            except Exception as exc:  # every failure backs off; none ends the reflector
                self.health.failed(self.resource.plural, api_error_text(exc))
                delay = self.backoff.next(at_least=retry_after(exc))
            stop.wait(delay)

    @property
    def streams_initial_state(self) -> bool:
        """Whether the resource's client call can ask for a watch list (the custom objects API's
        cannot: it has no ``send_initial_events``)."""
        if self._streams is None:
            parameters = inspect.signature(self.resource.method(self.api)).parameters.values()
            self._streams = any(
                p.name == "send_initial_events" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
            )
        return self._streams

    def _watch_list(self, stop: threading.Event) -> tuple[int, str] | None:
        """``watch_once`` of a watch list; None when the API server does not serve it or does not
        allow it (then list, as client-go does: a role may grant list without watch, and the list's
        answer or the watch after it says what is refused)."""
        try:
            return self.watch_once(None, stop)
        except NoWatchList as refused:
            self.no_watch_list += 1
            level = logging.INFO if self.no_watch_list == 1 else logging.DEBUG
            log.log(level, "%s: no watch list (%s); listing in pages", self.resource.plural, refused)
        except Refused as refused:
            log.debug("%s: %s; listing in pages", self.resource.plural, refused)
        return None

    def _missing(self) -> None:
        """Say once that the resource is not served, and hold it as empty until it is."""
        self.resource_version = None
        if self.missing:
            return
        self.missing = True
        resource = self.resource
        log.warning(
            "%s: the Kubernetes API does not serve %s (is its CRD installed?); none are answered "
            "until it does, looked for again with backoff",
            resource.plural,
            resource.optional,
        )
        self.sink.replace(resource.kind, [])

    def _refused(self, refused: Refused) -> None:
        """Say what the API refused, once while it keeps refusing it the same way. A refused watch
        means getting the state again before the next one, as client-go does, so a role that grants
        list but not watch still brings changes, at the pace of the backoff."""
        said = api_error_text(refused.error)
        level = logging.DEBUG if self.refusals.get(refused.verb) == said else logging.WARNING
        log.log(level, "%s; retrying with backoff", refused)
        self.refusals[refused.verb] = said
        if refused.verb == "watch":
            self.resource_version = None

    def _allowed(self, verb: str) -> None:
        """A ``verb`` request passed: the API no longer refuses it (and says so if it did)."""
        if self.refusals.pop(verb, None) is not None:
            log.warning("%s: the Kubernetes API allows kdns to %s them again", self.resource.plural, verb)

    def _request(self, verb: str, timeout: tuple[float, float], params: dict[str, Any]) -> Any:
        """One list or watch request, counted by its HTTP status (``<error>`` when none came)."""
        try:
            response = self.resource.call(self.api, _request_timeout=timeout, **params)
        except Exception as exc:
            status = status_code(exc)
            self.requests[(verb, str(status or NO_RESPONSE))] += 1
            if status == NOT_FOUND and self.resource.optional:
                raise Missing from None
            if status in (UNAUTHORIZED, FORBIDDEN):
                raise Refused(self.resource.plural, verb, exc) from None
            raise
        self.requests[(verb, str(response.status))] += 1
        self._allowed(verb)
        return response

    # -- list ----------------------------------------------------------------------------------------
    def list_once(self) -> str:
        """List every page, hand the objects over as a replacement, return the list's resourceVersion."""
        objects: list[ClusterObject] = []
        token: str | None = None
        paged = True
        version = ""
        while True:
            params: dict[str, Any] = {"limit": self.settings.page_size} if paged else {}
            if token:
                params["_continue"] = token
            if self.label_selector:
                params["label_selector"] = self.label_selector
            timeout = (self.settings.connect_timeout, self.settings.list_timeout)
            try:
                response = self._request("list", timeout, params)
            except Exception as exc:
                if not token or status_code(exc) != GONE:
                    raise
                log.info(
                    "%s: the list's continue token expired; listing again in one page", self.resource.plural
                )
                objects, token, paged = [], None, False
                continue
            try:
                page = json.loads(response.data)
            finally:
                response.release_conn()
            metadata = page.get("metadata") or {}
            version = metadata.get("resourceVersion") or version
            for raw in page.get("items") or ():
                raw.setdefault("kind", self.resource.kind)
                obj = self._convert(raw)
                if obj is not None:
                    objects.append(obj)
            del page
            gc.freeze()  # keep what was converted out of the collector's full passes (see informer)
            token = metadata.get("continue")
            if not token:
                break
        self._listed(objects, version)
        return version

    def _listed(self, objects: list[ClusterObject], version: str) -> None:
        """The whole state arrived (a list, or a watch list's initial events): hand it over."""
        self.lists += 1
        self.last_sync = time.time()
        self.broken = 0
        self.health.succeeded()
        if self.missing:
            self.missing = False
            log.warning("%s: the Kubernetes API serves %s now", self.resource.plural, self.resource.optional)
        self.sink.replace(self.resource.kind, objects)
        log.debug("%s: listed %d at resourceVersion %s", self.resource.plural, len(objects), version)

    # -- watch ---------------------------------------------------------------------------------------
    def watch_once(self, version: str | None, stop: threading.Event) -> tuple[int, str]:
        """Follow one watch stream from ``version``; return how many messages it carried and how it
        ended: ``closed`` (by the server, or ``stop``), ``dropped`` (broken) or ``silent`` (idle).

        ``None``: a watch list, from the current state (raises ``NoWatchList`` where the API server does
        not serve it); the initial events are gathered and handed over as one replacement when the
        bookmark that ends them arrives. A stream cut before then raises, as a list cut short."""
        response = self._open_watch(version)
        self.watches += 1
        if version is not None:
            self.broken = 0
            self.health.succeeded()
        self.watching = True
        self._initial = {} if version is None else None
        received, ended = 0, "closed"
        try:
            for line in _lines(response):
                if stop.is_set():
                    break
                received += 1
                self._handle(json.loads(line))
                if self._initial is not None and received % self.settings.page_size == 0:
                    gc.freeze()  # as a list does after each page
        except (ReadTimeoutError, ProtocolError) as exc:  # the stream died, not (yet) the API
            ended = "silent" if isinstance(exc, ReadTimeoutError) else "dropped"
            if self._initial is not None:
                raise  # before the whole state came: a list cut short
            how = "went silent" if ended == "silent" else "broke"
            log.info("%s: watch %s; again from %s", self.resource.plural, how, self.resource_version)
        except Gone:
            ended = "expired"
            raise
        except Exception:
            ended = "error"
            raise
        finally:
            self._initial = None  # an incomplete initial state is dropped: the next one starts over
            self.watching = False
            self.watch_ends[ended] += 1
            response.close()  # a half-read stream must not go back to the pool
            response.release_conn()
        return received, ended

    def _open_watch(self, version: str | None) -> Any:
        """The response that begins a watch from ``version`` (None: a watch list)."""
        timeout = int(self.settings.watch_timeout * (1 + random.random()))
        params: dict[str, Any] = {"watch": True, "allow_watch_bookmarks": True, "timeout_seconds": timeout}
        if version is None:
            params |= {"send_initial_events": True, "resource_version_match": "NotOlderThan"}
        else:
            params["resource_version"] = version
        if self.label_selector:
            params["label_selector"] = self.label_selector
        verb = "watch" if version is not None else "watchlist"
        try:
            response = self._request(
                verb, (self.settings.connect_timeout, self.settings.idle_timeout), params
            )
        except Exception as exc:
            if status_code(exc) == GONE:  # as an HTTP status rather than an ERROR event
                self.watch_ends["expired"] += 1
                raise Gone from None
            if version is None and status_code(exc) in REFUSED:
                raise NoWatchList(api_error_text(exc)) from None
            raise
        return response

    def _handle(self, message: dict[str, Any]) -> None:
        kind, raw = message.get("type"), message.get("object") or {}
        if kind == "ERROR":
            if raw.get("code") == GONE:
                raise Gone
            raise RuntimeError(f"watch error {raw.get('code')}: {raw.get('message')}")
        if self._initial is not None:
            self._gather(kind, raw)
            return
        version = (raw.get("metadata") or {}).get("resourceVersion")
        self.last_sync = time.time()
        if kind == "BOOKMARK":
            if version:
                self.resource_version = version
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            log.warning("%s: ignored a watch event of type %r", self.resource.plural, kind)
            return
        raw.setdefault("kind", self.resource.kind)
        event = self._event(EventType(kind), raw)
        if event is not None:
            self.sink.event(event)
        if version:
            self.resource_version = version

    def _gather(self, kind: Any, raw: dict[str, Any]) -> None:
        """One event of a watch list's initial state, kept until the bookmark that ends it hands the
        whole over (changes before it, which a server need not send, apply to what is kept)."""
        metadata = raw.get("metadata") or {}
        if kind == "BOOKMARK":
            if (metadata.get("annotations") or {}).get(INITIAL_EVENTS_END) == "true":
                assert self._initial is not None
                objects, self._initial = list(self._initial.values()), None
                self.resource_version = metadata.get("resourceVersion") or None
                self._listed(objects, self.resource_version or "")
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            log.warning("%s: ignored a watch event of type %r", self.resource.plural, kind)
            return
        assert self._initial is not None
        key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        raw.setdefault("kind", self.resource.kind)
        obj = self._convert(raw) if kind != "DELETED" else None
        if obj is None:
            self._initial.pop(key, None)
        else:
            self._initial[key] = obj

    def _event(self, kind: EventType, raw: dict[str, Any]) -> Event | None:
        if kind is EventType.DELETED or not self.filter.accepts(raw):
            dead = tombstone(raw)  # an object that stops matching the filters leaves the zone
            return Event(EventType.DELETED, dead) if dead is not None else None
        obj = self._convert(raw)
        return Event(kind, obj) if obj is not None else None

    def _convert(self, raw: dict[str, Any]) -> ClusterObject | None:
        if not self.filter.accepts(raw):
            return None
        try:
            return to_object(raw)
        except SkippedObject as exc:  # valid but unused (an FQDN slice): say so once per reason
            level = logging.WARNING if isinstance(exc, UnservedObject) else logging.INFO
            level = logging.DEBUG if str(exc) in self._skip_reasons else level
            self._skip_reasons.add(str(exc))
            log.log(level, "%s: ignored %s: %s", self.resource.plural, object_identity(raw), exc)
        except InvalidObject as exc:
            log.warning("%s: skipped %s: %s", self.resource.plural, object_identity(raw), exc)
        return None


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-delimited JSON from a streamed (usually chunked) HTTP response, as it arrives."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending
