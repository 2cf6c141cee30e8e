"""Hostile cluster input: the snapshot loader and the API object converter take anything.

The converter returns a model object or raises ``InvalidObject``/``SkippedObject``; the loader returns
objects or raises ``SnapshotError`` naming the file and a line; a zone built from whatever passed
serves only well-formed names and records; and bad objects pushed through the API are skipped
without poisoning the zone.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdns.cluster.convert import InvalidObject, SkippedObject, to_object
from kdns.cluster.model import EndpointSlice, Namespace, Pod, Service
from kdns.config import PodMode, ZoneSettings
from kdns.dump import dump_lines
from kdns.sources.snapshot import SnapshotError, read_snapshot
from kdns.zone.cluster_zone import ClusterZone
from tests.kube_fake import KubeFake
from tests.support.client import lookup
from tests.support.objects import endpoint_slice, namespace, service
from tests.support.paths import ROOT
from tests.support.polling import eventually
from tests.support.process import running

TEMPLATES: list[dict[str, Any]] = [
    namespace("shop"),
    service("web", "shop", ip=["10.96.0.5", "fd00::5"], ports=[("http", 80, "TCP")]),
    service("db", "shop", ip="None", ports=[("pg", 5432, "TCP")], publishNotReadyAddresses=True),
    service("out", "shop", ip=None, type="ExternalName", externalName="db.example.com."),
    endpoint_slice(
        "db-1",
        "db",
        "shop",
        addresses=[
            {
                "addresses": ["10.1.0.1"],
                "hostname": "db-0",
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": "db-0"},
            },
            "10.1.0.2",
        ],
        ports=[("pg", 5432, "TCP")],
    ),
    endpoint_slice("web-6", "web", "shop", addresses=["fd00::1:1"], address_type="IPv6"),
    {
        "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": "shop"},
        "status": {
            "phase": "Running",
            "podIP": "10.1.0.1",
            "podIPs": [{"ip": "10.1.0.1"}, {"ip": "fd00::1:1"}],
        },
    },
]

HUGE = "a" * 70, "a" * 300, ".".join(["b" * 63] * 5), "é" * 10, "A" * 5, "web\n", "-x", "x" * 64
WEIRD_IPS = (
    "10.0.0.256",
    "1.2.3",
    "::g",
    "fe80::1%eth0",
    "010.0.0.1",
    " 10.0.0.1",
    "None",
    "",
    "1e3",
    "::ffff:1.2.3.4",
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=80),
    st.sampled_from(HUGE + WEIRD_IPS),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in ``value`` a converter might read: dict keys and list items, at any depth."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _nest(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def hostile_objects(draw) -> dict[str, Any]:
    """A valid object of each kind with fields deleted, replaced by wrong types, invalid IPs, huge or
    unicode names, or deeply nested values."""
    obj = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["delete", "replace", "replace", "nest"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "nest":
            parent[path[-1]] = _nest(draw(st.sampled_from([20, 200])))
        else:
            parent[path[-1]] = draw(VALUES)
    return obj


def _converted(raw: Any) -> Namespace | Service | EndpointSlice | Pod | None:
    try:
        obj = to_object(raw)
    except (InvalidObject, SkippedObject):
        return None
    assert isinstance(obj, Namespace | Service | EndpointSlice | Pod)
    return obj


LDH = re.compile(rb"^[a-z0-9_]([a-z0-9_-]*[a-z0-9])?$")


def assert_zone_well_formed(objects: list) -> None:
    """Every name the zone holds is a wire name of LDH labels (and ``_`` for SRV), and every record
    ``kdns dump`` prints reads back with dnspython."""
    zone = ClusterZone(ZoneSettings(pods=PodMode.VERIFIED, endpoint_pod_names=True))
    zone.load(objects)
    for name in zone.index.nodes:
        parsed = dns.name.from_wire(name, 0)[0]
        assert len(name) <= 255 and all(len(label) <= 63 for label in parsed.labels)
        assert all(LDH.match(label) for label in parsed.labels[:-1]), name
    for line in dump_lines(zone):
        if not line or line.startswith((";", "$")):
            continue
        owner, _ttl, rdclass, rdtype, rdata = line.split(None, 4)
        dns.name.from_text(owner)
        dns.rdata.from_text(dns.rdataclass.from_text(rdclass), dns.rdatatype.from_text(rdtype), rdata)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_objects(), min_size=1, max_size=6))
def test_converter_returns_an_object_or_says_why(raws):
    objects = [obj for raw in raws if (obj := _converted(raw)) is not None]
    assert_zone_well_formed([to_object(t) for t in TEMPLATES[:1]] + objects)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_converter_takes_anything(value):
    for kind in ("Namespace", "Service", "EndpointSlice", "Pod", None, 7):
        _converted(value)
        _converted({"kind": kind, "metadata": value, "spec": value, "status": value, "endpoints": value})


def _assert_snapshot_error(path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    try:
        objects = read_snapshot(path)
    except SnapshotError as exc:
        message = str(exc)
        assert message.startswith(f"{path}:"), message
        assert re.match(rf"{re.escape(str(path))}:\d+", message), f"no line in {message!r}"
    else:
        assert all(isinstance(o, Namespace | Service | EndpointSlice | Pod) for o in objects)


@st.composite
def snapshot_texts(draw) -> str:
    objects = draw(st.lists(hostile_objects(), max_size=4)) + copy.deepcopy(TEMPLATES[:2])
    form = draw(st.sampled_from(["yaml-list", "yaml-docs", "json-list", "json-typed", "json-one"]))
    if form == "yaml-list":
        text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objects}, allow_unicode=True)
    elif form == "yaml-docs":
        text = yaml.safe_dump_all(objects, allow_unicode=True)
    elif form == "json-list":
        text = json.dumps({"kind": "List", "items": objects}, indent=draw(st.sampled_from([None, 1])))
    elif form == "json-typed":
        text = json.dumps(
            {"kind": "ServiceList", "items": [{k: v for k, v in o.items() if k != "kind"} for o in objects]}
        )
    else:
        text = json.dumps(objects[0])
    match draw(st.sampled_from(["whole", "cut", "splice", "garbage"])):
        case "cut":
            text = text[: draw(st.integers(0, len(text)))]
        case "splice":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(st.text(max_size=10)) + text[i:]
        case "garbage":
            text += draw(st.text(max_size=20))
    return text


@pytest.mark.slow
@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(snapshot_texts())
def test_snapshot_files_load_or_name_file_and_line(tmp_path, text):
    _assert_snapshot_error(tmp_path / "cluster.yaml", text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_random_text_loads_or_names_file_and_line(tmp_path, text):
    _assert_snapshot_error(tmp_path / "random.yaml", text)


DEEP = {
    "json items": '{"kind": "List", "items": [' + "[" * 100_000 + "]" * 100_000 + "]}",
    "json array": "[" * 100_000 + "]" * 100_000,
    "json object": '{"kind": "Service", "metadata": ' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}",
    "yaml flow": "kind: List\nitems:\n- " + "[" * 100_000 + "]" * 100_000 + "\n",
    "yaml mapping": "kind: Service\nspec: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("text", DEEP.values(), ids=DEEP.keys())
def test_deeply_nested_files_are_an_error_not_a_crash(tmp_path, text):
    """libyaml recursed until the process died (SIGSEGV), and JSON raised RecursionError; now each is
    a SnapshotError with a line. Run in a child process so a crash fails this test alone."""
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    code = (
        "import sys; from kdns.sources.snapshot import read_snapshot, SnapshotError\n"
        "try:\n    read_snapshot(__import__('pathlib').Path(sys.argv[1]))\n"
        "except SnapshotError as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.startswith(f"{path}:") and "nested too deeply" in result.stdout


def test_nesting_a_real_object_might_have_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("kind: Namespace\nmetadata: {name: a, annotations: {x: " + "[" * 300 + "]" * 300 + "}}\n")
    assert read_snapshot(path) == [Namespace(name="a")]


def test_a_name_with_a_trailing_newline_is_not_a_label():
    """``re.match`` with ``$`` let ``"web\\n"`` through as a DNS label, into the zone's names."""
    for raw in (
        service("web\n", "shop"),
        service("web", "shop\n"),
        namespace("shop\n"),
        endpoint_slice("e", "web\n", "shop"),
        service("web", "shop", ports=[("http\n", 80, "TCP")]),
    ):
        with pytest.raises(InvalidObject):
            to_object(raw)


# -- the API path ---------------------------------------------------------------------------------------
BAD_API_OBJECTS = [
    {"kind": "Namespace", "metadata": {"name": "Bad_NS"}},
    service("web", "shop", ip="10.96.0.300"),  # replaces a good Service: skipped, the old one stays
    service("typo", "shop", ip="10.96.0.7", ports=[("http", "eighty", "TCP")]),
    {**service("obj", "shop"), "spec": ["not", "a", "mapping"]},
    endpoint_slice("web-2", "web", "shop", addresses=[{"addresses": "10.1.0.9"}]),
    endpoint_slice("web-3", "web", "shop", addresses=["fd00::9"]),  # an IPv6 address in an IPv4 slice
    {"kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}, "status": {"podIP": ["10.1.0.5"]}},
]


@pytest.mark.slow
def test_bad_api_objects_are_skipped_without_poisoning_the_zone(kube_api: KubeFake, tmp_path):
    """An object of each kind with a wrong type or value, pushed through the API: each is skipped with
    a log line, the good objects beside them keep answering, and later good objects still arrive."""
    for obj in (
        namespace("shop"),
        service("web", "shop", ip="10.96.0.5"),
        endpoint_slice("web-1", "web", "shop", addresses=["10.1.0.1"]),
    ):
        kube_api.create(obj)
    kubeconfig = str(kube_api.write_kubeconfig(tmp_path / "kubeconfig"))

    with running("--kubeconfig", kubeconfig, "--pods", "verified") as server:
        assert lookup(server.port, "web.shop.svc.cluster.local") == ("NOERROR", {"10.96.0.5"})
        for obj in BAD_API_OBJECTS:
            kube_api.apply(obj)
        kube_api.create(service("late", "shop", ip="10.96.0.8"))
        eventually(lambda: lookup(server.port, "late.shop.svc.cluster.local") == ("NOERROR", {"10.96.0.8"}))
        assert lookup(server.port, "web.shop.svc.cluster.local") == ("NOERROR", {"10.96.0.5"})
        assert lookup(server.port, "typo.shop.svc.cluster.local")[0] == "NXDOMAIN"
        assert lookup(server.port, "obj.shop.svc.cluster.local")[0] == "NXDOMAIN"
        assert lookup(server.port, "10-1-0-5.shop.pod.cluster.local")[0] == "NXDOMAIN"
        skipped = server.logged("skipped")
        for identity in (
            "Namespace Bad_NS",
            "Service shop/web",
            "Service shop/typo",
            "Service shop/obj",
            "EndpointSlice shop/web-2",
            "EndpointSlice shop/web-3",
            "Pod shop/p",
        ):
            assert any(identity in line for line in skipped), (identity, skipped)
        assert server.process.poll() is None


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("0\t", 1),  # libyaml reads a number; the Python composer that looked for its line could not
        ("kind: List\nitems: []\n\x08", 3),  # a control character: no mark, only an offset
    ],
)
def test_errors_found_without_a_mark_still_name_a_line(tmp_path, text, line):
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(SnapshotError, match=rf"^{re.escape(str(path))}:{line}\b"):
        read_snapshot(path)
