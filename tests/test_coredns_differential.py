"""CoreDNS and kdns following one real API server with kubeadm's Corefile, asked the same questions
(tests/support/differential.py): every difference is either gone or documented, and every documented
one still occurs, so README.md's "Where kdns answers differently from CoreDNS" stays true."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.control_plane import control_plane
from tests.support.differential import (
    DOCUMENTED,
    DUAL_STACK_RANGES,
    Question,
    Reply,
    Report,
    base_questions,
    build_cluster,
    compare,
    compare_all,
    servers,
    settled,
    suite_questions,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    """A dual-stack control plane of its own, the cluster built, both servers asked the suite's share."""
    directory = tmp_path_factory.mktemp("differential")
    with control_plane(directory / "control-plane", apiserver_args=DUAL_STACK_RANGES) as plane:
        build_cluster(plane.kubeconfig, dual_stack=True)
        settled(plane.kubeconfig)
        with servers(plane.kubeconfig, directory) as pair:
            text = settled(plane.kubeconfig, pair)
            yield compare_all(pair, suite_questions(base_questions(text)))


@pytest.mark.slow
def test_every_difference_from_coredns_is_documented(report):
    assert report.asked > 2000
    assert report.unexplained() == [], "\n".join(report.lines())


@pytest.mark.slow
@pytest.mark.parametrize("pattern", [pattern for pattern, _ in DOCUMENTED], ids=range(len(DOCUMENTED)))
def test_each_documented_difference_still_occurs(report, pattern):
    assert any(re.fullmatch(pattern, kind) for kind in report.counts), "\n".join(report.lines())


# -- the comparison itself, on replies made here ----------------------------------------------------------
QUESTION = Question("web.apps.svc.cluster.local.", "A", "service")
OUTSIDE = Question("www.example.", "A", "outside")
A1, A2 = ("web.apps.svc.cluster.local.", "A", "10.0.0.1"), ("web.apps.svc.cluster.local.", "A", "10.0.0.2")


def reply(answer=(), ttl=30, flags=("AA",), rcode="NOERROR", opt=None) -> Reply:
    records = frozenset(answer)
    return Reply(rcode, frozenset(flags), {"answer": records}, {("answer", r): ttl for r in records}, opt)


@pytest.mark.parametrize(
    ("question", "coredns", "kdns", "slack", "kinds"),
    [
        # loadbalance shuffles: records compare as sets
        (QUESTION, reply([A1, A2]), reply([A2, A1]), 0, []),
        (QUESTION, reply([A1]), reply([A1, A2]), 0, ["service: answer: CoreDNS only [], kdns only [A]"]),
        (QUESTION, reply(rcode="NXDOMAIN"), reply(), 0, ["service: rcode NXDOMAIN vs NOERROR"]),
        (QUESTION, reply(flags=()), reply(flags=("RA",)), 0, ["service: RA set by kdns only"]),
        (QUESTION, reply(opt=4096), reply(opt=1232), 0, ["service: OPT size"]),
        (QUESTION, reply(opt=None), reply(opt=1232), 0, ["service: OPT in one reply only"]),
        # cluster names are not cached by either: TTLs compare exactly
        (QUESTION, reply([A1], ttl=30), reply([A1], ttl=29), 5, ["service: answer TTL of A"]),
        # forwarded ones count down in each cache: within the seconds since first asked
        (OUTSIDE, reply([A1], ttl=30), reply([A1], ttl=27), 5, []),
        (OUTSIDE, reply([A1], ttl=30), reply([A1], ttl=60), 5, ["outside: answer TTL of A"]),
        # truncated: which shuffled records fit is chance, only their count compares
        (QUESTION, reply([A1], flags=("TC",)), reply([A2], flags=("TC",)), 0, []),
    ],
)
def test_compare(question, coredns, kdns, slack, kinds):
    assert [d.kind for d in compare(question, coredns, kdns, ttl_slack=slack)] == kinds
