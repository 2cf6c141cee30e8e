"""The command line as users and tools drive it: help, exit codes, errors, ``dump``."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.support.client import ask
from tests.support.paths import ROOT
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
        (["serve", "--port", "70000"], "--port: 70000 is not a port number"),
        (["serve", "--ttl", "-1"], "--ttl: -1 is outside 0-3600"),
        (["serve", "--pods", "sometimes"], "invalid choice: 'sometimes'"),
        (["serve", "--listen", "localhost"], "--listen: 'localhost' is not an IPv4 or IPv6 address"),
        (["serve", "--labels", "app in"], "--labels: label selector 'app in'"),
        (["serve", "--zone", "in-addr.arpa"], "--zone: at least one forward zone"),
        (["serve", "--zone", "bad..zone"], "--zone: invalid label"),
        (["serve", "--max-udp-size", "100"], "--max-udp-size: 100 is outside 512-4096"),
        (["serve", "--unknown"], "unrecognized arguments: --unknown"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(args, message):
    result = run_kdns(*args)
    assert result.returncode == 2
    assert message in result.stderr


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


def test_busy_port_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_kdns("serve", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1 port {port}/UDP: Address already in use" in result.stderr


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
