"""Cluster snapshots: what ``kubectl get namespaces,services,endpointslices,pods -A -o yaml`` prints
(and ``serviceimports``, for multicluster zones).

A file holds a ``List`` (or a typed list such as ``ServiceList``) of objects, single objects, or
several YAML documents of either; JSON is read the same way. Unknown kinds are counted and logged.
v1 ``Endpoints`` (a snapshot of ``kubectl get svc,ep``, or a selectorless Service's hand-written
addresses) are read as the EndpointSlice mirroring controller mirrors them, for the Services the
file gives no EndpointSlice of.
Files are UTF-8, or UTF-16 with a byte order mark (what PowerShell's ``>`` writes). YAML is read
without YAML 1.1's base-60 numbers, so an unquoted ``2001:41:10:20:30:40:50:1`` stays an address.

Files as people make them are told apart from what the API returns: an object without a ``kind``
(an old ``kubectl cluster-info dump``), a Service without a cluster IP (a manifest), a slice whose
service-name label is no DNS label, and the same object in two files are served as well as they can
be, with a warning. A file that does not parse or holds no objects, an object without a namespace
(a manifest), or one the API could not have produced, raise ``SnapshotError`` with every problem of
every file, each naming the file, the line and the problem.
"""

from __future__ import annotations

import codecs
import itertools
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from kdns.cluster.convert import (
    InvalidObject,
    SkippedObject,
    UnservedObject,
    mirrored_slices,
    object_identity,
    to_object,
)
from kdns.cluster.model import ClusterObject, EndpointSlice
from kdns.cluster.selector import ObjectFilter

log = logging.getLogger(__name__)
ENDPOINTS_KIND = "Endpoints"  # v1: read as the EndpointSlice mirroring controller mirrors it
NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _without_sexagesimal(loader: type) -> type:
    """``loader`` reading no base-60 numbers: YAML 1.1 reads ``2001:41:10:20:30:40:50:1`` (an IPv6
    address left unquoted) as an int, and ``1:30.5`` as a float; every scalar with a colon stays a
    string here, as in YAML 1.2 (no other int or float has one)."""
    resolvers = {
        first: [
            (tag, re.compile(r"(?![^:]*:)(?:" + pattern.pattern + ")", pattern.flags))
            if tag in NUMBER_TAGS
            else (tag, pattern)
            for tag, pattern in listed
        ]
        for first, listed in loader.yaml_implicit_resolvers.items()
    }
    return type(f"NoSexagesimal{loader.__name__}", (loader,), {"yaml_implicit_resolvers": resolvers})


_FAST_LOADER = _without_sexagesimal(getattr(yaml, "CSafeLoader", yaml.SafeLoader))
_DEEP_LOADER = _without_sexagesimal(yaml.SafeLoader)  # pure Python: its recursion ends in RecursionError


class SnapshotError(Exception):
    """Snapshot files cannot be served; each of ``problems`` names the file, line and problem."""

    def __init__(self, *problems: str) -> None:
        super().__init__(*problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


MAX_PROBLEMS = 50  # problems told of a snapshot that cannot be served; a count says how many more
HOW_TO_SNAPSHOT = "kubectl get namespaces,services,endpointslices,pods -A -o yaml > cluster.yaml"
_NAMESPACED = frozenset({"Service", "EndpointSlice", "Pod", "ServiceImport", ENDPOINTS_KIND})


def read_snapshots(paths: list[Path], object_filter: ObjectFilter | None = None) -> list[ClusterObject]:
    """The objects of every file, a later file's version of an object replacing an earlier one's (said
    in a warning naming both files). Every problem of every file is raised at once."""
    objects: list[ClusterObject] = []
    problems: list[str] = []
    found_in: dict[tuple[str, str, str], Path] = {}
    for path in paths:
        try:
            found = read_snapshot(path, object_filter)
        except SnapshotError as exc:
            problems.extend(exc.problems)
            continue
        for obj in found:
            key = (type(obj).__name__, getattr(obj, "namespace", ""), obj.name)
            first = found_in.setdefault(key, path)
            if first != path:
                found_in[key] = path
                kind, namespace, name = key
                log.warning(
                    "%s %s is in both %s and %s; the one in %s is served",
                    kind,
                    f"{namespace}/{name}" if namespace else name,
                    first,
                    path,
                    path,
                )
        objects.extend(found)
    if problems:
        raise SnapshotError(*_at_most(problems))
    return objects


def _at_most(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]


def read_snapshot(path: Path, object_filter: ObjectFilter | None = None) -> list[ClusterObject]:
    """All objects of one file that DNS uses and ``object_filter`` exposes; raises ``SnapshotError``
    with every problem the file has."""
    text = _read_text(path)
    places = _Places(text)
    problems: list[str] = []
    warnings = _Warnings(path)
    objects: list[ClusterObject] = []
    skipped: Counter[str] = Counter()
    classic: list[ClusterObject] = []  # slices mirrored from v1 Endpoints, used where none are given
    seen = 0
    try:
        streamed = _stream_json(path, text)
        raw_objects = streamed if streamed is not None else _raw_objects(path, text, _parse(path, text))
        for where, raw in raw_objects:
            seen += 1
            problem = _snapshot_problem(raw)
            if problem is not None:
                problems.append(f"{path}{places.line(where)}: {object_identity(raw)}: {problem}")
                continue
            if raw.get("kind") in (None, ""):
                warnings.add(where, raw, NO_KIND)
                continue
            if object_filter is not None and not object_filter.accepts(raw):
                continue
            if _without_cluster_ip(raw):
                warnings.add(where, raw, NO_CLUSTER_IP)
            try:
                if raw.get("kind") == ENDPOINTS_KIND:
                    classic.extend(mirrored_slices(raw))
                else:
                    objects.append(to_object(raw))
            except UnservedObject as exc:
                warnings.add(where, raw, str(exc))
            except SkippedObject as exc:
                skipped[str(exc)] += 1
            except InvalidObject as exc:
                problems.append(f"{path}{places.line(where)}: {object_identity(raw)}: {exc}")
    except SnapshotError as exc:  # the file cannot be read on from here
        problems.extend(exc.problems)
    if not seen and not problems:
        problems.append(f"{path}:1: {NO_OBJECTS}")
    warnings.say(places)
    if problems:
        raise SnapshotError(*problems)
    for reason, count in sorted(skipped.items()):
        log.info("%s: ignored %d object%s: %s", path, count, "" if count == 1 else "s", reason)
    sliced = {(o.namespace, o.service) for o in objects if isinstance(o, EndpointSlice)}
    return objects + [s for s in classic if (s.namespace, s.service) not in sliced]


NO_OBJECTS = (
    "no Kubernetes objects in it (was it written by a 'kubectl get' that failed?); "
    f"make a snapshot with '{HOW_TO_SNAPSHOT}'"
)
NO_KIND = (
    f"no 'kind', as in an old 'kubectl cluster-info dump': ignored; make a snapshot with '{HOW_TO_SNAPSHOT}'"
)
NO_CLUSTER_IP = (
    "no spec.clusterIP, as in a manifest rather than what the API returns: it gets no address; "
    f"make a snapshot with '{HOW_TO_SNAPSHOT}'"
)
MANIFEST = (
    "no metadata.namespace: this looks like a manifest, not 'kubectl get' output; "
    f"make a snapshot with '{HOW_TO_SNAPSHOT}'"
)


def _snapshot_problem(raw: Mapping) -> str | None:
    """What makes an object of a file unservable although it converts: no namespace (a manifest)."""
    meta, kind = raw.get("metadata"), raw.get("kind")
    if (
        isinstance(kind, str)
        and kind in _NAMESPACED
        and isinstance(meta, Mapping)
        and not meta.get("namespace")
    ):
        return MANIFEST
    return None


def _without_cluster_ip(raw: Mapping) -> bool:
    """A Service that would have a cluster IP from the API but has none here (a manifest)."""
    if raw.get("kind") != "Service":
        return False
    spec = raw.get("spec")
    if spec is None:
        return True
    return (
        isinstance(spec, Mapping)
        and spec.get("type") != "ExternalName"
        and not spec.get("clusterIP")
        and not spec.get("clusterIPs")
    )


class _Warnings:
    """The warnings of one file, one line per problem: its first object's line and identity, and how
    many more objects have it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: dict[str, list[tuple[Location | int, str]]] = {}

    def add(self, where: Location | int, raw: Mapping, problem: str) -> None:
        self.found.setdefault(problem, []).append((where, object_identity(raw)))

    def say(self, places: _Places) -> None:
        for problem, objects in self.found.items():
            where, identity = objects[0]
            more = f" and {len(objects) - 1} more" if len(objects) > 1 else ""
            log.warning("%s%s: %s%s: %s", self.path, places.line(where), identity, more, problem)


def _read_text(path: Path) -> str:
    """The file's text: UTF-8, or UTF-16 with a byte order mark (PowerShell's '>' writes it)."""
    try:
        data = path.read_bytes()
        encoding = "utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
        return data.decode(encoding)
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


_decoder = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _stream_json(path: Path, text: str) -> Iterator[tuple[int, Mapping]] | None:
    """The objects of a JSON file that is one object (a ``List`` or a single object), each with its
    offset in ``text``, decoded one list item at a time; ``None`` for other JSON and for YAML.

    ``kubectl get ... -o json`` of a large cluster is tens of megabytes: decoded whole, its dicts fill
    the heap at once and the few objects kept from them pin it. Decoded item by item, each item's
    dicts are freed before the next one is read."""
    i = _SPACE.match(text).end()
    if text[i : i + 1] != "{":
        return None
    return _json_members(path, text, i)


def _json_members(path: Path, text: str, i: int) -> Iterator[tuple[int, Mapping]]:
    members: dict[str, Any] = {}
    seen_items = False
    waiting: list[tuple[int, Mapping]] = []  # items without a kind, until the list's kind is read
    try:
        i = _after_space(text, i + 1)
        while text[i : i + 1] != "}":
            if text[i : i + 1] != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
            key, i = _decoder.raw_decode(text, i)
            i = _after_space(text, i)
            if text[i : i + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
            i = _after_space(text, i + 1)
            if key == "items" and text[i : i + 1] == "[" and not seen_items:
                seen_items = True
                i = _after_space(text, i + 1)
                while text[i : i + 1] != "]":
                    start = i
                    item, i = _decode(path, text, i)
                    if not isinstance(item, Mapping):
                        raise SnapshotError(f"{path}:{_line(text, start)}: list item is not an object")
                    if "kind" in item:
                        yield start, item
                    elif "kind" in members:
                        yield start, _with_kind(item, members["kind"])
                    else:
                        waiting.append((start, item))
                    i = _after_comma(text, i, "]")
                i += 1
            else:
                members[key], i = _decode(path, text, i)
            i = _after_comma(text, i, "}")
        if i + 1 < len(text) and (extra := _after_space(text, i + 1)) < len(text):
            raise json.JSONDecodeError("Extra data", text, extra)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    kind = members.get("kind")
    is_list = kind is None or (isinstance(kind, str) and kind.endswith("List"))
    if not seen_items:
        if "items" not in members or not is_list:
            yield 0, members  # a single object
        elif members["items"] is not None:
            raise SnapshotError(f"{path}:1: 'items' must be a list")
        return
    if not is_list:
        raise SnapshotError(f"{path}:1: a {kind} has no 'items'; only a List does")
    for start, item in waiting:
        yield start, _with_kind(item, kind)


def _decode(path: Path, text: str, i: int) -> tuple[Any, int]:
    """One JSON value at ``i``; nesting deeper than the decoder's recursion is an error in the file."""
    try:
        return _decoder.raw_decode(text, i)
    except RecursionError:
        raise _too_deep(path, text) from None


MAX_DEPTH = 200  # levels of nesting the C YAML loader is trusted with (a Kubernetes object has ~10)
_BRACKET_DEPTH = {"[": 1, "{": 1, "]": -1, "}": -1}
_BRACKETS = re.compile(r"[^\[\]{}]+")
_BLOCK_INDENT = re.compile(r"^[ \t?:-]*", re.MULTILINE)


def _nesting(text: str) -> tuple[int, int]:
    """An upper bound of the nesting depth of YAML or JSON ``text``, and an offset where it is reached:
    brackets (flow collections, counted even inside strings) plus the deepest block indentation (each
    block level takes at least one column of spaces or indicators)."""
    flow = list(itertools.accumulate(_BRACKET_DEPTH[c] for c in _BRACKETS.sub("", text)))
    deepest_flow = max(flow, default=0)
    block = max(_BLOCK_INDENT.finditer(text), key=lambda m: m.end() - m.start(), default=None)
    block_depth = block.end() - block.start() if block is not None else 0
    if deepest_flow >= block_depth:
        where = _nth_bracket(text, flow.index(deepest_flow)) if flow else 0
    else:
        where = block.start()
    return deepest_flow + block_depth, where


def _nth_bracket(text: str, n: int) -> int:
    for count, match in enumerate(re.finditer(r"[\[\]{}]", text)):
        if count == n:
            return match.start()
    return 0


def _too_deep(path: Path, text: str) -> SnapshotError:
    _, where = _nesting(text)
    return SnapshotError(f"{path}:{_line(text, where)}: nested too deeply to be a Kubernetes object")


def _with_kind(item: Mapping, list_kind: object) -> Mapping:
    """An item of a typed list (``ServiceList``) with the kind its list implies."""
    if isinstance(list_kind, str) and list_kind.endswith("List") and list_kind != "List":
        return {**item, "kind": list_kind[: -len("List")]}
    return item


def _after_space(text: str, i: int) -> int:
    return _SPACE.match(text, i).end()


def _after_comma(text: str, i: int, closing: str) -> int:
    """Where the next member or element starts after the one ending at ``i``, or the ``closing``
    bracket's offset."""
    i = _after_space(text, i)
    if text[i : i + 1] == closing:
        return i
    if text[i : i + 1] != ",":
        raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
    comma, i = i, _after_space(text, i + 1)
    if text[i : i + 1] == closing:
        kind = "array" if closing == "]" else "object"
        raise json.JSONDecodeError(f"Illegal trailing comma before end of {kind}", text, comma)
    return i


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _parse(path: Path, text: str) -> list[Any]:
    if text.lstrip()[:1] in ("{", "["):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise SnapshotError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise _too_deep(path, text) from None
    # libyaml composes nested nodes by C recursion: a deep enough file overflows the C stack and
    # kills the process. Text that may nest deeply is read by the Python loader, whose recursion
    # ends in RecursionError.
    try:
        return list(yaml.load_all(text, Loader=_loader(text)))
    except RecursionError:
        raise _too_deep(path, text) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f":{mark.line + 1}:{mark.column + 1}"
        elif isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow: its offset
            where = f":{_line(text, exc.position)}"
        else:
            where = ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise SnapshotError(f"{path}{where}: invalid YAML: {detail}") from None


def _loader(text: str) -> type:
    return _FAST_LOADER if _nesting(text)[0] <= MAX_DEPTH else _DEEP_LOADER


Location = tuple[int, int | None]  # (document index, item index within its list)


def _raw_objects(path: Path, text: str, documents: list[Any]) -> Iterator[tuple[Location | int, Mapping]]:
    for d, doc in enumerate(documents):
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise SnapshotError(
                f"{path}{_line_of(text, (d, None))}: expected a Kubernetes object or List, "
                f"found {type(doc).__name__}"
            )
        kind = doc.get("kind")
        if "items" in doc and (kind is None or (isinstance(kind, str) and kind.endswith("List"))):
            items = doc["items"] or []
            if not isinstance(items, list):
                raise SnapshotError(f"{path}{_line_of(text, (d, None))}: 'items' must be a list")
            item_kind = kind[: -len("List")] if isinstance(kind, str) and kind != "List" else None
            for i, item in enumerate(items):
                if not isinstance(item, Mapping):
                    raise SnapshotError(f"{path}{_line_of(text, (d, i))}: list item is not an object")
                yield (d, i), ({**item, "kind": item_kind} if item_kind and "kind" not in item else item)
        else:
            yield (d, None), doc


class _Places:
    """``":LINE"`` of an object of ``text``: at a JSON offset, or found by composing the YAML again,
    once, on the first object asked about (only warnings and errors ask)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._documents: list[Any] | None = None

    def line(self, where: Location | int) -> str:
        if isinstance(where, int):
            return f":{_line(self.text, where)}"
        document, item = where
        try:
            node = self._composed()[document]
            if item is not None:
                items = next(v for k, v in node.value if getattr(k, "value", None) == "items")
                node = items.value[item]
        except Exception:  # the line is a courtesy; the message stands without it
            return ":1" if where == (0, None) else ""
        return f":{node.start_mark.line + 1}"

    def _composed(self) -> list[Any]:
        if self._documents is None:
            loader = _loader(self.text)  # the one that read it
            try:
                self._documents = list(yaml.compose_all(self.text, Loader=loader))
            except Exception:
                self._documents = []
        return self._documents


def _line_of(text: str, where: Location) -> str:
    """``":LINE"`` of an object (only on the error path)."""
    return _Places(text).line(where)
