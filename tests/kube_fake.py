"""A small, faithful fake Kubernetes API server for tests and benchmarks.

It speaks the real list/watch protocol over HTTP/1.1 (plain, or HTTPS given an ``ssl.SSLContext``, which
may require client certificates) so the official ``kubernetes`` client can talk to it: one global resourceVersion, paginated lists pinned to the first page's resourceVersion, watches
replayed from a resourceVersion out of a retained event log, 410 Gone after ``compact()``, bookmarks,
label selectors with the watch cache's ADDED/DELETED-on-transition rule, and chunked watch streams.
With ``watch_list`` it serves the streaming initial list (KEP-3157: a watch with ``sendInitialEvents``
sends the current state as ADDED events and a bookmark annotated ``k8s.io/initial-events-end``, then
goes on); without it such a watch gets ``422 Invalid``, as from a server whose WatchList feature is
off (the v1.31 the fake reports). The list options are validated as the server does.

Faults, as a real API server (or the load balancer in front of it) produces them: ``fail`` (error statuses,
with Retry-After), ``stop``/``start`` (an outage), ``close_watches`` (a restart), ``hang_watches`` (a
silent watch), ``reset_connections`` (every connection reset mid-list or mid-watch), ``list_delay`` (slow
list pages, sent half then the rest; a watch list's initial events likewise) and ``expire_watches`` (a
410 storm: every watch from a version is too old).

Requests are counted by verb: ``list``, ``watch``, ``watchlist`` (a watch with ``sendInitialEvents``)
and ``get``; ``fail`` can pick one.

Served: namespaces, services, pods (``/api/v1``), endpointslices (``/apis/discovery.k8s.io/v1``) and
the custom resource serviceimports (``/apis/multicluster.x-k8s.io/v1alpha1``), cluster-wide and per
namespace, plus ``GET /version``. ``uninstall`` makes a kind's API 404 as when its CRD is missing,
``install`` serves it again. Tests drive it through Python methods
(``create``, ``update``, ``delete``, ``fail``, ``stop`` ...); nothing is writable over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

try:
    import pytest
except ImportError:  # pragma: no cover - benchmarks may run without pytest
    pytest = None  # type: ignore[assignment]

__all__ = ["RESOURCES", "KubeFake", "Request", "Resource", "Selector", "kube_api"]

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "9edcffcde5595e8a5b1a35f88c421764e575afce",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T07:28:49Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and "
    "now may show up in the list."
)
INCONSISTENT = -1  # the resourceVersion of the continue token an expired one is answered with
WAIT_SLICE = 0.5  # longest single wait on a condition, so stop() and flags are noticed promptly
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
NOT_OLDER_THAN, EXACT = "NotOlderThan", "Exact"


@dataclass(frozen=True, slots=True)
class Resource:
    """One served resource type."""

    kind: str
    plural: str
    api_version: str
    namespaced: bool
    blank: str = "{}"  # the fields of an empty object of the kind, as the server writes it in bookmarks
    custom: bool = False  # a custom resource: its API group is gone with its CRD

    @property
    def prefix(self) -> str:
        """The API path prefix: ``/api/v1`` or ``/apis/<group>/<version>``."""
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


RESOURCES = {
    r.kind: r
    for r in (
        Resource("Namespace", "namespaces", "v1", False, '{"spec":{},"status":{}}'),
        Resource("Service", "services", "v1", True, '{"spec":{},"status":{"loadBalancer":{}}}'),
        Resource("Pod", "pods", "v1", True, '{"spec":{"containers":null},"status":{}}'),
        Resource(
            "EndpointSlice",
            "endpointslices",
            "discovery.k8s.io/v1",
            True,
            '{"addressType":"","endpoints":null,"ports":null}',
        ),
        Resource("ServiceImport", "serviceimports", "multicluster.x-k8s.io/v1alpha1", True, custom=True),
    )
}
_BY_NAME = {n.lower(): r for r in RESOURCES.values() for n in (r.kind, r.plural)}


class Request(NamedTuple):
    """One request as the fake received it (path without the query string)."""

    method: str
    path: str
    query: dict[str, str]


# -- label selectors ------------------------------------------------------------------------------------
_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_REQUIREMENT = re.compile(
    rf"^\s*(?:!\s*(?P<absent>{_KEY})"
    rf"|(?P<key>{_KEY})\s*(?:(?P<op>==|=|!=)\s*(?P<value>{_VALUE})"
    rf"|\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?)\s*$"
)


class Selector:
    """A parsed label selector: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a)``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._tests: list[Callable[[dict[str, str]], bool]] = []
        for part in re.split(r",(?![^()]*\))", text):
            if not part.strip():
                raise ValueError(f"invalid label selector {text!r}: empty requirement")
            match = _REQUIREMENT.match(part)
            if match is None:
                raise ValueError(f"unable to parse requirement: {part.strip()!r}")
            self._tests.append(self._requirement(match))

    @staticmethod
    def _requirement(m: re.Match[str]) -> Callable[[dict[str, str]], bool]:
        if m["absent"]:
            key = m["absent"]
            return lambda labels: key not in labels
        key, op, value, setop = m["key"], m["op"], m["value"], m["setop"]
        if op in ("=", "=="):
            return lambda labels: labels.get(key) == value
        if op == "!=":
            return lambda labels: labels.get(key) != value
        if setop:
            values = {v.strip() for v in m["values"].split(",") if v.strip()}
            if setop == "in":
                return lambda labels: labels.get(key) in values
            return lambda labels: labels.get(key) not in values
        return lambda labels: key in labels

    def matches(self, labels: dict[str, str]) -> bool:
        """True when every requirement holds for ``labels``."""
        return all(test(labels) for test in self._tests)


# -- storage --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Stored:
    """One stored version of an object; ``raw`` is its JSON without kind/apiVersion, serialised once."""

    key: tuple[str, str]
    rv: int
    labels: dict[str, str]
    uid: str
    created: str
    raw: bytes


def _event_line(kind: str, res: Resource, raw: bytes) -> bytes:
    head = b'{"type":"%s","object":{"kind":"%s","apiVersion":"%s",' % (
        kind.encode(),
        res.kind.encode(),
        res.api_version.encode(),
    )
    return head + raw[1:] + b"}\n"


def _bookmark_line(res: Resource, rv: int, annotations: dict[str, str] | None = None) -> bytes:
    """A BOOKMARK at ``rv``: an empty object of the kind with only a resourceVersion (and
    ``annotations``)."""
    metadata: dict[str, Any] = {"resourceVersion": str(rv)}
    if annotations:
        metadata["annotations"] = annotations
    head = b'{"type":"BOOKMARK","object":{"kind":"%s","apiVersion":"%s","metadata":' % (
        res.kind.encode(),
        res.api_version.encode(),
    )
    rest = res.blank[1:-1].encode()
    return head + _dumps(metadata) + (b"," + rest if rest else b"") + b"}}\n"


class _Event:
    """One logged change; ``prev`` is the version before it (None for ADDED)."""

    __slots__ = ("_line", "cur", "prev", "res", "rv", "type")

    def __init__(self, type_: str, res: Resource, cur: _Stored, prev: _Stored | None) -> None:
        self.type, self.res, self.cur, self.prev, self.rv = type_, res, cur, prev, cur.rv
        self._line: bytes | None = None

    def line(self, as_type: str | None = None) -> bytes:
        """The event as one line of a watch stream, optionally under another type (selector transitions)."""
        if as_type is None or as_type == self.type:
            if self._line is None:
                self._line = _event_line(self.type, self.res, self.cur.raw)
            return self._line
        return _event_line(as_type, self.res, self.cur.raw)

    def deleted_from_prev(self) -> bytes:
        """DELETED carrying the previous content at this event's resourceVersion (object left the selector)."""
        assert self.prev is not None
        body = json.loads(self.prev.raw)
        body["metadata"]["resourceVersion"] = str(self.rv)
        return _event_line("DELETED", self.res, _dumps(body))


class _Log:
    """The retained events of one kind, in resourceVersion order."""

    __slots__ = ("events", "rvs")

    def __init__(self) -> None:
        self.rvs: list[int] = []
        self.events: list[_Event] = []

    def after(self, rv: int) -> list[_Event]:
        if not self.rvs or self.rvs[-1] <= rv:
            return []
        return self.events[bisect_right(self.rvs, rv) :]

    def drop_through(self, rv: int) -> None:
        i = bisect_right(self.rvs, rv)
        del self.rvs[:i]
        del self.events[:i]


@dataclass(slots=True)
class _Failure:
    status: int
    remaining: int
    retry_after: int | None
    kind: str | None
    verb: str | None


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _status(
    code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A failure Status as the server writes it: ``reason`` by the code unless given (``""``: none),
    ``details`` only when given."""
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    status["message"] = message
    reason = REASONS.get(code, "") if reason is None else reason
    if reason:
        status["reason"] = reason
    if details is not None:
        status["details"] = details
    status["code"] = code
    return status


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flag(query: dict[str, str], name: str) -> bool | None:
    """A boolean query parameter: None when absent (as the server decodes ``true``/``1``)."""
    if name not in query:
        return None
    return query[name].lower() in ("true", "1")


def _invalid_options(query: dict[str, str], watch: bool, watch_list: bool) -> dict[str, Any] | None:
    """The ``422 Invalid`` the API server answers list options with, or None when they are valid."""
    forbidden: list[tuple[str, str]] = []
    match, initial = query.get("resourceVersionMatch", ""), "sendInitialEvents" in query
    if watch:
        if initial and match != NOT_OLDER_THAN:
            forbidden.append(
                (
                    "resourceVersionMatch",
                    f"sendInitialEvents requires setting resourceVersionMatch to {NOT_OLDER_THAN}",
                )
            )
        if initial and not watch_list:
            forbidden.append(
                (
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
                )
            )
        if match and not initial:
            forbidden.append(
                (
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                )
            )
    else:
        if match and not query.get("resourceVersion"):
            forbidden.append(
                (
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                )
            )
        if match and query.get("continue"):
            forbidden.append(
                ("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided")
            )
        if initial:
            forbidden.append(("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    causes = [
        {"reason": "FieldValueForbidden", "message": f"Forbidden: {m}", "field": f} for f, m in forbidden
    ]
    supported = (NOT_OLDER_THAN,) if watch else (EXACT, NOT_OLDER_THAN, "")
    if match and match not in supported:
        listed = ", ".join(f'"{v}"' for v in supported)
        causes.append(
            {
                "reason": "FieldValueNotSupported",
                "message": f'Unsupported value: "{match}": supported values: {listed}',
                "field": "resourceVersionMatch",
            }
        )
    if not causes:
        return None
    said = [f"{c['field']}: {c['message']}" for c in causes]
    message = 'ListOptions.meta.k8s.io "" is invalid: ' + (
        said[0] if len(said) == 1 else f"[{', '.join(said)}]"
    )
    return _status(422, message, details={"group": "meta.k8s.io", "kind": "ListOptions", "causes": causes})


def _encode_continue(rv: int, key: tuple[str, str], namespaced: bool) -> str:
    return _token(rv, f"{key[0]}/{key[1]}\x00" if namespaced else f"{key[1]}\x00")


def _token(rv: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_continue(token: str, namespaced: bool) -> tuple[int, str, tuple[str, str]]:
    """The token's resourceVersion, its start as written, and the key to go on from."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rv, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise ValueError(f"invalid continue token: continue key is not valid: {error}") from None
    if namespaced:
        ns, _, name = start.partition("/")
        return rv, start, (ns, name)
    return rv, start, ("", start)


def _route(path: str) -> tuple[Resource, str | None, str | None] | None:
    """(resource, namespace, name) for a served path, else None."""
    if path.startswith("/api/v1/"):
        api_version, rest = "v1", path[len("/api/v1/") :]
    else:
        api_version = next(
            (
                r.api_version
                for r in RESOURCES.values()
                if path.startswith(f"{r.prefix}/") and r.api_version != "v1"
            ),
            None,
        )
        if api_version is None:
            return None
        rest = path[len(f"/apis/{api_version}/") :]
    plurals = {r.plural: r for r in RESOURCES.values() if r.api_version == api_version}
    match rest.split("/"):
        case [plural] if plural in plurals:
            return plurals[plural], None, None
        case ["namespaces", name] if api_version == "v1" and name:
            return RESOURCES["Namespace"], None, name
        case ["namespaces", ns, plural] if ns and plural in plurals and plurals[plural].namespaced:
            return plurals[plural], ns, None
        case ["namespaces", ns, plural, name] if (
            ns and name and plural in plurals and plurals[plural].namespaced
        ):
            return plurals[plural], ns, name
    return None


# -- HTTP plumbing --------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: KubeFake) -> None:
        self.fake = fake
        self.stopped = False
        self.conns: dict[socket.socket, threading.Thread] = {}
        self.conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """An accepted connection, wrapped in TLS when the fake serves HTTPS (the handshake is the
        handler thread's, so a slow or failing client holds up no other)."""
        sock, address = super().get_request()
        tls = self.fake.tls
        if tls is not None:
            sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections dropped by either side are expected; report anything else."""
        if not isinstance(sys.exception(), OSError | ValueError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections and stalled writes give up eventually
    server: _Server
    counted: tuple[str, str] | None = None  # (kind, verb) of the request being answered

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # an OSError (ssl.SSLError) here drops the connection
        with self.server.conns_lock:
            self.server.conns[self.connection] = threading.current_thread()
            stopped = self.server.stopped
        if stopped:
            _shutdown(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.conns_lock:
                self.server.conns.pop(self.connection, None)

    def do_GET(self) -> None:
        self.counted = None
        self.server.fake._handle(self)

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        if self.counted is not None:
            self.server.fake._responded(self.counted, code)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_body(
        self,
        code: int,
        body: bytes,
        headers: Iterable[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_status(self, status: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_body(status["code"], _dumps(status), headers)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_chunks(self, lines: list[bytes]) -> None:
        if lines:
            self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in lines))

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")


NO_RESPONSE = 0  # a status for ``fail``: the connection is reset, no response is sent


class _Reset(Exception):
    """Raised in a handler whose connection ``reset_connections`` is resetting."""


def _abort(sock: socket.socket) -> None:
    """Close so that the peer gets a TCP reset, not an orderly end (the close happens once the handler's
    files are closed too, right after the handler returns)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _bearer_is(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries ``token`` (the scheme is case-insensitive, RFC 7235:
    the in-cluster client sends ``bearer``)."""
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and value == token


def _peer_closed(sock: socket.socket) -> bool:
    """True when the client has closed its end (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        # past TLS, at the TCP bytes: a peek at what a TLS socket holds is not allowed
        return bool(readable) and socket.socket.recv(sock, 1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# -- the fake -------------------------------------------------------------------------------------------
class KubeFake:
    """A fake API server on ``127.0.0.1``; a context manager (``start()`` ... ``stop()``).

    ``bookmark_interval``: seconds between BOOKMARK events on watches that allow them.
    ``watch_timeout``: how long a watch without ``timeoutSeconds`` lasts.
    ``token``: when set, requests must carry ``Authorization: Bearer <token>`` (else 401; the
    scheme in any case).
    ``list_delay``: seconds each list page takes: half of it is sent, then the rest after this long (a
    slow server or link); the page is read before the wait, so a compaction meanwhile expires its token.
    ``tls``: a server context: the fake serves HTTPS (and requires client certificates if it does).
    ``watch_list``: serve watches with ``sendInitialEvents`` (else they get ``422 Invalid``).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        bookmark_interval: float = 1.0,
        watch_timeout: float = 1800.0,
        token: str | None = None,
        max_snapshots: int = 256,
        list_delay: float = 0.0,
        tls: ssl.SSLContext | None = None,
        watch_list: bool = False,
    ) -> None:
        self.host = host
        self.watch_list = watch_list
        self.tls = tls
        self.list_delay = list_delay
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.token = token
        self.max_snapshots = max_snapshots
        self._port = port
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._rv = 1
        self._compacted = 0
        self._store: dict[str, dict[tuple[str, str], _Stored]] = {k: {} for k in RESOURCES}
        self._sorted: dict[str, list[_Stored] | None] = dict.fromkeys(RESOURCES)
        self._logs: dict[str, _Log] = {k: _Log() for k in RESOURCES}
        self._snapshots: OrderedDict[tuple[str, int, str | None, str], list[_Stored]] = OrderedDict()
        self._watchers: dict[int, int] = {}
        self._close_generation = 0
        self._hang = False
        self._expire_watches = False
        self._reset_generation = 0
        self._failures: list[_Failure] = []
        self._uninstalled: set[str] = set()  # kinds whose API answers 404
        self._requests: list[Request] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._times: dict[tuple[str, str], list[float]] = {}
        self._statuses: Counter[tuple[str, str, int]] = Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> KubeFake:
        """Listen (again) on the same port; the first start picks an ephemeral port when ``port`` is 0."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server((self.host, self._port), self)
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="kube-fake"
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """An outage: close the listening socket and every open connection (watches end mid-stream)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        with server.conns_lock:
            server.stopped = True
        server.shutdown()
        server.server_close()
        with server.conns_lock:
            conns = list(server.conns.items())
        for sock, _ in conns:
            _shutdown(sock)
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for _, handler in [*conns, (None, thread)]:
            if handler is not None and handler is not threading.current_thread():
                handler.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> KubeFake:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def write_kubeconfig(
        self, path: str | Path, *, context: str = "fake", namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig (JSON, which is YAML) pointing at the fake with a dummy token (no CA: for a
        plain http fake)."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": self.token or "fake-token"}}],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}
            ],
            "current-context": context,
            "preferences": {},
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    # -- objects ----------------------------------------------------------------------------------------
    @staticmethod
    def resource(kind: str) -> Resource:
        """The served resource for a kind or plural name (case-insensitive)."""
        try:
            return _BY_NAME[kind.lower()]
        except KeyError:
            raise ValueError(f"the fake does not serve {kind!r}") from None

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion."""
        with self._lock:
            return self._rv

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object (ValueError if it exists); returns it as the server would."""
        return self._write(obj, "create")

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an existing object (KeyError if missing; ValueError on a stale metadata.resourceVersion)."""
        return self._write(obj, "update")

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or update, without a resourceVersion precondition."""
        return self._write(obj, "apply")

    def load(self, objects: Iterable[dict[str, Any]]) -> int:
        """Create or update many objects under one lock (one resourceVersion each); returns the count."""
        n = 0
        with self._cond:
            for obj in objects:
                self._write(obj, "apply", notify=False, render=False)
                n += 1
            self._cond.notify_all()
        return n

    def delete(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        """Delete an object (KeyError if missing); returns its last state at the deletion's resourceVersion."""
        res = self.resource(kind)
        key = (namespace or "default", name) if res.namespaced else ("", name)
        with self._cond:
            old = self._store[res.kind].pop(key)
            self._rv += 1
            body = json.loads(old.raw)
            body["metadata"]["resourceVersion"] = str(self._rv)
            cur = _Stored(key, self._rv, old.labels, old.uid, old.created, _dumps(body))
            self._record(_Event("DELETED", res, cur, old))
            self._cond.notify_all()
        return self._render(res, cur)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object with kind and apiVersion (a fresh copy), or None."""
        res = self.resource(kind)
        key = (namespace or "default", name) if res.namespaced else ("", name)
        with self._lock:
            stored = self._store[res.kind].get(key)
        return None if stored is None else self._render(res, stored)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        """Every stored object of a kind, sorted by (namespace, name), as fresh copies."""
        res = self.resource(kind)
        with self._lock:
            items = self._sorted_items(res.kind)
        return [self._render(res, s) for s in items]

    @property
    def open_watches(self) -> int:
        """How many watch streams are open now (a client hanging up is noticed within half a second)."""
        with self._lock:
            return len(self._watchers)

    def compact(self, upto: int | None = None) -> None:
        """Compact history up to now (or ``upto``): older watch resourceVersions and continue tokens are 410."""
        with self._lock:
            target = self._rv if upto is None else min(upto, self._rv)
            self._compacted = max(self._compacted, target)
            keep_after = min([self._compacted, *self._watchers.values()])  # open watches keep their backlog
            for log in self._logs.values():
                log.drop_through(keep_after)
            for key in [k for k in self._snapshots if k[1] < self._compacted]:
                del self._snapshots[key]

    def close_watches(self) -> None:
        """End every open watch stream cleanly (final zero-length chunk), as on an API server restart."""
        with self._cond:
            self._close_generation += 1
            self._cond.notify_all()

    def hang_watches(self, hang: bool = True) -> None:
        """While set, open watches send nothing, not even bookmarks; their connections stay open."""
        with self._cond:
            self._hang = hang
            self._cond.notify_all()

    def expire_watches(self, expire: bool = True) -> None:
        """While set, every watch from a resourceVersion gets ``410 Gone`` as an ERROR event (a 410 storm,
        as after an etcd restore); the lists that follow still work."""
        with self._lock:
            self._expire_watches = expire

    def reset_connections(self) -> None:
        """Reset (TCP RST) every open connection at once: lists stop mid-body, watches mid-stream, idle
        keep-alive connections die; the server keeps listening (a load balancer dropping its flows)."""
        server, socks = self._server, []
        if server is not None:
            with server.conns_lock:
                socks = list(server.conns)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)  # an idle handler reads EOF and closes: a reset
        with self._cond:
            self._reset_generation += 1  # busy handlers notice and reset their connection
            self._cond.notify_all()

    def uninstall(self, kind: str) -> None:
        """Serve 404 for ``kind``'s API from now on, as when its CRD is not installed; open watches of
        it end."""
        with self._cond:
            self._uninstalled.add(self.resource(kind).kind)
            self._close_generation += 1
            self._cond.notify_all()

    def install(self, kind: str) -> None:
        """Serve ``kind``'s API again (its stored objects too)."""
        with self._lock:
            self._uninstalled.discard(self.resource(kind).kind)

    def clear_failures(self) -> None:
        """Forget the failures ``fail`` queued that have not happened yet."""
        with self._lock:
            self._failures.clear()

    def fail(
        self,
        status: int,
        count: int = 1,
        retry_after: int | None = None,
        *,
        kind: str | None = None,
        verb: str | None = None,
    ) -> None:
        """The next ``count`` requests (optionally only of ``kind`` and verb list/watch/watchlist/get) get
        ``status``;
        ``NO_RESPONSE`` (0) resets the connection without one, as a proxy in front of a dead API does."""
        if count <= 0:
            return
        with self._lock:
            kind = None if kind is None else self.resource(kind).kind
            self._failures.append(_Failure(status, count, retry_after, kind, verb))

    # -- request log ------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[Request]:
        """Every request so far (a copy)."""
        with self._lock:
            return list(self._requests)

    def count(self, kind: str, verb: str = "list") -> int:
        """How many list/watch/get requests for ``kind`` arrived (failed ones included)."""
        with self._lock:
            return self._counts[(self.resource(kind).kind, verb)]

    def list_count(self, kind: str) -> int:
        return self.count(kind, "list")

    def watch_count(self, kind: str) -> int:
        return self.count(kind, "watch")

    def request_times(self, kind: str, verb: str = "list") -> list[float]:
        """``time.monotonic()`` of each list/watch/get request for ``kind``, to measure client backoff."""
        with self._lock:
            return list(self._times.get((self.resource(kind).kind, verb), ()))

    def statuses(self, kind: str, verb: str = "list") -> Counter[int]:
        """The HTTP status of each list/watch/get response for ``kind`` (a watch: when its stream began);
        a request whose connection died before the status line has none."""
        kind = self.resource(kind).kind
        with self._lock:
            return Counter({code: n for (k, v, code), n in self._statuses.items() if (k, v) == (kind, verb)})

    def reset_requests(self) -> None:
        """Forget the request log and counters."""
        with self._lock:
            self._requests.clear()
            self._counts.clear()
            self._times.clear()
            self._statuses.clear()

    def _responded(self, key: tuple[str, str], code: int) -> None:
        with self._lock:
            self._statuses[(*key, code)] += 1

    # -- internals: storage -----------------------------------------------------------------------------
    def _write(self, obj: dict[str, Any], mode: str, *, notify: bool = True, render: bool = True) -> Any:
        kind = obj.get("kind")
        if not isinstance(kind, str):
            raise ValueError("object has no kind")
        res = self.resource(kind)
        meta_in = obj.get("metadata") or {}
        name = meta_in.get("name")
        if not name:
            raise ValueError("object has no metadata.name")
        ns = (meta_in.get("namespace") or "default") if res.namespaced else ""
        key = (ns, name)
        with self._cond:
            store = self._store[res.kind]
            old = store.get(key)
            if mode == "create" and old is not None:
                raise ValueError(f'{res.plural} "{name}" already exists')
            if mode == "update":
                if old is None:
                    raise KeyError(f'{res.plural} "{name}" not found')
                wanted = meta_in.get("resourceVersion")
                if wanted and wanted != str(old.rv):
                    raise ValueError(
                        f'Operation cannot be fulfilled on {res.plural} "{name}": object modified'
                    )
            self._rv += 1
            uid = meta_in.get("uid") or (old.uid if old else str(uuid.uuid4()))
            created = meta_in.get("creationTimestamp") or (old.created if old else _now())
            meta: dict[str, Any] = {"name": name}
            if res.namespaced:
                meta["namespace"] = ns
            meta |= {"uid": uid, "resourceVersion": str(self._rv), "creationTimestamp": created}
            meta |= {k: v for k, v in meta_in.items() if k not in meta and k != "namespace"}
            body = {"metadata": meta} | {
                k: v for k, v in obj.items() if k not in ("kind", "apiVersion", "metadata")
            }
            try:
                raw = _dumps(body)
            except (TypeError, ValueError):
                self._rv -= 1  # not JSON: store nothing, leave no gap
                raise
            cur = _Stored(key, self._rv, dict(meta_in.get("labels") or {}), uid, created, raw)
            store[key] = cur
            self._record(_Event("MODIFIED" if old else "ADDED", res, cur, old))
            if notify:
                self._cond.notify_all()
        return self._render(res, cur) if render else None

    def _record(self, event: _Event) -> None:
        log = self._logs[event.res.kind]
        log.rvs.append(event.rv)
        log.events.append(event)
        self._sorted[event.res.kind] = None

    @staticmethod
    def _render(res: Resource, stored: _Stored) -> dict[str, Any]:
        return {"kind": res.kind, "apiVersion": res.api_version} | json.loads(stored.raw)

    def _sorted_items(self, kind: str) -> list[_Stored]:
        items = self._sorted[kind]
        if items is None:
            store = self._store[kind]
            items = self._sorted[kind] = [store[k] for k in sorted(store)]
        return items

    def _matching(self, res: Resource, ns: str | None, selector: Selector | None) -> list[_Stored]:
        items = self._sorted_items(res.kind)
        if ns is not None:
            lo = bisect_left(items, (ns,), key=lambda s: s.key)
            hi = bisect_left(items, (ns + "\x00",), key=lambda s: s.key)
            items = items[lo:hi]
        if selector is not None:
            items = [s for s in items if selector.matches(s.labels)]
        return items

    # -- internals: HTTP --------------------------------------------------------------------------------
    def _handle(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        route = _route(path)
        verb = None
        if route is not None:
            verb = "get" if route[2] else "list"
            if _flag(query, "watch"):
                verb = "watchlist" if _flag(query, "sendInitialEvents") else "watch"
        with self._lock:
            self._requests.append(Request(h.command, path, query))
            if route is not None and verb is not None:
                key = (route[0].kind, verb)
                self._counts[key] += 1
                self._times.setdefault(key, []).append(time.monotonic())
                h.counted = key
        try:
            self._respond(h, path, query, route, verb)
        except _Reset:
            h.close_connection = True
            _abort(h.connection)
        except OSError:
            h.close_connection = True

    def _respond(
        self,
        h: _Handler,
        path: str,
        query: dict[str, str],
        route: tuple[Resource, str | None, str | None] | None,
        verb: str | None,
    ) -> None:
        if self.token is not None and not _bearer_is(h.headers.get("Authorization"), self.token):
            h.send_status(_status(401, "Unauthorized"))
            return
        with self._lock:
            resets = self._reset_generation
        if (failure := self._take_failure(route[0].kind if route else None, verb)) is not None:
            code = failure.status
            if code == NO_RESPONSE:
                raise _Reset
            details: dict[str, Any] = {}
            headers = []
            if failure.retry_after is not None:
                details["retryAfterSeconds"] = failure.retry_after
                headers.append(("Retry-After", str(failure.retry_after)))
            message = (
                "Too many requests, please try again later."
                if code == 429
                else f"fake failure: {HTTPStatus(code).phrase}"
            )
            h.send_status(_status(code, message, details=details or None), headers)
            return
        if h.command != "GET":
            h.close_connection = True  # the request body, if any, is left unread
            h.send_status(_status(405, f"the fake does not serve {h.command} requests"))
            return
        if path == "/version":
            h.send_body(200, _dumps(VERSION))
            return
        if path in ("/healthz", "/readyz", "/livez"):
            h.send_response(200)
            h.send_header("Content-Type", "text/plain; charset=utf-8")
            h.send_header("Content-Length", "2")
            h.end_headers()
            h.wfile.write(b"ok")
            return
        with self._lock:
            uninstalled = route is not None and route[0].kind in self._uninstalled
        if uninstalled and route is not None and route[0].custom:  # no CRD, no API group: Go's 404
            h.send_body(404, b"404 page not found\n", content_type="text/plain; charset=utf-8")
            return
        if route is None or uninstalled:
            h.send_status(_status(404, "the server could not find the requested resource", details={}))
            return
        res, ns, name = route
        if name is not None:
            stored = self.get(res.kind, ns, name)
            if stored is None:
                h.send_status(
                    _status(
                        404, f'{res.plural} "{name}" not found', details={"name": name, "kind": res.plural}
                    )
                )
            else:
                h.send_body(200, _dumps(stored))
            return
        try:
            text = query.get("labelSelector", "")
            selector = Selector(text) if text.strip() else None
        except ValueError as error:
            h.send_status(_status(400, str(error)))
            return
        if (invalid := _invalid_options(query, verb != "list", self.watch_list)) is not None:
            h.send_status(invalid)
            return
        if verb in ("watch", "watchlist"):
            self._watch(h, res, ns, selector, query, resets)
        else:
            code, body = self._list(res, ns, selector, query)
            if code == 200 and self.list_delay > 0:
                self._send_slowly(h, body, resets)
            else:
                h.send_body(code, body)

    def _send_slowly(self, h: _Handler, body: bytes, resets: int) -> None:
        """Headers and half the page, then the rest after ``list_delay`` (unless reset meanwhile)."""
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[: len(body) // 2])
        h.wfile.flush()
        self._pause(self.list_delay, resets)
        h.wfile.write(body[len(body) // 2 :])

    def _pause(self, seconds: float, resets: int) -> None:
        """Wait ``seconds``; raise ``_Reset`` if ``reset_connections`` is called meanwhile."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while (left := deadline - time.monotonic()) > 0:
                if self._reset_generation != resets:
                    raise _Reset
                self._cond.wait(min(left, WAIT_SLICE))
            if self._reset_generation != resets:
                raise _Reset

    def _take_failure(self, kind: str | None, verb: str | None) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.kind not in (None, kind) or failure.verb not in (None, verb):
                    continue
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _list(
        self, res: Resource, ns: str | None, selector: Selector | None, query: dict[str, str]
    ) -> tuple[int, bytes]:
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            return 400, _dumps(_status(400, f"strconv.ParseInt: parsing {query['limit']!r}: invalid syntax"))
        token = query.get("continue", "")
        if query.get("resourceVersion") == "0" and not token:
            limit = 0  # served from the watch cache, which ignores limit (as in 1.31)
        sel_text = selector.text if selector else ""
        with self._lock:
            if token:
                try:
                    rv, written, start = _decode_continue(token, res.namespaced)
                except ValueError as error:
                    return 400, _dumps(_status(400, str(error)))
                if rv == INCONSISTENT:  # go on from the key, in the state as it is now
                    rv, items = self._rv, self._matching(res, ns, selector)
                elif (
                    rv < self._compacted
                    or (items := self._snapshots.get((res.kind, rv, ns, sel_text))) is None
                ):
                    expired = _status(410, EXPIRED_CONTINUE, "Expired")  # with a token to go on anyway
                    expired["metadata"] = {"continue": _token(INCONSISTENT, written)}
                    return 410, _dumps(expired)
                else:
                    self._snapshots.move_to_end((res.kind, rv, ns, sel_text))
                offset = bisect_left(items, start, key=lambda s: s.key)
            else:
                rv, items, offset = self._rv, self._matching(res, ns, selector), 0
            end = offset + limit if limit > 0 else len(items)
            page = items[offset:end]
            metadata: dict[str, Any] = {"resourceVersion": str(rv)}
            if end < len(items):
                metadata["continue"] = _encode_continue(rv, page[-1].key, res.namespaced)
                if selector is None:
                    metadata["remainingItemCount"] = len(items) - end
                self._snapshots[(res.kind, rv, ns, sel_text)] = items
                while len(self._snapshots) > self.max_snapshots:
                    self._snapshots.popitem(last=False)
        head = b'{"kind":"%sList","apiVersion":"%s","metadata":%s,"items":[' % (
            res.kind.encode(),
            res.api_version.encode(),
            _dumps(metadata),
        )
        return 200, head + b",".join(s.raw for s in page) + b"]}"

    def _watch(
        self,
        h: _Handler,
        res: Resource,
        ns: str | None,
        selector: Selector | None,
        query: dict[str, str],
        resets: int,
    ) -> None:
        bookmarks = bool(_flag(query, "allowWatchBookmarks"))
        initial_events = _flag(query, "sendInitialEvents")  # validated: only with watch_list
        try:
            timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else self.watch_timeout
        except ValueError as error:
            h.send_status(_status(400, f"invalid watch parameter: {error}"))
            return
        since_text = query.get("resourceVersion", "")
        if since_text and not since_text.isdigit():  # the server fails it as an internal error
            message = f'resourceVersion: Invalid value: "{since_text}": strconv.ParseUint: parsing '
            h.send_status(_status(500, message + f'"{since_text}": invalid syntax', reason=""))
            return
        since = int(since_text) if since_text not in ("", "0") else None
        if initial_events is not None:  # NotOlderThan: the state now, however old the version given
            since = None if initial_events else since
        deadline = time.monotonic() + timeout
        initial: list[bytes] = []
        expired: dict[str, Any] | None = None
        wid = id(h)
        with self._lock:
            if since is not None and (since < self._compacted or self._expire_watches):
                oldest = max(self._compacted, self._rv) if self._expire_watches else self._compacted
                expired = _status(410, f"too old resource version: {since} ({oldest})", "Expired")
            else:
                if since is None:  # "" / "0" (or sendInitialEvents): ADDED for the current state, then live
                    since = self._rv
                    if initial_events is not False:
                        initial = [
                            _event_line("ADDED", res, s.raw) for s in self._matching(res, ns, selector)
                        ]
                    if initial_events and bookmarks:  # the end of the initial state, at its version
                        initial.append(_bookmark_line(res, since, {INITIAL_EVENTS_END: "true"}))
                generation = self._close_generation
                self._watchers[wid] = since
        if expired is not None:  # the real server answers 200 and one ERROR event, then ends the stream
            h.start_stream()
            h.send_chunks([b'{"type":"ERROR","object":%s}\n' % _dumps(expired)])
            h.end_stream()
            return
        try:
            h.start_stream()
            if initial_events and self.list_delay > 0:  # a slow initial list: half, then the rest
                half = len(initial) // 2
                h.send_chunks(initial[:half])
                h.wfile.flush()
                self._pause(self.list_delay, resets)
                initial = initial[half:]
            self._stream(h, res, ns, selector, since, initial, bookmarks, deadline, (generation, resets), wid)
        finally:
            with self._lock:
                self._watchers.pop(wid, None)

    def _stream(
        self,
        h: _Handler,
        res: Resource,
        ns: str | None,
        selector: Selector | None,
        last: int,
        initial: list[bytes],
        bookmarks: bool,
        deadline: float,
        generations: tuple[int, int],
        wid: int,
    ) -> None:
        """Send events after ``last`` as they come, and bookmarks, until timeout, close, stop or hang-up;
        ``generations`` are the close and reset counts when the watch began."""
        generation, resets = generations
        log = self._logs[res.kind]
        interval = max(self.bookmark_interval, 0.001)
        next_bookmark = time.monotonic() + interval
        while True:
            events: list[_Event] = []
            bookmark = ended = False
            with self._cond:
                while True:
                    if h.server.stopped:
                        h.close_connection = True
                        return
                    if self._reset_generation != resets:
                        raise _Reset
                    now = time.monotonic()
                    if self._close_generation != generation or now >= deadline:
                        ended = True
                        break
                    wake = deadline
                    if not self._hang:
                        events = log.after(last)
                        bookmark = bookmarks and now >= next_bookmark
                        if events or bookmark or initial:
                            break
                        if bookmarks:
                            wake = min(wake, next_bookmark)
                    self._cond.wait(min(wake - now, WAIT_SLICE))
                    if self._reset_generation != resets:
                        raise _Reset
                    if _peer_closed(h.connection):  # the client went away: stop holding back compaction
                        h.close_connection = True
                        return
                last = self._rv
                self._watchers[wid] = last
            if ended:
                h.end_stream()
                return
            lines = initial + self._lines(events, ns, selector)
            initial = []
            if bookmark:
                lines.append(_bookmark_line(res, last))
                next_bookmark = time.monotonic() + interval
            h.send_chunks(lines)

    @staticmethod
    def _lines(events: list[_Event], ns: str | None, selector: Selector | None) -> list[bytes]:
        """Watch lines for one watcher; with a selector, objects entering/leaving it are ADDED/DELETED."""
        out = []
        for event in events:
            if ns is not None and event.cur.key[0] != ns:
                continue
            if selector is None:
                out.append(event.line())
                continue
            now_in = event.type != "DELETED" and selector.matches(event.cur.labels)
            was_in = event.prev is not None and selector.matches(event.prev.labels)
            if now_in:
                out.append(event.line("MODIFIED" if was_in else "ADDED"))
            elif was_in:
                out.append(event.line() if event.type == "DELETED" else event.deleted_from_prev())
        return out


if pytest is not None:

    @pytest.fixture
    def kube_api() -> Iterator[KubeFake]:
        """A running ``KubeFake`` with 0.1 s bookmarks, stopped after the test."""
        with KubeFake(bookmark_interval=0.1) as fake:
            yield fake
