"""Server blocks: a question goes to the block of the longest zone it falls in, and runs that block's
plugins in CoreDNS's order (rewrite, template, hosts, kubernetes, forward); stub domains and
per-zone forward stanzas; reloads that see imported files and kubelet's ConfigMap swaps; kdns check."""

from __future__ import annotations

import os
import socket

import dns.message
import dns.query
import dns.rcode
import pytest

from kdns.blocks import NO_PLUGIN, Block, Route, Router
from kdns.codes import AAAA, NOERROR, REFUSED, SERVFAIL, A
from kdns.config import ExternalSettings, TransferSettings
from kdns.corefile import CorefileError, load
from kdns.plugins.hosts import Hosts
from kdns.resolver import Resolver
from kdns.zone.hosts import HostsTable
from kdns.zone.names import ROOT, to_wire
from tests.fake_upstream import upstream
from tests.support.client import ask, dig
from tests.support.paths import EXAMPLE
from tests.support.polling import eventually
from tests.support.process import free_port, run_kdns, running
from tests.support.zone import example_zone

WEB = "web.shop.svc.cluster.local"
WEB_IP = "10.96.100.10"  # its ClusterIP in the example snapshot


def wire(*names: str) -> tuple[bytes, ...]:
    return tuple(to_wire(name) for name in names)


@pytest.fixture(scope="module")
def cluster() -> Resolver:
    zone = example_zone()
    return Resolver(zone.index, zone.layout, zone.settings)


def router(cluster: Resolver, *blocks: Block) -> Router:
    return Router(blocks, layout=cluster.layout, ttl=cluster.ttl)


# --- which block, which plugin (pure) ------------------------------------------------------------------


def test_the_longest_zone_picks_the_block_and_names_outside_every_block_are_refused(cluster):
    main = Block(wire("cluster.local", "in-addr.arpa"), cluster=cluster)
    stub = Block(wire("corp.example"), routes=(Route(1, to_wire("corp.example")),))
    deeper = Block(wire("lab.corp.example"))
    blocks = router(cluster, main, stub, deeper)
    assert blocks.resolve(to_wire(WEB), A).answer[0].rdatas  # the cluster's block
    assert blocks.resolve(to_wire("www.corp.example"), A).delegate == 1  # the stub's forward
    assert blocks.resolve(to_wire("x.lab.corp.example"), A) is NO_PLUGIN  # SERVFAIL: no plugin answers
    assert blocks.resolve(to_wire("example.com"), A).rcode == REFUSED  # no block holds it


def test_forward_stanzas_take_names_in_the_order_written_and_except_moves_on(cluster):
    routes = (
        Route(1, to_wire("corp.example"), excepts=wire("secret.corp.example")),
        Route(2, ROOT),
        Route(3, to_wire("never.example")),  # after '.', as CoreDNS chains them: never reached
    )
    block = Block((ROOT,), cluster=cluster, routes=routes)
    assert block.resolve(to_wire("www.corp.example"), A).delegate == 1
    assert block.resolve(to_wire("a.secret.corp.example"), A).delegate == 2
    assert block.resolve(to_wire("x.never.example"), A).delegate == 2
    assert block.resolve(to_wire(WEB), A).delegate == 0
    assert block.resolve(to_wire("example.com"), A, 3).rcode == REFUSED  # class CH is not forwarded


@pytest.mark.parametrize(
    ("name", "qtype", "fallthrough", "expected"),
    [
        ("db.corp.example", A, (), (NOERROR, 1)),
        ("db.corp.example", AAAA, (), (NOERROR, 0)),  # the name exists: NODATA, as CoreDNS's hosts
        ("other.corp.example", A, (), (SERVFAIL, 0)),  # not held, no fallthrough: CoreDNS's SERVFAIL
        ("other.corp.example", A, wire("corp.example"), "forward"),
        (WEB, A, wire("cluster.local"), "kubernetes"),
        (WEB, A, (), (SERVFAIL, 0)),  # hosts before kubernetes hides cluster names without fallthrough
    ],
)
def test_hosts_answers_before_the_cluster_as_coredns_orders_them(cluster, name, qtype, fallthrough, expected):
    hosts = Hosts(
        HostsTable([("10.0.0.5", "db.corp.example")], ttl=60), zones=(ROOT,), fallthrough=fallthrough
    )
    block = Block((ROOT,), cluster=cluster, hosts=hosts, routes=(Route(1, ROOT),))
    answer = block.resolve(to_wire(name), qtype)
    if expected == "forward":
        assert answer.delegate == 1
    elif expected == "kubernetes":
        assert answer.answer[0].ttl == cluster.ttl and answer.answer[0].rdatas
    else:
        assert (answer.rcode, len(answer.answer)) == expected


# --- loading ----------------------------------------------------------------------------------------


def write(tmp_path, text: str, name: str = "Corefile"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_stub_domain_block_and_a_block_on_two_ports_load_as_servers(tmp_path):
    config, warnings = load(
        write(
            tmp_path,
            ".:53 {\n    kubernetes cluster.local\n    forward . 10.0.0.1\n}\n"
            "consul.local:53 {\n    forward . 10.150.0.1\n}\n"
            "example.org:1053 example.net:1054 {\n    forward . 10.0.0.9\n}\n",
        ),
        environ={},
    )
    assert warnings == []
    assert [(s.zones, s.port, s.kubernetes, len(s.forward)) for s in config.servers] == [
        ((".",), 53, True, 1),
        (("consul.local",), 53, False, 1),
        (("example.org",), 1053, False, 1),
        (("example.net",), 1054, False, 1),
    ]
    assert list(config.listeners) == [
        (("0.0.0.0", "::"), 53),
        (("0.0.0.0", "::"), 1053),
        (("0.0.0.0", "::"), 1054),
    ]


def test_every_problem_of_every_block_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        ".:53 {\n    kubernetes cluster.local\n    cache 0\n    etcd\n}\n"
        "example.org {\n    forward example.org\n    loadbalance weighted\n}\n",
    )
    with pytest.raises(CorefileError) as error:
        load(path, environ={})
    assert [problem.split(": ", 1)[0] for problem in error.value.problems] == [
        f"{path}:3",
        f"{path}:4",
        f"{path}:7",
        f"{path}:8",
    ]
    result = run_kdns("serve", "--corefile", str(path))
    assert result.returncode == 2 and result.stderr.count("kdns: error: ") == 4


# --- end to end --------------------------------------------------------------------------------------


def test_blocks_and_their_plugins_answer_over_real_sockets(tmp_path):
    with (
        upstream("example.com. 60 IN A 192.0.2.1") as outside,
        upstream("www.corp.example. 60 IN A 192.0.2.2\na.corp.example. 60 IN A 192.0.2.3") as corp,
        upstream("web.service.consul. 60 IN A 192.0.2.4") as consul,
    ):
        corefile = write(
            tmp_path,
            ".:0 {\n"
            "    bind 127.0.0.1\n"
            "    rewrite name exact old.shop.example web.shop.svc.cluster.local\n"
            "    rewrite name suffix .internal.example .corp.example answer auto\n"
            "    template IN A tmpl.example {\n"
            '        answer "{{ .Name }} 60 IN A 192.0.2.55"\n'
            "    }\n"
            "    template IN TXT remote.example {\n"
            '        answer "{{ .Name }} 0 IN TXT {{ .Remote }}"\n'
            "    }\n"
            "    template ANY AAAA cluster.local {\n"
            "        rcode NXDOMAIN\n"
            "    }\n"
            "    kubernetes cluster.local in-addr.arpa ip6.arpa\n"
            f"    forward corp.example {corp.address}\n"
            f"    forward . {outside.address} {{\n"
            "        except blocked.example\n"
            "    }\n"
            "}\n"
            "consul:0 {\n"
            "    bind 127.0.0.1\n"
            f"    forward . {consul.address}\n"
            "}\n"
            "nothing.example:0 {\n"
            "    bind 127.0.0.1\n"
            "    errors\n"
            "}\n",
        )
        with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
            port = server.port
            assert [r.address for r in ask(port, WEB).answer[0]] == [WEB_IP]
            assert ask(port, WEB, "AAAA").rcode() == dns.rcode.NXDOMAIN  # template before kubernetes
            assert [r.address for r in ask(port, "www.corp.example").answer[0]] == ["192.0.2.2"]
            assert [r.address for r in ask(port, "example.com", tcp=True).answer[0]] == ["192.0.2.1"]
            assert [r.address for r in ask(port, "web.service.consul").answer[0]] == ["192.0.2.4"]
            assert ask(port, "blocked.example").rcode() == dns.rcode.SERVFAIL  # excepted, nothing after
            assert ask(port, "x.nothing.example").rcode() == dns.rcode.SERVFAIL  # no plugin answers
            moved = ask(port, "old.shop.example")
            assert (moved.answer[0].name.to_text(), moved.answer[0][0].address) == (
                "old.shop.example.",
                WEB_IP,
            )
            mapped = ask(port, "a.internal.example")
            assert (mapped.answer[0].name.to_text(), mapped.answer[0][0].address) == (
                "a.internal.example.",
                "192.0.2.3",
            )
            assert corp.count("a.corp.example") == 1 and corp.count("a.internal.example") == 0
            made = ask(port, "Any.Tmpl.Example")
            assert [r.address for r in made.answer[0]] == ["192.0.2.55"] and made.answer[0].ttl == 60
            assert outside.count("www.corp.example") == 0 and corp.count("example.com") == 0
            assert ask(port, "me.remote.example", "TXT").answer[0][0].strings == (b"127.0.0.1",)  # per client


@pytest.mark.slow
def test_forward_next_moves_a_query_along_the_blocks_stanzas_through_a_corefile(tmp_path):
    with (
        upstream("kept.example.com. 60 IN A 192.0.2.8") as first,
        upstream("gone.example.com. 60 IN A 192.0.2.10") as second,
    ):
        corefile = write(
            tmp_path,
            ".:0 {\n"
            "    bind 127.0.0.1\n"
            "    cache 30\n"
            "    rewrite name exact alias.example.org gone.example.com\n"
            f"    forward . {first.address} {{\n"
            "        next NXDOMAIN\n"
            "    }\n"
            f"    forward example.com {second.address}\n"
            "}\n",
        )
        with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
            assert not server.logged("not acted on")
            port = server.port
            assert [r.address for r in ask(port, "gone.example.com").answer[0]] == ["192.0.2.10"]
            # the rewritten question moves on too, and its answer is mapped back to the client's name
            moved = ask(port, "alias.example.org")
            assert (moved.answer[0].name.to_text(), moved.answer[0][0].address) == (
                "alias.example.org.",
                "192.0.2.10",
            )
            assert ask(port, "elsewhere.example.net").rcode() == dns.rcode.SERVFAIL  # no stanza after
            assert [r.address for r in ask(port, "kept.example.com", tcp=True).answer[0]] == ["192.0.2.8"]
            assert dig(port, "+short", "gone.example.com").split() == ["192.0.2.10"]  # from the cache
            assert second.count("gone.example.com") == 2  # asked, and asked for alias.example.org
            assert second.count("kept.example.com") == 0 and second.count("elsewhere.example.net") == 0


@pytest.mark.slow
def test_rewrite_edns0_options_go_upstream_for_each_client_through_a_corefile(tmp_path):
    with upstream() as fake:
        fake.by_subnet["where.example.com"] = {"127.0.0.0/24": "192.0.2.1", "127.0.1.0/24": "192.0.2.2"}
        corefile = write(
            tmp_path,
            ".:0 {\n"
            "    bind 127.0.0.1\n"
            "    cache 30\n"
            "    rewrite continue edns0 subnet set 24 56\n"
            "    rewrite edns0 local set 0xffee {client_ip}\n"
            "    kubernetes cluster.local\n"
            f"    forward . {fake.address}\n"
            "}\n",
        )
        with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
            assert not server.logged("edns0")
            assert dig(server.port, "+short", "where.example.com").split() == ["192.0.2.1"]
            other = ask(server.port, "where.example.com", source="127.0.1.1", tcp=True)
            assert [r.address for r in other.answer[0]] == ["192.0.2.2"]
            # the same options again (the same client address): from the cache
            again = ask(server.port, "where.example.com", source="127.0.0.1")
            assert [r.address for r in again.answer[0]] == ["192.0.2.1"]
            assert [r.address for r in ask(server.port, WEB).answer[0]] == [WEB_IP]  # the cluster's own
        assert [options for name, options in fake.options if name == "where.example.com"] == [
            ((8, bytes([0, 1, 24, 0, 127, 0, 0])), (0xFFEE, bytes([127, 0, 0, 1]))),
            ((8, bytes([0, 1, 24, 0, 127, 0, 1])), (0xFFEE, bytes([127, 0, 1, 1]))),
        ]


def test_a_block_on_another_port_gets_its_own_listener(tmp_path):
    other = free_port()
    with upstream("a.example.org. 60 IN A 192.0.2.7") as fake:
        corefile = write(
            tmp_path,
            ".:0 {\n    bind 127.0.0.1\n    kubernetes cluster.local\n}\n"
            f"example.org:{other} {{\n    bind 127.0.0.1\n    forward . {fake.address}\n}}\n",
        )
        with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
            assert f"127.0.0.1 port {other}" in server.logged("ready:")[0]
            assert [r.address for r in ask(other, "a.example.org").answer[0]] == ["192.0.2.7"]
            assert ask(other, WEB).rcode() == dns.rcode.REFUSED  # not a zone of that port's block
            assert ask(server.port, "a.example.org").rcode() == dns.rcode.SERVFAIL  # '.' holds it
            assert [r.address for r in ask(server.port, WEB).answer[0]] == [WEB_IP]


@pytest.mark.slow
def test_reload_sees_an_import_added_at_run_time_and_keeps_serving_through_a_bad_one(tmp_path):
    with upstream("a.stub.example. 60 IN A 192.0.2.9") as fake:
        corefile = write(
            tmp_path,
            ".:0 {\n    bind 127.0.0.1\n    kubernetes cluster.local\n    reload 2s\n}\nimport custom/*.server\n",
        )
        with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
            assert ask(server.port, "a.stub.example").rcode() == dns.rcode.SERVFAIL  # no plugin answers
            write(
                tmp_path,
                f"stub.example:0 {{\n    bind 127.0.0.1\n    forward . {fake.address}\n}}\n",
                "custom/stub.server",
            )
            eventually(lambda: ask(server.port, "a.stub.example").rcode() == dns.rcode.NOERROR)
            assert server.logged("custom/*.server changed: reloading")
            write(tmp_path, "broken:0 {\n    bogus\n    cache 0\n}\n", "custom/broken.server")
            eventually(lambda: server.logged("reload of") and server.logged("cache TTL: 0 is less than 1"))
            assert server.logged("unknown directive 'bogus'")
            assert [r.address for r in ask(server.port, "a.stub.example").answer[0]] == ["192.0.2.9"]


@pytest.mark.slow
def test_reload_follows_a_configmap_swapped_as_kubelet_swaps_it(tmp_path):
    """kubelet writes a new directory and moves the ``..data`` symlink onto it in one rename."""

    def publish(version: int, ttl: int) -> None:
        data = tmp_path / f"..2026_12_03_{version}"
        write(
            data,
            f".:0 {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n        ttl {ttl}\n    }}\n    reload 2s\n}}\n",
        )
        os.symlink(data.name, tmp_path / "..data_tmp")
        os.rename(tmp_path / "..data_tmp", tmp_path / "..data")

    publish(1, 30)
    os.symlink("..data/Corefile", tmp_path / "Corefile")
    with running("--corefile", str(tmp_path / "Corefile"), "--snapshot", str(EXAMPLE)) as server:
        assert ask(server.port, WEB).answer[0].ttl == 30
        publish(2, 31)
        eventually(lambda: ask(server.port, WEB).answer[0].ttl == 31)


# --- kdns check ---------------------------------------------------------------------------------------


def test_check_says_what_each_block_maps_to_without_serving(tmp_path):
    custom = tmp_path / "mounted"
    write(custom, "consul:53 {\n    forward . 10.150.0.1\n}\n", "consul.server")
    corefile = write(
        tmp_path,
        ".:53 {\n    kubernetes cluster.local\n    forward . 10.0.0.1\n    cache 30 {\n        prefetch 10\n    }\n"
        '    log svc.cluster.local "{name} {rcode}" {\n        class denial error\n    }\n}\n'
        "import /etc/coredns/custom/*.server\n",
    )
    result = run_kdns("check", "--corefile", str(corefile), "--import-dir", str(custom))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{corefile}: 2 server block(s)"
    assert ". port 53 (listening on 0.0.0.0, ::)" in lines
    assert "consul. port 53 (listening on 0.0.0.0, ::)" in lines
    assert "  forward . to 10.150.0.1: policy random, max_concurrent 1000, max_fails 2" in lines
    assert "  log svc.cluster.local (class denial error): {name} {rcode}" in lines
    assert "  cache: success 9984 up to 30s, denial 9984 up to 30s, prefetch 10 (60s, 10%)" in lines
    assert lines[-1] == f"kdns: {corefile}: kdns can run it"
    write(tmp_path, ".:53 {\n    kubernetes cluster.local\n    etcd\n    file db.example\n}\n")
    refused = run_kdns("check", "--corefile", str(corefile))
    assert refused.returncode == 2 and refused.stdout == ""
    assert "2 problem(s); kdns cannot run it" in refused.stderr


def test_check_shows_how_the_cluster_is_followed(tmp_path):
    corefile = write(
        tmp_path,
        ".:53 {\n    kubernetes cluster.local {\n        noendpoints\n        namespace_labels dns=on\n"
        "        endpoint https://10.0.0.1:6443\n        tls c.crt c.key ca.crt\n    }\n}\n",
    )
    result = run_kdns("check", "--corefile", str(corefile))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  kubernetes cluster.local: pods disabled, ttl 5, namespace_labels dns=on, noendpoints" in lines
    assert "  API server https://10.0.0.1:6443 (client certificate)" in lines


def test_k8s_external_and_multicluster_load_from_the_corefile(tmp_path):
    config, warnings = load(
        write(
            tmp_path,
            ".:53 {\n"
            "    kubernetes cluster.local clusterset.local in-addr.arpa ip6.arpa {\n"
            "        multicluster clusterset.local\n"
            "    }\n"
            "    k8s_external example.com {\n        apex ns\n        ttl 60\n        headless\n    }\n"
            "    cache 30 {\n        success 0\n        denial 100\n    }\n"
            "}\n",
        ),
        environ={},
    )
    (server,) = config.servers
    assert warnings == [] and config.zone.multicluster == ("clusterset.local",)
    assert server.external == ExternalSettings(zones=("example.com",), ttl=60, headless=True, apex="ns")
    assert (server.cache.success_capacity, server.cache.denial_capacity) == (0, 100)


def test_transfer_loads_with_its_to_addresses_and_needs_them(tmp_path):
    config, _ = load(
        write(
            tmp_path,
            ".:53 {\n    kubernetes cluster.local\n    transfer cluster.local {\n        to 10.0.0.7 fd00::/8\n    }\n}\n",
        ),
        environ={},
    )
    assert config.servers[0].transfer == TransferSettings(
        to=("10.0.0.7/32", "fd00::/8"), zones=("cluster.local",)
    )
    with pytest.raises(CorefileError) as error:
        load(write(tmp_path, ".:53 {\n    kubernetes cluster.local\n    transfer {\n    }\n}\n"), environ={})
    assert error.value.problems == [
        f"{tmp_path / 'Corefile'}:3: transfer: 'to' is required (the addresses that may transfer the zones)"
    ]


def test_dig_axfr_through_a_corefile_shows_what_kdns_dump_prints(tmp_path):
    corefile = write(
        tmp_path,
        ".:0 {\n    bind 127.0.0.1\n    kubernetes cluster.local\n    transfer {\n        to 127.0.0.1\n    }\n}\n",
    )
    dumped = run_kdns("dump", "--snapshot", str(EXAMPLE), "--zone", "cluster.local")
    with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
        transfer = dig(server.port, "cluster.local", "AXFR")
    records = {" ".join(line.split()) for line in transfer.splitlines() if line and not line.startswith(";")}
    expected = {
        " ".join(line.split())
        for line in dumped.stdout.splitlines()
        if line and not line.startswith((";", "$"))
    }
    assert expected and {r for r in records if " SOA " not in r} == {r for r in expected if " SOA " not in r}


def test_chaos_whoami_acl_and_bufsize_answer_as_coredns_does(tmp_path):
    """chaos in class CH; acl blocks, filters and drops by type and network, per client; whoami
    answers names nothing else does with the asker's address and port; bufsize caps UDP answers."""
    corefile = write(
        tmp_path,
        ".:0 {\n"
        "    bind 127.0.0.1\n"
        "    chaos kdns-test Alice Bob\n"
        "    bufsize 512\n"
        "    acl {\n"
        "        block type HINFO\n"
        "        filter type MX net 127.0.0.0/8\n"
        "        drop type NAPTR net 10.0.0.0/8\n"
        "        allow net *\n"
        "    }\n"
        "    kubernetes cluster.local\n"
        "    whoami\n"
        "}\n",
    )
    with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
        port = server.port
        version = ask(port, dns.message.make_query("version.bind", "TXT", "CH"))
        assert [r.strings for r in version.answer[0]] == [(b"kdns-test",)] and version.answer[0].ttl == 0
        authors = ask(port, dns.message.make_query("authors.bind", "TXT", "CH"))
        assert sorted(r.strings for r in authors.answer[0]) == [(b"Alice",), (b"Bob",)]
        assert ask(port, dns.message.make_query("hostname.bind", "TXT", "CH")).answer[0][0].strings == (
            socket.gethostname().encode(),
        )
        assert ask(port, "x.example.org", "HINFO").rcode() == dns.rcode.REFUSED  # block, any client
        filtered = ask(port, WEB, "MX")  # filter: our client is in 127.0.0.0/8
        assert (filtered.rcode(), filtered.answer) == (dns.rcode.NOERROR, [])
        assert ask(port, WEB, "NAPTR").rcode() == dns.rcode.NOERROR  # drop applies to 10/8 only
        source = free_port()
        query = dns.message.make_query("who.example.org", "A")
        me = dns.query.udp(query, "127.0.0.1", port=port, source="127.0.0.1", source_port=source, timeout=5)
        assert [r.address for r in me.answer[0]] == ["127.0.0.1"]
        assert me.additional[0].name.to_text() == "_udp.who.example.org."
        assert me.additional[0][0].port == source
        over_tcp = ask(port, "who.example.org", tcp=True)
        assert over_tcp.additional[0].name.to_text() == "_tcp.who.example.org."
        assert [r.address for r in ask(port, WEB).answer[0]] == [WEB_IP]  # the cluster before whoami
        assert ask(port, WEB, use_edns=0, payload=4096).payload == 512  # bufsize: what kdns offers


def test_a_resolv_conf_file_mixed_with_addresses_gives_its_nameservers_in_its_place(tmp_path):
    resolv = write(tmp_path, "nameserver 127.0.0.9\nnameserver 127.0.0.10\n", "resolv.conf")
    with upstream("a.example.org. 60 IN A 192.0.2.1") as fake:
        corefile = write(
            tmp_path,
            f".:0 {{\n    bind 127.0.0.1\n    forward . {resolv} {fake.address} {{\n        policy sequential\n"
            "        max_fails 0\n    }\n}\n",
        )
        with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
            assert "forwarding to 127.0.0.9:53, 127.0.0.10:53, " + fake.address in server.logged("ready:")[0]
            assert [r.address for r in ask(server.port, "a.example.org").answer[0]] == ["192.0.2.1"]
