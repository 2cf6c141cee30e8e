"""CoreDNS's ``template`` plugin as pure logic: its Corefile syntax, and the answer a template gives.

Public API::

    parse(args: Sequence[str], block: Sequence[Sequence[str]] | None) -> Template
    Template.answer(qname: str, qtype: int, qclass: int, zone: str, remote: str, *,
                    on_error: Callable[[str], None] | None = None) -> Answer | None
    Template.uses_remote: bool   # a record reads .Remote: the answer differs from client to client
    Template.cacheable: bool     # the answer depends on the question alone (lowercased): no .Remote,
                                 # no .Question (which keeps the query's letter case)

``args`` are the words after ``template`` (``CLASS TYPE [ZONE...]``), ``block`` its option lines
(``match REGEX...``, ``answer RR...``, ``additional RR...``, ``authority RR...``, ``rcode CODE``,
``ederror CODE [REASON]``, ``fallthrough [ZONE...]``, ``upstream [...]``); bad input raises
``ValueError`` with the reason alone (the Corefile reader adds the place). As in CoreDNS, CLASS and
TYPE are required and written in capitals (``IN``, ``ANY``; ``ANY`` matches every class or type);
ZONEs default to the server block's zones (the ``zone`` the caller passes); no ``match`` means ``.*``;
an empty template answers NOERROR with no records. ``upstream`` is accepted and does nothing, as in
CoreDNS today, where a CNAME an answer renders for an A or AAAA question is always looked up: the
``Answer``'s ``chase`` holds the first such target, for the caller to resolve through the server's
plugins and append. ``ederror`` is read and kept in ``Template.extended_error``; an ``Answer`` carries
no EDNS option, so it is the caller's to send.

``Template.answer`` follows CoreDNS's ``template.go``:

- ``None`` when the template does not handle the question: the name is in none of its zones, the
  class or the type differs (either side ``ANY`` matches), or no regex matches and ``fallthrough``
  covers the name (the caller goes on to the next template, then the next plugin);
- a non-authoritative SERVFAIL when no regex matches and there is no ``fallthrough`` for the name
  (CoreDNS since 1.9.1), when ``rcode SERVFAIL`` is set (CoreDNS writes no records then), and when a
  record fails to render or to parse (``on_error`` gets the reason: CoreDNS logs it and counts it);
- otherwise an authoritative answer with the template's rcode and records, in the order written.

Regexes are matched (searched, unanchored) against the lowercased name with its final dot; the first
that matches wins. The records are Go templates (``kdns.plugins.gotemplate``) over ``.Name``,
``.Zone`` (the matched zone, ``example.``), ``.Class``, ``.Type`` (the template's own when the
question says ``ANY``), ``.Match``, ``.Group`` (numbered and named groups, unmatched ones empty),
``.Regex``, ``.Question`` (``.Name``, ``.Qtype``, ``.Qclass``; the name keeps the query's case) and
``.Remote`` (the client's address); ``.Message`` and ``.Meta`` are refused. Regexes are Go's
(``kdns.plugins.goregex``), rendered records zone-file text (``kdns.plugins.rr_text``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dnslib

from kdns import codes
from kdns.plugins.goregex import compile_go
from kdns.plugins.gotemplate import MAP, SCALAR, SLICE, ExecError, GoStruct, GoTemplate
from kdns.plugins.rr_text import TYPES, Record, parse_record
from kdns.resolver import Answer, RRset
from kdns.zone.names import BadName, zone_names

SCHEMA = {
    "Zone": SCALAR,
    "Name": SCALAR,
    "Regex": SCALAR,
    "Match": SLICE,
    "Group": MAP,
    "Class": SCALAR,
    "Type": SCALAR,
    "Question": {"Name": SCALAR, "Qtype": SCALAR, "Qclass": SCALAR},
    "Remote": SCALAR,
}
REFUSED_FIELDS = {
    "Message": "the whole query message is not available to kdns's templates (use .Name, .Type, "
    ".Class or .Question)",
    "Meta": "metadata is not supported by kdns",
}
USAGE = "template CLASS TYPE [ZONE...]"
OPTIONS = ("match", "answer", "additional", "authority", "rcode", "ederror", "fallthrough", "upstream")
SERVFAIL_ANSWER = Answer(rcode=codes.SERVFAIL, authoritative=False)
_RCODES = {**dnslib.RCODE.reverse, "NOTIMPL": codes.NOTIMP}  # miekg/dns's names; NOTIMPL its alias
_EXTENDED_RCODES = {"DSOTYPENI", "BADSIG", "BADVERS", "BADKEY", "BADTIME", "BADMODE", "BADNAME"}
_EXTENDED_RCODES |= {"BADALG", "BADTRUNC", "BADCOOKIE"}
_CLASS_TEXT = {number: name for name, number in codes.CLASS_NAMES.items()}
_ANY_NAME = re.compile(r".*", re.DOTALL)
_ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Template:
    """One ``template`` directive, parsed; ``answer`` gives its answer to a question."""

    qclass: int
    qtype: int
    zones: tuple[str, ...]  # lowercase with the final dot; () is the server block's zones
    regexes: tuple[re.Pattern[str], ...]
    regex_texts: tuple[str, ...]  # as written, for .Regex
    answers: tuple[GoTemplate, ...] = ()
    additionals: tuple[GoTemplate, ...] = ()
    authorities: tuple[GoTemplate, ...] = ()
    rcode: int = codes.NOERROR
    fallthrough: tuple[str, ...] | None = None  # zones with the final dot; None: no fallthrough
    extended_error: tuple[int, str] | None = None  # ederror CODE REASON

    @property
    def _fields(self) -> frozenset[str]:
        used: set[str] = set()
        for record in (*self.answers, *self.additionals, *self.authorities):
            used |= record.fields
        return frozenset(used)

    @property
    def uses_remote(self) -> bool:
        return "Remote" in self._fields

    @property
    def cacheable(self) -> bool:
        return not self._fields & {"Remote", "Question", "Question.Name"}

    def _first_match(self, name: str) -> tuple[re.Match[str], str] | None:
        for regex, text in zip(self.regexes, self.regex_texts, strict=True):
            found = regex.search(name)
            if found is not None:
                return found, text
        return None

    def answer(
        self,
        qname: str,
        qtype: int,
        qclass: int,
        zone: str,
        remote: str,
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> Answer | None:
        """The answer to a question in ``zone`` (the server block's zone it reached) from ``remote``,
        or ``None`` when this template leaves it to the next (see the module's docstring)."""
        asked = qname if qname.endswith(".") else qname + "."
        name = asked.lower()
        matched_zone = _longest_zone(name, self.zones or (_absolute(zone),))
        if matched_zone is None:
            return None
        if codes.ANY not in (self.qclass, qclass) and qclass != self.qclass:
            return None
        if codes.ANY not in (self.qtype, qtype) and qtype != self.qtype:
            return None
        first = self._first_match(name)
        if first is None:
            if self.fallthrough is not None and _longest_zone(name, self.fallthrough) is not None:
                return None
            return SERVFAIL_ANSWER
        found, regex_text = first
        if self.rcode == codes.SERVFAIL:
            return SERVFAIL_ANSWER
        shown_class = qclass if qclass != codes.ANY else self.qclass
        shown_type = qtype if qtype != codes.ANY else self.qtype
        groups = (found.group(0), *found.groups())
        data = {
            "Zone": matched_zone,
            "Name": name,
            "Regex": regex_text,
            "Match": tuple(g or "" for g in groups),
            "Group": {
                **{str(i): g or "" for i, g in enumerate(groups)},
                **{k: v or "" for k, v in found.groupdict().items()},
            },
            "Class": _CLASS_TEXT.get(shown_class, ""),
            "Type": dnslib.QTYPE.forward.get(shown_type, ""),
            "Question": GoStruct(
                {"Name": asked, "Qtype": qtype, "Qclass": qclass},
                f";{asked}\t{_class_mnemonic(qclass)}\t {_type_mnemonic(qtype)}",
            ),
            "Remote": remote,
        }
        try:
            sections = [
                [parse_record(record.execute(data)) for record in section]
                for section in (self.answers, self.authorities, self.additionals)
            ]
        except (ExecError, ValueError) as exc:
            if on_error is not None:
                on_error(f"template {name} {data['Class']} {data['Type']}: {exc}")
            return SERVFAIL_ANSWER
        chase = None
        if qtype in (codes.A, codes.AAAA):
            chase = next((r.rdata for r in sections[0] if r.rtype == codes.CNAME), None)
        answer, authority, additional = (_rrsets(records) for records in sections)
        return Answer(
            rcode=self.rcode,
            answer=answer,
            authority=authority,
            additional=additional,
            chase=chase,  # type: ignore[arg-type]
        )


def _absolute(zone: str) -> str:
    zone = zone.lower()
    return zone if zone.endswith(".") else zone + "."


def _longest_zone(name: str, zones: tuple[str, ...]) -> str | None:
    """The most specific of ``zones`` holding ``name`` (both lowercase, with the final dot)."""
    best = None
    for zone in zones:
        if (zone in (".", name) or name.endswith("." + zone)) and (best is None or len(zone) > len(best)):
            best = zone
    return best


def _class_mnemonic(qclass: int) -> str:
    return _CLASS_TEXT.get(qclass, f"CLASS{qclass}")


def _type_mnemonic(qtype: int) -> str:
    return dnslib.QTYPE.forward.get(qtype, f"TYPE{qtype}")


def _rrsets(records: list[Record]) -> tuple[RRset, ...]:
    """Records as RRsets, in order: a run of records of one name, type, class and TTL is one RRset."""
    out: list[RRset] = []
    for record in records:
        last = out[-1] if out else None
        if last is not None and (last.name, last.rtype, last.rclass, last.ttl) == (
            record.name,
            record.rtype,
            record.rclass,
            record.ttl,
        ):
            out[-1] = RRset(last.name, last.rtype, last.ttl, (*last.rdatas, record.rdata), last.rclass)
        else:
            out.append(RRset(record.name, record.rtype, record.ttl, (record.rdata,), record.rclass))
    return tuple(out)


# --- the Corefile syntax ------------------------------------------------------------------------------


def parse(args: Sequence[str], block: Sequence[Sequence[str]] | None) -> Template:
    """A ``template`` directive: its arguments and its block's option lines."""
    if len(args) < 2:
        raise ValueError(f"template needs a class and a type: {USAGE}")
    qclass = codes.CLASS_NAMES.get(args[0])
    if qclass is None:
        raise ValueError(f"invalid query class {args[0]!r} ({_capitals(args[0], codes.CLASS_NAMES)})")
    qtype = dnslib.QTYPE.reverse.get(args[1]) if args[1] != "*" else None
    if qtype is None:
        raise ValueError(f"invalid query type {args[1]!r} ({_capitals(args[1], dnslib.QTYPE.reverse)})")
    zones = _zones(args[2:])
    regexes: list[tuple[re.Pattern[str], str]] = []
    sections: dict[str, list[GoTemplate]] = {"answer": [], "additional": [], "authority": []}
    settings: dict[str, object] = {}
    for line in block or ():
        if not line:
            raise ValueError("empty option line")
        option, values = line[0], list(line[1:])
        if option == "match":
            _needs(option, values, "match REGEX...")
            regexes += [(compile_go(text), text) for text in values]
        elif option in sections:
            _needs(option, values, f"{option} RR...")
            sections[option] += [_record_template(option, text) for text in values]
        elif option == "rcode":
            settings["rcode"] = _rcode(values)
        elif option == "ederror":
            settings["extended_error"] = _extended_error(values)
        elif option == "fallthrough":
            settings["fallthrough"] = _zones(values) or (".",)
        elif option == "upstream":
            pass  # deprecated in CoreDNS and ignored there: CNAME targets are always looked up
        else:
            raise ValueError(f"unknown option {option!r} (template takes {', '.join(OPTIONS)})")
    if not regexes:
        regexes = [(_ANY_NAME, ".*")]
    return Template(
        qclass=qclass,
        qtype=qtype,
        zones=zones,
        regexes=tuple(r for r, _ in regexes),
        regex_texts=tuple(t for _, t in regexes),
        answers=tuple(sections["answer"]),
        additionals=tuple(sections["additional"]),
        authorities=tuple(sections["authority"]),
        **settings,  # type: ignore[arg-type]
    )


def _capitals(word: str, names: object) -> str:
    if word.upper() in names:  # type: ignore[operator]
        return f"CoreDNS takes {word.upper()} in capitals"
    return "not a name CoreDNS knows"


def _needs(option: str, values: list[str], usage: str) -> None:
    if not values:
        raise ValueError(f"{option} needs an argument: {usage}")


def _zones(words: Sequence[str]) -> tuple[str, ...]:
    zones: list[str] = []
    for word in words:
        try:
            zones += [z if z == "." else z + "." for z in zone_names(word)]
        except BadName as exc:
            raise ValueError(str(exc)) from None
    return tuple(dict.fromkeys(zones))


def _rcode(values: list[str]) -> int:
    if len(values) != 1:
        raise ValueError("rcode takes one response code: rcode CODE")
    name = values[0]
    if name in _EXTENDED_RCODES:
        raise ValueError(f"rcode {name} needs EDNS; kdns answers the header's rcodes ({', '.join(_RCODES)})")
    if name not in _RCODES:
        raise ValueError(f"unknown rcode {name!r} ({', '.join(_RCODES)})")
    return _RCODES[name]


def _extended_error(values: list[str]) -> tuple[int, str]:
    if len(values) not in (1, 2):
        raise ValueError("ederror takes a code and an optional reason: ederror CODE [REASON]")
    if not values[0].isdigit() or int(values[0]) > 0xFFFF:
        raise ValueError(f"ederror: {values[0]!r} is not an extended error code (0-65535)")
    return int(values[0]), values[1] if len(values) == 2 else ""


def _record_template(option: str, text: str) -> GoTemplate:
    try:
        template = GoTemplate.parse(text, SCHEMA, REFUSED_FIELDS)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    words = _ACTION.sub("\0", text).split()
    for word in words[1:4]:  # the owner, then TTL and class in either order, then the type
        if "\0" in word:
            break  # written by the template: seen when it renders
        if word.upper() in TYPES:
            break
        if word.upper() in dnslib.QTYPE.reverse:
            raise ValueError(f"{option}: record type {word} is not one kdns serves ({', '.join(TYPES)})")
    return template
