"""kdns/config.py: the bounds and the parsers the command line and the Corefile share."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from kdns.config import (
    DEFAULT_PORT,
    PORT,
    PORT_HOLDERS,
    POSITIVE_SECONDS,
    SERVFAIL_TTL,
    TTL,
    Bounds,
    ForwardSettings,
    NotAnIPAddress,
    PodMode,
    ServerSettings,
    UpstreamAddress,
    UpstreamProtocol,
    name_labels,
    parse_api_url,
    parse_choice,
    parse_failover_rcode,
    parse_number,
    parse_rcode,
    parse_tls_files,
    parse_transfer_to,
    parse_upstream_address,
    parse_whole_number,
    port_taken,
    split_address,
)


@pytest.mark.parametrize(
    ("bounds", "value", "problem"),
    [
        (TTL, 0, None),
        (TTL, 3600, None),
        (TTL, 3601, "3601 is outside 0-3600"),
        (TTL, -1, "-1 is outside 0-3600"),
        (Bounds(1), 0, "0 is less than 1"),
        (Bounds(1), 10**9, None),
        (POSITIVE_SECONDS, 0.0, "0s is not more than 0s"),
        (POSITIVE_SECONDS, 0.001, None),
        (SERVFAIL_TTL, 600.0, "600s is outside 0-300s"),
        (SERVFAIL_TTL, 1.5, None),
    ],
)
def test_bounds_name_the_problem(bounds, value, problem):
    assert bounds.check(value) == problem


@pytest.mark.parametrize(
    ("bounds", "text"),
    [(TTL, "0-3600"), (Bounds(1), "1 or more"), (POSITIVE_SECONDS, "more than 0s"), (PORT, "0-65535")],
)
def test_bounds_read_as_help_text(bounds, text):
    assert str(bounds) == text


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (parse_whole_number, "42", 42),
        (parse_whole_number, "+7", 7),
        (parse_number, "0.5", 0.5),
        (parse_number, "2", 2.0),
    ],
)
def test_numbers_read(parse, text, value):
    assert parse(text, Bounds(0)) == value


@pytest.mark.parametrize(
    ("parse", "text", "problem"),
    [
        (parse_whole_number, "5s", "'5s' is not a whole number"),
        (parse_whole_number, "1_000", "'1_000' is not a whole number"),
        (parse_whole_number, "-3", "-3 is less than 0"),
        (parse_number, "nan", "'nan' is not a number"),
        (parse_number, "inf", "'inf' is not a number"),
        (parse_number, "soon", "'soon' is not a number"),
    ],
)
def test_numbers_refused(parse, text, problem):
    with pytest.raises(ValueError) as error:
        parse(text, Bounds(0))
    assert str(error.value) == problem


def test_a_choice_is_one_of_the_names():
    assert parse_choice(PodMode, "verified") is PodMode.VERIFIED
    with pytest.raises(ValueError, match=r"^'VERIFIED' is not one of insecure, verified, disabled$"):
        parse_choice(PodMode, "VERIFIED")


@pytest.mark.parametrize(
    ("text", "default_port", "address"),
    [
        (":8080", None, (None, 8080)),
        ("127.0.0.1:0", None, ("127.0.0.1", 0)),
        ("[::1]:8181", None, ("::1", 8181)),
        ("localhost:9153", None, ("localhost", 9153)),
        ("localhost", 8080, ("localhost", 8080)),
        ("[::1]", 8080, ("::1", 8080)),
        ("::1", 8080, ("::1", 8080)),  # more than one colon: an IPv6 address, no port
    ],
)
def test_host_port_addresses(text, default_port, address):
    assert split_address(text, default_port) == address


@pytest.mark.parametrize(
    ("text", "default_port", "problem"),
    [
        ("localhost", None, "'localhost' is not a HOST:PORT address"),
        (":99999", None, "':99999': 99999 is outside 0-65535"),
        ("host:http", None, "'host:http': 'http' is not a port number"),
        ("[::1]8080", None, "'[::1]8080' is not a HOST:PORT address"),
        ("[::1", 8080, "'[::1' is not a HOST:PORT address"),
        ("::1:99999", 8080, "'::1:99999' is not a HOST:PORT address"),
    ],
)
def test_host_port_addresses_refused(text, default_port, problem):
    with pytest.raises(ValueError) as error:
        split_address(text, default_port)
    assert str(error.value) == problem


@pytest.mark.parametrize(
    ("text", "upstream"),
    [
        ("10.0.0.2", ("10.0.0.2", 53)),
        ("10.0.0.2:5300", ("10.0.0.2", 5300)),
        ("dns://10.0.0.2:5300", ("10.0.0.2", 5300)),
        ("[fd00::2]:53", ("fd00::2", 53)),
        ("fd00::2", ("fd00::2", 53)),
        ("FD00::2", ("fd00::2", 53)),
    ],
)
def test_upstream_addresses(text, upstream):
    address = parse_upstream_address(text)
    assert (address.host, address.port) == upstream


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.0.0.2:0", "'10.0.0.2:0': 0 is outside 1-65535"),
        ("10.0.0.2:65536", "'10.0.0.2:65536': 65536 is outside 1-65535"),
        ("https://10.0.0.2", "https:// is not supported as a destination protocol"),
    ],
)
def test_upstream_addresses_refused(text, problem):
    with pytest.raises(ValueError) as error:
        parse_upstream_address(text)
    assert str(error.value) == problem
    assert not isinstance(error.value, NotAnIPAddress)


@pytest.mark.parametrize("text", ["dns.google", "/etc/resolv.conf", "[dns.google]:53"])
def test_an_upstream_that_is_no_ip_says_so(text):
    """The Corefile's forward then tries the text as a resolv.conf file."""
    with pytest.raises(NotAnIPAddress, match="is not an IP address"):
        parse_upstream_address(text)


TLS = UpstreamProtocol.TLS


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.2", UpstreamAddress("10.0.0.2", 53)),
        ("dns://10.0.0.2:5300", UpstreamAddress("10.0.0.2", 5300)),
        ("tls://10.0.0.2", UpstreamAddress("10.0.0.2", 853, TLS)),  # DNS over TLS's own port (RFC 7858)
        ("tls://10.0.0.2:8853", UpstreamAddress("10.0.0.2", 8853, TLS)),
        ("tls://[FD00::2]:853", UpstreamAddress("fd00::2", 853, TLS)),
        ("tls://fd00::2", UpstreamAddress("fd00::2", 853, TLS)),
    ],
)
def test_forward_destinations_with_their_protocol(text, address):
    assert parse_upstream_address(text) == address


@pytest.mark.parametrize(
    ("text", "to"),
    [
        ("*", "*"),
        ("10.0.0.7", "10.0.0.7/32"),
        ("10.0.0.7:53", "10.0.0.7/32"),  # where CoreDNS would send notifies: not who may transfer
        ("[fd00::7]:5300", "fd00::7/128"),
        ("FD00::7", "fd00::7/128"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),  # the network the address is in
        ("fd00::/8", "fd00::/8"),
    ],
)
def test_transfer_to_addresses(text, to):
    assert parse_transfer_to(text) == to


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("https://10.0.0.2", "https:// is not supported as a destination protocol"),
        ("tls://10.0.0.2:0", "'10.0.0.2:0': 0 is outside 1-65535"),
        ("tls://dns.google", "'tls://dns.google' is not an IP address with an optional port"),
    ],
)
def test_forward_destinations_refused(text, problem):
    with pytest.raises(ValueError) as error:
        parse_upstream_address(text)
    assert str(error.value) == problem


@pytest.mark.parametrize(
    ("args", "files"),
    [
        ([], (None, None, None)),  # the system's roots verify the server
        (["ca.pem"], (None, None, Path("ca.pem"))),
        (["c.crt", "c.key"], (Path("c.crt"), Path("c.key"), None)),
        (["c.crt", "c.key", "ca.pem"], (Path("c.crt"), Path("c.key"), Path("ca.pem"))),
    ],
)
def test_forward_tls_arguments_read_as_coredns_reads_them(args, files):
    assert parse_tls_files(args) == files


def test_forward_tls_takes_at_most_three_files():
    with pytest.raises(ValueError, match="at most 3 files"):
        parse_tls_files(["a", "b", "c", "d"])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("https://10.0.0.1:6443", None),
        ("https://api.example.org", None),
        ("https://[fd00::1]:6443/prefix", None),
        ("http://127.0.0.1:8080", None),  # an insecure port, as CoreDNS allows
        ("10.0.0.1:6443", "must start with https:// or http://"),
        ("ftp://api.example.org", "must start with https:// or http://"),
        ("https://", "names no host"),
        ("https://:6443", "names no host"),
        ("https://api:65536", "is not a URL"),
        ("https://api:port", "is not a URL"),
        ("https://[fd00::1", "is not a URL"),
        ("https://api/?watch=1", "takes no query or fragment"),
    ],
)
def test_an_api_servers_url_is_https_or_http_with_a_host(text, problem):
    if problem is None:
        assert parse_api_url(text) == text
    else:
        with pytest.raises(ValueError, match=re.escape(problem)):
            parse_api_url(text)


@pytest.mark.parametrize(
    ("text", "rcode"), [("NOERROR", 0), ("servfail", 2), ("NXDOMAIN", 3), ("Refused", 5), ("NOTZONE", 10)]
)
def test_rcodes_by_name(text, rcode):
    assert parse_rcode(text) == rcode


@pytest.mark.parametrize(
    ("parse", "text", "problem"),
    [
        (parse_rcode, "NXDOMIAN", "'NXDOMIAN' is not an rcode (NOERROR, FORMERR, SERVFAIL"),
        (parse_rcode, "3", "'3' is not an rcode"),
        (parse_failover_rcode, "NOERROR", "NOERROR cannot be used in failover"),
    ],
)
def test_rcodes_refused(parse, text, problem):
    with pytest.raises(ValueError) as error:
        parse(text)
    assert str(error.value).startswith(problem)


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        (".", ()),
        ("", ()),
        ("Example.ORG.", ("example", "org")),
        ("example.org", ("example", "org")),
        (r"a\.b.example.org.", ("a.b", "example", "org")),
        (r"\065bc.org.", ("abc", "org")),
    ],
)
def test_names_read_label_by_label(name, labels):
    assert name_labels(name) == labels


@pytest.mark.parametrize(
    ("except_names", "qname", "forwarded"),
    [
        ((), "example.org.", True),
        (("example.org",), "example.org.", False),
        (("example.org",), "WWW.Example.Org.", False),  # below an excepted name, any letter case
        (("Example.ORG.",), "a.b.example.org.", False),
        (("example.org",), "notexample.org.", True),  # labels, not characters
        (("example.org",), r"x\.example.org.", True),  # one label "x.example"
        (("example.org",), "org.", True),
        (("example.org", "internal"), "db.internal.", False),
        ((".",), "example.org.", False),
        ((".",), ".", True),  # the zone forward serves is forwarded whatever except says
    ],
)
def test_except_names_are_not_forwarded(except_names, qname, forwarded):
    assert ForwardSettings(except_names=except_names).forwards(qname) is forwarded


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("secondary.example", "'secondary.example' is not '*', an IP address or a CIDR network"),
        ("", "'' is not '*', an IP address or a CIDR network"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not a network in CIDR notation"),
        ("10.0.0.7:domain", "'10.0.0.7:domain': 'domain' is not a port number"),
        ("**", "'**' is not '*', an IP address or a CIDR network"),
    ],
)
def test_transfer_to_addresses_refused(text, problem):
    with pytest.raises(ValueError) as error:
        parse_transfer_to(text)
    assert str(error.value) == problem


@pytest.mark.parametrize(
    ("port", "corefile", "advice"),
    [
        (
            53,
            False,
            "port 53 is usually held by a local resolver (systemd-resolved or dnsmasq): choose another with --port",
        ),
        (
            5353,
            False,
            "port 5353 is usually held by mDNS (avahi-daemon or mDNSResponder): choose another with --port",
        ),
        (1053, False, "port 1053 is held by another process: choose another with --port"),
        (
            53,
            True,
            "port 53 is usually held by a local resolver (systemd-resolved or dnsmasq): choose another in the server block's key ('.:PORT {')",
        ),
    ],
)
def test_a_taken_port_says_what_usually_holds_it(port, corefile, advice):
    error = port_taken(OSError(errno.EADDRINUSE, "Address already in use"), port, corefile=corefile)
    assert error.errno == errno.EADDRINUSE
    assert error.strerror == f"Address already in use; {advice}"


def test_other_listening_errors_are_left_as_they_are():
    denied = OSError(errno.EACCES, "Permission denied")
    assert port_taken(denied, 53) is denied
    taken_by_port_zero = OSError(errno.EADDRINUSE, "Address already in use")
    assert port_taken(taken_by_port_zero, 0) is taken_by_port_zero


def test_the_default_port_is_no_well_known_desktop_service():
    """mDNS (5353) is avahi's and mDNSResponder's on desktops, 53 a local resolver's; the default
    is neither, and needs no privileges."""
    assert ServerSettings().port == DEFAULT_PORT
    assert DEFAULT_PORT not in PORT_HOLDERS
    assert DEFAULT_PORT >= 1024
