"""End to end: answers where CoreDNS's ``kubernetes`` plugin has particular habits, asked of a running
``kdns serve`` over real sockets by dnspython."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.client import ask
from tests.support.objects import srv_repeats
from tests.support.process import Server, running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("parity") / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": srv_repeats()}))
    with running("--snapshot", str(path)) as served:
        yield served


def test_srv_weights_count_the_records_coredns_makes_before_dropping_repeats(server):
    reply = ask(server.port, "_http._tcp.hl.default.svc.cluster.local", "SRV")
    assert sorted(rdata.to_text() for rdata in reply.answer[0]) == [
        "0 33 80 a.hl.default.svc.cluster.local.",
        "0 33 80 b.hl.default.svc.cluster.local.",
    ]
    reply = ask(server.port, "dual.default.svc.cluster.local", "SRV", tcp=True)
    assert [rdata.to_text() for rdata in reply.answer[0]] == ["0 50 80 dual.default.svc.cluster.local."]
