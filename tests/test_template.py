"""CoreDNS's template plugin: its syntax, and the answers templates give, from the README's semantics.

Answers are packed with kdns's own packer and read back with dnspython, so each expectation is a
record as dig would print it (name, TTL, class, type, rdata), checked by an independent parser.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from kdns.plugins.goregex import compile_go
from kdns.plugins.gotemplate import MAP, SCALAR, SLICE, ExecError, GoTemplate
from kdns.plugins.rr_text import parse_record
from kdns.plugins.template import Template, parse
from kdns.resolver import Answer
from kdns.wire.packed import pack
from kdns.zone.names import to_wire

CLIENT = "192.0.2.7"


def template(text: str) -> Template:
    """A template from Corefile-like text: the first line holds the arguments, the rest option lines
    (a word with spaces is written in double quotes, as the Corefile quotes it)."""
    lines = [_words(line) for line in text.strip().splitlines() if line.strip()]
    return parse(lines[0], lines[1:] or None)


def _words(line: str) -> list[str]:
    """Words as the Corefile reads them: inside double quotes, ``\\"`` is a quote and other
    backslashes stay; outside, a word runs to the next space."""
    words, i = [], 0
    while i < len(line):
        if line[i].isspace():
            i += 1
        elif line[i] == '"':
            end, word = i + 1, []
            while line[end] != '"':
                escaped = line.startswith('\\"', end)
                word.append('"' if escaped else line[end])
                end += 2 if escaped else 1
            words.append("".join(word))
            i = end + 1
        else:
            end = i
            while end < len(line) and not line[end].isspace():
                end += 1
            words.append(line[i:end])
            i = end
    return words


def ask(
    t: Template, qname: str, qtype: str = "A", qclass: str = "IN", *, zone: str = ".", remote: str = CLIENT
):
    """The reply as dig shows it: (rcode, aa, answer, authority, additional), records one per line;
    ``None`` when the template leaves the question to the next."""
    answer = t.answer(qname, dns.rdatatype.from_text(qtype), dns.rdataclass.from_text(qclass), zone, remote)
    if answer is None:
        return None
    return _reply(answer, qname, qtype, qclass)


def _reply(answer: Answer, qname: str, qtype: str, qclass: str):
    query = dns.message.make_query(qname, qtype, qclass).to_wire()
    packed = pack(answer, to_wire(qname), query[-4:])
    reply = dns.message.from_wire(packed.render(query, 1, 0, len(query), 65535, b""))

    def lines(section):
        return [line for rrset in section for line in rrset.to_text().splitlines()]

    return (
        dns.rcode.to_text(reply.rcode()),
        bool(reply.flags & dns.flags.AA),
        lines(reply.answer),
        lines(reply.authority),
        lines(reply.additional),
    )


def nothing(rcode: str, *, aa: bool = True):
    return (rcode, aa, [], [], [])


SERVFAIL = nothing("SERVFAIL", aa=False)

IP_EXAMPLE = r"""
IN A example
match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
fallthrough
"""
PTR_EXAMPLE = r"""
IN PTR in-addr.arpa
match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
"""
INVALID_EXAMPLE = """
ANY ANY invalid
rcode NXDOMAIN
authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
"""
SEARCH_DOMAIN_EXAMPLE = r"""
IN ANY example.com
match "example\.com\.(dc1\.example\.com\.)$"
rcode NXDOMAIN
authority "{{ index .Match 1 }} 60 IN SOA ns.{{ index .Match 1 }} hostmaster.{{ index .Match 1 }} (1 60 60 60 60)"
fallthrough
"""
HEX_EXAMPLE = r"""
IN A example
match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$"
answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}"
fallthrough
"""
TWO_PATTERNS_EXAMPLE = r"""
IN A example
match "^ip-(?P<a>10)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]dc[.]example[.]$"
match "^(?P<a>[0-9]*)[.](?P<b>[0-9]*)[.](?P<c>[0-9]*)[.](?P<d>[0-9]*)[.]ext[.]example[.]$"
answer "{{ .Name }} 60 IN A {{ .Group.a}}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
fallthrough
"""
MX_EXAMPLE = r"""
IN MX example
match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
authority  "example. 60 IN NS ns0.example."
authority  "example. 60 IN NS ns1.example."
additional "ns0.example. 60 IN A 203.0.113.8"
additional "ns1.example. 60 IN A 198.51.100.8"
fallthrough
"""
SOA_EXAMPLE = r"""
IN SOA engineering.coredns.io.
match ^engineering\.coredns\.io\.$
answer "{{ .Zone }} 3600 IN SOA ns1.{{ .Zone }} admin.{{ .Zone }} (1 60 120 86400 3600)"
fallthrough
"""
CNAME_EXAMPLE = r"""
IN ANY foogle.com
match "^foogle\.com\.$"
answer "foogle.com 60 IN CNAME google.com"
"""
SHOW_QUESTION = """
ANY ANY example
answer "{{ .Name }} 60 {{ .Class }} TXT {{ .Type }} {{ .Zone }}"
"""


@pytest.mark.parametrize(
    ("spec", "question", "expected"),
    [
        # NXDOMAIN for AAAA everywhere; other types go on to the next plugin.
        ("ANY AAAA\nrcode NXDOMAIN", ("kubernetes.default.svc.cluster.local.", "AAAA"), nothing("NXDOMAIN")),
        ("ANY AAAA\nrcode NXDOMAIN", ("example.org.", "AAAA", "CH"), nothing("NXDOMAIN")),
        ("ANY AAAA\nrcode NXDOMAIN", ("example.org.", "A"), None),
        ("ANY AAAA\nrcode NXDOMAIN", ("example.org.", "ANY"), nothing("NXDOMAIN")),  # ANY matches AAAA
        ("ANY ANY\nrcode NXDOMAIN", ("anything.at.all.", "MX"), nothing("NXDOMAIN")),
        # ip-a-b-c-d.example, a wildcard under the address too; other names of the zone fall through.
        (
            IP_EXAMPLE,
            ("ip-10-1-2-3.example.", "A"),
            ("NOERROR", True, ["ip-10-1-2-3.example. 60 IN A 10.1.2.3"], [], []),
        ),
        (
            IP_EXAMPLE,
            ("www.ip-10-1-2-3.example.", "A"),
            ("NOERROR", True, ["www.ip-10-1-2-3.example. 60 IN A 10.1.2.3"], [], []),
        ),
        (IP_EXAMPLE, ("www.example.", "A"), None),
        (IP_EXAMPLE, ("ip-10-1-2-3.example.", "AAAA"), None),
        (IP_EXAMPLE, ("ip-10-1-2-3.example.org.", "A"), None),  # outside the template's zone
        (IP_EXAMPLE, ("ip-10-1-2-3.example.", "A", "CH"), None),
        # Without fallthrough, a name of the zone that no regex matches is a SERVFAIL.
        (
            PTR_EXAMPLE,
            ("3.2.1.10.in-addr.arpa.", "PTR"),
            ("NOERROR", True, ["3.2.1.10.in-addr.arpa. 60 IN PTR ip-10-1-2-3.example."], [], []),
        ),
        (PTR_EXAMPLE, ("2.1.10.in-addr.arpa.", "PTR"), SERVFAIL),
        (PTR_EXAMPLE, ("3.2.1.10.in-addr.arpa.", "A"), None),
        # .invalid: NXDOMAIN with a SOA in the question's own class, CH too.
        (
            INVALID_EXAMPLE,
            ("foo.invalid.", "A"),
            ("NXDOMAIN", True, [], ["invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60"], []),
        ),
        (
            INVALID_EXAMPLE,
            ("invalid.", "TXT", "CH"),
            ("NXDOMAIN", True, [], ["invalid. 60 CH SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60"], []),
        ),
        (INVALID_EXAMPLE, ("invalid.example.", "A"), None),
        # Search-path completions: NXDOMAIN with the matched suffix's SOA; the rest falls through.
        (
            SEARCH_DOMAIN_EXAMPLE,
            ("something.example.com.dc1.example.com.", "A"),
            (
                "NXDOMAIN",
                True,
                [],
                ["dc1.example.com. 60 IN SOA ns.dc1.example.com. hostmaster.dc1.example.com. 1 60 60 60 60"],
                [],
            ),
        ),
        (SEARCH_DOMAIN_EXAMPLE, ("www.example.com.", "A"), None),
        # parseInt reads hexadecimal groups.
        (
            HEX_EXAMPLE,
            ("ip0a7b7b0c.example.", "A"),
            ("NOERROR", True, ["ip0a7b7b0c.example. 60 IN A 10.123.123.12"], [], []),
        ),
        # Several regexes, one answer through named groups: the first that matches wins.
        (
            TWO_PATTERNS_EXAMPLE,
            ("ip-10-1-2-3.dc.example.", "A"),
            ("NOERROR", True, ["ip-10-1-2-3.dc.example. 60 IN A 10.1.2.3"], [], []),
        ),
        (
            TWO_PATTERNS_EXAMPLE,
            ("192.0.2.1.ext.example.", "A"),
            ("NOERROR", True, ["192.0.2.1.ext.example. 60 IN A 192.0.2.1"], [], []),
        ),
        (TWO_PATTERNS_EXAMPLE, ("ip-11-1-2-3.dc.example.", "A"), None),
        # answer, authority and additional together, in the order written.
        (
            MX_EXAMPLE,
            ("ip-10-1-2-3.example.", "MX"),
            (
                "NOERROR",
                True,
                ["ip-10-1-2-3.example. 60 IN MX 10 ip-10-1-2-3.example."],
                ["example. 60 IN NS ns0.example.", "example. 60 IN NS ns1.example."],
                [
                    "ip-10-1-2-3.example. 60 IN A 10.1.2.3",
                    "ns0.example. 60 IN A 203.0.113.8",
                    "ns1.example. 60 IN A 198.51.100.8",
                ],
            ),
        ),
        # .Zone is the matched zone, with its final dot.
        (
            SOA_EXAMPLE,
            ("engineering.coredns.io.", "SOA"),
            (
                "NOERROR",
                True,
                [
                    "engineering.coredns.io. 3600 IN SOA ns1.engineering.coredns.io. admin.engineering.coredns.io. 1 60 120 86400 3600"
                ],
                [],
                [],
            ),
        ),
        (SOA_EXAMPLE, ("sub.engineering.coredns.io.", "SOA"), None),
        # A fabricated CNAME answers any type.
        (
            CNAME_EXAMPLE,
            ("foogle.com.", "TXT"),
            ("NOERROR", True, ["foogle.com. 60 IN CNAME google.com."], [], []),
        ),
        # Class and type ANY: .Class and .Type are the question's, or the template's when it asks ANY.
        (
            SHOW_QUESTION,
            ("x.example.", "MX"),
            ("NOERROR", True, ['x.example. 60 IN TXT "MX" "example."'], [], []),
        ),
        (
            SHOW_QUESTION,
            ("x.example.", "A", "CH"),
            ("NOERROR", True, ['x.example. 60 CH TXT "A" "example."'], [], []),
        ),
        (
            SHOW_QUESTION,
            ("x.example.", "ANY"),
            ("NOERROR", True, ['x.example. 60 IN TXT "ANY" "example."'], [], []),
        ),
        (
            'IN TXT example\nanswer "{{ .Name }} 60 IN TXT {{ .Type }}"',
            ("x.example.", "ANY"),
            ("NOERROR", True, ['x.example. 60 IN TXT "TXT"'], [], []),
        ),
        (
            'IN TXT example\nanswer "{{ .Name }} 60 {{ .Class }} TXT x"',
            ("x.example.", "TXT", "ANY"),
            ("NOERROR", True, ['x.example. 60 IN TXT "x"'], [], []),
        ),
        # Several zones: the most specific one that holds the name is .Zone.
        (
            'IN TXT a.example sub.a.example b.example\nanswer "{{ .Name }} 60 IN TXT {{ .Zone }}"',
            ("x.sub.a.example.", "TXT"),
            ("NOERROR", True, ['x.sub.a.example. 60 IN TXT "sub.a.example."'], [], []),
        ),
        (
            'IN TXT a.example sub.a.example b.example\nanswer "{{ .Name }} 60 IN TXT {{ .Zone }}"',
            ("B.Example.", "TXT"),
            ("NOERROR", True, ['B.Example. 60 IN TXT "b.example."'], [], []),
        ),  # the owner points at the question
        (
            'IN TXT a.example sub.a.example b.example\nanswer "{{ .Name }} 60 IN TXT {{ .Zone }}"',
            ("c.example.", "TXT"),
            None,
        ),
        # Groups by number (index .Match, index .Group "N") and by name; a group that took no part is empty.
        (
            r"IN TXT example"
            "\n"
            r"match ^(?P<first>[a-z]+)-([0-9]+)(-(?P<tail>x))?[.]"
            "\n"
            r'answer "{{ .Name }} 60 IN TXT {{ index .Match 0 }} {{ index .Match 2 }} {{ index .Group \"2\" }} {{ .Group.first }} \"{{ .Group.tail }}\" \"{{ .Regex }}\""',
            ("Web-42.Example.", "TXT"),
            (
                "NOERROR",
                True,
                [
                    'Web-42.Example. 60 IN TXT "web-42." "42" "42" "web" "" "^(?P<first>[a-z]+)-([0-9]+)(-(?P<tail>x))?[.]"'
                ],
                [],
                [],
            ),
        ),
        # Mixed case: the regex sees the lowercased name; .Question keeps the query's letters (and so
        # does the owner, which points at the question).
        (
            'IN TXT example\nmatch ^ip-\nanswer "{{ .Name }} 60 IN TXT {{ .Question.Name }} {{ .Question.Qtype }}"',
            ("IP-1.eXample.", "TXT"),
            ("NOERROR", True, ['IP-1.eXample. 60 IN TXT "IP-1.eXample." "16"'], [], []),
        ),
        # The client's address.
        (
            'IN TXT example\nanswer "{{ .Name }} 60 IN TXT {{ .Remote }}"',
            ("who.example.", "TXT"),
            ("NOERROR", True, [f'who.example. 60 IN TXT "{CLIENT}"'], [], []),
        ),
        # Records of one name and type make one RRset; no TTL means 3600, no class IN, relative names are absolute.
        (
            'IN A example\nanswer "x.example. A 192.0.2.1" "x.example A 192.0.2.2"\nanswer "y.example 5 AAAA 2001:db8::1"',
            ("x.example.", "A"),
            (
                "NOERROR",
                True,
                [
                    "x.example. 3600 IN A 192.0.2.1",
                    "x.example. 3600 IN A 192.0.2.2",
                    "y.example. 5 IN AAAA 2001:db8::1",
                ],
                [],
                [],
            ),
        ),
        (
            'IN SRV example\nanswer "{{ .Name }} 1h IN SRV 0 100 443 web.example."',
            ("_https._tcp.example.", "SRV"),
            ("NOERROR", True, ["_https._tcp.example. 3600 IN SRV 0 100 443 web.example."], [], []),
        ),
        # NODATA with a SOA, an rcode alone, an empty template, rcode SERVFAIL.
        (
            'IN AAAA example\nauthority "example. 60 IN SOA ns.example. hostmaster.example. 1 60 60 60 60"',
            ("x.example.", "AAAA"),
            ("NOERROR", True, [], ["example. 60 IN SOA ns.example. hostmaster.example. 1 60 60 60 60"], []),
        ),
        ("IN A example\nrcode REFUSED", ("x.example.", "A"), nothing("REFUSED")),
        ("IN A example", ("x.example.", "A"), nothing("NOERROR")),
        (
            'IN A example\nrcode SERVFAIL\nanswer "{{ .Name }} 60 IN A 192.0.2.1"',
            ("x.example.", "A"),
            SERVFAIL,
        ),
        # Fallthrough limited to some zones: other names of the template's zones get SERVFAIL.
        (
            'IN PTR in-addr.arpa ip6.arpa\nmatch ^1[.]\nanswer "{{ .Name }} 60 IN PTR one.example."\nfallthrough ip6.arpa',
            ("2.0.0.10.in-addr.arpa.", "PTR"),
            SERVFAIL,
        ),
        (
            'IN PTR in-addr.arpa ip6.arpa\nmatch ^1[.]\nanswer "{{ .Name }} 60 IN PTR one.example."\nfallthrough ip6.arpa',
            ("2.ip6.arpa.", "PTR"),
            None,
        ),
        (
            'IN PTR 10.0.0.0/8\nmatch ^1[.]\nanswer "{{ .Name }} 60 IN PTR one.example."',
            ("1.0.0.10.in-addr.arpa.", "PTR"),
            ("NOERROR", True, ["1.0.0.10.in-addr.arpa. 60 IN PTR one.example."], [], []),
        ),
        (
            'IN PTR 10.0.0.0/8\nmatch ^1[.]\nanswer "{{ .Name }} 60 IN PTR one.example."',
            ("1.0.0.11.in-addr.arpa.", "PTR"),
            None,
        ),
        # upstream is accepted and changes nothing.
        (
            'ANY ANY up.stream.local\nanswer "up.stream.local 5 IN CNAME up.river.local"\nupstream',
            ("up.stream.local.", "TXT"),
            ("NOERROR", True, ["up.stream.local. 5 IN CNAME up.river.local."], [], []),
        ),
        # A template that fails to render or renders no record: SERVFAIL.
        (
            'IN A example\nanswer "{{ .Name }} 60 IN A 10.0.0.{{ index .Match 1 }}"',
            ("x.example.", "A"),
            SERVFAIL,
        ),
        (
            'IN A example\nmatch ^(?P<n>[a-z]+)[.]\nanswer "{{ .Name }} 60 IN A 10.0.0.{{ parseInt .Group.n 10 8 }}"',
            ("x.example.", "A"),
            SERVFAIL,
        ),
        ('IN A example\nanswer "{{ .Name }} 60 IN A {{ .Group.missing }}"', ("x.example.", "A"), SERVFAIL),
        ('ANY ANY example\nanswer "{{ .Name }} 60 IN {{ .Type }} 1"', ("x.example.", "CAA"), SERVFAIL),
        (
            'IN A example\nanswer "{{ if eq .Name \\"y.example.\\" }}{{ .Name }} 60 IN A 192.0.2.1{{ end }}"',
            ("x.example.", "A"),
            SERVFAIL,
        ),
        (
            'IN A example\nanswer "{{ if eq .Name \\"y.example.\\" }}{{ .Name }} 60 IN A 192.0.2.1{{ end }}"',
            ("y.example.", "A"),
            ("NOERROR", True, ["y.example. 60 IN A 192.0.2.1"], [], []),
        ),
    ],
)
def test_answers(spec, question, expected):
    assert ask(template(spec), *question) == expected


def test_zones_default_to_the_server_blocks():
    t = template('IN TXT\nanswer "{{ .Name }} 60 IN TXT {{ .Zone }}"')
    assert ask(t, "a.cluster.local.", "TXT", zone="cluster.local") == (
        "NOERROR",
        True,
        ['a.cluster.local. 60 IN TXT "cluster.local."'],
        [],
        [],
    )
    assert ask(t, "example.org.", "TXT", zone="cluster.local.") is None
    assert ask(t, "example.org.", "TXT", zone=".") == (
        "NOERROR",
        True,
        ['example.org. 60 IN TXT "."'],
        [],
        [],
    )


def test_a_cname_for_an_address_question_is_chased():
    """CoreDNS looks the target up (its upstream is always on); the caller does it with ``chase``."""
    t = template(CNAME_EXAMPLE)
    assert t.answer("foogle.com.", dns.rdatatype.A, dns.rdataclass.IN, ".", CLIENT).chase == to_wire(
        "google.com"
    )
    assert t.answer("foogle.com.", dns.rdatatype.AAAA, dns.rdataclass.IN, ".", CLIENT).chase == to_wire(
        "google.com"
    )
    assert t.answer("foogle.com.", dns.rdatatype.MX, dns.rdataclass.IN, ".", CLIENT).chase is None


def test_render_failures_are_reported():
    reasons = []
    t = template('IN A example\nanswer "{{ .Name }} 60 IN A {{ index .Match 3 }}"')
    assert (
        t.answer("x.example.", dns.rdatatype.A, dns.rdataclass.IN, ".", CLIENT, on_error=reasons.append).rcode
        == dns.rcode.SERVFAIL
    )
    assert reasons == ["template x.example. IN A: error calling index: index out of range: 3"]


@pytest.mark.parametrize(
    ("spec", "uses_remote", "cacheable"),
    [
        ('IN A\nanswer "{{ .Name }} 60 IN A 192.0.2.1"', False, True),
        ('IN TXT\nanswer "{{ .Name }} 60 IN TXT {{ .Remote }}"', True, False),
        (
            'IN TXT\nadditional "{{ .Name }} 60 IN TXT {{ if eq .Remote \\"::1\\" }}local{{ else }}far{{ end }}"',
            True,
            False,
        ),
        ('IN TXT\nanswer "{{ .Name }} 60 IN TXT {{ .Question.Name }}"', False, False),
        ('IN TXT\nanswer "{{ .Name }} 60 IN TXT {{ .Question }}"', False, False),
        ('IN TXT\nanswer "{{ .Name }} 60 IN TXT {{ .Question.Qtype }}"', False, True),
        ("ANY ANY\nrcode NXDOMAIN", False, True),
    ],
)
def test_what_an_answer_depends_on(spec, uses_remote, cacheable):
    t = template(spec)
    assert (t.uses_remote, t.cacheable) == (uses_remote, cacheable)


def test_settings_are_read_as_coredns_reads_them():
    t = template(
        'IN A Example.COM. dns://b.example 10.0.0.0/15\nmatch a b\nrcode NXDOMAIN\nederror 21 "Blocked"\nfallthrough in-addr.arpa'
    )
    assert t.zones == ("example.com.", "b.example.", "0.10.in-addr.arpa.", "1.10.in-addr.arpa.")
    assert t.regex_texts == ("a", "b")
    assert (t.rcode, t.extended_error, t.fallthrough) == (
        dns.rcode.NXDOMAIN,
        (21, "Blocked"),
        ("in-addr.arpa.",),
    )
    assert template("ANY ANY\nfallthrough").fallthrough == (".",)
    assert template("ANY ANY").fallthrough is None
    assert template("ANY ANY\nrcode NOTIMPL").rcode == dns.rcode.NOTIMP


@pytest.mark.parametrize(
    ("args", "block", "message"),
    [
        ([], None, "template needs a class and a type"),
        (["IN"], None, "template needs a class and a type"),
        (["X", "A"], None, "invalid query class 'X'"),
        (["in", "A"], None, "CoreDNS takes IN in capitals"),
        (["IN", "X"], None, "invalid query type 'X'"),
        (["IN", "a"], None, "CoreDNS takes A in capitals"),
        (["IN", "A", "a..b"], None, "not a valid zone name"),
        (["IN", "A", "10.0.0.0/33"], None, "neither a zone nor a CIDR"),
        (["ANY", "ANY"], [["notavailable"]], "unknown option 'notavailable'"),
        (["ANY", "ANY"], [[]], "empty option line"),
        (["ANY", "ANY"], [["match"]], "match needs an argument"),
        (["ANY", "ANY"], [["match", "(?P<x>"]], "does not compile"),
        (["ANY", "ANY"], [["match", "(?=x)"]], "Go has no lookahead"),
        (["ANY", "ANY"], [["match", r"(a)\1"]], "backreferences"),
        (["ANY", "ANY"], [["match", r"\pL"]], "Unicode classes"),
        (["ANY", "ANY"], [["answer"]], "answer needs an argument"),
        (["ANY", "ANY"], [["additional"]], "additional needs an argument"),
        (["ANY", "ANY"], [["authority"]], "authority needs an argument"),
        (["ANY", "ANY"], [["answer", "{{"]], "answer: template '{{': unclosed action"),
        (["ANY", "ANY"], [["additional", "{{ .Name"]], "unclosed action"),
        (["ANY", "ANY"], [["authority", "{{ .Name }"]], "unexpected '}' in action"),
        (["ANY", "ANY"], [["answer", "{{ .Nmae }}"]], "can't evaluate field Nmae"),
        (["ANY", "ANY"], [["answer", "{{ .Grup.d }}"]], "can't evaluate field Grup"),
        (["ANY", "ANY"], [["answer", "{{ .Group.1 }}"]], "a field is a name, not a number"),
        (
            ["ANY", "ANY"],
            [["answer", "{{ .Message }}"]],
            ".Message: the whole query message is not available",
        ),
        (
            ["ANY", "ANY"],
            [["answer", '{{ .Meta "kubernetes/client-namespace" }}']],
            ".Meta: metadata is not supported",
        ),
        (["ANY", "ANY"], [["answer", "{{ $x := .Name }}"]], "template variables"),
        (["ANY", "ANY"], [["answer", "{{ range .Match }}x{{ end }}"]], "{{range}} is not supported"),
        (["ANY", "ANY"], [["answer", "{{ with .Name }}x{{ end }}"]], "{{with}} is not supported"),
        (["ANY", "ANY"], [["answer", "{{ html .Name }}"]], 'function "html" not defined'),
        (["ANY", "ANY"], [["answer", "{{ if .Name }}x"]], "{{if}} without {{end}}"),
        (["ANY", "ANY"], [["answer", "x{{ end }}"]], "unexpected {{end}}"),
        (["ANY", "ANY"], [["answer", "{{ parseInt .Name 16 }}"]], "wrong number of arguments for parseInt"),
        (["ANY", "ANY"], [["answer", "{{ .Name .Zone }}"]], ".Name is not a function"),
        (["ANY", "ANY"], [["answer", "{{ . }}"]], "the dot alone"),
        (
            ["ANY", "ANY"],
            [["answer", "{{ .Name }} 60 IN CAA 0 issue ca.example"]],
            "record type CAA is not one kdns serves",
        ),
        (["ANY", "ANY"], [["rcode"]], "rcode takes one response code"),
        (["ANY", "ANY"], [["rcode", "NXDOMAIN", "SERVFAIL"]], "rcode takes one response code"),
        (["ANY", "ANY"], [["rcode", "UNDEFINED"]], "unknown rcode 'UNDEFINED'"),
        (["ANY", "ANY"], [["rcode", "nxdomain"]], "unknown rcode 'nxdomain'"),
        (["ANY", "ANY"], [["rcode", "BADCOOKIE"]], "rcode BADCOOKIE needs EDNS"),
        (["ANY", "ANY"], [["ederror"]], "ederror takes a code"),
        (["ANY", "ANY"], [["ederror", "21", "a", "b"]], "ederror takes a code"),
        (["ANY", "ANY"], [["ederror", "blocked"]], "not an extended error code"),
        (["ANY", "ANY"], [["ederror", "70000"]], "not an extended error code"),
        (["ANY", "ANY"], [["fallthrough", "a..b"]], "not a valid zone name"),
    ],
)
def test_parse_errors(args, block, message):
    with pytest.raises(ValueError) as caught:
        parse(args, block)
    assert message in str(caught.value)


# --- the parts: Go regexes, Go templates, zone-file records ---------------------------------------


@pytest.mark.parametrize(
    ("go", "name", "match"),
    [
        (r"^ip-(?P<a>[0-9]+)[.]$", "ip-10.", ("ip-10.", "10")),
        (r"^(?<a>x)\z", "x", ("x", "x")),  # Go's second spelling of a named group; \z is the end
        (r"\Qa.b\E", "xa.by", ("a.b",)),  # \Q...\E is literal text
        (r"\Qa.b\E", "xaxby", None),
        (r"^[[:alpha:]]+$", "abc", ("abc",)),
        (r"^[[:^digit:]]+$", "ab1", None),
        (r"^[^[:digit:].]+$", "ab", ("ab",)),
        (r"^x{,2}$", "x{,2}", ("x{,2}",)),  # a brace that starts no repeat is itself in Go
        (r"^\x{41}\x42$", "AB", ("AB",)),
        (r"(?i)^WEB$", "web", ("web",)),
        (r"^a(?i:B)c$", "abc", ("abc",)),
        (r"^\d+$", "\u0661", None),  # Go's \d is ASCII only
        (r"[a&&b]", "&", ("&",)),  # no set operations in Go: literal characters
    ],
)
def test_go_regexes(go, name, match):
    found = compile_go(go).search(name)
    assert ((found.group(0), *found.groups()) if found else None) == match


@pytest.mark.parametrize(
    ("go", "message"),
    [
        (r"(?!a)", "Go has no lookahead"),
        (r"(?<=a)b", "Go has no lookbehind"),
        (r"(?>a)", "Go has no atomic groups"),
        (r"(?#note)", "Go has no comments"),
        (r"(?P=x)", "Go has no backreferences"),
        (r"a*+", "invalid nested repetition operator"),
        (r"a**", "invalid nested repetition operator"),
        (r"*a", "missing argument to repetition operator"),
        (r"a{1001}", "Go's limit is 1000"),
        (r"a{3,2}", "invalid repeat count"),
        (r"a(?i)b", "in the middle of a pattern"),
        (r"(?x)a b", "unknown flag(s) x"),
        (r"(?U)a+", "ungreedy"),
        (r"\C", "any byte"),
        (r"\Z", r"invalid escape \Z"),
        (r"\u0041", r"invalid escape \u"),
        (r"\12", "octal escapes"),
        (r"[[:foo:]]", "unknown character class"),
        (r"[a", "missing closing ]"),
        ("a\\", "trailing backslash"),
        (r"(?P<a>x)(?P<a>y)", "does not compile"),
    ],
)
def test_go_regexes_refused(go, message):
    with pytest.raises(ValueError) as caught:
        compile_go(go)
    assert message in str(caught.value)


SCHEMA = {"Name": SCALAR, "Match": SLICE, "Group": MAP, "N": SCALAR}
DATA = {
    "Name": "web.example.",
    "Match": ("web.example.", "web"),
    "Group": {"0": "web.example.", "h": "7b"},
    "N": 5,
}


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("a {{ .Name }} b", "a web.example. b"),
        ("a  \n{{- .Name -}}\t b", "aweb.example.b"),  # trimming takes every space, tab and newline
        ("{{/* a comment */}}x{{- /* another */ -}} y", "xy"),
        (
            '{{ index .Match 1 }} {{ index .Group "h" }} [{{ index .Group "none" }}] {{ .Group.none }}',
            "web 7b [] <no value>",
        ),
        (
            '{{ parseInt .Group.h 16 8 }} {{ parseInt "0x_ff" 0 16 }} {{ parseInt "0755" 0 64 }} {{ parseInt "z" 36 0 }}',
            "123 255 493 35",
        ),
        (
            '{{ .Group.h | printf "%s!" }} {{ printf "%03d|%-4s|%x|%5.2s|%q" .N "ab" 255 "xyz" "q" }}',
            '7b! 005|ab  |ff|   xy|"q"',
        ),
        ('{{ print 1 2 "a" 3 }} {{ len .Match }} {{ len .Name }}', "1 2a3 2 12"),
        ("{{ .Match }} {{ .Group }}", "[web.example. web] map[0:web.example. h:7b]"),
        ("{{ if eq .N 4 }}four{{ else if eq .N 5 6 }}five-or-six{{ else }}other{{ end }}", "five-or-six"),
        ('{{ if and .Name (not (lt .N 3)) }}yes{{ end }}{{ if or "" 0 }}no{{ end }}', "yes"),
        ('{{ `raw \\n` }} {{ "tab\\tend" }} {{ true }}', "raw \\n tab\tend true"),
    ],
)
def test_go_templates(text, rendered):
    assert GoTemplate.parse(text, SCHEMA).execute(DATA) == rendered


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ index .Match 2 }}", "index out of range: 2"),
        ("{{ index .Name 0 }}", "can't index item"),
        ('{{ parseInt "256" 10 8 }}', "value out of range"),
        ('{{ parseInt "12" 37 8 }}', "invalid base 37"),
        ('{{ parseInt "-1" 10 8 }}', "invalid syntax"),
        ('{{ parseInt "" 10 8 }}', "invalid syntax"),
        ("{{ parseInt .N 10 8 }}", "is not a string"),
        ("{{ if .Group.none }}x{{ end }}", "if can't use <no value>"),
        ('{{ eq .N "5" }}', "incompatible types for comparison"),
    ],
)
def test_go_templates_fail_as_go_does(text, message):
    with pytest.raises(ExecError) as caught:
        GoTemplate.parse(text, SCHEMA).execute(DATA)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("x.example. 60 IN A 192.0.2.1 ; a comment", (to_wire("x.example"), 1, 1, 60, bytes([192, 0, 2, 1]))),
        (
            'X.Example 1h30m CH TXT "a b" c "\\065\\""',
            (to_wire("x.example"), 16, 3, 5400, (b"a b", b"c", b'A"')),
        ),
        ("@ IN 10 MX 10 mail", (b"\x00", 15, 1, 10, (10, to_wire("mail")))),
        (
            "x. SOA ns. host. (\n 1 ; serial\n 1h 60 1w 60 )",
            (to_wire("x"), 6, 1, 3600, (to_wire("ns"), to_wire("host"), 1, 3600, 60, 604800, 60)),
        ),
        (
            "x. 60 IN A 192.0.2.1\ny. 60 IN A 192.0.2.2",
            (to_wire("x"), 1, 1, 60, bytes([192, 0, 2, 1])),
        ),  # the first record only
    ],
)
def test_zone_file_records(text, fields):
    record = parse_record(text)
    assert (record.name, record.rtype, record.rclass, record.ttl, record.rdata) == fields


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no record"),
        ("x. 60 IN", "no record type"),
        ("x. 60 IN A", "missing rdata"),
        ("x. 60 IN A 192.0.2.1 5", "extra text '5'"),
        ("x. 60 IN A 300.1.1.1", "bad A address"),
        ("x. 60 IN AAAA 192.0.2.1", "bad AAAA address"),
        ("x. 60 IN MX 70000 y.", "bad MX preference"),
        ("x. 60 IN HINFO a b", "record type HINFO is not one kdns serves"),
        ("x. 60 IN TXT", "TXT takes one or more strings"),
        ("x. 60 IN TXT " + "a" * 256, "longer than 255"),
        ("x. 60 IN SOA a. b. (1 2 3 4 5", "unbalanced ("),
        ("x\\.y. 60 IN A 192.0.2.1", "escapes in names"),
        ("x..y. 60 IN A 192.0.2.1", "invalid label"),
    ],
)
def test_zone_file_records_refused(text, message):
    with pytest.raises(ValueError) as caught:
        parse_record(text)
    assert message in str(caught.value)
