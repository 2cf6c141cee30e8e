"""Snapshot files: the formats kubectl prints, and clear errors naming file, line and problem."""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from kdns.cluster.model import EndpointSlice, Namespace, Pod, Service, ServiceKind
from kdns.cluster.selector import ObjectFilter
from kdns.sources.snapshot import SnapshotError, read_snapshot
from tests.support.client import lookup
from tests.support.objects import endpoint_slice, namespace, service
from tests.support.paths import EXAMPLE
from tests.support.process import running


def write(tmp_path, text: str, name: str = "cluster.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_example_cluster_loads_every_kind():
    kinds = {type(o) for o in read_snapshot(EXAMPLE)}
    assert kinds == {Namespace, Service, EndpointSlice, Pod}


def test_json_list(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [namespace("a"), service("s", "a", ip="10.96.0.9")]}
        )
    )
    objects = read_snapshot(path)
    assert objects == [Namespace("a"), Service("a", "s", ServiceKind.CLUSTER_IP, cluster_ips=("10.96.0.9",))]


def test_multi_document_yaml_and_typed_lists(tmp_path):
    path = write(
        tmp_path,
        """\
        apiVersion: v1
        kind: Namespace
        metadata: {name: a}
        ---
        apiVersion: v1
        kind: ServiceList
        items:
        - metadata: {name: s, namespace: a}
          spec: {clusterIP: 10.96.0.9}
        ---
        """,
    )
    assert [type(o) for o in read_snapshot(path)] == [Namespace, Service]


def test_unknown_kinds_are_logged_and_skipped(tmp_path, caplog):
    path = write(
        tmp_path,
        """\
        kind: List
        items:
        - {kind: ConfigMap, metadata: {name: x, namespace: a}}
        - {kind: ConfigMap, metadata: {name: y, namespace: a}}
        - {kind: EndpointSlice, metadata: {name: z, namespace: a}, addressType: FQDN}
        """,
    )
    with caplog.at_level(logging.INFO):
        assert read_snapshot(path) == []
    assert "ignored 2 objects: kind 'ConfigMap' is not used for DNS" in caplog.text
    assert "ignored 1 object: no kubernetes.io/service-name label" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: List\nitems:\n- {kind: Service, metadata: {name: s, namespace: a}\n", ":4:1: invalid YAML: "),
        (
            "kind: List\nitems:\n  - kind: Service\n    metadata: {name: s, namespace: a}\n    spec: {clusterIP: 10.96.0.999}\n",
            ":3: Service a/s: invalid IP address '10.96.0.999'",
        ),
        (
            "kind: List\nitems:\n- kind: Service\n  metadata: {namespace: a}\n",
            ":3: Service a/<unnamed>: metadata.name is missing",
        ),
        (
            "kind: Service\nmetadata: {name: Bad_Name, namespace: a}\n",
            ":1: Service a/Bad_Name: service name 'Bad_Name' is not a DNS label",
        ),
        (
            "---\nkind: Namespace\nmetadata: {name: ok}\n---\n- just\n- a list\n",
            ":5: expected a Kubernetes object or List, found list",
        ),
        ("kind: List\nitems: 3\n", ":1: 'items' must be a list"),
        (
            "kind: EndpointSlice\nmetadata: {name: e, namespace: a, labels: {kubernetes.io/service-name: s}}\n"
            "addressType: IPv6\nendpoints:\n- addresses: [10.0.0.1]\n",
            ":1: EndpointSlice a/e: '10.0.0.1' is not an IPv6 address",
        ),
        (
            "kind: Service\nmetadata: {name: s, namespace: a}\nspec:\n  ports:\n  - {port: 99999}\n",
            ":1: Service a/s: spec.ports[0].port 99999 is not a port number",
        ),
    ],
)
def test_bad_files_name_file_line_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SnapshotError) as error:
        read_snapshot(path)
    assert str(error.value).startswith(str(path))
    assert message in str(error.value)


def test_bad_json_names_line_and_column(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"kind": "List",\n "items": [}\n')
    with pytest.raises(SnapshotError, match=r"c\.json:2:12: invalid JSON"):
        read_snapshot(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(SnapshotError, match=r"nope\.yaml: cannot read: No such file or directory"):
        read_snapshot(tmp_path / "nope.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SnapshotError, match=r"binary\.yaml: cannot read"):
        read_snapshot(binary)


def test_empty_file_is_an_empty_cluster(tmp_path):
    assert read_snapshot(write(tmp_path, "")) == []


def test_filters_expose_namespaces_and_labelled_services(tmp_path):
    web = service("web", "a")
    web["metadata"]["labels"] = {"app": "web"}
    objects = [
        namespace("a"),
        namespace("b"),
        web,
        service("db", "a"),
        service("x", "b"),
        endpoint_slice("web-1", "web", "a"),
        endpoint_slice("x-1", "x", "b"),
    ]
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"kind": "List", "items": objects}))
    only_a = read_snapshot(path, ObjectFilter.build(["a"]))
    assert {(type(o).__name__, getattr(o, "namespace", o.name)) for o in only_a} == {
        ("Namespace", "a"),
        ("Service", "a"),
        ("EndpointSlice", "a"),
    }
    labelled = read_snapshot(path, ObjectFilter.build(labels="app=web"))
    assert sorted(o.name for o in labelled if isinstance(o, Service)) == ["web"]


def test_namespace_labels_and_noendpoints_filter_what_a_snapshot_holds(tmp_path):
    """With a selector of namespaces only matching Namespaces are read (the zone serves nothing in the
    others); without endpoints no EndpointSlice is."""
    objects = [
        namespace("a", labels={"dns": "on"}),
        namespace("b", labels={"dns": "off"}),
        namespace("c"),
        service("web", "a"),
        service("x", "b"),
        endpoint_slice("web-1", "web", "a"),
    ]
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"kind": "List", "items": objects}))
    read = read_snapshot(path, ObjectFilter.build(namespace_labels="dns=on", slices=False))
    assert {(type(o).__name__, getattr(o, "namespace", o.name)) for o in read} == {
        ("Namespace", "a"),
        ("Service", "a"),
        ("Service", "b"),  # held, and not served while b is not selected
    }


@pytest.mark.parametrize(
    ("built", "selectors"),
    [
        (ObjectFilter.build(), {"Service": None, "Namespace": None, "EndpointSlice": None}),
        (
            ObjectFilter.build(labels="app=web", namespace_labels="team in (a, b)"),
            {"Service": "app=web", "Namespace": "team in (a, b)", "EndpointSlice": None, "Pod": None},
        ),
    ],
)
def test_the_api_is_asked_for_what_each_selector_selects(built, selectors):
    assert {kind: built.server_selector(kind) for kind in selectors} == selectors


LIST_ITEMS = [namespace("a"), service("s", "a", ip="10.96.0.9"), service("t", "a", ip="10.96.0.10")]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize(
    "document",
    [
        {"apiVersion": "v1", "items": LIST_ITEMS, "kind": "List", "metadata": {"resourceVersion": ""}},
        {"kind": "List", "apiVersion": "v1", "items": LIST_ITEMS},
        {"items": LIST_ITEMS},
        # a typed list as the API serves it: items carry no kind, the list's kind may come last
        {
            "items": [{k: v for k, v in s.items() if k != "kind"} for s in LIST_ITEMS[1:]],
            "kind": "ServiceList",
        },
        {
            "kind": "ServiceList",
            "items": [{k: v for k, v in s.items() if k != "kind"} for s in LIST_ITEMS[1:]],
        },
        {"kind": "List", "items": []},
        {"kind": "List", "items": None},
        service("s", "a", ip="10.96.0.9"),
    ],
)
def test_json_is_read_item_by_item_as_whole_documents_are(tmp_path, document, indent):
    """The streaming JSON reader finds the objects the YAML reader finds in the same text."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(document, indent=indent))
    as_yaml = tmp_path / "c.yaml"
    as_yaml.write_text(" " + path.read_text())  # a leading space: read as a YAML document
    assert read_snapshot(path) == read_snapshot(as_yaml)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"kind": "List", "items": 3}', ":1: 'items' must be a list"),
        ('{"kind": "List", "items": []} {}', ":1:31: invalid JSON: Extra data"),
        ('{"kind": "List", "items": [{}]\n,}', ":2:1: invalid JSON: Illegal trailing comma"),
        ('{"kind": "List", "items": [{}, ]}', ":1:30: invalid JSON: Illegal trailing comma"),
        (
            '{"kind": "List", "items": [{"kind": "Namespace", "metadata": {"name": "a"}}\n, 7]}',
            ":2: list item is not an object",
        ),
        ('{"kind": "List", "items": [{"a": 1} {"b": 2}]}', ":1:37: invalid JSON: Expecting ',' delimiter"),
        ('{"kind": "Service", "items": []}', ":1: a Service has no 'items'; only a List does"),
        ('{"kind": "List" "items": []}', ":1:17: invalid JSON: Expecting ',' delimiter"),
        ('{"kind" "List"}', ":1:9: invalid JSON: Expecting ':' delimiter"),
        ('{"kind": "List", 7: []}', ":1:18: invalid JSON: Expecting property name"),
        ('{"kind": "List", "items": [', ":1:28: invalid JSON"),
        (
            '{"kind": "List", "items": [\n{"kind": "Namespace", "metadata": {"name": "a"}},\n'
            '{"kind": "Service", "metadata": {"name": "s", "namespace": "a"}, "spec": {"clusterIP": "1.2.3"}}]}',
            ":3: Service a/s: invalid IP address '1.2.3'",
        ),
    ],
)
def test_bad_json_lists_name_line_and_problem(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(SnapshotError) as error:
        read_snapshot(path)
    assert str(error.value).startswith(f"{path}:")
    assert message in str(error.value)


def test_json_objects_without_items_are_single_objects(tmp_path):
    path = tmp_path / "c.json"
    for text in ("{}", '{"kind": "List"}', '{"kind": "Widget", "items": 3}'):
        path.write_text(text)
        assert read_snapshot(path) == []  # no kind, or one DNS does not use: skipped with a log line


def classic_endpoints(
    name: str, ns: str = "default", *, ready=(), not_ready=(), ports=(("db", 27017),)
) -> dict:
    """A v1 Endpoints object as written by hand for a selectorless Service (or as kubectl prints it)."""
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns},
        "subsets": [
            {
                "addresses": [{"ip": ip} for ip in ready],
                "notReadyAddresses": [{"ip": ip} for ip in not_ready],
                "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
            }
        ],
    }


def test_classic_endpoints_are_read_as_the_mirroring_controller_mirrors_them(tmp_path):
    items = [
        namespace("default"),
        service("mongo", ip="None", ports=[("db", 27017, "TCP")]),  # selectorless, hand-written addresses
        classic_endpoints("mongo", ready=["192.0.2.10", "2001:db8::10"], not_ready=["192.0.2.11"]),
        service("web", ip="10.96.0.80", ports=[("http", 80, "TCP")]),
        endpoint_slice("web-abc", "web", addresses=["10.1.0.1"], ports=[("http", 80, "TCP")]),
        classic_endpoints("web", ready=["10.1.0.99"], ports=[("http", 80)]),  # its slice says it all
    ]
    objects = read_snapshot(write(tmp_path, json.dumps({"kind": "List", "items": items})))
    slices = {s.name: s for s in objects if isinstance(s, EndpointSlice)}
    assert set(slices) == {"web-abc", "mongo-mirrored-0-ipv4", "mongo-mirrored-0-ipv6"}
    v4 = slices["mongo-mirrored-0-ipv4"]
    assert v4.service == "mongo" and [(e.addresses, e.ready) for e in v4.endpoints] == [
        ((bytes([192, 0, 2, 10]),), True),
        ((bytes([192, 0, 2, 11]),), False),
    ]
    assert [p.port for p in v4.ports] == [27017]
    with running("--snapshot", str(tmp_path / "cluster.yaml")) as server:
        assert lookup(server.port, "mongo.default.svc.cluster.local") == ("NOERROR", {"192.0.2.10"})
        assert lookup(server.port, "mongo.default.svc.cluster.local", "AAAA") == ("NOERROR", {"2001:db8::10"})
        assert lookup(server.port, "_db._tcp.mongo.default.svc.cluster.local", "SRV")[0] == "NOERROR"
