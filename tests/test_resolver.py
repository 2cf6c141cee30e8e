"""The resolver against the example cluster: every record kind and every negative rule, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from kdns.config import PodMode
from tests.support.objects import endpoint_slice, namespace, pod, service, srv_repeats
from tests.support.zone import ask_resolver, example_zone, zone_of

SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"
SOA_V4 = "in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. SERIAL 7200 1800 86400 5"
NODATA = ("NOERROR", [], [SOA])
NXDOMAIN = ("NXDOMAIN", [], [SOA])


KDNS_POD = frozenset({bytes([10, 244, 0, 2])})  # kdns as one of kube-dns's pods in the example


@pytest.fixture(scope="module")
def zone():
    return example_zone(own_addresses=KDNS_POD)


CASES = [
    # ClusterIP Services: A, AAAA, dual-stack, a Service without endpoints
    ("web.shop.svc.cluster.local", "A", "NOERROR", ["web.shop.svc.cluster.local. 5 IN A 10.96.100.10"], []),
    ("web.shop.svc.cluster.local", "AAAA", *NODATA),
    ("api.shop.svc.cluster.local", "A", "NOERROR", ["api.shop.svc.cluster.local. 5 IN A 10.96.100.20"], []),
    (
        "api.shop.svc.cluster.local",
        "AAAA",
        "NOERROR",
        ["api.shop.svc.cluster.local. 5 IN AAAA fd00:10:96::100:20"],
        [],
    ),
    (
        "kubernetes.default.svc.cluster.local",
        "A",
        "NOERROR",
        ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"],
        [],
    ),
    (
        "kube-dns.kube-system.svc.cluster.local",
        "A",
        "NOERROR",
        ["kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"],
        [],
    ),
    (
        "prometheus.monitoring.svc.cluster.local",
        "A",
        "NOERROR",
        ["prometheus.monitoring.svc.cluster.local. 5 IN A 10.96.200.5"],
        [],
    ),
    ("web.shop.svc.cluster.local", "MX", *NODATA),
    # endpoint names of a ClusterIP Service; the not-ready endpoint has none
    (
        "10-244-1-10.web.shop.svc.cluster.local",
        "A",
        "NOERROR",
        ["10-244-1-10.web.shop.svc.cluster.local. 5 IN A 10.244.1.10"],
        [],
    ),
    ("10-244-2-12.web.shop.svc.cluster.local", "A", *NXDOMAIN),
    (
        "fd00-10-244-1--20.api.shop.svc.cluster.local",
        "AAAA",
        "NOERROR",
        ["fd00-10-244-1--20.api.shop.svc.cluster.local. 5 IN AAAA fd00:10:244:1::20"],
        [],
    ),
    # headless: ready endpoints across two slices, hostnames, not-ready excluded
    (
        "postgres.data.svc.cluster.local",
        "A",
        "NOERROR",
        [
            "postgres.data.svc.cluster.local. 5 IN A 10.244.1.30",
            "postgres.data.svc.cluster.local. 5 IN A 10.244.2.31",
        ],
        [],
    ),
    (
        "postgres-0.postgres.data.svc.cluster.local",
        "A",
        "NOERROR",
        ["postgres-0.postgres.data.svc.cluster.local. 5 IN A 10.244.1.30"],
        [],
    ),
    ("postgres-2.postgres.data.svc.cluster.local", "A", *NXDOMAIN),
    ("postgres-0.postgres.data.svc.cluster.local", "AAAA", *NODATA),
    # headless with publishNotReadyAddresses: the not-ready endpoint is published, named by its IP
    (
        "redis.data.svc.cluster.local",
        "A",
        "NOERROR",
        [
            "redis.data.svc.cluster.local. 5 IN A 10.244.1.40",
            "redis.data.svc.cluster.local. 5 IN A 10.244.2.41",
        ],
        [],
    ),
    (
        "10-244-2-41.redis.data.svc.cluster.local",
        "A",
        "NOERROR",
        ["10-244-2-41.redis.data.svc.cluster.local. 5 IN A 10.244.2.41"],
        [],
    ),
    # ExternalName: CNAME, followed when the target is in the zone
    (
        "payments.shop.svc.cluster.local",
        "A",
        "NOERROR",
        ["payments.shop.svc.cluster.local. 5 IN CNAME payments.example.com."],
        [],
    ),
    (
        "payments.shop.svc.cluster.local",
        "CNAME",
        "NOERROR",
        ["payments.shop.svc.cluster.local. 5 IN CNAME payments.example.com."],
        [],
    ),
    (
        "storefront.shop.svc.cluster.local",
        "A",
        "NOERROR",
        [
            "storefront.shop.svc.cluster.local. 5 IN CNAME web.shop.svc.cluster.local.",
            "web.shop.svc.cluster.local. 5 IN A 10.96.100.10",
        ],
        [],
    ),
    (
        "storefront.shop.svc.cluster.local",
        "AAAA",
        "NOERROR",
        ["storefront.shop.svc.cluster.local. 5 IN CNAME web.shop.svc.cluster.local."],
        [SOA],
    ),
    (
        "storefront.shop.svc.cluster.local",
        "SRV",
        "NOERROR",
        [
            "storefront.shop.svc.cluster.local. 5 IN CNAME web.shop.svc.cluster.local.",
            "web.shop.svc.cluster.local. 5 IN SRV 0 50 443 web.shop.svc.cluster.local.",
            "web.shop.svc.cluster.local. 5 IN SRV 0 50 80 web.shop.svc.cluster.local.",
        ],
        [],
    ),
    ("x.payments.shop.svc.cluster.local", "A", *NXDOMAIN),
    # SRV for named ports; protocol lowercased; unknown port or protocol is NXDOMAIN
    (
        "_http._tcp.web.shop.svc.cluster.local",
        "SRV",
        "NOERROR",
        ["_http._tcp.web.shop.svc.cluster.local. 5 IN SRV 0 100 80 web.shop.svc.cluster.local."],
        [],
    ),
    (
        "_dns._udp.kube-dns.kube-system.svc.cluster.local",
        "SRV",
        "NOERROR",
        [
            "_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."
        ],
        [],
    ),
    (
        "_postgres._tcp.postgres.data.svc.cluster.local",
        "SRV",
        "NOERROR",
        [
            "_postgres._tcp.postgres.data.svc.cluster.local. 5 IN SRV 0 50 5432 postgres-0.postgres.data.svc.cluster.local.",
            "_postgres._tcp.postgres.data.svc.cluster.local. 5 IN SRV 0 50 5432 postgres-1.postgres.data.svc.cluster.local.",
        ],
        [],
    ),
    ("_http._udp.web.shop.svc.cluster.local", "SRV", *NXDOMAIN),
    ("_gopher._tcp.web.shop.svc.cluster.local", "SRV", *NXDOMAIN),
    ("_tcp.web.shop.svc.cluster.local", "SRV", *NODATA),  # an empty non-terminal exists
    ("_http._tcp.web.shop.svc.cluster.local", "A", *NODATA),
    # pods, insecure mode: any well-formed IP label in an existing namespace
    (
        "1-2-3-4.shop.pod.cluster.local",
        "A",
        "NOERROR",
        ["1-2-3-4.shop.pod.cluster.local. 5 IN A 1.2.3.4"],
        [],
    ),
    ("1-2-3-4.shop.pod.cluster.local", "AAAA", *NODATA),
    (
        "fd00--1.shop.pod.cluster.local",
        "AAAA",
        "NOERROR",
        ["fd00--1.shop.pod.cluster.local. 5 IN AAAA fd00::1"],
        [],
    ),
    ("1-2-3-4.nowhere.pod.cluster.local", "A", *NXDOMAIN),
    ("1-2-3-999.shop.pod.cluster.local", "A", *NXDOMAIN),
    ("not-an-ip.shop.pod.cluster.local", "A", *NXDOMAIN),
    ("x.1-2-3-4.shop.pod.cluster.local", "A", *NXDOMAIN),
    # namespaces, the svc and pod subtrees, names outside the grammar
    ("shop.svc.cluster.local", "A", *NODATA),
    ("svc.cluster.local", "A", *NODATA),
    ("pod.cluster.local", "A", *NODATA),
    ("shop.pod.cluster.local", "A", *NODATA),
    ("nowhere.svc.cluster.local", "A", *NXDOMAIN),
    ("missing.shop.svc.cluster.local", "A", *NXDOMAIN),
    ("example.com.shop.svc.cluster.local", "A", *NXDOMAIN),
    ("web.shop.cluster.local", "A", *NXDOMAIN),
    ("a.b.c.d.web.shop.svc.cluster.local", "A", *NXDOMAIN),
    # apex: SOA, NS with its address, dns-version, ns.dns
    ("cluster.local", "SOA", "NOERROR", [SOA], []),
    ("cluster.local", "NS", "NOERROR", ["cluster.local. 5 IN NS ns.dns.cluster.local."], []),
    ("cluster.local", "A", *NODATA),
    ("ns.dns.cluster.local", "A", "NOERROR", ["ns.dns.cluster.local. 5 IN A 10.96.0.10"], []),
    ("dns.cluster.local", "A", *NODATA),
    # the zone's TTL, as CoreDNS serves it (not the spec example's 28800)
    ("dns-version.cluster.local", "TXT", "NOERROR", ['dns-version.cluster.local. 5 IN TXT "1.1.0"'], []),
    # reverse: cluster IPs name their Service, endpoint IPs their endpoint; others do not exist
    (
        "10.100.96.10.in-addr.arpa",
        "PTR",
        "NOERROR",
        ["10.100.96.10.in-addr.arpa. 5 IN PTR web.shop.svc.cluster.local."],
        [],
    ),
    (
        "30.1.244.10.in-addr.arpa",
        "PTR",
        "NOERROR",
        ["30.1.244.10.in-addr.arpa. 5 IN PTR postgres-0.postgres.data.svc.cluster.local."],
        [],
    ),
    (
        "41.2.244.10.in-addr.arpa",
        "PTR",
        "NOERROR",
        ["41.2.244.10.in-addr.arpa. 5 IN PTR 10-244-2-41.redis.data.svc.cluster.local."],
        [],
    ),
    (
        "0.2.0.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa",
        "PTR",
        "NOERROR",
        [
            "0.2.0.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN PTR api.shop.svc.cluster.local."
        ],
        [],
    ),
    ("12.2.244.10.in-addr.arpa", "PTR", "NXDOMAIN", [], [SOA_V4]),
    ("8.8.8.8.in-addr.arpa", "PTR", "NXDOMAIN", [], [SOA_V4]),
    ("96.10.in-addr.arpa", "PTR", "NOERROR", [], [SOA_V4]),
    # outside every zone, other classes, zone transfers
    ("example.com", "A", "REFUSED", [], []),
    ("local", "SOA", "REFUSED", [], []),
    ("cluster.local", "AXFR", "REFUSED", [], []),
]


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "answer", "authority"), CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES]
)
def test_answers(zone, name, qtype, rcode, answer, authority):
    reply = ask_resolver(zone, name, qtype)
    assert (reply.rcode, reply.answer, reply.authority) == (rcode, sorted(answer), sorted(authority))
    assert reply.aa == (rcode != "REFUSED")


def test_names_match_case_insensitively(zone):
    assert (
        ask_resolver(zone, "WeB.ShOp.SvC.Cluster.Local").answer
        == ask_resolver(zone, "web.shop.svc.cluster.local").answer
    )


def test_other_classes_are_refused(zone):
    assert ask_resolver(zone, "web.shop.svc.cluster.local", qclass=3).rcode == "REFUSED"


@pytest.mark.parametrize(
    ("name", "qtype", "additional"),
    [
        ("_http._tcp.web.shop.svc.cluster.local", "SRV", ["web.shop.svc.cluster.local. 5 IN A 10.96.100.10"]),
        (
            "_grpc._tcp.api.shop.svc.cluster.local",
            "SRV",
            [
                "api.shop.svc.cluster.local. 5 IN A 10.96.100.20",
                "api.shop.svc.cluster.local. 5 IN AAAA fd00:10:96::100:20",
            ],
        ),
        (
            "_postgres._tcp.postgres.data.svc.cluster.local",
            "SRV",
            [
                "postgres-0.postgres.data.svc.cluster.local. 5 IN A 10.244.1.30",
                "postgres-1.postgres.data.svc.cluster.local. 5 IN A 10.244.2.31",
            ],
        ),
        ("cluster.local", "NS", ["ns.dns.cluster.local. 5 IN A 10.96.0.10"]),
        ("web.shop.svc.cluster.local", "A", []),
    ],
)
def test_additional_section(zone, name, qtype, additional):
    assert ask_resolver(zone, name, qtype).additional == sorted(additional)


def test_srv_at_service_name_lists_every_port(zone):
    """CoreDNS answers SRV at the Service name itself, one record per port (headless: per endpoint)."""
    assert ask_resolver(zone, "web.shop.svc.cluster.local", "SRV").answer == [
        "web.shop.svc.cluster.local. 5 IN SRV 0 50 443 web.shop.svc.cluster.local.",
        "web.shop.svc.cluster.local. 5 IN SRV 0 50 80 web.shop.svc.cluster.local.",
    ]
    assert ask_resolver(zone, "redis.data.svc.cluster.local", "SRV").answer == [
        "redis.data.svc.cluster.local. 5 IN SRV 0 50 6379 10-244-1-40.redis.data.svc.cluster.local.",
        "redis.data.svc.cluster.local. 5 IN SRV 0 50 6379 10-244-2-41.redis.data.svc.cluster.local.",
    ]


def test_any_gets_one_rrset(zone):
    """RFC 8482: a single RRset is a complete answer to ANY."""
    reply = ask_resolver(zone, "api.shop.svc.cluster.local", "ANY")
    assert reply.answer == ["api.shop.svc.cluster.local. 5 IN A 10.96.100.20"]
    assert ask_resolver(zone, "cluster.local", "ANY").answer[0].startswith("cluster.local. 5 IN SOA")


def test_ttl_is_configurable():
    zone = example_zone(ttl=30)
    assert ask_resolver(zone, "web.shop.svc.cluster.local").answer == [
        "web.shop.svc.cluster.local. 30 IN A 10.96.100.10"
    ]
    authority = ask_resolver(zone, "nope.shop.svc.cluster.local").authority
    assert authority == [SOA.replace(" 5 IN", " 30 IN").replace(" 86400 5", " 86400 30")]


def test_pods_verified_answers_only_existing_pods():
    zone = example_zone(pods=PodMode.VERIFIED)
    assert ask_resolver(zone, "10-244-1-10.shop.pod.cluster.local").answer == [
        "10-244-1-10.shop.pod.cluster.local. 5 IN A 10.244.1.10"
    ]
    assert ask_resolver(zone, "fd00-10-244-1--20.shop.pod.cluster.local", "AAAA").answer == [
        "fd00-10-244-1--20.shop.pod.cluster.local. 5 IN AAAA fd00:10:244:1::20"
    ]
    assert ask_resolver(zone, "1-2-3-4.shop.pod.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "10-244-1-10.data.pod.cluster.local").rcode == "NXDOMAIN"  # wrong namespace
    assert ask_resolver(zone, "10-244-2-50.default.pod.cluster.local").rcode == "NXDOMAIN"  # Succeeded pod
    assert ask_resolver(zone, "shop.pod.cluster.local").rcode == "NOERROR"


@pytest.mark.parametrize(
    ("phase", "deleting", "rcode"),
    [
        ("Running", False, "NOERROR"),
        ("Pending", False, "NOERROR"),
        ("Running", True, "NXDOMAIN"),  # terminating: its deletionTimestamp is set
        ("Pending", True, "NXDOMAIN"),
        ("Succeeded", False, "NXDOMAIN"),
        ("Failed", False, "NXDOMAIN"),
        ("Unknown", False, "NXDOMAIN"),
    ],
)
def test_pods_verified_drops_terminating_and_finished_pods(phase, deleting, rcode):
    """CoreDNS keeps no pod in phase Succeeded, Failed or Unknown, nor one being deleted."""
    zone = zone_of(
        [namespace("default"), pod("p", ips=["10.5.0.1"], phase=phase, deleting=deleting)],
        pods=PodMode.VERIFIED,
    )
    assert ask_resolver(zone, "10-5-0-1.default.pod.cluster.local").rcode == rcode


def test_pods_disabled_answers_no_pod_names():
    zone = example_zone(pods=PodMode.DISABLED)
    assert ask_resolver(zone, "1-2-3-4.shop.pod.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "10-244-1-10.shop.pod.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "shop.pod.cluster.local").rcode == "NXDOMAIN"
    assert (
        ask_resolver(zone, "pod.cluster.local").rcode,
        ask_resolver(zone, "pod.cluster.local").answer,
    ) == ("NOERROR", [])


def test_endpoint_pod_names():
    zone = example_zone(endpoint_pod_names=True)
    assert ask_resolver(zone, "web-6c9f8b7d5-abcde.web.shop.svc.cluster.local").answer == [
        "web-6c9f8b7d5-abcde.web.shop.svc.cluster.local. 5 IN A 10.244.1.10"
    ]
    assert ask_resolver(zone, "10-244-1-10.web.shop.svc.cluster.local").rcode == "NXDOMAIN"
    # an endpoint hostname still wins over the pod name
    assert ask_resolver(zone, "postgres-0.postgres.data.svc.cluster.local").rcode == "NOERROR"
    assert ask_resolver(zone, "10.1.244.10.in-addr.arpa", "PTR").answer == [
        "10.1.244.10.in-addr.arpa. 5 IN PTR web-6c9f8b7d5-abcde.web.shop.svc.cluster.local."
    ]


def test_ignore_empty_service():
    zone = example_zone(ignore_empty_service=True)
    assert ask_resolver(zone, "prometheus.monitoring.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "_web._tcp.prometheus.monitoring.svc.cluster.local", "SRV").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "web.shop.svc.cluster.local").rcode == "NOERROR"
    assert ask_resolver(zone, "payments.shop.svc.cluster.local").rcode == "NOERROR"  # ExternalName is exempt


def test_several_zones_share_the_names_and_ptrs_name_the_primary():
    zone = example_zone(zones=("cluster.local", "corp.example", "in-addr.arpa"))
    assert ask_resolver(zone, "web.shop.svc.corp.example").answer == [
        "web.shop.svc.corp.example. 5 IN A 10.96.100.10"
    ]
    assert ask_resolver(zone, "10.100.96.10.in-addr.arpa", "PTR").answer == [
        "10.100.96.10.in-addr.arpa. 5 IN PTR web.shop.svc.cluster.local."
    ]
    assert ask_resolver(zone, "1-2-3-4.shop.pod.corp.example").answer == [
        "1-2-3-4.shop.pod.corp.example. 5 IN A 1.2.3.4"
    ]
    assert ask_resolver(
        zone, "0.2.0.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa", "PTR"
    ).rcode == ("REFUSED")


def test_narrow_reverse_zone_answers_only_inside_it():
    zone = example_zone(zones=("cluster.local", "96.10.in-addr.arpa"))
    assert ask_resolver(zone, "10.100.96.10.in-addr.arpa", "PTR").rcode == "NOERROR"
    assert ask_resolver(zone, "30.1.244.10.in-addr.arpa", "PTR").rcode == "REFUSED"
    assert (
        ask_resolver(zone, "96.10.in-addr.arpa", "SOA").answer[0].startswith("96.10.in-addr.arpa. 5 IN SOA")
    )


def srv_zone():
    return zone_of(srv_repeats())


@pytest.mark.parametrize(
    ("name", "records"),
    [
        # one port, two cluster IPs: CoreDNS makes two records, drops one, and the weight is 100 / 2
        ("_http._tcp.dual.default.svc.cluster.local", ["0 50 80 dual.default.svc.cluster.local."]),
        ("dual.default.svc.cluster.local", ["0 50 80 dual.default.svc.cluster.local."]),
        # three ports, two of them 53: three records made, two kept, each of weight 100 / 3
        (
            "dns.default.svc.cluster.local",
            ["0 33 53 dns.default.svc.cluster.local.", "0 33 9153 dns.default.svc.cluster.local."],
        ),
        ("_dns._udp.dns.default.svc.cluster.local", ["0 100 53 dns.default.svc.cluster.local."]),
        # a, b and a again (its IPv6 address): three records made, two kept
        (
            "_http._tcp.hl.default.svc.cluster.local",
            ["0 33 80 a.hl.default.svc.cluster.local.", "0 33 80 b.hl.default.svc.cluster.local."],
        ),
        (
            "hl.default.svc.cluster.local",
            ["0 33 80 a.hl.default.svc.cluster.local.", "0 33 80 b.hl.default.svc.cluster.local."],
        ),
        ("a.hl.default.svc.cluster.local", ["0 50 80 a.hl.default.svc.cluster.local."]),
        ("b.hl.default.svc.cluster.local", ["0 100 80 b.hl.default.svc.cluster.local."]),
    ],
)
def test_srv_weight_counts_the_records_before_repeats_are_dropped(name, records):
    reply = ask_resolver(srv_zone(), name, "SRV")
    assert reply.answer == sorted(f"{name}. 5 IN SRV {record}" for record in records)


def test_srv_repeats_keep_every_address_of_their_target():
    reply = ask_resolver(srv_zone(), "_http._tcp.hl.default.svc.cluster.local", "SRV")
    assert reply.additional == [
        "a.hl.default.svc.cluster.local. 5 IN A 10.1.0.1",
        "a.hl.default.svc.cluster.local. 5 IN AAAA fd00::a",
        "b.hl.default.svc.cluster.local. 5 IN A 10.1.0.2",
    ]


def soa_of(zone: str) -> str:
    return f"{zone}. 5 IN SOA ns.dns.{zone}. hostmaster.{zone}. SERIAL 7200 1800 86400 5"


NARROW = ("cluster.local", "0.10.in-addr.arpa", "96.10.in-addr.arpa", "in-addr.arpa")


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "zone"),
    [
        ("101.0.0.10.in-addr.arpa", "PTR", "NXDOMAIN", "0.10.in-addr.arpa"),
        ("5.0.10.in-addr.arpa", "PTR", "NXDOMAIN", "0.10.in-addr.arpa"),
        ("0.10.in-addr.arpa", "PTR", "NOERROR", "0.10.in-addr.arpa"),  # the apex holds no PTR
        ("0.10.in-addr.arpa", "A", "NOERROR", "0.10.in-addr.arpa"),
        ("10.100.96.10.in-addr.arpa", "A", "NOERROR", "96.10.in-addr.arpa"),  # a PTR name, asked for A
        ("100.96.10.in-addr.arpa", "PTR", "NOERROR", "96.10.in-addr.arpa"),  # an empty non-terminal
        ("x.10.100.96.10.in-addr.arpa", "PTR", "NXDOMAIN", "96.10.in-addr.arpa"),
        # forward-looking names inside a reverse zone
        ("web.shop.svc.0.10.in-addr.arpa", "A", "NXDOMAIN", "0.10.in-addr.arpa"),
        ("web.shop.svc.96.10.in-addr.arpa", "SRV", "NXDOMAIN", "96.10.in-addr.arpa"),
        ("ns.dns.0.10.in-addr.arpa", "A", "NXDOMAIN", "0.10.in-addr.arpa"),
        # the wider reverse zone around them, and the cluster zone
        ("1.1.168.192.in-addr.arpa", "PTR", "NXDOMAIN", "in-addr.arpa"),
        ("1-2-3-4.nowhere.pod.cluster.local", "A", "NXDOMAIN", "cluster.local"),
    ],
)
def test_negative_answers_in_a_narrow_reverse_zone_carry_its_own_soa(name, qtype, rcode, zone):
    reply = ask_resolver(example_zone(zones=NARROW), name, qtype)
    assert (reply.rcode, reply.answer, reply.authority) == (rcode, [], [soa_of(zone)])


def test_a_narrow_reverse_zone_answers_its_own_soa():
    reply = ask_resolver(example_zone(zones=NARROW), "0.10.in-addr.arpa", "SOA")
    assert reply.answer == [soa_of("0.10.in-addr.arpa")]


OWN = (bytes([192, 0, 2, 53]), bytes.fromhex("20010db8000000000000000000000053"))
OWN_GLUE = ["ns.dns.cluster.local. 5 IN A 192.0.2.53", "ns.dns.cluster.local. 5 IN AAAA 2001:db8::53"]


def _backed(name: str, ns: str, addresses: list[str | dict], **spec: Any) -> list[dict]:
    return [
        namespace(ns),
        service(name, ns, **spec),
        endpoint_slice(f"{name}-1", name, ns, addresses=addresses),
    ]


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        # no Service of kdns's own: the addresses the server answers on
        ([namespace("default")], OWN_GLUE),
        # the name kube-system/kube-dns means nothing by itself: its endpoints are another server's
        (_backed("kube-dns", "kube-system", ["10.244.0.2"], ip="10.96.0.10"), OWN_GLUE),
        # a Service whose endpoint is kdns's own address, whatever its name (the Helm chart's
        # coredns, kubespray's): its cluster IP, and the server's own addresses are not added
        (
            _backed("coredns", "dns-system", ["10.244.0.2", "192.0.2.53"], ip="10.96.0.53"),
            ["ns.dns.cluster.local. 5 IN A 10.96.0.53"],
        ),
        # ... every cluster IP of a dual-stack one
        (
            _backed("coredns", "dns-system", ["192.0.2.53"], ip=["10.96.0.53", "fd00::53"]),
            ["ns.dns.cluster.local. 5 IN A 10.96.0.53", "ns.dns.cluster.local. 5 IN AAAA fd00::53"],
        ),
        # not while that endpoint is not ready
        (
            _backed(
                "coredns",
                "dns-system",
                [{"addresses": ["192.0.2.53"], "conditions": {"ready": False}}],
                ip="10.96.0.53",
            ),
            OWN_GLUE,
        ),
        # a headless Service of kdns's own: its endpoints' addresses
        (
            _backed("dns", "dns-system", ["192.0.2.53", "192.0.2.54"], ip="None"),
            ["ns.dns.cluster.local. 5 IN A 192.0.2.53", "ns.dns.cluster.local. 5 IN A 192.0.2.54"],
        ),
    ],
)
def test_ns_glue_is_kdns_own_service_or_else_the_servers_own_addresses(objects, expected):
    """As CoreDNS finds its own Service: by its endpoints' addresses, not by its name."""
    zone = zone_of(objects, own_addresses=frozenset(OWN))
    reply = ask_resolver(zone, "cluster.local", "NS", own_addresses=OWN)
    assert reply.answer == ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    assert reply.additional == expected
    addresses = [*ask_resolver(zone, "ns.dns.cluster.local", "A", own_addresses=OWN).answer]
    addresses += ask_resolver(zone, "ns.dns.cluster.local", "AAAA", own_addresses=OWN).answer
    assert sorted(addresses) == expected


def test_without_addresses_to_give_ns_keeps_its_record_and_ns_dns_has_none():
    """CoreDNS answers NODATA at the apex NS when it knows no address of its own; a zone has NS
    records at its apex (RFC 1034 section 4.2.1), so kdns keeps the record, without glue."""
    zone = zone_of([namespace("default")])
    reply = ask_resolver(zone, "cluster.local", "NS")
    assert (reply.answer, reply.additional) == (["cluster.local. 5 IN NS ns.dns.cluster.local."], [])
    assert ask_resolver(zone, "ns.dns.cluster.local", "A").rcode == "NOERROR"
    assert ask_resolver(zone, "ns.dns.cluster.local", "A").answer == []
