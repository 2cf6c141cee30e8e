"""CoreDNS's ``rewrite`` plugin as tables, written from its README: the rule syntax (every form and
every refusal), the question each rule set makes of a query, and the response mapped back."""

from __future__ import annotations

import re

import dnslib
import pytest

from kdns import codes
from kdns.plugins.rewrite import (
    STAND_IN_CLIENT,
    Action,
    ClassRule,
    Client,
    Edns0Rule,
    Match,
    Mode,
    NameMatch,
    NameRule,
    Option,
    OwnerNames,
    RcodeRule,
    RegexRewriter,
    Rewrite,
    Rewritten,
    TargetNames,
    TtlRule,
    TypeRule,
    edns0_options,
    parse,
    revert_answer,
    revert_record,
)
from kdns.resolver import Answer, Resolver, RRset
from kdns.wire.records import rrset_lines
from kdns.zone.names import to_text, to_wire
from tests.support.zone import TYPES, example_zone

ECS = codes.EDNS_CLIENT_SUBNET
NSID = codes.EDNS_NSID


def rule(line: str, *block: str) -> object:
    """A ``rewrite`` line's words (and its block's lines, when given) parsed."""
    return parse(line.split(), [b.split() for b in block] if block else None)


def rewrite(*lines: str) -> Rewrite:
    return Rewrite(tuple(rule(line) for line in lines))


def ask(rw: Rewrite, name: str, qtype: str = "A", qclass: int = codes.IN, **kwargs) -> Rewritten:
    return rw.apply(to_wire(name), TYPES[qtype], qclass, **kwargs)


def asked_name(rw: Rewrite, name: str, qtype: str = "A") -> str:
    return to_text(ask(rw, name, qtype).qname)


def regex_match(pattern: str) -> NameMatch:
    return NameMatch(Match.REGEX, pattern, re.compile(pattern))


# --- syntax ----------------------------------------------------------------------------------------

PARSED = [
    # the Kubernetes docs' example: exact is the default match, names get their final dot
    (
        "name foo.example.com foo.default.svc.cluster.local",
        (),
        NameRule(
            Mode.STOP, NameMatch(Match.EXACT, "foo.example.com."), "foo.default.svc.cluster.local.", auto=True
        ),
    ),
    (
        "continue name exact A.Example.COM. b.example.com",
        (),
        NameRule(Mode.CONTINUE, NameMatch(Match.EXACT, "a.example.com."), "b.example.com.", auto=True),
    ),
    (
        "STOP name suffix .schmoogle.com. .google.com.",
        (),
        NameRule(Mode.STOP, NameMatch(Match.SUFFIX, ".schmoogle.com."), ".google.com."),
    ),
    (
        "name suffix schmoogle.com google.com",
        (),
        NameRule(Mode.STOP, NameMatch(Match.SUFFIX, "schmoogle.com."), "google.com."),
    ),
    # prefix and substring strings are taken as written, lowercased
    ("name prefix API- svc-", (), NameRule(Mode.STOP, NameMatch(Match.PREFIX, "api-"), "svc-")),
    (
        "name SUBSTRING service.us-west-1.example.org service.us-west-1.consul",
        (),
        NameRule(
            Mode.STOP, NameMatch(Match.SUBSTRING, "service.us-west-1.example.org"), "service.us-west-1.consul"
        ),
    ),
    # regex: FROM as written, TO lowercased and fully qualified
    (
        r"name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.Consul",
        (),
        NameRule(Mode.STOP, regex_match(r"(.*)-(us-west-1)\.example\.org"), "{1}.service.{2}.consul."),
    ),
    (
        r"name regex (.*)\.vcluster\.svc\.cluster\.local {1}.svc.cluster.local answer auto",
        (),
        NameRule(
            Mode.STOP,
            regex_match(r"(.*)\.vcluster\.svc\.cluster\.local"),
            "{1}.svc.cluster.local.",
            auto=True,
        ),
    ),
    # the one-line response rewrite; after the first answer the word 'answer' may be left out
    (
        r"name regex (.*)\.a\.org {1}.b.org answer name (.*)\.b\.org {1}.a.org value (.*)\.b\.org {1}.a.org",
        (),
        NameRule(
            Mode.STOP,
            regex_match(r"(.*)\.a\.org"),
            "{1}.b.org.",
            answers=(
                OwnerNames(RegexRewriter(re.compile(r"(.*)\.b\.org"), "{1}.a.org.")),
                TargetNames(RegexRewriter(re.compile(r"(.*)\.b\.org"), "{1}.a.org.")),
            ),
        ),
    ),
    # the block form reads as the rest of the line
    (
        "stop",
        (
            r"name regex (.*)-(us-west-1)\.coredns\.rocks {1}.service.{2}.consul",
            r"answer name (.*)\.service\.(us-west-1)\.consul {1}-{2}.coredns.rocks",
        ),
        NameRule(
            Mode.STOP,
            regex_match(r"(.*)-(us-west-1)\.coredns\.rocks"),
            "{1}.service.{2}.consul.",
            answers=(
                OwnerNames(
                    RegexRewriter(re.compile(r"(.*)\.service\.(us-west-1)\.consul"), "{1}-{2}.coredns.rocks.")
                ),
            ),
        ),
    ),
    (
        "continue",
        (r"ttl regex (.*)\.coredns\.rocks 15",),
        TtlRule(Mode.CONTINUE, regex_match(r"(.*)\.coredns\.rocks"), 15, 15),
    ),
    ("", ("name a.org b.org",), NameRule(Mode.STOP, NameMatch(Match.EXACT, "a.org."), "b.org.", auto=True)),
    ("type ANY HINFO", (), TypeRule(Mode.STOP, codes.ANY, dnslib.QTYPE.HINFO)),
    ("continue type aaaa a", (), TypeRule(Mode.CONTINUE, codes.AAAA, codes.A)),
    ("class CH IN", (), ClassRule(Mode.STOP, dnslib.CLASS.CH, codes.IN)),
    ("class HS none", (), ClassRule(Mode.STOP, dnslib.CLASS.reverse["Hesiod"], dnslib.CLASS.reverse["None"])),
    # ttl: one value, a range, an open end; exact by default
    ("ttl example.com 15", (), TtlRule(Mode.STOP, NameMatch(Match.EXACT, "example.com."), 15, 15)),
    (
        "ttl exact example.com. 30-300",
        (),
        TtlRule(Mode.STOP, NameMatch(Match.EXACT, "example.com."), 30, 300),
    ),
    (
        "ttl suffix example.com 30-",
        (),
        TtlRule(Mode.STOP, NameMatch(Match.SUFFIX, "example.com."), 30, codes.MAX_TTL),
    ),
    ("ttl prefix www. -300", (), TtlRule(Mode.STOP, NameMatch(Match.PREFIX, "www."), 0, 300)),
    ("ttl substring .cdn. 0", (), TtlRule(Mode.STOP, NameMatch(Match.SUBSTRING, ".cdn."), 0, 0)),
    # rcode: names or numbers up to 23
    (
        "rcode example.com SERVFAIL NOERROR",
        (),
        RcodeRule(Mode.STOP, NameMatch(Match.EXACT, "example.com."), codes.SERVFAIL, codes.NOERROR),
    ),
    (
        "rcode suffix .example.com 3 0",
        (),
        RcodeRule(Mode.STOP, NameMatch(Match.SUFFIX, ".example.com."), codes.NXDOMAIN, codes.NOERROR),
    ),
    (
        r"continue rcode regex (regex)\.rcode\.rocks formerr badcookie",
        (),
        RcodeRule(Mode.CONTINUE, regex_match(r"(regex)\.rcode\.rocks"), codes.FORMERR, codes.BADCOOKIE),
    ),
    # edns0: the README's forms
    (
        "edns0 local set 0xffee 0x61626364",
        (),
        Edns0Rule(Mode.STOP, Option.LOCAL, Action.SET, 0xFFEE, data=b"abcd"),
    ),
    ("edns0 local set 0xffee abcd", (), Edns0Rule(Mode.STOP, Option.LOCAL, Action.SET, 0xFFEE, data=b"abcd")),
    (
        "edns0 local append 65518 {client_ip} revert",
        (),
        Edns0Rule(Mode.STOP, Option.LOCAL, Action.APPEND, 0xFFEE, variable="{client_ip}", revert=True),
    ),
    (
        "edns0 LOCAL Replace 0xffee {qname}",
        (),
        Edns0Rule(Mode.STOP, Option.LOCAL, Action.REPLACE, 0xFFEE, variable="{qname}"),
    ),
    ("edns0 local unset 0xffee", (), Edns0Rule(Mode.STOP, Option.LOCAL, Action.UNSET, 0xFFEE)),
    ("continue edns0 nsid set", (), Edns0Rule(Mode.CONTINUE, Option.NSID, Action.SET, NSID)),
    ("edns0 nsid append revert", (), Edns0Rule(Mode.STOP, Option.NSID, Action.APPEND, NSID, revert=True)),
    (
        "edns0 subnet set 24 56",
        (),
        Edns0Rule(Mode.STOP, Option.SUBNET, Action.SET, ECS, v4_bits=24, v6_bits=56),
    ),
    ("edns0 subnet unset", (), Edns0Rule(Mode.STOP, Option.SUBNET, Action.UNSET, ECS)),
]


@pytest.mark.parametrize(
    ("line", "block", "expected"), PARSED, ids=[case[0] or case[1][0] for case in PARSED]
)
def test_parse_gives_the_rule_the_readme_describes(line, block, expected):
    assert rule(line, *block) == expected


def test_a_suffix_rule_with_answer_auto_swaps_the_suffixes_back():
    parsed = rule("name suffix .coredns.rocks .service.consul answer auto")
    assert isinstance(parsed, NameRule)
    assert not parsed.auto  # no per-query mapping: the suffixes are swapped statically
    assert [type(a).__name__ for a in parsed.answers] == ["OwnerNames", "TargetNames"]
    assert parsed.answers[0].rewriter.rewrite("ftp.service.consul.") == "ftp.coredns.rocks."


REFUSED = [
    ("", None, "no rule type specified"),
    ("stop", None, "stop rule must begin with a rule type"),
    ("continue", None, "continue rule must begin with a rule type"),
    ("stop name a b", ["name c d"], "block may follow only"),
    ("flags set aa", None, "invalid rule type 'flags'"),
    ("answer name a b", None, "response rewrites must begin with a name rule"),
    ("cname exact a.org b.org", None, "cname target rewrites are not supported yet"),
    # name
    ("name a.org", None, "too few arguments for a name rule"),
    ("name exactly a.org b.org", None, "name rule supports only exact, prefix, suffix, substring and regex"),
    ("name regex ([a-z b.org", None, "invalid regex matching pattern"),
    (r"name regex (.*)\.a\.org {2}.b.org", None, "uses group {2} but the regex"),
    ("name exact a.org b.org answer", None, "invalid arguments for exact name rule"),
    ("name exact a.org b.org extra words", None, "only answer options may follow FROM TO"),
    ("name regex (.*) {1} answer", None, "invalid arguments"),
    ("name regex (.*) {1} answer name (.*)", None, "answer name needs 2 arguments"),
    ("name regex (.*) {1} answer value (.*)", None, "answer value needs 2 arguments"),
    ("name regex (.*) {1} answer auto answer", None, "answer needs auto, name or value"),
    ("name regex (.*) {1} answer type a b", None, "invalid answer option 'type'"),
    ("name regex (.*) {1} answer name (.*) {2}", None, "uses group {2}"),
    ("name regex (.*) {1} answer name (.* {1}", None, "invalid regex matching pattern"),
    (
        "name regex (.*) {1} answer auto answer name (.*) {1}",
        None,
        "answer auto cannot be combined with answer name",
    ),
    # type and class
    ("type A", None, "type rules must have exactly two arguments"),
    ("type A AAAA MX", None, "type rules must have exactly two arguments"),
    ("type A BOGUS", None, "invalid type 'BOGUS'"),
    ("class IN", None, "class rules must have exactly two arguments"),
    ("class CH XX", None, "invalid class 'XX'"),
    ("class * IN", None, "invalid class '*'"),
    # ttl
    ("ttl a.org", None, "too few (1) arguments for a ttl rule"),
    ("ttl exact a.org 1 2", None, "too many (4) arguments for a ttl rule"),
    ("ttl a.org ten", None, "invalid TTL 'ten'"),
    ("ttl a.org -", None, "invalid TTL '-'"),
    ("ttl a.org 300-30", None, "300 is above 30"),
    ("ttl a.org 1-2-3", None, "invalid TTL '1-2-3'"),
    ("ttl a.org 4294967295", None, "is above 2147483647"),
    ("ttl glob a.org 5", None, "ttl rule supports only exact"),
    ("ttl regex ([ 5", None, "ttl rule: invalid regex"),
    # rcode
    ("rcode a.org SERVFAIL", None, "too few (2) arguments for a rcode rule"),
    ("rcode exact a.org 2 1 0", None, "too many (5) arguments for a rcode rule"),
    ("rcode a.org random NOERROR", None, "invalid matching RCODE 'random'"),
    ("rcode a.org SERVFAIL 24", None, "invalid replacement RCODE '24'"),
    ("rcode glob a.org 2 0", None, "rcode rule supports only exact"),
    ("rcode regex ([ 2 0", None, "rcode rule: invalid regex"),
    # edns0
    ("edns0 local", None, "too few arguments for an EDNS0 rule"),
    ("edns0 cookie set", None, "invalid EDNS0 option 'cookie'"),
    ("edns0 local add 0xffee abcd", None, "invalid EDNS0 action 'add'"),
    ("edns0 local set 0xffee", None, "EDNS0 local set needs CODE DATA"),
    ("edns0 local unset 0xffee abcd", None, "EDNS0 local unset needs CODE"),
    ("edns0 local set 0x10000 abcd", None, "invalid EDNS0 local option code '0x10000'"),
    ("edns0 local set code abcd", None, "invalid EDNS0 local option code 'code'"),
    ("edns0 local set 0xffee 0xzz", None, "not hex after 0x"),
    ("edns0 local set 0xffee {client_mac}", None, "unsupported EDNS0 local variable {client_mac}"),
    ("edns0 local set 0xffee {kubernetes/client-namespace}", None, "needs the metadata plugin"),
    ("edns0 nsid set 1", None, "EDNS0 NSID rules do not accept arguments"),
    ("edns0 subnet set 24", None, "needs the IPv4 and IPv6 bit mask lengths"),
    ("edns0 subnet unset 24 56", None, "EDNS0 subnet unset does not accept arguments"),
    ("edns0 subnet set 33 56", None, "invalid IPv4 bit mask length '33'"),
    ("edns0 subnet set 24 129", None, "invalid IPv6 bit mask length '129'"),
    ("edns0 subnet set x 56", None, "invalid IPv4 bit mask length 'x'"),
]


@pytest.mark.parametrize(
    ("line", "block", "problem"), REFUSED, ids=[case[0] or "(empty)" for case in REFUSED]
)
def test_parse_refuses_with_a_message_that_says_what_is_wrong(line, block, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse(line.split(), [b.split() for b in block] if block is not None else None)


def test_rules_are_frozen_values():
    parsed = rule("name a.org b.org")
    with pytest.raises(AttributeError):
        parsed.replacement = "c.org."  # type: ignore[misc]
    assert parsed == rule("name exact A.ORG. b.org.")
    assert len({parsed, rule("name a.org b.org")}) == 1


# --- the question ----------------------------------------------------------------------------------

NAME_REWRITES = [
    # (rule, asked, sent on; None: the rule does not apply)
    (
        "name foo.example.com foo.default.svc.cluster.local",
        "foo.example.com",
        "foo.default.svc.cluster.local.",
    ),
    (
        "name foo.example.com foo.default.svc.cluster.local",
        "FOO.Example.com",
        "foo.default.svc.cluster.local.",
    ),
    ("name foo.example.com foo.default.svc.cluster.local", "bar.foo.example.com", None),
    ("name prefix api- svc-", "api-prod.example", "svc-prod.example."),
    ("name prefix API. SVC-", "api.prod.example", "svc-prod.example."),
    ("name prefix api- svc-", "my-api-prod.example", None),
    ("name suffix .schmoogle.com. .google.com.", "www.schmoogle.com", "www.google.com."),
    ("name suffix prod.example staging.example", "api.prod.example", "api.staging.example."),
    ("name suffix .schmoogle.com. .google.com.", "schmoogle.com", None),
    (
        "name substring service.us-west-1.example.org service.us-west-1.consul",
        "ftp.service.us-west-1.example.org",
        "ftp.service.us-west-1.consul.",
    ),
    ("name substring -a- -b-", "x-a-y-a-z.org", "x-b-y-b-z.org."),  # every occurrence
    ("name substring -a- -b-", "plain.org", None),
    (
        r"name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul",
        "ftp-us-west-1.example.org",
        "ftp.service.us-west-1.consul.",
    ),
    (r"name regex (.*)-(us-west-1)\.example\.org {1}.service.{2}.consul", "ftp-us-east-1.example.org", None),
    # an unanchored search: the pattern may match in the middle, TO is the whole new name
    (r"name regex ([a-z]+)\.internal {1}.svc.cluster.local", "x.db.internal.corp", "db.svc.cluster.local."),
    (r"name regex ^([a-z]+)\.internal\.$ {1}.svc.cluster.local", "x.db.internal", None),
    # {0} is the whole match; a group that did not take part is empty
    (r"name regex ^(.*)\.old\.$ {0}new", "a.old", "a.old.new."),
    (r"name regex ^(x)?(.*)\.old\.$ {1}{2}.new", "a.old", "a.new."),
]


@pytest.mark.parametrize(("line", "name", "sent"), NAME_REWRITES)
def test_name_rules(line, name, sent):
    out = ask(rewrite(line), name)
    assert to_text(out.qname) == (sent or to_text(to_wire(name)))
    assert out.changed is (sent is not None)
    assert not out.servfail


def test_a_rewritten_name_that_is_not_a_name_is_servfail_with_the_question_unchanged():
    for line, name in [
        (r"name regex (.*)\.a\.org {1}..b.org", "x.a.org"),  # an empty label
        (r"name regex (.*)\.a\.org {1}{1}{1}{1}.b.org", "x" * 60 + ".a.org"),  # a label over 63
        ("name prefix a " + "b" * 60 + ".", "a" + ".c" * 100 + ".org"),  # over 255 octets
    ]:
        out = ask(rewrite(line), name)
        assert out.servfail, line
        assert out.qname == to_wire(name)
        assert not out.reverter.rewrites_response


TYPE_AND_CLASS = [
    (["type ANY HINFO"], "ANY", codes.IN, ("HINFO", codes.IN)),
    (["type ANY HINFO"], "A", codes.IN, ("A", codes.IN)),
    (["class CH IN"], "A", dnslib.CLASS.CH, ("A", codes.IN)),
    (["class CH IN"], "A", codes.IN, ("A", codes.IN)),
    (["continue type AAAA A", "class CH IN"], "AAAA", dnslib.CLASS.CH, ("A", codes.IN)),
    (["type AAAA A", "class CH IN"], "AAAA", dnslib.CLASS.CH, ("A", dnslib.CLASS.CH)),  # stop
]


@pytest.mark.parametrize(("lines", "qtype", "qclass", "sent"), TYPE_AND_CLASS)
def test_type_and_class_rules(lines, qtype, qclass, sent):
    out = ask(rewrite(*lines), "a.org", qtype, qclass)
    assert (dnslib.QTYPE.get(out.qtype), out.qclass) == sent
    assert out.reverter.question == (to_wire("a.org"), TYPES[qtype], qclass)  # the client's question kept


STOP_AND_CONTINUE = [
    # stop (the default) ends the run only when its rule applied
    (["name a.org b.org", "name b.org c.org"], "a.org", "b.org."),
    (["stop name a.org b.org", "name b.org c.org"], "a.org", "b.org."),
    (["continue name a.org b.org", "name b.org c.org"], "a.org", "c.org."),
    (["name x.org y.org", "name a.org c.org"], "a.org", "c.org."),
    (["continue name a.org b.org", "continue name b.org c.org", "name c.org d.org"], "a.org", "d.org."),
    (["continue name a.org b.org", "name x.org y.org", "name b.org e.org"], "a.org", "e.org."),
    # each rule sees the name the rules before it made
    (["continue name suffix .a.org .b.org", r"name regex (.*)\.b\.org {1}.c.org"], "w.a.org", "w.c.org."),
    # a ttl or rcode rule that applies stops the run too
    (["ttl a.org 5", "name a.org b.org"], "a.org", "a.org."),
    (["continue ttl a.org 5", "name a.org b.org"], "a.org", "b.org."),
    (["rcode a.org SERVFAIL NOERROR", "name a.org b.org"], "a.org", "a.org."),
]


@pytest.mark.parametrize(("lines", "name", "sent"), STOP_AND_CONTINUE)
def test_stop_and_continue(lines, name, sent):
    assert asked_name(rewrite(*lines), name) == sent


# --- the response, kdns's own answers -----------------------------------------------------------------


def rrset(line: str) -> RRset:
    """One record in zone-file form as the resolver's RRset."""
    rr = dnslib.RR.fromZone(line)[0]
    rtype, value = rr.rtype, rr.rdata

    def wire(name: dnslib.DNSLabel) -> bytes:
        return to_wire(str(name))

    match rtype:
        case codes.A | codes.AAAA:
            data: object = bytes(value.data)
        case codes.CNAME | codes.PTR | codes.NS:
            data = wire(value.label)
        case codes.SRV:
            data = (value.priority, value.weight, value.port, wire(value.target))
        case codes.SOA:
            data = (wire(value.mname), wire(value.rname), *value.times)
        case _:
            raise AssertionError(f"no table form for {line}")
    return RRset(wire(rr.rname), rtype, rr.ttl, (data,))


def lines(rrsets: tuple[RRset, ...]) -> list[str]:
    return [" ".join(line.split()) for one in rrsets for line in rrset_lines(one)]


def answered(
    rw: Rewrite, name: str, records: list[str], *, qtype: str = "A", rcode: int = codes.NOERROR, authority=()
) -> Answer:
    """Ask ``rw`` about ``name``, answer the rewritten question with ``records`` (the names in them
    as the rewritten question would get), and map the answer back."""
    out = ask(rw, name, qtype)
    answer = Answer(
        rcode=rcode, answer=tuple(rrset(r) for r in records), authority=tuple(rrset(r) for r in authority)
    )
    return revert_answer(out.reverter, answer)


ANSWERS_BACK = [
    # exact: always mapped back, owner names and the names records point to
    (
        ["name foo.example.com foo.default.svc.cluster.local"],
        "foo.example.com",
        ["foo.default.svc.cluster.local. 5 IN A 10.96.0.10"],
        ["foo.example.com. 5 IN A 10.96.0.10"],
    ),
    (
        ["name foo.example.com foo.default.svc.cluster.local"],
        "foo.example.com",
        [
            "foo.default.svc.cluster.local. 5 IN CNAME db.default.svc.cluster.local.",
            "db.default.svc.cluster.local. 5 IN A 10.0.0.1",
        ],
        [
            "foo.example.com. 5 IN CNAME db.default.svc.cluster.local.",
            "db.default.svc.cluster.local. 5 IN A 10.0.0.1",
        ],
    ),
    # auto maps the rewritten name and the names below it, nothing else
    (
        [r"name regex (.*)\.vcluster\.svc\.cluster\.local {1}.svc.cluster.local answer auto"],
        "_http._tcp.web.vcluster.svc.cluster.local",
        [
            "_http._tcp.web.svc.cluster.local. 5 IN SRV 0 50 80 ep-1.web.svc.cluster.local.",
            "_http._tcp.web.svc.cluster.local. 5 IN SRV 0 50 80 x._http._tcp.web.svc.cluster.local.",
        ],
        [
            "_http._tcp.web.vcluster.svc.cluster.local. 5 IN SRV 0 50 80 ep-1.web.svc.cluster.local.",
            "_http._tcp.web.vcluster.svc.cluster.local. 5 IN SRV 0 50 80 x._http._tcp.web.vcluster.svc.cluster.local.",
        ],
    ),
    # without answer options a regex rule leaves the answer as it is
    (
        [r"name regex (.*)-(us-west-1)\.coredns\.rocks {1}.service.{2}.consul"],
        "ftp-us-west-1.coredns.rocks",
        ["ftp.service.us-west-1.consul. 0 IN A 10.10.10.10"],
        ["ftp.service.us-west-1.consul. 0 IN A 10.10.10.10"],
    ),
    # answer name: the README's coredns.rocks example
    (
        [
            r"name regex (.*)-(us-west-1)\.coredns\.rocks {1}.service.{2}.consul answer name (.*)\.service\.(us-west-1)\.consul {1}-{2}.coredns.rocks"
        ],
        "ftp-us-west-1.coredns.rocks",
        [
            "ftp.service.us-west-1.consul. 0 IN A 10.10.10.10",
            "ftp.service.us-west-1.consul. 0 IN A 10.20.20.20",
        ],
        [
            "ftp-us-west-1.coredns.rocks. 0 IN A 10.10.10.10",
            "ftp-us-west-1.coredns.rocks. 0 IN A 10.20.20.20",
        ],
    ),
    # answer name touches owner names only; answer value the names records point to
    (
        [r"name regex (.*)\.a\.org {1}.b.org answer name (.*)\.b\.org {1}.a.org"],
        "www.a.org",
        ["www.b.org. 5 IN CNAME web.b.org."],
        ["www.a.org. 5 IN CNAME web.b.org."],
    ),
    (
        [
            r"name regex (.*)\.a\.org {1}.b.org answer name (.*)\.b\.org {1}.a.org answer value (.*)\.b\.org {1}.a.org"
        ],
        "www.a.org",
        ["www.b.org. 5 IN CNAME web.b.org.", "web.b.org. 5 IN A 192.0.2.1"],
        ["www.a.org. 5 IN CNAME web.a.org.", "web.a.org. 5 IN A 192.0.2.1"],
    ),
    # suffix with auto swaps the suffixes back, everywhere
    (
        ["name suffix .coredns.rocks .service.consul answer auto"],
        "ftp.coredns.rocks",
        ["ftp.service.consul. 5 IN CNAME ftp2.service.consul.", "ftp2.service.consul. 5 IN A 10.0.0.2"],
        ["ftp.coredns.rocks. 5 IN CNAME ftp2.coredns.rocks.", "ftp2.coredns.rocks. 5 IN A 10.0.0.2"],
    ),
    # prefix and substring with auto map the rewritten question back
    (
        ["name prefix api- svc- answer auto"],
        "api-prod.example",
        ["svc-prod.example. 5 IN A 192.0.2.7", "other.example. 5 IN A 192.0.2.8"],
        ["api-prod.example. 5 IN A 192.0.2.7", "other.example. 5 IN A 192.0.2.8"],
    ),
    (
        ["name substring .us-west-1.example.org .us-west-1.consul answer auto"],
        "ftp.us-west-1.example.org",
        ["ftp.us-west-1.consul. 5 IN A 192.0.2.9"],
        ["ftp.us-west-1.example.org. 5 IN A 192.0.2.9"],
    ),
    # a chain of continue rules is unwound last to first
    (
        ["continue name a.org b.org", "name b.org c.org"],
        "a.org",
        ["c.org. 5 IN A 192.0.2.1"],
        ["a.org. 5 IN A 192.0.2.1"],
    ),
    # names in the authority section and the SOA's MNAME are mapped back too
    (
        ["name suffix .a.org .b.org answer auto"],
        "nothing.a.org",
        [],
        [],
    ),
]


@pytest.mark.parametrize(("rules", "name", "records", "expected"), ANSWERS_BACK)
def test_answers_are_mapped_back(rules, name, records, expected):
    assert lines(answered(rewrite(*rules), name, records).answer) == expected


def test_authority_names_and_the_soa_mname_are_mapped_back():
    back = answered(
        rewrite("name suffix .a.org .b.org answer auto"),
        "nothing.a.org",
        [],
        rcode=codes.NXDOMAIN,
        authority=["zone.b.org. 5 IN SOA ns.zone.b.org. hostmaster.zone.b.org. 1 7200 1800 86400 5"],
    )
    assert back.rcode == codes.NXDOMAIN
    # the RNAME is a mailbox, not a name the rule maps (CoreDNS maps the MNAME only)
    assert lines(back.authority) == [
        "zone.a.org. 5 IN SOA ns.zone.a.org. hostmaster.zone.b.org. 1 7200 1800 86400 5"
    ]


def test_an_answer_mapped_to_an_invalid_name_is_servfail():
    rw = rewrite(r"name regex (.*)\.a\.org {1}.b.org answer name (.*)\.b\.org {1}..a.org")
    back = answered(rw, "www.a.org", ["www.b.org. 5 IN A 192.0.2.1"])
    assert (back.rcode, back.answer) == (codes.SERVFAIL, ())


def test_a_rewrite_against_the_example_zone_answers_the_name_the_client_asked():
    """vcluster's form through the real resolver: the rewritten question is answered from the zone
    and the client sees its own name in the answer."""
    zone = example_zone()
    resolver = Resolver(zone.index, zone.layout, zone.settings)
    rw = rewrite(r"name regex (.*)\.vcluster\.svc\.cluster\.local {1}.svc.cluster.local answer auto")
    out = ask(rw, "web.shop.vcluster.svc.cluster.local")
    assert to_text(out.qname) == "web.shop.svc.cluster.local."
    back = revert_answer(out.reverter, resolver.resolve(out.qname, out.qtype, out.qclass))
    assert lines(back.answer) == ["web.shop.vcluster.svc.cluster.local. 5 IN A 10.96.100.10"]


TTLS = [
    # (rules, asked, TTL given, TTL the client sees)
    (["ttl a.org 15"], "a.org", 0, 15),
    (["ttl a.org 15"], "a.org", 3600, 15),
    (["ttl a.org 15"], "b.org", 3600, 3600),  # not the name the rule matches
    (["ttl a.org 30-300"], "a.org", 5, 30),
    (["ttl a.org 30-300"], "a.org", 100, 100),
    (["ttl a.org 30-300"], "a.org", 3600, 300),
    (["ttl a.org 30-"], "a.org", 86400, 86400),
    (["ttl a.org 30-"], "a.org", 10, 30),
    (["ttl a.org -300"], "a.org", 86400, 300),
    (["ttl suffix .coredns.rocks 15"], "www.coredns.rocks", 0, 15),
    ([r"ttl regex (.*)\.coredns\.rocks 15"], "www.coredns.rocks", 0, 15),
    (["ttl prefix www. 15"], "www.coredns.rocks", 0, 15),
    (["ttl substring .cdn. 15"], "x.cdn.example", 0, 15),
    # a ttl rule matches the name as the rules before it left it
    (["continue name a.org b.org", "ttl b.org 60"], "a.org", 5, 60),
    # several ttl rules: the last one's clamp is applied first
    (["continue ttl a.org 10-20", "ttl a.org 30-40"], "a.org", 5, 20),
]


@pytest.mark.parametrize(("rules", "name", "given", "seen"), TTLS)
def test_ttl_rules(rules, name, given, seen):
    target = asked_name(rewrite(*rules), name)
    back = answered(rewrite(*rules), name, [f"{target} {given} IN A 192.0.2.1"])
    assert back.answer[0].ttl == seen


RCODES = [
    (["rcode a.org SERVFAIL NOERROR"], "a.org", codes.SERVFAIL, codes.NOERROR),
    (["rcode a.org SERVFAIL NOERROR"], "a.org", codes.NXDOMAIN, codes.NXDOMAIN),
    (["rcode a.org SERVFAIL NOERROR"], "b.a.org", codes.SERVFAIL, codes.SERVFAIL),
    (["rcode suffix .a.org NXDOMAIN 0"], "b.a.org", codes.NXDOMAIN, codes.NOERROR),
    ([r"rcode regex ^www\. 2 5"], "www.a.org", codes.SERVFAIL, codes.REFUSED),
    # applied last to first, as CoreDNS does: the 3 -> 0 rule sees SERVFAIL, then 2 -> 3 applies
    (["continue rcode a.org 2 3", "rcode a.org 3 0"], "a.org", codes.SERVFAIL, codes.NXDOMAIN),
    (["continue rcode a.org 3 0", "rcode a.org 2 3"], "a.org", codes.SERVFAIL, codes.NOERROR),
]


@pytest.mark.parametrize(("rules", "name", "given", "seen"), RCODES)
def test_rcode_rules_apply_to_responses_with_or_without_records(rules, name, given, seen):
    assert answered(rewrite(*rules), name, [], rcode=given).rcode == seen


# --- the classic Corefiles ---------------------------------------------------------------------------


def test_the_kubernetes_docs_example():
    rw = rewrite("name foo.example.com foo.default.svc.cluster.local")
    out = ask(rw, "foo.example.com")
    assert to_text(out.qname) == "foo.default.svc.cluster.local."
    back = revert_answer(
        out.reverter,
        Answer(rcode=codes.NOERROR, answer=(rrset("foo.default.svc.cluster.local. 5 IN A 10.0.0.1"),)),
    )
    assert lines(back.answer) == ["foo.example.com. 5 IN A 10.0.0.1"]
    assert not ask(rw, "bar.example.com").changed


def test_gardener_search_path_rewrite():
    """A search path appended twice is cut back, and the answer names the name asked."""
    rw = Rewrite(
        (
            rule(
                "stop",
                r"name regex (.*)\.svc\.cluster\.local\.svc\.cluster\.local {1}.svc.cluster.local",
                r"answer name (.*)\.svc\.cluster\.local {1}.svc.cluster.local.svc.cluster.local",
            ),
        )
    )
    out = ask(rw, "web.shop.svc.cluster.local.svc.cluster.local")
    assert to_text(out.qname) == "web.shop.svc.cluster.local."
    back = revert_answer(
        out.reverter,
        Answer(rcode=codes.NOERROR, answer=(rrset("web.shop.svc.cluster.local. 5 IN A 10.96.100.10"),)),
    )
    assert lines(back.answer) == ["web.shop.svc.cluster.local.svc.cluster.local. 5 IN A 10.96.100.10"]
    assert not ask(rw, "web.shop.svc.cluster.local").changed


def test_vcluster_style_rewrite_with_several_rules():
    rw = rewrite(
        r"name regex (.*)\.vcluster-a\.svc\.cluster\.local {1}.svc.cluster.local answer auto",
        r"name regex (.*)\.vcluster-b\.svc\.cluster\.local {1}.b.svc.cluster.local answer auto",
    )
    assert asked_name(rw, "web.shop.vcluster-a.svc.cluster.local") == "web.shop.svc.cluster.local."
    assert asked_name(rw, "web.shop.vcluster-b.svc.cluster.local") == "web.shop.b.svc.cluster.local."
    assert asked_name(rw, "web.shop.svc.cluster.local") == "web.shop.svc.cluster.local."


# --- EDNS0 ------------------------------------------------------------------------------------------

CLIENT_V4 = Client("192.0.2.77", 40000, "udp", "10.96.0.10", 53)
CLIENT_V6 = Client("2001:db8:1:2:3:4:5:6", 40001, "tcp", "fd00::a", 53)

EDNS0 = [
    # (rules, the query's options, the options sent on); ``client`` CLIENT_V4
    (["edns0 local set 0xffee abcd"], [], [(0xFFEE, b"abcd")]),
    (["edns0 local set 0xffee abcd"], [(0xFFEE, b"old"), (10, b"c")], [(0xFFEE, b"abcd"), (10, b"c")]),
    (["edns0 local append 0xffee abcd"], [], [(0xFFEE, b"abcd")]),
    (["edns0 local append 0xffee abcd"], [(0xFFEE, b"old")], [(0xFFEE, b"old")]),
    (["edns0 local replace 0xffee abcd"], [], []),
    (["edns0 local replace 0xffee abcd"], [(0xFFEE, b"old")], [(0xFFEE, b"abcd")]),
    (["edns0 local unset 0xffee"], [(10, b"c"), (0xFFEE, b"old")], [(10, b"c")]),
    (["edns0 local unset 0xffee"], [(10, b"c")], [(10, b"c")]),
    (["edns0 local set 0xffee 0x61626364"], [], [(0xFFEE, b"abcd")]),
    (["edns0 nsid set"], [(NSID, b"x")], [(NSID, b"")]),
    (["edns0 nsid append"], [], [(NSID, b"")]),
    (["edns0 nsid unset"], [(NSID, b"")], []),
    # variables
    (["edns0 local set 0xffee {client_ip}"], [], [(0xFFEE, bytes([192, 0, 2, 77]))]),
    (["edns0 local set 0xffee {client_port}"], [], [(0xFFEE, (40000).to_bytes(2, "big"))]),
    (["edns0 local set 0xffee {server_ip}"], [], [(0xFFEE, bytes([10, 96, 0, 10]))]),
    (["edns0 local set 0xffee {server_port}"], [], [(0xFFEE, (53).to_bytes(2, "big"))]),
    (["edns0 local set 0xffee {protocol}"], [], [(0xFFEE, b"udp")]),
    (["edns0 local set 0xffee {qname}"], [], [(0xFFEE, b"a.org.")]),
    (["edns0 local set 0xffee {qtype}"], [], [(0xFFEE, codes.A.to_bytes(2, "big"))]),
    # the subnet: family 1, the prefix, scope 0, the address cut to the prefix's octets
    (["edns0 subnet set 24 56"], [], [(ECS, bytes([0, 1, 24, 0, 192, 0, 2]))]),
    (["edns0 subnet set 20 56"], [], [(ECS, bytes([0, 1, 20, 0, 192, 0, 0]))]),
    (["edns0 subnet set 0 0"], [], [(ECS, bytes([0, 1, 0, 0]))]),
    (["edns0 subnet set 32 128"], [], [(ECS, bytes([0, 1, 32, 0, 192, 0, 2, 77]))]),
    # a client that asked for a shorter prefix keeps it
    (
        ["edns0 subnet set 24 56"],
        [(ECS, bytes([0, 1, 16, 0, 192, 0]))],
        [(ECS, bytes([0, 1, 16, 0, 192, 0]))],
    ),
    (["edns0 subnet replace 24 56"], [], []),
    (["edns0 subnet unset"], [(ECS, bytes([0, 1, 16, 0, 192, 0]))], []),
    # several rules, each seeing the options the one before left
    (
        ["continue edns0 local set 0xfff3 {client_ip}", "edns0 local set 0xfff4 {protocol}"],
        [],
        [(0xFFF3, bytes([192, 0, 2, 77])), (0xFFF4, b"udp")],
    ),
    (
        ["edns0 local set 0xfff3 {client_ip}", "edns0 local set 0xfff4 {protocol}"],
        [],
        [(0xFFF3, bytes([192, 0, 2, 77]))],
    ),
    # an append that finds its option does not apply, so a stop rule does not stop the run
    (
        ["edns0 local append 0xffee abcd", "edns0 nsid set"],
        [(0xFFEE, b"old")],
        [(0xFFEE, b"old"), (NSID, b"")],
    ),
]


@pytest.mark.parametrize(("rules", "given", "sent"), EDNS0)
def test_edns0_rules(rules, given, sent):
    out = ask(rewrite(*rules), "a.org", client=CLIENT_V4, options=given)
    assert list(out.options) == sent
    assert out.changed is (sent != given)


def test_edns0_subnet_for_an_ipv6_client_and_an_ipv4_mapped_one():
    rw = rewrite("edns0 subnet set 24 56")
    assert ask(rw, "a.org", client=CLIENT_V6).options == (
        (ECS, bytes([0, 2, 56, 0, 0x20, 0x01, 0x0D, 0xB8, 0, 1, 0])),
    )
    mapped = Client("::ffff:192.0.2.77")
    assert ask(rw, "a.org", client=mapped).options == ((ECS, bytes([0, 1, 24, 0, 192, 0, 2])),)


def test_edns0_rules_that_need_the_client_do_not_apply_without_one():
    rw = rewrite(
        "continue edns0 subnet set 24 56",
        "continue edns0 local set 0xffee {client_ip}",
        "edns0 local set 0xfff0 {qname}",
    )
    assert rw.needs_client and rw.edits_options
    assert ask(rw, "a.org").options == ((0xFFF0, b"a.org."),)
    assert not rewrite("edns0 local set 0xffee {qname}").needs_client
    assert not rewrite("name a.org b.org").edits_options


def test_edns0_revert_takes_the_option_back_out_of_the_response():
    rw = rewrite(
        "continue edns0 local set 0xffee abcd revert",
        "continue edns0 nsid append revert",
        "edns0 local set 0xfff0 keep",
    )
    out = ask(rw, "a.org", options=[(0xFFEE, b"client's")])
    assert out.reverter.restore_options == ((0xFFEE, b"client's"), (NSID, None))
    reply = dnslib.DNSRecord.question("a.org", "A").reply()
    reply.add_ar(
        dnslib.EDNS0(
            opts=[
                dnslib.EDNSOption(0xFFEE, b"abcd"),
                dnslib.EDNSOption(NSID, b"upstream-1"),
                dnslib.EDNSOption(0xFFF0, b"keep"),
            ]
        )
    )
    back = revert_record(out.reverter, reply)
    assert sorted((o.code, o.data) for o in back.ar[0].rdata) == [(0xFFEE, b"client's"), (0xFFF0, b"keep")]


# which edns0 rules a question reaches is decided once, for every client; what they make, per query
REACHED = [
    # (rules, name, the rules reached as (option, data bound at block time))
    (["edns0 subnet set 24 56", "edns0 local set 1 x"], "a.org", [("subnet", b"")]),  # stop, for any client
    (["continue edns0 subnet set 24 56", "edns0 local set 1 x"], "a.org", [("subnet", b""), ("local", b"x")]),
    # a replace finds nothing to replace in a client with no options: it does not stop the run
    (["edns0 local replace 1 x", "edns0 local set 2 y"], "a.org", [("local", b"x"), ("local", b"y")]),
    # {qname} is the name as it stood when the rule ran: after the name rule before it
    (
        ["continue name a.org b.org", "edns0 local set 3 {qname}"],
        "a.org",
        [("local", b"b.org.")],
    ),
    (["name c.org d.org", "edns0 local set 3 {qname}"], "c.org", []),  # the name rule stopped the run
    (["name c.org d.org", "edns0 local set 3 {qtype}"], "a.org", [("local", codes.A.to_bytes(2, "big"))]),
]


@pytest.mark.parametrize(("rules", "name", "reached"), REACHED)
def test_the_edns0_rules_a_question_reaches(rules, name, reached):
    out = ask(rewrite(*rules), name, client=STAND_IN_CLIENT)
    assert [(r.option, r.data) for r in out.edns0] == reached
    assert all(not r.variable or r.variable not in ("{qname}", "{qtype}") for r in out.edns0)


PER_QUERY = [
    # (rules, the client's options, what goes upstream, what is restored in the response)
    (["edns0 subnet set 24 56"], [], [(ECS, bytes([0, 1, 24, 0, 192, 0, 2]))], []),
    # only the codes the rules name go upstream: the client's cookie (10) stays with kdns
    (["edns0 local set 0xffee abcd"], [(10, b"cookie12"), (0xFFEE, b"old")], [(0xFFEE, b"abcd")], []),
    (["edns0 local replace 0xffee abcd revert"], [(0xFFEE, b"old")], [(0xFFEE, b"abcd")], [(0xFFEE, b"old")]),
    (["edns0 local set 0xffee abcd revert"], [], [(0xFFEE, b"abcd")], [(0xFFEE, None)]),
    (["edns0 local unset 0xffee"], [(0xFFEE, b"old")], [], []),
    # a replace that finds the client's option applies and stops the edns0 rules after it
    (["edns0 local replace 1 x", "edns0 local set 2 y"], [(1, b"old")], [(1, b"x")], []),
    (["edns0 local replace 1 x", "edns0 local set 2 y"], [], [(2, b"y")], []),
    (
        ["continue edns0 local set 0xfff3 {client_ip}", "edns0 local set 0xfff4 {server_port}"],
        [],
        [(0xFFF3, bytes([192, 0, 2, 77])), (0xFFF4, (53).to_bytes(2, "big"))],
        [],
    ),
]


@pytest.mark.parametrize(("rules", "given", "sent", "restored"), PER_QUERY)
def test_edns0_options_are_made_for_each_query_from_the_rules_reached(rules, given, sent, restored):
    reached = ask(rewrite(*rules), "a.org", client=STAND_IN_CLIENT).edns0
    options, restore = edns0_options(reached, client=CLIENT_V4, options=given)
    assert (list(options), list(restore)) == (sent, restored)


def test_edns0_options_without_a_client_leave_out_what_needs_one():
    reached = ask(rewrite("continue edns0 subnet set 24 56", "edns0 local set 1 x"), "a.org").edns0
    assert edns0_options(reached, client=None) == (((1, b"x"),), ())


# --- the response, forwarded answers --------------------------------------------------------------


def reply_to(
    out: Rewritten, *records: str, rcode: int = codes.NOERROR, edns: bool = False
) -> dnslib.DNSRecord:
    """An upstream's reply to the rewritten question."""
    query = dnslib.DNSRecord.question(to_text(out.qname), dnslib.QTYPE.get(out.qtype))
    reply = query.reply()
    reply.header.rcode = rcode
    for line in records:
        reply.add_answer(*dnslib.RR.fromZone(line))
    if edns:
        reply.add_ar(dnslib.EDNS0())
    return reply


def zone_lines(record: dnslib.DNSRecord) -> list[str]:
    return [" ".join(rr.toZone().split()) for rr in record.rr]


def test_a_forwarded_answer_gets_the_clients_question_and_names():
    rw = rewrite(
        r"name regex (.*)\.a\.org {1}.b.org answer name (.*)\.b\.org {1}.a.org answer value (.*)\.b\.org {1}.a.org"
    )
    out = ask(rw, "www.a.org", "MX")
    reply = reply_to(out, "www.b.org. 300 IN MX 10 mail.b.org.", "www.b.org. 300 IN MX 20 mail.other.org.")
    back = revert_record(out.reverter, reply)
    assert str(back.q.qname) == "www.a.org." and back.q.qtype == dnslib.QTYPE.MX
    assert zone_lines(back) == [
        "www.a.org. 300 IN MX 10 mail.a.org.",
        "www.a.org. 300 IN MX 20 mail.other.org.",
    ]
    assert zone_lines(reply) == [
        "www.b.org. 300 IN MX 10 mail.b.org.",
        "www.b.org. 300 IN MX 20 mail.other.org.",
    ]  # a copy changed


FORWARDED = [
    # (rules, asked, qtype, upstream's records, the client's records)
    (
        ["name foo.example.com foo.default.svc.cluster.local"],
        "foo.example.com",
        "CNAME",
        ["foo.default.svc.cluster.local. 30 IN CNAME bar.default.svc.cluster.local."],
        ["foo.example.com. 30 IN CNAME bar.default.svc.cluster.local."],
    ),
    (
        [r"name regex (.*)\.vcluster\.svc\.cluster\.local {1}.svc.cluster.local answer auto"],
        "web.shop.vcluster.svc.cluster.local",
        "CNAME",
        ["web.shop.svc.cluster.local. 30 IN CNAME db.web.shop.svc.cluster.local."],
        ["web.shop.vcluster.svc.cluster.local. 30 IN CNAME db.web.shop.vcluster.svc.cluster.local."],
    ),
    (
        ["name suffix .a.org .b.org answer auto"],
        "x.a.org",
        "NS",
        ["x.b.org. 30 IN NS ns1.x.b.org."],
        ["x.a.org. 30 IN NS ns1.x.a.org."],
    ),
    (
        ["name suffix .a.org .b.org answer auto"],
        "4.3.2.1.a.org",
        "PTR",
        ["4.3.2.1.b.org. 30 IN PTR host.b.org."],
        ["4.3.2.1.a.org. 30 IN PTR host.a.org."],
    ),
    (
        ["name suffix .a.org .b.org answer auto"],
        "x.a.org",
        "SRV",
        ["x.b.org. 30 IN SRV 0 5 443 t.b.org."],
        ["x.a.org. 30 IN SRV 0 5 443 t.a.org."],
    ),
    (
        ["continue name suffix .a.org .b.org answer auto", "ttl suffix .b.org 60-120"],
        "x.a.org",
        "A",
        ["x.b.org. 30 IN A 192.0.2.1", "x.b.org. 3000 IN A 192.0.2.2"],
        ["x.a.org. 60 IN A 192.0.2.1", "x.a.org. 120 IN A 192.0.2.2"],
    ),
]


@pytest.mark.parametrize(("rules", "name", "qtype", "records", "expected"), FORWARDED)
def test_forwarded_answers_are_mapped_back(rules, name, qtype, records, expected):
    out = ask(rewrite(*rules), name, qtype)
    assert zone_lines(revert_record(out.reverter, reply_to(out, *records))) == expected


def test_a_forwarded_rcode_is_rewritten_in_the_header_and_the_opt_record():
    out = ask(rewrite("rcode a.org SERVFAIL NOERROR"), "a.org")
    assert revert_record(out.reverter, reply_to(out, rcode=codes.SERVFAIL)).header.rcode == codes.NOERROR
    out = ask(rewrite("rcode a.org NXDOMAIN BADCOOKIE"), "a.org")
    back = revert_record(out.reverter, reply_to(out, rcode=codes.NXDOMAIN, edns=True))
    opt = back.ar[0]
    assert back.header.rcode | (opt.ttl >> 24) << codes.EXTENDED_RCODE_SHIFT == codes.BADCOOKIE


def test_a_forwarded_answer_mapped_to_an_invalid_name_is_servfail():
    out = ask(rewrite(r"name regex (.*)\.a\.org {1}.b.org answer name (.*)\.b\.org {1}..a.org"), "www.a.org")
    back = revert_record(out.reverter, reply_to(out, "www.b.org. 5 IN A 192.0.2.1"))
    assert back.header.rcode == codes.SERVFAIL and not back.rr
    assert str(back.q.qname) == "www.a.org."


def test_a_question_no_rule_touches_is_passed_on_as_it_is():
    rw = rewrite("name a.org b.org", "type ANY HINFO", "ttl c.org 5", "edns0 local replace 0xffee x")
    out = ask(rw, "d.org", options=[(10, b"cookie")])
    assert (out.qname, out.qtype, out.qclass, out.options) == (
        to_wire("d.org"),
        codes.A,
        codes.IN,
        ((10, b"cookie"),),
    )
    assert not out.changed and not out.reverter.rewrites_response
    answer = Answer(rcode=codes.NOERROR, answer=(rrset("d.org. 5 IN A 192.0.2.1"),))
    assert revert_answer(out.reverter, answer) is answer


def test_a_forwarded_record_dnslib_cannot_decode_keeps_its_rdata():
    out = ask(rewrite("name suffix .a.org .b.org answer auto"), "x.a.org", "HTTPS")
    reply = reply_to(out)
    reply.add_answer(dnslib.RR("x.b.org", dnslib.QTYPE.DNAME, rdata=dnslib.RD(to_wire("y.b.org")), ttl=5))
    back = revert_record(out.reverter, dnslib.DNSRecord.parse(reply.pack()))
    assert str(back.rr[0].rname) == "x.a.org." and back.rr[0].rdata.data == to_wire("y.b.org")
