"""The command line as users and tools drive it: help, exit codes, errors, ``dump``; and that its
help, the README and the Corefile state the same defaults and bounds as ``kdns.config``."""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdns.cli import build_parser, from_corefile, main
from kdns.config import (
    DEFAULT_PORT,
    CacheSettings,
    ForwardSettings,
    KubeSettings,
    ServeConfig,
    ServerSettings,
    ZoneSettings,
)
from kdns.corefile import load
from kdns.sources.snapshot import HOW_TO_SNAPSHOT
from tests.support.client import ask, lookup
from tests.support.paths import EXAMPLE, ROOT
from tests.support.polling import eventually
from tests.support.process import run_kdns, running


def test_help_explains_every_option():
    top = run_kdns("--help")
    assert top.returncode == 0 and "serve" in top.stdout and "dump" in top.stdout
    serve = run_kdns("serve", "--help").stdout
    for option in (
        "--snapshot",
        "--zone",
        "--listen",
        "--port",
        "--ttl",
        "--pods",
        "--namespace",
        "--labels",
        "--endpoint-pod-names",
        "--ignore-empty-service",
        "--max-udp-size",
        "--tcp-idle-timeout",
        "--max-tcp-connections",
        "--log-level",
    ):
        assert option in serve
    assert "insecure" in serve and "verified" in serve and "disabled" in serve


def test_console_script_matches_module():
    script = ROOT / ".venv" / "bin" / "kdns"
    if not script.exists():
        pytest.fail("the console script is installed by 'make test' (pip install -e)")
    assert (
        subprocess.run([script, "--version"], capture_output=True, text=True).stdout
        == run_kdns("--version").stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["serve", "--port", "70000"], "--port: 70000 is outside 0-65535"),
        (["serve", "--ttl", "-1"], "--ttl: -1 is outside 0-3600"),
        (["serve", "--pods", "sometimes"], "--pods: 'sometimes' is not one of insecure, verified, disabled"),
        (["serve", "--listen", "localhost"], "--listen: 'localhost' is not an IP address"),
        (["serve", "--labels", "app in"], "--labels: label selector 'app in'"),
        (["serve", "--zone", "in-addr.arpa"], "--zone: at least one forward zone"),
        (["serve", "--zone", "bad..zone"], "--zone: invalid label"),
        (["serve", "--max-udp-size", "100"], "--max-udp-size: 100 is outside 512-4096"),
        (["serve", "--transfer-to", "ns2.example"], "--transfer-to: 'ns2.example' is not '*', an IP"),
        (["serve", "--port", "abc"], "--port: 'abc' is not a whole number"),
        (["serve", "--unknown"], "--unknown: no such option ('kdns serve --help' lists them)"),
        (["serve", "--upstrem", "127.0.0.1"], "--upstrem: no such option; did you mean --upstream?"),
        (["serve", "--no-foward"], "--no-foward: no such option; did you mean --no-forward?"),
        (["dump", "--snapshto=x.yaml"], "--snapshto: no such option; did you mean --snapshot?"),
        (["serve", "stray"], "unrecognized arguments: stray"),
        (["serve", "--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
        (["serv"], "argument COMMAND: invalid choice: 'serv'"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem_on_the_first_line(args, message):
    result = run_kdns(*args)
    assert result.returncode == 2
    first, *rest = result.stderr.splitlines()
    assert first.startswith("kdns: error: ") and message in first
    assert rest[0].startswith("usage: kdns")  # the usage after it, to see the options


def test_every_mistyped_option_is_told_at_once_with_its_nearest():
    result = run_kdns("serve", "--prot", "5300", "--upstrem", "127.0.0.1", "--no-forward")
    assert result.returncode == 2
    assert result.stderr.splitlines()[:2] == [
        "kdns: error: --prot: no such option; did you mean --port?",
        "kdns: error: --upstrem: no such option; did you mean --upstream?",
    ]


def test_every_bad_option_is_reported_at_once():
    result = run_kdns(
        "serve", "--ttl", "5000", "--port", "seventy", "--upstream", "127.0.0.1:0", "--health", ":99999"
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("kdns: error: ")]
    assert errors == [
        "kdns: error: --ttl: 5000 is outside 0-3600",
        "kdns: error: --port: 'seventy' is not a whole number",
        "kdns: error: --health: ':99999': 99999 is outside 0-65535",
        "kdns: error: --upstream: '127.0.0.1:0': 0 is outside 1-65535",
    ]


def help_entries(text: str) -> dict[str, str]:
    """Each option of a ``--help`` text and its help, wrapped lines joined."""
    entries: dict[str, str] = {}
    option = None
    for line in text.splitlines():
        if m := re.match(r"  (--[a-z-]+)", line):
            option = m[1]
            entries[option] = line
        elif option is not None and line.startswith(" " * 4):
            entries[option] += " " + line
        else:
            option = None
    return {option: " ".join(entry.split()) for option, entry in entries.items()}


@pytest.fixture(scope="module")
def serve_help() -> dict[str, str]:
    return help_entries(run_kdns("serve", "--help").stdout)


def shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_help_states_the_defaults_kdns_runs_with(serve_help):
    config, zone, kube = ServeConfig(), ZoneSettings(), KubeSettings()
    forward, cache, server = ForwardSettings(), CacheSettings(), ServerSettings()
    expected = {
        "--port": server.port,
        "--listen": " ".join(server.listen),
        "--max-udp-size": config.max_udp_size,
        "--tcp-idle-timeout": config.tcp_idle_timeout,
        "--max-tcp-connections": config.max_tcp_connections,
        "--workers": config.workers,
        "--zone": " ".join(zone.zones),
        "--ttl": zone.ttl,
        "--pods": zone.pods.value,
        "--startup-timeout": kube.startup_timeout,
        "--watch-idle-timeout": kube.idle_timeout,
        "--resolv-conf": forward.resolv_conf,
        "--max-concurrent": forward.max_concurrent,
        "--forward-timeout": forward.timeout,
        "--forward-policy": forward.policy,
        "--max-fails": forward.max_fails,
        "--health-check": forward.health_check,
        "--cache-capacity": cache.success_capacity,
        "--serve-stale": cache.serve_stale,
        "--lameduck": config.ops.lameduck,
        "--cache-ttl": f"{cache.success_ttl} for answers, {cache.denial_ttl} for negative answers",
    }
    defaults = {
        option: re.search(r"\(default: (.+?)(, off)?\)", serve_help[option])[1] for option in expected
    }
    assert defaults == {option: shown(value) for option, value in expected.items()}
    assert help_entries(run_kdns("dump", "--help").stdout)["--ttl"] == serve_help["--ttl"]


def test_readme_states_the_defaults_kdns_runs_with(serve_help):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    usage = readme.split("## Running it", 1)[1].split("```")[1]
    written = dict(re.findall(r"\[(--[a-z-]+) (\d[\d.]*)\]", usage))
    assert len(written) >= 7
    assert {
        option: re.search(r"\(default: ([\d.]+)\)", serve_help[option])[1] for option in written
    } == written


def root_corefile(tmp_path, *lines: str) -> str:
    path = tmp_path / "Corefile"
    path.write_text(".:53 {\n" + "".join(f"    {line}\n" for line in lines) + "}\n", encoding="utf-8")
    return str(path)


KUBERNETES = "kubernetes cluster.local"


@pytest.mark.parametrize(
    ("args", "lines", "option", "directive", "problem"),
    [
        (
            ["--ttl", "5000"],
            [f"{KUBERNETES} {{", "    ttl 5000", "}"],
            "--ttl",
            "ttl",
            "5000 is outside 0-3600",
        ),
        (
            ["--ttl", "5s"],
            [f"{KUBERNETES} {{", "    ttl 5s", "}"],
            "--ttl",
            "ttl",
            "'5s' is not a whole number",
        ),
        (
            ["--pods", "sometimes"],
            [f"{KUBERNETES} {{", "    pods sometimes", "}"],
            "--pods",
            "pods",
            "'sometimes' is not one of insecure, verified, disabled",
        ),
        (
            ["--forward-policy", "fastest"],
            [KUBERNETES, "forward . 127.0.0.1 {", "    policy fastest", "}"],
            "--forward-policy",
            "policy",
            "'fastest' is not one of random, round_robin, sequential",
        ),
        (
            ["--upstream", "127.0.0.1:0"],
            [KUBERNETES, "forward . 127.0.0.1:0"],
            "--upstream",
            "forward",
            "'127.0.0.1:0': 0 is outside 1-65535",
        ),
        (
            ["--upstream", "https://127.0.0.1"],
            [KUBERNETES, "forward . https://127.0.0.1"],
            "--upstream",
            "forward",
            "https:// is not supported as a destination protocol",
        ),
        (
            ["--health", "127.0.0.1:70000"],
            [KUBERNETES, "health 127.0.0.1:70000"],
            "--health",
            "health",
            "'127.0.0.1:70000': 70000 is outside 0-65535",
        ),
        (
            ["--metrics", "[::1]:x"],
            [KUBERNETES, "prometheus [::1]:x"],
            "--metrics",
            "prometheus",
            "'[::1]:x': 'x' is not a port number",
        ),
        (["--cache-ttl", "0"], [KUBERNETES, "cache 0"], "--cache-ttl", "cache TTL", "0 is less than 1"),
        (
            ["--cache-capacity", "many"],
            [KUBERNETES, "cache {", "    success many", "}"],
            "--cache-capacity",
            "success capacity",
            "'many' is not a whole number",
        ),
        (["--listen", "eth0"], [KUBERNETES, "bind eth0"], "--listen", "bind", "'eth0' is not an IP address"),
    ],
)
def test_command_line_and_corefile_refuse_alike(tmp_path, capsys, args, lines, option, directive, problem):
    """One bound and one parser behind each: the same value gets the same problem text from both."""
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", "0", *args])
    assert stopped.value.code == 2
    assert f"kdns: error: {option}: {problem}\n" in capsys.readouterr().err
    corefile = root_corefile(tmp_path, *lines)
    assert main(["serve", "--corefile", corefile]) == 2
    line = 2 + max(i for i, text in enumerate(lines) if text != "}")  # the last directive written
    assert f"kdns: error: {corefile}:{line}: {directive}: {problem}" in capsys.readouterr().err


def test_a_bare_health_or_ready_listens_where_a_corefiles_does(tmp_path, serve_help):
    """``--health`` alone and a Corefile's ``health`` without an address: CoreDNS's default, both."""
    config, _ = load(root_corefile(tmp_path, KUBERNETES, "health", "ready"))
    assert f"(alone: {config.ops.health})" in serve_help["--health"]
    assert f"(alone: {config.ops.ready})" in serve_help["--ready"]


def test_bad_snapshot_stops_startup_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: List\nitems:\n- kind: Service\n  metadata: {name: s, namespace: a}\n  spec: {clusterIP: nope}\n"
    )
    result = run_kdns("serve", "--snapshot", str(bad), "--port", "0")
    assert result.returncode == 2
    assert f"kdns: error: {bad}:3: Service a/s: invalid IP address 'nope'" in result.stderr
    missing = run_kdns("dump", "--snapshot", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "missing.yaml: cannot read" in missing.stderr


@contextlib.contextmanager
def held_udp(port: int) -> Iterator[int]:
    """``port`` on 127.0.0.1 held for UDP while the block runs (already held by a process of the
    machine, such as an mDNS responder on 5353, is as good); port 0 holds a free one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        try:
            taken.bind(("127.0.0.1", port))
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE, exc
        yield taken.getsockname()[1] if port == 0 else port


@pytest.mark.parametrize(
    ("wanted", "holder"),
    [
        (0, "is held by another process"),
        (5353, "is usually held by mDNS (avahi-daemon or mDNSResponder)"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_busy_port_says_in_one_line_what_holds_it_and_how_to_choose_another(wanted, holder, workers):
    with held_udp(wanted) as port:
        result = run_kdns("serve", "--no-forward", "--port", str(port), "--workers", workers)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"kdns: error: cannot listen on 127.0.0.1 port {port}/UDP: Address already in use; "
        f"port {port} {holder}: choose another with --port"
    )


def test_busy_port_of_a_corefile_says_where_its_port_is_written(tmp_path):
    with held_udp(0) as port:
        corefile = tmp_path / "Corefile"
        corefile.write_text(f".:{port} {{\n    bind 127.0.0.1\n    kubernetes cluster.local\n}}\n")
        result = run_kdns("serve", "--corefile", str(corefile), "--snapshot", str(EXAMPLE))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"kdns: error: cannot listen on 127.0.0.1 port {port}/UDP: Address already in use; "
        f"port {port} is held by another process: choose another in the server block's key ('.:PORT {{')"
    )


def test_dump_prints_the_served_zone():
    result = run_kdns("dump")
    assert result.returncode == 0
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "$ORIGIN cluster.local." in lines
    assert "web.shop.svc.cluster.local. 5 IN A 10.96.100.10" in lines
    assert (
        "_postgres._tcp.postgres.data.svc.cluster.local. 5 IN SRV 0 50 5432 postgres-0.postgres.data.svc.cluster.local."
        in lines
    )
    assert "10.100.96.10.in-addr.arpa. 5 IN PTR web.shop.svc.cluster.local." in lines
    assert not any("postgres-2" in line for line in lines)


def test_dump_honours_zone_options():
    result = run_kdns("dump", "--zone", "corp.example", "--ttl", "60", "--namespace", "shop")
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "web.shop.svc.corp.example. 60 IN A 10.96.100.10" in lines
    assert not any("kube-dns" in line for line in lines)
    assert not any("in-addr.arpa" in line for line in lines)


def test_serve_answers_the_options_it_was_given():
    with running("--zone", "corp.example", "--ttl", "42", "--pods", "disabled") as server:
        reply = ask(server.port, "web.shop.svc.corp.example")
        assert reply.answer[0].ttl == 42
        reply = ask(server.port, "1-2-3-4.shop.pod.corp.example")
        assert reply.rcode() == 3
        assert server.stop() == 0


def served_corefile(tmp_path) -> str:
    path = tmp_path / "Corefile"
    path.write_text(".:0 {\n    bind 127.0.0.1\n    kubernetes cluster.local\n}\n", encoding="utf-8")
    return str(path)


def test_corefile_help_names_the_options_it_takes_and_they_alone_are_taken(tmp_path, serve_help):
    corefile = served_corefile(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    values = {
        "--snapshot": str(EXAMPLE),
        "--kubeconfig": str(kubeconfig),
        "--context": "elsewhere",
        "--workers": "2",
        "--log-level": "debug",
    }
    said = re.search(r"with it only (.+) may be given", serve_help["--corefile"])[1]
    assert said.replace(" and ", ", ").split(", ") == list(values)
    parser = build_parser()
    for option, value in values.items():
        args = parser.parse_args(["serve", "--corefile", corefile, option, value])
        assert from_corefile(args, parser).corefile == Path(corefile)
    for refused in (["--port", "5300"], ["--ttl", "30"], ["--no-forward"], ["--upstream", "127.0.0.1"]):
        with pytest.raises(SystemExit) as stopped:
            from_corefile(parser.parse_args(["serve", "--corefile", corefile, *refused]), parser)
        assert stopped.value.code == 2


def test_workers_serve_a_corefile(tmp_path, serve_help):
    assert "with --corefile too" in serve_help["--workers"]
    corefile = served_corefile(tmp_path)
    with running("--corefile", corefile, "--snapshot", str(EXAMPLE), "--workers", "2") as server:
        assert lookup(server.port, "web.shop.svc.cluster.local") == ("NOERROR", {"10.96.100.10"})
        assert eventually(lambda: server.logged("ready: 2 workers"))


def test_readme_quick_start_is_two_commands_and_tells_how_to_snapshot_a_cluster():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    [commands] = re.findall(r"```sh\n(.*?)```", quick_start, re.DOTALL)
    assert [line.split("#")[0].strip() for line in commands.splitlines()] == ["make serve", "make test"]
    assert f"port {DEFAULT_PORT}" in commands
    own_cluster = readme.split("## Your own cluster", 1)[1].split("\n## ", 1)[0]
    assert HOW_TO_SNAPSHOT in own_cluster and "--snapshot cluster.yaml" in own_cluster
