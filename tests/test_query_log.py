"""CoreDNS's log: the replacer's placeholders, response classes, which rule of which block logs a query,
and the lines a running kdns prints for a Corefile's log."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from kdns.config import COMMON_LOG_FORMAT, LogClass, LogRule, LogSettings
from kdns.ops.logformat import LABEL, LITERAL, METADATA, Exchanged, go_seconds, parse_format, render
from kdns.ops.querylog import QueryLogger
from kdns.transport.exchange import Via
from kdns.wire.classify import classify
from kdns.wire.message import read_message
from tests.support.client import ask
from tests.support.paths import EXAMPLE
from tests.support.polling import eventually
from tests.support.process import running

SUCCESS, DENIAL, ERROR = LogClass.SUCCESS, LogClass.DENIAL, LogClass.ERROR
NOW = 1_700_000_000  # 2023-11-14T22:13:20Z
CLIENT = ("10.0.0.1", 40000)


def query(name: str = "Web.Shop.svc.cluster.local", qtype: str = "A", **options) -> dns.message.Message:
    made = dns.message.make_query(name, qtype, **options)
    made.id = 28394
    return made


def response(
    asked: dns.message.Message,
    *,
    rcode: int = dns.rcode.NOERROR,
    answer: tuple[str, ...] = (),
    authority: tuple[str, ...] = (),
    flags: int = dns.flags.AA,
    opcode: int | None = None,
) -> dns.message.Message:
    """The response to ``asked``: records in zone-file text, ``rcode`` and the flags beside QR and RD;
    DO set when the query set it, as kdns and CoreDNS set it."""
    made = dns.message.make_response(asked)
    made.set_rcode(rcode)
    if asked.ednsflags & dns.flags.DO:
        made.want_dnssec(True)
    if opcode is not None:
        made.set_opcode(opcode)
    made.flags |= flags
    made.answer = [dns.rrset.from_text(*line.split(maxsplit=4)) for line in answer]
    made.authority = [dns.rrset.from_text(*line.split(maxsplit=4)) for line in authority]
    return made


def exchanged(
    asked: dns.message.Message, answered: dns.message.Message, *, proto="udp", client=CLIENT, local="0.0.0.0"
) -> Exchanged:
    q, r = asked.to_wire(), answered.to_wire()
    return Exchanged(client, local, proto, read_message(q), len(q), read_message(r), len(r), 0.000347)


# --- the replacer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nodes"),
    [
        ("", ()),
        ("plain", ((LITERAL, "plain"),)),
        ("{type}", ((LABEL, "{type}"),)),
        ("a {name} b", ((LITERAL, "a "), (LABEL, "{name}"), (LITERAL, " b"))),
        ("{{type}}", ((LITERAL, "{"), (LABEL, "{type}"), (LITERAL, "}"))),  # the innermost braces
        ("A } {name}", ((LITERAL, "A } "), (LABEL, "{name}"))),  # a '}' alone is text
        ("{x} {type}", ((LITERAL, "{x} "), (LABEL, "{type}"))),  # an unknown one is text
        ("{/a.b} {/}", ((METADATA, "a.b"), (LITERAL, " "), (METADATA, ""))),
        ("{common} {>ID} {Type} {", ((LITERAL, "{common} {>ID} {Type} {"),)),  # names are case-sensitive
        ("{>id}{>rflags}", ((LABEL, "{>id}"), (LABEL, "{>rflags}"))),
    ],
)
def test_formats_read_as_text_and_placeholders(text, nodes):
    assert parse_format(text) == nodes


ASKED = query(use_edns=0, payload=4096, want_dnssec=True)
ANSWERED = response(ASKED, answer=("web.shop.svc.cluster.local. 5 IN A 10.96.100.10",), flags=dns.flags.AA)


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        ("{type} {class} {name}", "A IN web.shop.svc.cluster.local."),  # the name lowercase
        ("{remote}:{port} {proto} {local}", "10.0.0.1:40000 udp 0.0.0.0"),
        ("{size} {rsize}", f"{len(ASKED.to_wire())} {len(ANSWERED.to_wire())}"),
        ("{>id} {>opcode} {>do} {>bufsize}", "28394 0 true 4096"),
        ("{rcode} {>rflags} {duration}", "NOERROR qr,aa,rd 0.000347s"),
        ("{/meta} {unknown} {common} {>ID}", "- {unknown} {common} {>ID}"),
        ("{{type}}", "{A}"),
        (
            COMMON_LOG_FORMAT,
            f'10.0.0.1:40000 - 28394 "A IN web.shop.svc.cluster.local. udp {len(ASKED.to_wire())} true 4096" '
            f"NOERROR qr,aa,rd {len(ANSWERED.to_wire())} 0.000347s",
        ),
    ],
)
def test_placeholders_are_filled_as_coredns_fills_them(fmt, line):
    assert render(parse_format(fmt), exchanged(ASKED, ANSWERED)) == line


@pytest.mark.parametrize(
    ("asked", "options", "fmt", "line"),
    [
        # the client's and the server's IPv6 addresses in brackets
        (query(), {"client": ("::1", 5353), "local": "::"}, "{remote}:{port} {local}", "[::1]:5353 [::]"),
        # no EDNS, or a size below 512: 512; over TCP: 65535 whatever the query says
        (query(), {}, "{>do} {>bufsize} {proto}", "false 512 udp"),
        (query(use_edns=0, payload=100), {}, "{>do} {>bufsize} {proto}", "false 512 udp"),
        (query(use_edns=0, payload=1232), {"proto": "tcp"}, "{>do} {>bufsize} {proto}", "false 65535 tcp"),
        # types and classes without a name are numbered as miekg/dns numbers them
        (query(qtype="TYPE65534"), {}, "{type} {class}", "TYPE65534 IN"),
        (dns.message.make_query("version.bind", "TXT", "CH"), {}, "{type} {class}", "TXT CH"),
        (dns.message.make_query("x.example", "A", 42), {}, "{type} {class}", "A CLASS42"),
        (query("ÉCOLE.example"), {}, "{name}", "xn--cole-9oa.example."),
    ],
)
def test_query_placeholders(asked, options, fmt, line):
    assert render(parse_format(fmt), exchanged(asked, response(asked), **options)) == line


@pytest.mark.parametrize(
    ("answered", "line"),
    [
        (response(query(), rcode=dns.rcode.NXDOMAIN), "NXDOMAIN qr,aa,rd"),
        (response(query(), rcode=dns.rcode.SERVFAIL, flags=dns.flags.RA), "SERVFAIL qr,rd,ra"),
        (response(query(), flags=dns.flags.TC | dns.flags.AD | dns.flags.CD), "NOERROR qr,tc,rd,ad,cd"),
        (response(query(), flags=0x0040), "NOERROR qr,rd,z"),  # the reserved bit
        # BADVERS is BADSIG in miekg/dns's names; an rcode without a name is its number
        (response(query(use_edns=0), rcode=dns.rcode.BADVERS), "BADSIG qr,aa,rd"),
        (response(query(), rcode=12), "12 qr,aa,rd"),
    ],
)
def test_response_placeholders(answered, line):
    assert render(parse_format("{rcode} {>rflags}"), exchanged(query(), answered)) == line


def test_a_response_too_short_to_read_has_no_rcode_or_flags():
    asked = query().to_wire()
    seen = Exchanged(CLIENT, "::", "udp", read_message(asked), len(asked), read_message(b"\x00"), 1, 0.5)
    assert render(parse_format("{rcode} {>rflags} {rsize} {duration}"), seen) == "- - 1 0.5s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0"),
        (0.000347, "0.000347"),
        (0.000000001, "0.000000001"),
        (1.5, "1.5"),
        (2.0, "2"),
        (12.25, "12.25"),
    ],
)
def test_durations_are_seconds_to_the_nanosecond_without_trailing_zeros(seconds, text):
    assert go_seconds(seconds) == text


# --- reading messages and classifying responses -----------------------------------------------------


def test_messages_are_read_as_far_as_they_make_sense():
    asked = query(use_edns=0, payload=1232, want_dnssec=True)
    whole = read_message(asked.to_wire())
    assert whole.question == (b"\x03Web\x04Shop\x03svc\x07cluster\x05local\x00", 1, 1)
    assert (whole.id, whole.edns.udp_size, whole.edns.do) == (28394, 1232, True)
    cut = read_message(asked.to_wire()[:-3])  # the OPT record cut short: the question stands
    assert cut.question == whole.question and cut.edns is None
    looped = bytearray(query().to_wire()[:12]) + b"\xc0\x0c\x00\x01\x00\x01"  # a pointer to itself
    assert read_message(bytes(looped)).question is None
    assert read_message(b"\x12\x34") is None
    compressed = response(query(), answer=("web.shop.svc.cluster.local. 5 IN A 10.0.0.1",)).to_wire()
    assert read_message(compressed).answer == (dns.rdatatype.A,)


def rrsig(inception: str, expiration: str) -> str:
    return f"web.example. 5 IN RRSIG A 8 2 5 {expiration} {inception} 12345 example. AAAA"


@pytest.mark.parametrize(
    ("answered", "expected"),
    [
        (response(query(), answer=("web.example. 5 IN A 10.0.0.1",)), SUCCESS),
        # an address question answered with a CNAME alone is NODATA, any other question's a success
        (response(query(), answer=("web.example. 5 IN CNAME ext.example.org.",)), DENIAL),
        (response(query(qtype="TXT"), answer=("web.example. 5 IN CNAME ext.example.org.",)), SUCCESS),
        (
            response(
                query(qtype="AAAA"),
                answer=("web.example. 5 IN CNAME x.example.", "x.example. 5 IN AAAA fd00::1"),
            ),
            SUCCESS,
        ),
        # a SOA makes NXDOMAIN and an empty NOERROR denials; NXDOMAIN without one is an error
        (
            response(query(), rcode=dns.rcode.NXDOMAIN, authority=("example. 5 IN SOA ns. h. 1 2 3 4 5",)),
            DENIAL,
        ),
        (response(query(), authority=("example. 5 IN SOA ns. h. 1 2 3 4 5",)), DENIAL),
        (response(query(), rcode=dns.rcode.NXDOMAIN), ERROR),
        # a referral, and NOERROR with nothing at all, are successes
        (response(query(), authority=("example. 5 IN NS ns.example.",), flags=0), SUCCESS),
        (response(query()), SUCCESS),
        (response(query(), rcode=dns.rcode.SERVFAIL), ERROR),
        (response(query(), rcode=dns.rcode.NOTIMP), ERROR),
        (response(query(), rcode=dns.rcode.REFUSED), ERROR),
        (response(query(), rcode=dns.rcode.FORMERR), ERROR),
        (
            response(query(), rcode=dns.rcode.REFUSED, authority=("example. 5 IN SOA ns. h. 1 2 3 4 5",)),
            ERROR,
        ),
        # zone transfers, NOTIFY and UPDATE are CoreDNS's meta types: errors
        (response(query("example.", "AXFR"), answer=("example. 5 IN SOA ns. h. 1 2 3 4 5",)), ERROR),
        (response(query("example.", "IXFR")), ERROR),
        (response(query("example.", "SOA"), opcode=dns.opcode.NOTIFY), ERROR),
        (response(query("example.", "SOA"), opcode=dns.opcode.UPDATE), ERROR),
        # with DO set, an RRSIG out of its validity period is an error; without DO it is not looked at
        (
            response(
                query(use_edns=0, want_dnssec=True),
                answer=("web.example. 5 IN A 10.0.0.1", rrsig("20231101000000", "20231201000000")),
            ),
            SUCCESS,
        ),
        (
            response(
                query(use_edns=0, want_dnssec=True),
                answer=("web.example. 5 IN A 10.0.0.1", rrsig("20231001000000", "20231101000000")),
            ),
            ERROR,
        ),
        (
            response(
                query(use_edns=0, want_dnssec=True),
                answer=("web.example. 5 IN A 10.0.0.1", rrsig("20231201000000", "20240101000000")),
            ),
            ERROR,
        ),
        (
            response(
                query(), answer=("web.example. 5 IN A 10.0.0.1", rrsig("20231001000000", "20231101000000"))
            ),
            SUCCESS,
        ),
    ],
)
def test_responses_are_classified_as_coredns_classifies_them(answered, expected):
    assert classify(read_message(answered.to_wire()), NOW) == expected


def test_a_message_too_short_to_read_is_an_error():
    assert classify(read_message(b"\x00\x01"), NOW) == ERROR


# --- which rule of which block logs a query ----------------------------------------------------------

SOA = ("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 2 3 4 5",)
LOGGER = QueryLogger(
    [
        (
            ("cluster.local",),
            LogSettings(
                (
                    LogRule(
                        ("shop.pod.cluster.local", "example.org"), "shop {name} {rcode}", frozenset({DENIAL})
                    ),
                    LogRule((".",), "any {name} {rcode}"),
                )
            ),
        ),
        (("svc.cluster.local",), LogSettings((LogRule(("data.svc.cluster.local",), "svc {name}"),))),
        ((".",), None),
    ],
    clock=lambda: NOW,
)


@pytest.mark.parametrize(
    ("name", "rcode", "line"),
    [
        # the block: the longest zone holding the name; the rule: the first whose names hold it
        ("web.data.svc.cluster.local", dns.rcode.NOERROR, "svc web.data.svc.cluster.local."),
        ("nope.shop.svc.cluster.local", dns.rcode.NXDOMAIN, None),  # its block's names hold it not
        ("NOPE.Shop.pod.cluster.local", dns.rcode.NXDOMAIN, "shop nope.shop.pod.cluster.local. NXDOMAIN"),
        ("x.shop.pod.cluster.local", dns.rcode.NOERROR, None),  # the first rule decides: not a denial
        ("x.other.pod.cluster.local", dns.rcode.NOERROR, "any x.other.pod.cluster.local. NOERROR"),
        ("10.in-addr.arpa", dns.rcode.NOERROR, None),  # the root block does not log
        ("example.org", dns.rcode.REFUSED, None),  # a name of the first block's rule, in the root block
    ],
)
def test_the_block_and_its_first_matching_rule_decide(name, rcode, line):
    asked = query(name)
    answered = response(asked, rcode=rcode, authority=SOA if rcode == dns.rcode.NXDOMAIN else ())
    assert LOGGER.line(CLIENT, asked.to_wire(), answered.to_wire(), Via("udp", "::"), 0.1) == line


def test_a_single_root_block_logs_every_query_with_a_question():
    logger = QueryLogger([((".",), LogSettings())], clock=lambda: NOW)
    asked = query("example.com", use_edns=0, payload=1232)
    line = logger.line(CLIENT, asked.to_wire(), response(asked).to_wire(), Via("tcp", "127.0.0.1"), 2.0)
    assert line.startswith('10.0.0.1:40000 - 28394 "A IN example.com. tcp ') and line.endswith(" 2s")
    no_question = bytes(12)
    assert logger.line(CLIENT, no_question, no_question, Via("udp", "127.0.0.1"), 0.1) is None


# --- a running kdns --------------------------------------------------------------------------------


def test_a_corefile_log_prints_its_format_for_its_classes(tmp_path):
    corefile = tmp_path / "Corefile"
    corefile.write_text(
        ".:0 {\n"
        "    bind 127.0.0.1\n"
        "    kubernetes cluster.local\n"
        '    log data.svc.cluster.local "data {name} {rcode}"\n'
        '    log . "{remote} {>id} {type} {class} {name} {proto} {rcode} {>rflags} {>do} {>bufsize} {/x} {y}" {\n'
        "        class denial\n"
        "    }\n"
        "}\n"
    )
    with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
        success = query("web.shop.svc.cluster.local")
        assert ask(server.port, success).answer  # a success: class denial leaves it out
        nxdomain = query("nope.shop.svc.cluster.local", use_edns=0, payload=1232)
        assert ask(server.port, nxdomain).rcode() == dns.rcode.NXDOMAIN
        nodata = query("web.shop.svc.cluster.local", "AAAA")
        reply = ask(server.port, nodata, tcp=True)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer  # NODATA: a denial too
        assert ask(server.port, "postgres.data.svc.cluster.local").answer  # the first rule: every class
        lines = eventually(lambda: len(server.logged("kdns.query")) >= 3 and server.logged("kdns.query"))
    assert [line.split("kdns.query: ", 1)[1] for line in lines] == [
        f"127.0.0.1 {nxdomain.id} A IN nope.shop.svc.cluster.local. udp NXDOMAIN qr,aa,rd false 1232 - {{y}}",
        f"127.0.0.1 {nodata.id} AAAA IN web.shop.svc.cluster.local. tcp NOERROR qr,aa,rd false 65535 - {{y}}",
        "data postgres.data.svc.cluster.local. NOERROR",
    ]
