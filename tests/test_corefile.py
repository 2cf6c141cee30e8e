"""kdns/corefile.py: the Corefiles platforms ship load as written, and every refusal names FILE:LINE."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from kdns.config import (
    COMBINED_LOG_FORMAT,
    DEFAULT_ZONES,
    EVERY_ZONE,
    REVERSE_ZONES,
    CacheSettings,
    ForwardSettings,
    HostsSettings,
    KubeSettings,
    LogClass,
    LogRule,
    LogSettings,
    OpsSettings,
    PodMode,
    ServeConfig,
    ServerSettings,
    ZoneSettings,
)
from kdns.corefile import CorefileError, load, parse, parse_duration, tokenize
from kdns.corefile.plugins import ORDER, SETUP_ONLY
from tests.support.paths import COREFILES

ENV = {"POD_IP": "10.1.2.3"}  # tests never read the real environment
ERROR, DENIAL = frozenset({LogClass.ERROR}), frozenset({LogClass.DENIAL})

RESOLV = ForwardSettings(upstreams=("/etc/resolv.conf",))
PLATFORM_SERVER = ServerSettings(
    zones=EVERY_ZONE,
    listen=("0.0.0.0", "::"),
    port=53,
    forward=(RESOLV,),
    cache=CacheSettings(success_ttl=30, denial_ttl=30),
    loadbalance=True,
)
PLATFORM = ServeConfig(
    zone=ZoneSettings(zones=DEFAULT_ZONES, ttl=30, pods=PodMode.INSECURE, fallthrough=REVERSE_ZONES),
    kube=KubeSettings(in_cluster=True),
    servers=(PLATFORM_SERVER,),
    ops=OpsSettings(health=":8080", lameduck=5.0, ready=":8181", metrics=":9153"),
    reload=30.0,
)
K3S_HOSTS = HostsSettings(path=Path("/etc/coredns/NodeHosts"), ttl=60, reload=15.0, fallthrough=EVERY_ZONE)

# The default Corefile of each platform, and how it differs from PLATFORM (kubeadm's).
PLATFORMS = [
    (  # kubeadm's 'disable success|denial cluster.local': forwarded answers there are not cached
        "kubeadm",
        {
            "cache": CacheSettings(
                success_ttl=30,
                denial_ttl=30,
                disable_success=("cluster.local",),
                disable_denial=("cluster.local",),
            )
        },
        [],
    ),
    (
        "k3s",
        {
            "zone": ZoneSettings(ttl=5, pods=PodMode.INSECURE, fallthrough=REVERSE_ZONES),
            "hosts": K3S_HOSTS,
            "lameduck": 0.0,
            "imports": (Path("/etc/coredns/custom/*.override"), Path("/etc/coredns/custom/*.server")),
        },
        [
            (22, "import: no files match /etc/coredns/custom/*.override"),
            (24, "import: no files match /etc/coredns/custom/*.server"),
        ],
    ),
    ("rke2", {"metrics": "0.0.0.0:9153"}, []),
    ("eks", {"zone": ZoneSettings(ttl=5, pods=PodMode.INSECURE, fallthrough=REVERSE_ZONES)}, []),
    ("kops", {}, []),
    (
        "aks",
        {"imports": (COREFILES / "custom/*.override", COREFILES / "custom/*.server")},
        [
            (20, f"import: no files match {COREFILES / 'custom/*.override'}"),
            (30, f"import: no files match {COREFILES / 'custom/*.server'}"),
        ],
    ),
]


def expected_config(path: Path, changes: dict) -> ServeConfig:
    changes = dict(changes)
    ops = {k: changes.pop(k) for k in ("lameduck", "metrics") if k in changes}
    server = {k: changes.pop(k) for k in ("hosts", "cache") if k in changes}
    servers = (replace(PLATFORM_SERVER, **server),)
    return replace(PLATFORM, ops=replace(PLATFORM.ops, **ops), servers=servers, corefile=path, **changes)


def write(tmp_path: Path, text: str, name: str = "Corefile") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def root_block(*lines: str) -> str:
    """A root server block with kubernetes on line 2; the given lines start at line 3."""
    return (
        ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n"
        + "".join(f"{x}\n" for x in lines)
        + "}\n"
    )


def load_text(
    tmp_path: Path, text: str, environ: dict[str, str] | None = None
) -> tuple[ServeConfig, list[str]]:
    return load(write(tmp_path, text), environ=ENV if environ is None else environ)


@pytest.mark.parametrize(("platform", "changes", "warnings"), PLATFORMS, ids=[p[0] for p in PLATFORMS])
def test_platform_corefiles_load_as_shipped(platform, changes, warnings):
    path = COREFILES / f"{platform}.Corefile"
    config, got = load(path, environ=ENV)
    (server,) = config.servers
    templates = [(t.qclass, t.qtype, t.zones, t.rcode) for t in server.templates]  # type: ignore[attr-defined]
    if platform == "aks":  # NXDOMAIN for names of Azure's own search domains
        assert templates == [
            (255, 255, ("internal.cloudapp.net.",), 3),
            (255, 255, ("reddog.microsoft.com.",), 3),
        ]
    # the block's plugins that see queries, in CoreDNS's order (coredns_plugin_enabled)
    assert set(server.plugins) <= set(ORDER) - SETUP_ONLY
    assert list(server.plugins) == sorted(server.plugins, key=ORDER.index)
    if platform == "kubeadm":
        # health, ready and reload only set the server up: CoreDNS does not list them enabled
        assert server.plugins == (
            "prometheus",
            "errors",
            "loadbalance",
            "cache",
            "kubernetes",
            "loop",
            "forward",
        )
    config = replace(config, servers=(replace(server, templates=(), plugins=()),))
    assert config == expected_config(path, changes)
    assert got == [f"{path}:{line}: {text}" for line, text in warnings]


def test_k3s_custom_imports_extend_the_server_block_and_refuse_extra_servers(tmp_path):
    custom = tmp_path / "custom"
    text = (COREFILES / "k3s.Corefile").read_text().replace("/etc/coredns/custom", str(custom))
    corefile = write(tmp_path, text)
    write(custom, "log\nhosts {\n  10.0.0.9 extra.example\n}\n", "a.override")
    with pytest.raises(CorefileError) as error:
        load(corefile, environ=ENV)
    assert str(error.value) == (
        f"{custom / 'a.override'}:2: hosts is given twice in one server block (first at {corefile}:11)"
    )
    write(custom, "log\n", "a.override")
    config, warnings = load(corefile, environ=ENV)
    assert config.servers[0].log == LogSettings()
    assert warnings == [f"{corefile}:24: import: no files match {custom / '*.server'}"]
    write(custom, "consul.local:53 {\n    forward . 10.150.0.1\n}\n", "stub.server")
    config, warnings = load(corefile, environ=ENV)
    main, stub = config.servers
    assert main.zones == (".",) and main.kubernetes and warnings == []
    assert (stub.zones, stub.port, stub.kubernetes) == (("consul.local",), 53, False)
    assert stub.forward == (ForwardSettings(upstreams=("10.150.0.1",)),)


def test_aks_imports_are_relative_to_the_corefile(tmp_path):
    corefile = write(tmp_path, (COREFILES / "aks.Corefile").read_text())
    write(
        tmp_path / "custom",
        "hosts {\n    10.0.0.5 db.corp.example # pinned\n    fallthrough\n}\n",
        "db.override",
    )
    config, _ = load(corefile, environ=ENV)
    assert config.servers[0].hosts == HostsSettings(
        path=Path("/etc/hosts"), entries=(("10.0.0.5", "db.corp.example"),), fallthrough=EVERY_ZONE
    )


# --- syntax ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("a b\n  c # comment\n\n", [[("a", 1), ("b", 1)], [("c", 2)]]),
        ("x#y z\nw", [[("x", 1)], [("w", 2)]]),
        ('"a b" "c\\"d" "e\\f" "" ', [[("a b", 1), ('c"d', 1), ("e\\f", 1), ("", 1)]]),
        ('"two\nlines" tail\nnext', [[("two\nlines", 1), ("tail", 2)], [("next", 3)]]),
        ('"a"b a"b" "#x"', [[("a", 1), ("b", 1), ('a"b"', 1), ("#x", 1)]]),
        ("a\r\nb\r\n", [[("a", 1)], [("b", 2)]]),
        ("\ufeff.:53 {", [[(".:53", 1), ("{", 1)]]),
        (
            "{$POD_IP}:53 {env.POD_IP} x{%POD_IP%}y",
            [[("10.1.2.3:53", 1), ("10.1.2.3", 1), ("x10.1.2.3y", 1)]],
        ),
    ],
)
def test_tokenize(text, lines):
    got = tokenize(text, "F", environ=ENV)
    assert [[(t.text, t.line) for t in line] for line in got] == lines
    assert all(t.file == "F" for line in got for t in line)


def test_tokenize_refuses_unset_variables_and_open_quotes():
    assert tokenize("bind {$SET}", "F", environ={"SET": "10.0.0.1"})[0][1].text == "10.0.0.1"
    with pytest.raises(CorefileError) as error:
        tokenize("bind {$NOPE}\nhealth {%ALSO%}:8080", "F", environ={})
    assert error.value.problems == [
        "F:1: environment variable NOPE is not set",
        "F:2: environment variable ALSO is not set",
    ]
    with pytest.raises(CorefileError, match=r"^F:2: unterminated quoted string"):
        tokenize('a\nb "c\nd', "F")


def test_parse_keeps_structure_and_positions(tmp_path):
    path = write(
        tmp_path,
        "# header\n"
        "dns://.:53,\n"
        "  example.org\n"
        "{\n"
        "    forward . 1.1.1.1 {\n"
        "        policy sequential\n"
        "    }\n"
        '    log "{combined}"\n'
        "}\n",
    )
    parsed = parse(path, environ=ENV)
    (block,) = parsed.blocks
    assert [k.text for k in block.keys] == ["dns://.:53", "example.org"] and parsed.warnings == []
    forward, log = block.directives
    assert (forward.name.text, [a.text for a in forward.args], forward.name.where) == (
        "forward",
        [".", "1.1.1.1"],
        f"{path}:5",
    )
    assert forward.block is not None and forward.block[0].name.where == f"{path}:6"
    assert log.args[0].quoted and log.args[0].text == "{combined}" and log.block is None


def test_a_single_server_needs_no_braces(tmp_path):
    config, _ = load_text(tmp_path, ".:5353\nkubernetes cluster.local\nlog\n")
    assert (
        config.servers[0].port == 5353
        and config.servers[0].log == LogSettings()
        and config.zone.zones == ("cluster.local",)
    )


def test_imports_of_files_globs_and_snippets_keep_their_positions(tmp_path):
    write(tmp_path / "extra", "log\n", "a.conf")
    write(tmp_path / "extra", "\n\nloadbalance\n", "b.conf")
    write(tmp_path, "10.0.0.1 a.example\n", "hosts.inc")
    path = write(
        tmp_path,
        "(common) {\n"
        "    errors\n"
        "    reload 10s\n"
        "}\n"
        ".:53 {\n"
        "    import common\n"
        "    import extra/*.conf\n"
        "    import missing/*.conf\n"
        "    kubernetes cluster.local\n"
        "    hosts {\n"
        "        import hosts.inc\n"
        "    }\n"
        "}\n",
    )
    parsed = parse(path, environ=ENV)
    (block,) = parsed.blocks
    assert parsed.files == [
        path,
        tmp_path / "extra" / "a.conf",
        tmp_path / "extra" / "b.conf",
        tmp_path / "hosts.inc",
    ]
    assert parsed.patterns == [str(tmp_path / "extra/*.conf"), str(tmp_path / "missing/*.conf")]
    assert [(d.name.text, d.name.where) for d in block.directives] == [
        ("errors", f"{path}:2"),
        ("reload", f"{path}:3"),
        ("log", f"{tmp_path / 'extra' / 'a.conf'}:1"),
        ("loadbalance", f"{tmp_path / 'extra' / 'b.conf'}:3"),
        ("kubernetes", f"{path}:9"),
        ("hosts", f"{path}:10"),
    ]
    config, warnings = load(path, environ=ENV)
    assert (config.reload, config.servers[0].log, config.servers[0].loadbalance) == (
        10.0,
        LogSettings(),
        True,
    )
    assert config.servers[0].hosts is not None and config.servers[0].hosts.entries == (
        ("10.0.0.1", "a.example"),
    )
    assert warnings == [f"{path}:8: import: no files match {tmp_path / 'missing/*.conf'}"]


@pytest.mark.parametrize(
    ("files", "where", "message"),
    [
        (
            {"Corefile": ".:53 {\n    import nowhere.conf\n}\n"},
            "Corefile:2",
            "import: file nowhere.conf not found",
        ),
        ({"Corefile": "import a.conf\n", "a.conf": "\nimport a.conf\n"}, "a.conf:2", "import cycle"),
        (
            {"Corefile": "(s) {\n    import s\n}\n.:53 {\n    import s\n}\n"},
            "Corefile:2",
            "import cycle: snippet s",
        ),
        ({"Corefile": ".:53 {\n    import a b\n}\n"}, "Corefile:2", "import takes one argument"),
        ({"Corefile": "(s) {\n}\n(s) {\n}\n"}, "Corefile:3", "snippet (s) is defined twice"),
        ({"Corefile": "(s)\n"}, "Corefile:1", "snippet (s) needs a '{' block"),
        ({"Corefile": "(s) {\n  log\n"}, "Corefile:1", "'{' is not closed"),
    ],
)
def test_import_errors(tmp_path, files, where, message):
    for name, text in files.items():
        write(tmp_path, text, name)
    with pytest.raises(CorefileError) as error:
        load(tmp_path / "Corefile", environ=ENV)
    assert str(error.value).startswith(f"{tmp_path / where}: {message}")


def test_environment_variables_fill_addresses(tmp_path):
    text = (
        ".:5353 {\n"
        "    bind {$POD_IP}\n"
        "    health {$POD_IP}:8080\n"
        "    ready {env.POD_IP}:8081\n"
        "    prometheus {%POD_IP%}:9153\n"
        "    kubernetes cluster.local in-addr.arpa ip6.arpa\n"
        "}\n"
    )
    config, warnings = load_text(tmp_path, text)
    assert (config.servers[0].listen, config.servers[0].port, warnings) == (("10.1.2.3",), 5353, [])
    assert config.ops == OpsSettings(health="10.1.2.3:8080", ready="10.1.2.3:8081", metrics="10.1.2.3:9153")
    with pytest.raises(CorefileError) as error:
        load_text(tmp_path, text, environ={})
    assert [problem.split(": ", 1)[1] for problem in error.value.problems] == [
        "environment variable POD_IP is not set"
    ] * 4


# --- mapping -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        (root_block(), "zone", ZoneSettings(pods=PodMode.DISABLED)),  # CoreDNS's default pods mode
        (root_block(), "forward", None),
        (root_block(), "cache", None),
        (root_block(), "hosts", None),
        (root_block(), "ops", OpsSettings()),
        (root_block(), "listen", ("0.0.0.0", "::")),
        (root_block(), "kube", KubeSettings(in_cluster=True)),
        (root_block(), "reload", 0.0),
        (".:53 {\n    kubernetes\n}\n", "zone", ZoneSettings(pods=PodMode.DISABLED)),
        (
            ".:53 {\n    kubernetes Cluster.Local. 10.0.0.0/8 fd00::/8 192.168.0.0/23\n}\n",
            "zone",
            ZoneSettings(
                zones=(
                    "cluster.local",
                    "10.in-addr.arpa",
                    "d.f.ip6.arpa",
                    "0.168.192.in-addr.arpa",
                    "1.168.192.in-addr.arpa",
                ),
                pods=PodMode.DISABLED,
            ),
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        pods verified\n        ttl 0\n"
            "        endpoint_pod_names\n        ignore empty_service\n    }\n}\n",
            "zone",
            ZoneSettings(
                zones=("cluster.local",),
                ttl=0,
                pods=PodMode.VERIFIED,
                endpoint_pod_names=True,
                ignore_empty_service=True,
            ),
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        namespaces a b\n        namespaces c a\n    }\n}\n",
            "namespaces",
            ("a", "b", "c"),
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        labels environment in (staging, qa),app=web\n    }\n}\n",
            "labels",
            "environment in (staging, qa),app=web",
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        kubeconfig /k/config prod\n"
            "        startup_timeout 1m30s\n    }\n}\n",
            "kube",
            KubeSettings(kubeconfig=Path("/k/config"), context="prod", startup_timeout=90.0),
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        noendpoints\n        namespace_labels team in (a, b),!legacy\n    }\n}\n",
            "zone",
            ZoneSettings(
                zones=("cluster.local",),
                pods=PodMode.DISABLED,
                endpoints=False,
                namespace_labels="team in (a, b),!legacy",
            ),
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        endpoint https://10.9.8.7:6443\n        tls /k/client.crt /k/client.key /k/ca.crt\n    }\n}\n",
            "kube",
            KubeSettings(
                endpoint="https://10.9.8.7:6443",
                tls_cert=Path("/k/client.crt"),
                tls_key=Path("/k/client.key"),
                tls_ca=Path("/k/ca.crt"),
            ),
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        endpoint https://10.9.8.7:6443\n    }\n}\n",
            "kube",
            KubeSettings(endpoint="https://10.9.8.7:6443"),
        ),
        (  # the in-cluster API's name with a client certificate: that is the connection
            ".:53 {\n    kubernetes cluster.local {\n        tls c k ca\n        endpoint https://kubernetes.default.svc\n    }\n}\n",
            "kube",
            KubeSettings(
                endpoint="https://kubernetes.default.svc",
                tls_cert=Path("c"),
                tls_key=Path("k"),
                tls_ca=Path("ca"),
            ),
        ),
        (  # a kubeconfig wins, as in CoreDNS
            ".:53 {\n    kubernetes cluster.local {\n        endpoint https://10.9.8.7:6443\n        tls c k ca\n        kubeconfig /k/config\n    }\n}\n",
            "kube",
            KubeSettings(kubeconfig=Path("/k/config")),
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        tls c k ca\n    }\n}\n",
            "kube",
            KubeSettings(in_cluster=True),
        ),
        (
            root_block(
                "forward . 8.8.8.8 dns://1.1.1.1:5353 [2001:db8::1]:53 ::1 {",
                "    policy sequential",
                "    max_fails 0",
                "    health_check 1s",
                "    max_concurrent 50",
                "    force_tcp",
                "    prefer_udp",
                "}",
            ),
            "forward",
            ForwardSettings(
                upstreams=("8.8.8.8", "1.1.1.1:5353", "[2001:db8::1]:53", "::1"),
                policy="sequential",
                max_fails=0,
                health_check=1.0,
                max_concurrent=50,
                force_tcp=True,
                prefer_udp=True,
            ),
        ),
        (
            root_block(
                "forward example.org tls://9.9.9.9 tls://[2001:db8::9]:8853 {",
                "    tls_servername dns.example",
                "    tls /c/cert.pem /c/key.pem /c/ca.pem",
                "    expire 30s",
                "    health_check 2s no_rec domain health.example",
                "    except internal.example.org 10.0.0.0/8",
                "    failover SERVFAIL REFUSED",
                "    failfast_all_unhealthy_upstreams",
                "}",
            ),
            "forward",
            ForwardSettings(
                upstreams=("tls://9.9.9.9", "tls://[2001:db8::9]:8853"),
                zone="example.org",
                tls_servername="dns.example",
                tls_cert=Path("/c/cert.pem"),
                tls_key=Path("/c/key.pem"),
                tls_ca=Path("/c/ca.pem"),
                expire=30.0,
                health_check=2.0,
                health_check_rd=False,
                health_check_domain="health.example",
                except_names=("internal.example.org", "10.in-addr.arpa"),
                failover_rcodes=(2, 5),
                failfast_all_unhealthy_upstreams=True,
            ),
        ),
        (
            root_block("forward . /run/resolv.conf"),
            "forward",
            ForwardSettings(upstreams=("/run/resolv.conf",)),
        ),
        (root_block("cache 30"), "cache", CacheSettings(success_ttl=30, denial_ttl=30)),
        (root_block("cache"), "cache", CacheSettings()),
        (
            root_block(
                "cache 300 {",
                "    success 5000 60 10",
                "    denial 2500 20",
                "    servfail 500ms",
                "    serve_stale 10m verify",
                "}",
            ),
            "cache",
            CacheSettings(
                success_capacity=5000,
                success_ttl=60,
                denial_capacity=2500,
                denial_ttl=20,
                min_ttl=10,
                servfail_ttl=1,
                serve_stale=600.0,
                stale_verify=True,
            ),
        ),
        (root_block("cache {", "    servfail 0", "}"), "cache", CacheSettings(servfail_ttl=0)),
        # serve_stale: CoreDNS's 1h and 'immediate' unless told
        (root_block("cache {", "    serve_stale", "}"), "cache", CacheSettings(serve_stale=3600.0)),
        (
            root_block("cache {", "    serve_stale 30s IMMEDIATE", "}"),
            "cache",
            CacheSettings(serve_stale=30.0),
        ),
        (root_block("cache {", "    keepttl", "}"), "cache", CacheSettings(keep_ttl=True)),
        # prefetch AMOUNT [[DURATION] [PERCENTAGE%]]: CoreDNS's 1m and 10% unless told
        (root_block("cache {", "    prefetch 3", "}"), "cache", CacheSettings(prefetch=3)),
        (
            root_block("cache {", "    prefetch 2 30s", "}"),
            "cache",
            CacheSettings(prefetch=2, prefetch_window=30.0),
        ),
        (
            root_block("cache {", "    prefetch 10 1m30s 90%", "}"),
            "cache",
            CacheSettings(prefetch=10, prefetch_window=90.0, prefetch_percentage=90),
        ),
        (root_block("cache {", "    prefetch 0", "}"), "cache", CacheSettings()),  # 0: no prefetch
        # disable success|denial [ZONES...]: the block's zones unless named; a later line replaces
        (
            root_block("cache {", "    disable success", "    disable denial Example.ORG. 10.0.0.0/8", "}"),
            "cache",
            CacheSettings(disable_success=(".",), disable_denial=("example.org", "10.in-addr.arpa")),
        ),
        (
            "example.org:53 {\n    forward . 127.0.0.1\n    cache {\n        disable denial\n"
            "        disable denial a.example.org\n    }\n}\n",
            "cache",
            CacheSettings(disable_denial=("a.example.org",)),
        ),
        (
            "example.org example.net:53 {\n    forward . 127.0.0.1\n    cache {\n        disable success\n"
            "    }\n}\n",
            "cache",
            CacheSettings(disable_success=("example.org", "example.net")),
        ),
        (
            root_block(
                "hosts /etc/hosts.extra {",
                "    10.0.0.1 a.example.com A.Example.",
                "    fd00::1 b",
                "    ttl 10",
                "    reload 0",
                "}",
            ),
            "hosts",
            HostsSettings(
                path=Path("/etc/hosts.extra"),
                entries=(("10.0.0.1", "a.example.com"), ("10.0.0.1", "a.example"), ("fd00::1", "b")),
                ttl=10,
                reload=0.0,
            ),
        ),
        (root_block("hosts"), "hosts", HostsSettings(path=Path("/etc/hosts"))),
        (
            root_block("health 127.0.0.1:8080 {", "    lameduck 500ms", "}", "ready", "prometheus [::]:9153"),
            "ops",
            OpsSettings(health="127.0.0.1:8080", lameduck=0.5, ready=":8181", metrics="[::]:9153"),
        ),
        (root_block("prometheus"), "ops", OpsSettings(metrics="localhost:9153")),
        (root_block("bind 127.0.0.1 ::1", "bind 127.0.0.1"), "listen", ("127.0.0.1", "::1")),
        (root_block("reload 10s 2s"), "reload", 10.0),
        (root_block("reload"), "reload", 30.0),
        (root_block("log"), "log", LogSettings()),
        (root_block("log . {", "    class all", "}"), "log", LogSettings()),
        (root_block("log . {", "    class error", "}"), "log", LogSettings((LogRule(classes=ERROR),))),
        (
            root_block("log . {", "    class denial", "    class success error", "}"),
            "log",
            LogSettings((LogRule(classes=frozenset({LogClass.DENIAL, LogClass.SUCCESS, LogClass.ERROR})),)),
        ),
        (
            root_block("log . {", "    class error all", "}"),  # all among others: still every response
            "log",
            LogSettings((LogRule(classes=frozenset({LogClass.ERROR, LogClass.ALL})),)),
        ),
        (root_block("log Example.ORG."), "log", LogSettings((LogRule(names=("example.org",)),))),
        (
            root_block("log example.org example.com"),
            "log",
            LogSettings((LogRule(("example.org", "example.com")),)),
        ),
        (
            root_block('log example.org shop.svc.cluster.local "{type} {name} {rcode}"'),
            "log",
            LogSettings((LogRule(("example.org", "shop.svc.cluster.local"), "{type} {name} {rcode}"),)),
        ),
        (root_block("log . {combined}"), "log", LogSettings((LogRule(format=COMBINED_LOG_FORMAT),))),
        (root_block("log . {common}"), "log", LogSettings()),
        (root_block("log . {common} {", "}"), "log", LogSettings()),
        (
            root_block("log . {", "    class denial", "}", 'log example.org "{name}"'),
            "log",
            LogSettings((LogRule(classes=DENIAL), LogRule(("example.org",), "{name}"))),
        ),
        (
            root_block("log {common}"),
            "log",
            LogSettings((LogRule(("{common}",)),)),
        ),  # a name, as CoreDNS reads it
        (root_block("errors", "debug"), "log", None),
        (root_block("loadbalance round_robin"), "loadbalance", True),
        (root_block("errors", "loop"), "loadbalance", False),
        (root_block("autopath @kubernetes"), "autopath", False),  # as CoreDNS: nothing without pods verified
        (
            ".:53 {\n    autopath @kubernetes\n    kubernetes cluster.local {\n        pods verified\n    }\n}\n",
            "autopath",
            True,
        ),
        ("dns://.:53 {\n    kubernetes cluster.local\n}\n", "port", 53),
        (". {\n    kubernetes cluster.local\n}\n", "port", 53),
        (".:1053 {\n    kubernetes cluster.local\n}\n", "port", 1053),
        (
            ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        fallthrough in-addr.arpa ip6.arpa\n    }\n"
            "    forward . 1.1.1.1\n}\n",
            "forward",
            ForwardSettings(upstreams=("1.1.1.1",)),
        ),
    ],
)
def test_directives_map_to_config(tmp_path, text, field, expected):
    config, _ = load_text(tmp_path, text)
    (server,) = config.servers
    if field == "forward":
        assert server.forward == ((expected,) if expected is not None else ())
    else:
        assert getattr(server if hasattr(server, field) else config, field) == expected
    assert config.corefile == tmp_path / "Corefile" and config.snapshots == ()


@pytest.mark.parametrize(
    ("text", "warnings"),
    [
        (root_block("cache example.org"), [(3, "cache: zones are ignored")]),
        (  # each of these does what it says now
            root_block(
                "cache 30 {",
                "    prefetch 10 1m 10%",
                "    keepttl",
                "    serve_stale",
                "    disable success .",
                "    disable denial cluster.local",
                "}",
            ),
            [],
        ),
        (
            root_block("cache {", "    success 100 30 1", "    denial 100 30 2", "}"),
            [(3, "cache: kdns has one minimum TTL")],
        ),
        (
            root_block("forward . 1.1.1.1 {", "    next NXDOMAIN", "}"),
            [(4, "forward: next in the block's last forward stanza is not acted on")],
        ),
        (  # the last stanza's next, not the first's: CoreDNS hands on only to another forward
            root_block(
                "forward example.org 1.1.1.1 {",
                "    next NXDOMAIN",
                "}",
                "forward . 8.8.8.8 {",
                "    next SERVFAIL",
                "}",
            ),
            [(7, "forward: next in the block's last forward stanza is not acted on")],
        ),
        (
            root_block("forward . 1.1.1.1 {", "    max_concurrent 0", "}"),
            [(4, "forward: max_concurrent 0 (no limit) is not supported")],
        ),
        (
            root_block("errors {", '    consolidate 5m ".* i/o timeout$" warning', "}"),
            [(4, "errors: consolidate is ignored")],
        ),
        (root_block('log . "{remote} {type}"', "log . {", "    class error", "}"), []),
        (root_block('log "{remote} {type}"'), [(3, "log: '{remote} {type}' is read as a name")]),
        (
            "cluster.local:53 {\n    kubernetes cluster.local\n    log example.org cluster.local svc.cluster.local\n}\n",
            [(3, "log: example.org is outside the block's zones")],
        ),
        ("shop.svc.cluster.local:53 {\n    kubernetes cluster.local\n    log cluster.local\n}\n", []),
        (root_block("debug"), [(3, "debug is ignored")]),
        (
            root_block(
                "hosts /h example.org {",
                "    no_reverse",
                "    bogus line",
                "    10.0.0.1",
                "    fallthrough example.org",
                "}",
            ),
            [
                (4, "hosts: no_reverse is ignored"),
                (5, "hosts: 'bogus' is not an IP address; the line is skipped"),
                (6, "hosts: 10.0.0.1 has no names"),
            ],
        ),
        (root_block("autopath @kubernetes"), [(3, "autopath does nothing without 'pods verified'")]),
        (
            ".:53 {\n    kubernetes cluster.local {\n        upstream\n        apiserver_qps 50\n    }\n}\n",
            [
                (3, "kubernetes: upstream is obsolete and ignored"),
                (4, "kubernetes: apiserver_qps is ignored"),
            ],
        ),
        (
            ".:53 {\n    kubernetes\n}\n",
            [
                (2, "kubernetes: kdns does not serve the cluster at the root zone '.'"),
                (2, "kubernetes: serving the default zones cluster.local in-addr.arpa ip6.arpa"),
            ],
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        endpoint https://kubernetes.default.svc:443\n    }\n}\n",
            [(3, "kubernetes: endpoint is ignored")],
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        endpoint https://10.9.8.7:6443\n        tls c k ca\n        kubeconfig /k/config\n    }\n}\n",
            [
                (3, "kubernetes: endpoint is ignored: kdns uses the kubeconfig"),
                (4, "kubernetes: tls is ignored: kdns uses the kubeconfig"),
            ],
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        tls c k ca\n    }\n}\n",
            [(3, "kubernetes: tls is ignored without endpoint")],
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        endpoint https://10.9.8.7:6443 https://10.9.8.8:6443\n    }\n}\n",
            [(3, "kubernetes: endpoint: only the first URL, https://10.9.8.7:6443, is used")],
        ),
    ],
)
def test_accepted_but_ignored_options_warn(tmp_path, text, warnings):
    _, got = load_text(tmp_path, text, environ={})
    path = tmp_path / "Corefile"
    assert len(got) == len(warnings), got
    for message, (line, fragment) in zip(got, warnings, strict=True):
        assert message.startswith(f"{path}:{line}: {fragment}"), message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # syntax
        (".:53 {\n    kubernetes cluster.local\n", 1, "'{' is not closed"),
        (".:53 {\n    health {\n        lameduck 5s\n}\n", 1, "'{' is not closed"),
        (root_block() + "}\n", 4, "unexpected '}'"),
        (root_block("health { lameduck 5s }"), 3, "unexpected '{': '{' ends a line"),
        (root_block("forward . 1.1.1.1", "{"), 4, "unexpected '{'"),
        (root_block("}  log"), 3, "unexpected 'log' after '}'"),
        (".:53{\n    kubernetes cluster.local\n}\n", 1, "put a space before '{'"),
        ('.:53 {\n    log "unterminated\n}\n', 2, "unterminated quoted string"),
        ("", 1, "no server block"),
        # server blocks
        (
            root_block() + ".:53 {\n    forward . 10.150.0.1\n}\n",
            4,
            "zone . port 53 is served twice (first at",
        ),
        (
            root_block() + "example.org {\n    kubernetes cluster.local\n}\n",
            5,
            "kubernetes: kdns follows one cluster, and this block configures it differently from",
        ),
        (
            root_block() + "example.org:53 {\n    bind 127.0.0.1\n    forward . 10.0.0.1\n}\n",
            1,
            "blocks on port 53 bind overlapping addresses",
        ),
        (":53 {\n    kubernetes cluster.local\n}\n", 1, "':53' names no zone"),
        ("tls://.:853 {\n    kubernetes cluster.local\n}\n", 1, "tls:// servers are not supported by kdns"),
        (
            "https://.:443 {\n    kubernetes cluster.local\n}\n",
            1,
            "https:// servers are not supported by kdns",
        ),
        (".:dns {\n    kubernetes cluster.local\n}\n", 1, "'.:dns': 'dns' is not a port number"),
        # directives
        (root_block("foo bar"), 3, "unknown directive 'foo'"),
        (root_block("cache 30", "cache 60"), 4, "cache is given twice in one server block (first at"),
        *[
            (root_block(f"{plugin} example.org"), 3, f"plugin {plugin} is not supported by kdns")
            for plugin in (
                "file",
                "etcd",
                "dnssec",
                "view",
                "local",
                "proxy",
                "dns64",
            )
        ],
        (
            root_block(
                "template IN A example.org {", '    answer "{{ .Meta \\"x\\" }} 60 IN A 127.0.0.1"', "}"
            ),
            3,
            "template: ",
        ),
        (root_block("template IN"), 3, "template: "),
        (root_block("acl"), 3, "acl: no rules"),
        (
            root_block("acl {", "    permit net 10.0.0.0/8", "}"),
            4,
            "acl: 'permit' is not one of allow, block",
        ),
        (root_block("acl {", "    block type NOPE", "}"), 4, "acl type: invalid type 'NOPE'"),
        (root_block("acl {", "    block 10.0.0.0/8", "}"), 4, "acl: '10.0.0.0/8': expected 'type QTYPE...'"),
        (root_block("acl {", "    block net 10.0.0.0/33", "}"), 4, "acl net: '10.0.0.0/33' is not"),
        (root_block("whoami me"), 3, "wrong number of arguments: whoami"),
        (root_block("bufsize 100"), 3, "bufsize: 100 is outside 512-4096"),
        (".:53 {\n    k8s_external example.org\n}\n", 2, "k8s_external needs the kubernetes plugin"),
        (root_block("k8s_external {", "    apex a..b", "}"), 4, "k8s_external: apex: "),
        (root_block("rewrite name"), 3, "rewrite: "),
        (root_block("rewrite cname exact a.example b.example"), 3, "rewrite: "),
        # kubernetes
        (".:53 {\n    kubernetes in-addr.arpa\n}\n", 2, "kubernetes: at least one forward zone"),
        (".:53 {\n    kubernetes cluster..local\n}\n", 2, "'cluster..local' is not a valid zone"),
        (
            ".:53 {\n    kubernetes cluster.local 10.0.0.0/33\n}\n",
            2,
            "'10.0.0.0/33' is neither a zone nor a CIDR",
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        namespaces a\n        namespace_labels team=a\n    }\n}\n",
            2,
            "kubernetes: namespaces and namespace_labels cannot both be set",
        ),
        *[
            (f".:53 {{\n    kubernetes cluster.local {{\n        {option}\n    }}\n}}\n", 3, message)
            for option, message in [
                ("pods sometimes", "pods: 'sometimes' is not one of insecure, verified, disabled"),
                ("pods", "wrong number of arguments: pods insecure|verified|disabled"),
                ("ttl 5000", "ttl: 5000 is outside 0-3600"),
                ("ttl 5s", "ttl: '5s' is not a whole number"),
                ("namespaces", "wrong number of arguments"),
                ("labels app in", "labels: label selector 'app in'"),
                ("ignore everything", "ignore: 'everything' is not empty_service"),
                ("kubeconfig", "wrong number of arguments: kubeconfig FILE [CONTEXT]"),
                ("startup_timeout 5", "startup_timeout: '5' is not a duration"),
                (
                    "endpoint ftp://10.9.8.7",
                    "endpoint: 'ftp://10.9.8.7': the API server's URL must start with",
                ),
                ("endpoint https://10.9.8.7:http", "endpoint: 'https://10.9.8.7:http' is not a URL"),
                ("endpoint", "wrong number of arguments: endpoint URL"),
                ("tls cert key", "wrong number of arguments: tls CERT KEY CACERT"),
                ("noendpoints now", "wrong number of arguments: noendpoints"),
                ("multicluster clusterset.local", "kubernetes: multicluster clusterset.local: not a zone of"),
                ("namespace_labels", "wrong number of arguments: namespace_labels SELECTOR"),
                ("namespace_labels team in", "namespace_labels: label selector 'team in'"),
                ("resync 5m", "kubernetes: unknown option 'resync'"),
            ]
        ],
        # forward
        (
            root_block("forward example.org 10.0.0.1", "forward example.org 10.0.0.2"),
            4,
            "forward: example.org is forwarded twice in one server block",
        ),
        (root_block("forward ."), 3, "wrong number of arguments: forward FROM TO..."),
        (root_block("forward . https://9.9.9.9"), 3, "forward: "),
        (root_block("forward . https://9.9.9.9"), 3, "forward: https:// is not supported"),
        (
            root_block("forward . dns.google"),
            3,
            "forward: 'dns.google' is neither an IP address nor a resolv.conf file",
        ),
        (root_block("forward . 1.1.1.1:0"), 3, "forward: '1.1.1.1:0': 0 is outside 1-65535"),
        (
            root_block("forward . " + " ".join(f"10.0.0.{i}" for i in range(16))),
            3,
            "forward: more than 15 upstreams",
        ),
        *[
            (root_block("forward . 1.1.1.1 {", f"    {option}", "}"), 4, message)
            for option, message in [
                ("except", "wrong number of arguments: except IGNORED_NAMES..."),
                ("tls a b c d", "wrong number of arguments: tls [CERT KEY [CA]]"),
                ("failover NOERROR", "failover: NOERROR cannot be used in failover"),
                ("next MAYBE", "next: 'MAYBE' is not an rcode"),
                ("health_check 1s sometimes", "health_check: unexpected 'sometimes'"),
                ("policy fastest", "policy: 'fastest' is not one of random, round_robin, sequential"),
                ("max_fails -1", "max_fails: -1 is less than 0"),
                ("health_check 1", "health_check: '1' is not a duration"),
                ("force_tcp yes", "wrong number of arguments: force_tcp"),
                ("bogus", "forward: unknown option 'bogus'"),
            ]
        ],
        # cache
        (root_block("cache 0"), 3, "cache TTL: 0 is less than 1"),
        (root_block("cache {", "    success", "}"), 4, "wrong number of arguments: success CAPACITY"),
        (root_block("cache {", "    servfail 10m", "}"), 4, "servfail: 600s is outside 0-300s"),
        (
            root_block("cache {", "    serve_stale 1h later", "}"),
            4,
            "serve_stale: 'later' is not immediate or verify",
        ),
        (
            root_block("cache {", "    disable everything", "}"),
            4,
            "cache: disable 'everything': expected success or denial",
        ),
        (root_block("cache {", "    disable", "}"), 4, "wrong number of arguments: disable success|denial"),
        (root_block("cache {", "    keepttl 10", "}"), 4, "wrong number of arguments: keepttl"),
        (root_block("cache {", "    serve_stale -1s", "}"), 4, "serve_stale: -1s is less than 0s"),
        (root_block("cache {", "    serve_stale 1h verify now", "}"), 4, "wrong number of arguments"),
        (root_block("cache {", "    prefetch", "}"), 4, "wrong number of arguments: prefetch AMOUNT"),
        (
            root_block("cache {", "    prefetch 1 1m 10% 5", "}"),
            4,
            "wrong number of arguments: prefetch AMOUNT",
        ),
        (root_block("cache {", "    prefetch -1", "}"), 4, "prefetch amount: -1 is less than 0"),
        (root_block("cache {", "    prefetch 2 soon", "}"), 4, "prefetch duration: 'soon' is not a duration"),
        (root_block("cache {", "    prefetch 2 10%", "}"), 4, "prefetch duration: '10%' is not a duration"),
        (
            root_block("cache {", "    prefetch 2 1m 10", "}"),
            4,
            "prefetch: '10' is no percentage (such as 10%)",
        ),
        (root_block("cache {", "    prefetch 2 1m 5%", "}"), 4, "prefetch percentage: 5% is outside 10-90%"),
        (
            root_block("cache {", "    prefetch 2 1m 95%", "}"),
            4,
            "prefetch percentage: 95% is outside 10-90%",
        ),
        (
            root_block("cache {", "    prefetch 2 1m ten%", "}"),
            4,
            "prefetch percentage: 'ten' is not a whole",
        ),
        (root_block("cache {", "    bogus", "}"), 4, "cache: unknown option 'bogus'"),
        # the rest
        (root_block("health localhost"), 3, "health: 'localhost' is not a HOST:PORT address"),
        (root_block("health {", "    lameduck five", "}"), 4, "lameduck: 'five' is not a duration"),
        (root_block("health {", "    grace 5s", "}"), 4, "health: unknown option 'grace'"),
        (root_block("ready :8181 :8182"), 3, "wrong number of arguments: ready [ADDRESS]"),
        (root_block("reload 1s"), 3, "reload interval: 1s is less than 2s"),
        (root_block("loadbalance weighted /w"), 3, "loadbalance: policy 'weighted' is not supported"),
        (
            root_block("autopath cluster.local @kubernetes"),
            3,
            "autopath: only 'autopath @kubernetes' is supported",
        ),
        (root_block("autopath /etc/resolv.conf"), 3, "autopath: only 'autopath @kubernetes' is supported"),
        (root_block("bind eth0"), 3, "bind: 'eth0' is not an IP address (interface names are not supported)"),
        (root_block("bind 127.0.0.1 {", "    except 127.0.0.2", "}"), 3, "bind: except is not supported"),
        (root_block("errors /var/log/errors"), 3, "errors: only stdout is a valid argument"),
        (root_block("log {", "    class fancy", "}"), 4, "log: unknown class 'fancy': expected all, success"),
        (root_block("log . {", "    class", "}"), 4, "wrong number of arguments: class CLASS..."),
        (root_block("log . {", "    minDuration 1s", "}"), 4, "log: unknown option 'minDuration'"),
        (root_block("log example..org"), 3, "log: invalid label"),
        (root_block("loop {", "}"), 3, "loop takes no '{' block"),
        (
            root_block("hosts {", "    fallthrough", "    10.0.0.1 late", "}"),
            5,
            "hosts: unknown option '10.0.0.1'",
        ),
        (root_block("hosts {", "    ttl 0", "}"), 4, "hosts ttl: 0 is outside 1-65535"),
    ],
)
def test_unsupported_constructs_name_file_and_line(tmp_path, text, line, message):
    with pytest.raises(CorefileError) as error:
        load_text(tmp_path, text)
    assert str(error.value).startswith(f"{tmp_path / 'Corefile'}:{line}: {message}"), str(error.value)


def test_a_missing_corefile_is_a_corefile_error(tmp_path):
    with pytest.raises(CorefileError, match=re.escape(f"{tmp_path / 'nope'}: cannot read the Corefile")):
        load(tmp_path / "nope", environ=ENV)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("5s", 5.0),
        ("30s", 30.0),
        ("1m", 60.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("250us", 0.00025),
        ("100ns", 1e-7),
        ("-2s", -2.0),
        ("+3m", 180.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "5x", "1m 30s", "five", "1.5.5s", "-", "0s5"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_forward_next_hands_on_along_the_stanzas_written_after_it_without_warnings(tmp_path):
    config, warnings = load_text(
        tmp_path,
        root_block(
            "forward . 10.0.0.1 {",
            "    next NXDOMAIN servfail",
            "}",
            "forward example.org 10.0.0.2",
        ),
    )
    (server,) = config.servers
    assert [stanza.next_rcodes for stanza in server.forward] == [(3, 2), ()]
    assert [stanza.zone for stanza in server.forward] == [".", "example.org"]
    assert warnings == []


def test_rewrite_edns0_rules_load_in_the_order_written_beside_name_rules(tmp_path):
    config, warnings = load_text(
        tmp_path,
        root_block(
            "rewrite continue edns0 subnet set 24 56",
            'rewrite edns0 local set 0xffee "hello" revert',
            "rewrite name exact a.example b.example",
            "forward . 10.0.0.1",
        ),
    )
    (server,) = config.servers
    assert [type(rule).__name__ for rule in server.rewrites] == ["Edns0Rule", "Edns0Rule", "NameRule"]
    subnet, local, _ = server.rewrites
    assert (subnet.option, subnet.v4_bits, subnet.v6_bits, subnet.mode) == ("subnet", 24, 56, "continue")
    assert (local.code, local.data, local.revert) == (0xFFEE, b"hello", True)
    assert warnings == []
