"""The pure parts of the metrics: CoreDNS's ``server`` labels, the type of a query too broken to
parse, and the trigger time an EndpointSlice carries."""

from __future__ import annotations

import pytest

from kdns.cluster.convert import to_endpoint_slice
from kdns.ops.metrics import family_labels, server_labels, type_name
from kdns.wire.query import question_type


@pytest.mark.parametrize(
    ("addresses", "port", "labels"),
    [
        (("0.0.0.0", "::"), 53, ["dns://:53"]),  # CoreDNS without bind: every interface
        (("0.0.0.0",), 5353, ["dns://:5353"]),
        (("127.0.0.1",), 53, ["dns://127.0.0.1:53"]),
        (("127.0.0.1", "::1"), 53, ["dns://127.0.0.1:53", "dns://[::1]:53"]),  # IPv6 in brackets
        (("fd00::10",), 1053, ["dns://[fd00::10]:1053"]),
    ],
)
def test_server_label_per_address(addresses, port, labels):
    assert server_labels(addresses, port) == labels


@pytest.mark.parametrize(
    ("addresses", "labels"),
    [
        (("127.0.0.1", "::1"), ("dns://127.0.0.1:53", "dns://[::1]:53")),
        (("::1", "127.0.0.1"), ("dns://127.0.0.1:53", "dns://[::1]:53")),
        (("127.0.0.1",), ("dns://127.0.0.1:53", "dns://127.0.0.1:53")),  # no IPv6 address: never asked
        (("0.0.0.0", "::"), ("dns://:53", "dns://:53")),
    ],
)
def test_each_family_counts_under_its_own_address(addresses, labels):
    assert family_labels(addresses, 53) == labels


@pytest.mark.parametrize(
    ("qtype", "name"),
    [
        (1, "A"),
        (28, "AAAA"),
        (33, "SRV"),
        (65, "HTTPS"),
        (252, "AXFR"),
        (255, "ANY"),
        (0, "other"),
        # NAPTR (35) and HINFO (13) are named by dnslib but not by CoreDNS's metrics
        (35, "other"),
        (13, "other"),
        (99, "other"),
        (65280, "other"),
    ],
)
def test_query_types_coredns_names_and_other(qtype, name):
    assert type_name(qtype) == name


HEADER = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("packet", "qtype"),
    [
        (HEADER + b"\x03www\x00\x00\x1c\x00\x01", 28),
        (HEADER + b"\x03www\x00\x00", 0),  # the type cut short
        (HEADER + b"\x03www", 0),  # the name never ends
        (HEADER[:5], 0),
    ],
)
def test_the_type_of_a_query_given_an_error_reply(packet, qtype):
    assert question_type(packet) == qtype


def slice_with(annotations: dict | None) -> dict:
    metadata = {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "addressType": "IPv4", "endpoints": []}


TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


@pytest.mark.parametrize(
    ("annotations", "changed_at"),
    [
        ({TRIGGER: "2024-01-02T03:04:05Z"}, 1704164645.0),  # date -d 2024-01-02T03:04:05Z +%s
        ({TRIGGER: "2024-01-02T03:04:05.5+00:00"}, 1704164645.5),
        ({TRIGGER: "0001-01-01T00:00:00Z"}, 0.0),  # an unset time
        ({TRIGGER: "yesterday"}, 0.0),
        ({TRIGGER: 12}, 0.0),
        ({}, 0.0),
        (None, 0.0),
    ],
)
def test_the_trigger_time_a_slice_carries(annotations, changed_at):
    assert to_endpoint_slice(slice_with(annotations)).changed_at == changed_at
