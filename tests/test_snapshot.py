"""Snapshot files: the formats kubectl prints, and clear errors naming file, line and problem."""

from __future__ import annotations

import ipaddress
import json
import logging
import textwrap

import pytest

from kdns.cluster.model import EndpointSlice, Namespace, Pod, Service, ServiceKind
from kdns.cluster.selector import ObjectFilter
from kdns.sources.snapshot import HOW_TO_SNAPSHOT, SnapshotError, read_snapshot, read_snapshots
from tests.support.client import lookup
from tests.support.objects import endpoint_slice, namespace, service
from tests.support.paths import EXAMPLE
from tests.support.process import run_kdns, running


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


@pytest.mark.parametrize(
    "text",
    [
        "",  # 'kubectl get ... > cluster.yaml' that failed: its error went to the terminal
        "\n# nothing here\n",
        "---\n---\n",
        "apiVersion: v1\nitems: []\nkind: List\n",
        '{"apiVersion": "v1", "kind": "List", "items": []}',
    ],
)
def test_a_file_without_objects_is_an_error_naming_it(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(SnapshotError) as error:
        read_snapshot(path)
    assert error.value.problems == (
        f"{path}:1: no Kubernetes objects in it (was it written by a 'kubectl get' that failed?); "
        f"make a snapshot with '{HOW_TO_SNAPSHOT}'",
    )


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
    assert outcome(path) == outcome(as_yaml)


def outcome(path):
    """The objects of a file, or the problems it has (without its name)."""
    try:
        return read_snapshot(path)
    except SnapshotError as exc:
        return [problem.removeprefix(str(path)) for problem in exc.problems]


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


def warned(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_objects_without_a_kind_are_ignored_with_one_warning(tmp_path, caplog):
    """An old 'kubectl cluster-info dump' lists objects without their kind."""
    items = [namespace("a"), service("s", "a"), service("t", "a")]
    for item in items[1:]:
        del item["kind"]
    path = write(tmp_path, json.dumps({"kind": "List", "items": items}, indent=1))
    assert read_snapshot(path) == [Namespace("a")]
    assert warned(caplog) == [
        f"{path}:10: object a/s and 1 more: no 'kind', as in an old 'kubectl cluster-info dump': "
        f"ignored; make a snapshot with '{HOW_TO_SNAPSHOT}'"
    ]


def test_a_service_without_a_cluster_ip_is_served_with_a_warning(tmp_path, caplog):
    """A manifest's Service has no clusterIP until the API gives it one; headless and ExternalName
    Services have none as the API returns them."""
    path = write(
        tmp_path,
        """\
        kind: Service
        metadata: {name: web, namespace: a}
        spec: {ports: [{port: 80}]}
        ---
        kind: Service
        metadata: {name: db, namespace: a}
        spec: {clusterIP: None}
        ---
        kind: Service
        metadata: {name: out, namespace: a}
        spec: {type: ExternalName, externalName: example.com}
        """,
    )
    assert [o.name for o in read_snapshot(path)] == ["web", "db", "out"]
    assert warned(caplog) == [
        f"{path}:1: Service a/web: no spec.clusterIP, as in a manifest rather than what the API "
        f"returns: it gets no address; make a snapshot with '{HOW_TO_SNAPSHOT}'"
    ]


def test_objects_without_a_namespace_are_reported_as_a_manifest_all_at_once(tmp_path):
    path = write(
        tmp_path,
        """\
        kind: Namespace
        metadata: {name: a}
        ---
        kind: Service
        metadata: {name: web}
        spec: {clusterIP: 10.96.0.1}
        ---
        kind: Service
        metadata: {name: bad, namespace: a}
        spec: {clusterIP: 10.96.0.999}
        ---
        kind: Deployment
        metadata: {name: web}
        ---
        kind: Pod
        metadata: {name: p}
        """,
    )
    with pytest.raises(SnapshotError) as error:
        read_snapshot(path)
    manifest = (
        "no metadata.namespace: this looks like a manifest, not 'kubectl get' output; "
        f"make a snapshot with '{HOW_TO_SNAPSHOT}'"
    )
    assert error.value.problems == (
        f"{path}:4: Service web: {manifest}",
        f"{path}:8: Service a/bad: invalid IP address '10.96.0.999'",
        f"{path}:15: Pod p: {manifest}",
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_a_file_with_a_byte_order_mark_is_read(tmp_path, encoding):
    """PowerShell's '>' writes UTF-16 with a byte order mark (Windows PowerShell 5), or UTF-8 with one."""
    bom = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff"}.get(encoding, "")
    text = "apiVersion: v1\r\nkind: List\r\nitems:\r\n- kind: Namespace\r\n  metadata: {name: a}\r\n"
    for name, body in (("c.yaml", text), ("c.json", json.dumps({"kind": "List", "items": [namespace("a")]}))):
        path = tmp_path / name
        path.write_bytes((bom + body).encode(encoding))
        assert read_snapshot(path) == [Namespace("a")]


@pytest.mark.parametrize("label", ["web.v2", "web_v2", "Web", "a" * 31 + "." + "b" * 31])
def test_a_slice_whose_service_label_is_no_dns_label_is_skipped_with_one_warning(tmp_path, caplog, label):
    """The API takes any label value (63 characters, dots and underscores inside); no Service is named so."""
    items = [namespace("a"), endpoint_slice("e1", label, "a", addresses=["10.1.0.1"])]
    items.append(endpoint_slice("e2", label, "a", addresses=["10.1.0.2"]))
    path = write(tmp_path, json.dumps({"kind": "List", "items": items}))
    assert read_snapshot(path) == [Namespace("a")]
    assert warned(caplog) == [
        f"{path}:1: EndpointSlice a/e1 and 1 more: label kubernetes.io/service-name={label!r} is no DNS "
        "label, so no Service is named by it; the slice is not served"
    ]


@pytest.mark.parametrize("label", ["web v2", "-web", "a" * 64, "wéb"])
def test_a_slice_label_the_api_would_refuse_is_an_error(tmp_path, label):
    path = write(tmp_path, json.dumps(endpoint_slice("e", label, "a")))
    with pytest.raises(SnapshotError, match="is not a label value"):
        read_snapshot(path)


def test_the_same_object_in_two_files_is_a_warning_naming_both(tmp_path, caplog):
    first = write(tmp_path, json.dumps(service("web", "a", ip="10.96.0.1")), "first.yaml")
    second = write(tmp_path, json.dumps(service("web", "a", ip="10.96.0.2")), "second.yaml")
    objects = read_snapshots([first, second])
    assert [o.cluster_ips for o in objects] == [("10.96.0.1",), ("10.96.0.2",)]
    assert warned(caplog) == [f"Service a/web is in both {first} and {second}; the one in {second} is served"]


def test_every_problem_of_every_file_is_told_at_once(tmp_path):
    good = write(tmp_path, json.dumps(namespace("a")), "good.yaml")
    empty = write(tmp_path, "", "empty.yaml")
    broken = write(
        tmp_path, "kind: Service\nmetadata: {name: s, namespace: a}\nspec: {clusterIP: 1.2.3}\n", "b.yaml"
    )
    with pytest.raises(SnapshotError) as error:
        read_snapshots([good, empty, broken])
    assert [problem.split(": ")[0] for problem in error.value.problems] == [f"{empty}:1", f"{broken}:1"]


@pytest.mark.parametrize(
    "address",
    ["2001:41:10:20:30:40:50:1", "1:2:3:4:5:6:7:8", "fd00:10:96::1"],
)
def test_unquoted_ipv6_addresses_that_yaml_1_1_reads_as_base_60_load_as_addresses(tmp_path, address):
    """YAML 1.1 reads 2001:41:10:20:30:40:50:1 as the base-60 number 2001*60**7 + ...; kubectl
    quotes such addresses, a hand-written file may not."""
    path = write(
        tmp_path,
        f"""\
        kind: Service
        metadata: {{name: web, namespace: a}}
        spec:
          clusterIP: {address}
          clusterIPs: [{address}]
        ---
        kind: EndpointSlice
        metadata: {{name: web-1, namespace: a, labels: {{kubernetes.io/service-name: web}}}}
        addressType: IPv6
        endpoints:
        - addresses: [{address}]
        """,
    )
    service_, slice_ = read_snapshot(path)
    assert service_.cluster_ips == (str(ipaddress.ip_address(address)),)
    assert slice_.endpoints[0].address == ipaddress.ip_address(address).packed


def test_snapshots_as_people_make_them_served_end_to_end(tmp_path):
    """A manifest-like Service, a slice named for no DNS label, an unquoted IPv6 address and one
    Service in two files: served, each said once on stderr."""
    first = write(
        tmp_path,
        """\
        kind: List
        items:
        - {kind: Namespace, metadata: {name: a}}
        - kind: Service
          metadata: {name: web, namespace: a}
          spec: {clusterIP: 10.96.0.1}
        - kind: Service
          metadata: {name: v6, namespace: a}
          spec: {clusterIP: 2001:41:10:20:30:40:50:1}
        - kind: EndpointSlice
          metadata: {name: odd, namespace: a, labels: {kubernetes.io/service-name: web.v2}}
          addressType: IPv4
          endpoints: [{addresses: [10.1.0.1]}]
        """,
        "first.yaml",
    )
    second = write(tmp_path, json.dumps(service("web", "a", ip="10.96.0.2")), "second.yaml")
    second.write_bytes(("\ufeff" + second.read_text()).encode("utf-16-le"))
    with running("--snapshot", str(first), str(second)) as server:
        assert lookup(server.port, "web.a.svc.cluster.local") == ("NOERROR", {"10.96.0.2"})
        assert lookup(server.port, "v6.a.svc.cluster.local", "AAAA") == (
            "NOERROR",
            {"2001:41:10:20:30:40:50:1"},
        )
        warnings = [line.split(" WARNING ", 1)[1] for line in server.log if " WARNING " in line]
    assert warnings == [
        f"kdns.sources.snapshot: {first}:10: EndpointSlice a/odd: label kubernetes.io/service-name='web.v2' "
        "is no DNS label, so no Service is named by it; the slice is not served",
        f"kdns.sources.snapshot: Service a/web is in both {first} and {second}; the one in {second} is served",
    ]


def test_a_snapshot_that_cannot_be_served_says_every_problem_in_one_line_each(tmp_path):
    manifest = write(
        tmp_path,
        "kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\n"
        "kind: Service\nmetadata: {name: api}\nspec: {ports: [{port: 80}]}\n",
        "manifest.yaml",
    )
    empty = write(tmp_path, "", "empty.yaml")
    for command in ("serve", "dump"):
        result = run_kdns(
            command,
            "--snapshot",
            str(manifest),
            str(empty),
            *(["--no-forward"] if command == "serve" else []),
        )
        assert result.returncode == 2
        errors = result.stderr.splitlines()
        assert "Traceback" not in result.stderr
        assert [line.split(": ", 4)[2:4] for line in errors] == [
            [f"{manifest}:1", "Service web"],
            [f"{manifest}:5", "Service api"],
            [
                f"{empty}:1",
                "no Kubernetes objects in it (was it written by a 'kubectl get' that failed?); "
                f"make a snapshot with '{HOW_TO_SNAPSHOT}'",
            ],
        ]
