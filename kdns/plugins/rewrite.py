"""CoreDNS's ``rewrite`` plugin as pure logic: its rule syntax, the rewrite of a question, and the
mapping of the response back to what the client asked.

This module owns the meaning of ``rewrite`` lines; the Corefile layer tokenizes them and calls
``parse``, the server block runs ``Rewrite.apply`` before answering and a ``Reverter`` on the answer.
No sockets, no asyncio: every function here is a function of its arguments.

Public API::

    parse(args: Sequence[str], block: Sequence[Sequence[str]] | None = None) -> Rule
        ``args``: the words after ``rewrite`` on its line; ``block``: the lines of a ``{ }`` block
        (whose words CoreDNS reads as the rest of the same rule). ValueError says what is wrong.
    Rule = NameRule | TypeRule | ClassRule | TtlRule | RcodeRule | Edns0Rule   (frozen values)
    Rewrite(rules: tuple[Rule, ...])                       the rules of a server block, in order
        .apply(qname, qtype, qclass, *, client=None, options=()) -> Rewritten
        .needs_client -> bool     a rule reads the client's address (edns0 subnet, variables)
        .edits_options -> bool    a rule edits the query's EDNS0 options
    Client(ip, port=0, protocol="udp", server_ip="", server_port=0)
    STAND_IN_CLIENT: the client a block decides which rules a question reaches for
    Rewritten: qname, qtype, qclass (the question to answer), options (the EDNS0 options the
        query sent on carries, as (code, data)), reverter, servfail (a rule made an invalid name:
        answer SERVFAIL), options_changed, edns0 (the edns0 rules reached), .changed -> bool
    edns0_options(rules, *, client, options=()) -> (options sent upstream, options to restore)
        the edns0 rules a question reached, run for one query's client and its own options
    Reverter: question (the client's), rules (response rules, applied last to first),
        restore_options, .rewrites_response -> bool
    revert_answer(reverter, answer: Answer) -> Answer               for kdns's own answers
    revert_record(reverter, record: dnslib.DNSRecord) -> DNSRecord  for forwarded answers

Names are compared in lowercase presentation form with the trailing dot (``web.shop.svc.``), as
CoreDNS compares them. The semantics follow CoreDNS's README and sources:

- ``[stop|continue] FIELD ...``; ``stop`` is the default. Rules run in order; a rule that applies
  and is ``stop`` ends the run, one that does not apply never does.
- ``name [exact|prefix|suffix|substring|regex] FROM TO [answer auto|answer name F T|answer value F T]...``:
  ``exact`` and ``suffix`` strings get a trailing dot, ``prefix`` and ``substring`` are taken as
  written (lowercased); ``regex`` matches anywhere (an unanchored search) and TO is the whole new
  name with ``{N}`` replaced by group N. An ``exact`` rule always maps its answers back; ``answer
  auto`` maps the rewritten name (and its subdomains) back to the asked one in owner names and in
  the names records point to; for a ``suffix`` rule it swaps the suffixes back. ``answer name``
  rewrites owner names, ``answer value`` the targets of CNAME, DNAME, NS, PTR, MX, SRV, NAPTR and the
  SOA's MNAME, each by regex (in a forwarded answer, where dnslib decodes the record). After the
  first, the word ``answer`` may be left out.
- ``type FROM TO`` and ``class FROM TO`` change the question's type or class.
- ``ttl [MATCH] NAME SECONDS|MIN-MAX|MIN-|-MAX`` clamps the TTLs of the response's records.
- ``rcode [MATCH] NAME FROM TO`` changes the response's rcode FROM into TO.
- ``edns0 local|nsid|subnet set|append|replace|unset ... [revert]`` edits the query's EDNS0 options:
  ``set`` replaces a matching option or adds one, ``append`` adds one only when none matches,
  ``replace`` changes only a matching one, ``unset`` removes it; ``revert`` takes the option back out
  of the response. ``local CODE DATA``: DATA is text, ``0x`` hex, or one of ``{qname}``,
  ``{qtype}``, ``{client_ip}``, ``{client_port}``, ``{protocol}``, ``{server_ip}``,
  ``{server_port}``. ``subnet V4BITS V6BITS`` sends the client's address cut to that prefix.

How ``edns0`` rules run in kdns: a block packs its answer once per question, so ``apply`` there
decides which rules the question reaches (for ``STAND_IN_CLIENT``: a client with an address and no
options of its own) and names the ``edns0`` ones reached (``Rewritten.edns0``); the forwarder runs
them again for each query it sends upstream (``edns0_options``), for that query's client and the
options it sent. Its options only ever change the options sent: a ``replace`` or ``unset`` that
finds the client's option stops the ``edns0`` rules after it, not the name rules already run. The
options of the codes the rules name go upstream, the client's others do not (kdns sends its own
OPT record); kdns's own answers carry none. The client's answer has kdns's OPT record, so an
option upstream echoes never reaches it; ``revert`` puts the client's own data back where a rule
replaced it.

Refused with a message: ``cname`` (CoreDNS looks the new target up upstream from inside the
plugin), ``edns0 local`` metadata variables (kdns has no ``metadata`` plugin).

Where kdns differs on purpose: the response always carries the client's own question (CoreDNS
leaves the rewritten one when only ``continue`` rules applied and none rewrites the response); a
regex TO naming a group the pattern lacks is refused when parsed (CoreDNS counts the groups used);
an ``rcode`` rule applies to a response without records too; a forwarded answer is cached under the
options sent with it (CoreDNS's cache keys by the question alone, so one client subnet's answer is
served to every other: coredns/coredns#7036; RFC 7871 section 7.3 forbids it); ``{qname}`` is
lowercase.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import dnslib

from kdns import codes
from kdns.resolver import Answer, RRset
from kdns.wire.records import label, parse_qtype
from kdns.zone.names import to_text


class Mode(StrEnum):
    """What happens after a rule applied: CoreDNS's ``stop`` (the default) or ``continue``."""

    STOP = "stop"
    CONTINUE = "continue"


class Match(StrEnum):
    """How a rule's FROM is compared with the question's name."""

    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    SUBSTRING = "substring"
    REGEX = "regex"


class Action(StrEnum):
    """What an ``edns0`` rule does to its option."""

    SET = "set"  # replace a matching option, or add one
    APPEND = "append"  # add one only when none matches
    REPLACE = "replace"  # change a matching option only
    UNSET = "unset"  # remove a matching option


class Option(StrEnum):
    """The EDNS0 options an ``edns0`` rule edits."""

    LOCAL = "local"
    NSID = "nsid"
    SUBNET = "subnet"


CLIENT_VARIABLES = ("{client_ip}", "{client_port}", "{protocol}", "{server_ip}", "{server_port}")
VARIABLES = ("{qname}", "{qtype}", *CLIENT_VARIABLES)
MAX_GROUP = 100  # CoreDNS looks for {0} to {100} in a regex rule's TO
MAX_OPTION_CODE = 0xFFFF
_MAX_PREFIX = {codes.FAMILY_IPV4: 32, codes.FAMILY_IPV6: 128}
_GROUP = re.compile(r"\{(\d+)\}")
_RCODES = {
    **{name: number for number, name in dnslib.RCODE.forward.items()},
    "BADVERS": codes.BADVERS,
    "BADSIG": codes.BADVERS,
    "BADKEY": codes.BADKEY,
    "BADTIME": codes.BADTIME,
    "BADMODE": codes.BADMODE,
    "BADNAME": codes.BADNAME,
    "BADALG": codes.BADALG,
    "BADTRUNC": codes.BADTRUNC,
    "BADCOOKIE": codes.BADCOOKIE,
}
_CLASS_ALIASES = {"HS": "Hesiod", "NONE": "None", "ANY": "*"}  # CoreDNS's names for dnslib's
_VALUE_TYPES = frozenset(
    dnslib.QTYPE.reverse[name] for name in ("CNAME", "DNAME", "NS", "PTR", "MX", "SRV", "NAPTR", "SOA")
)


# --- names ----------------------------------------------------------------------------------------


def _normal(text: str, *, dot: bool) -> str:
    """A name as CoreDNS compares it: lowercase; with ``dot``, fully qualified."""
    text = text.lower()
    return text if not dot or text.endswith(".") else text + "."


def _name_wire(text: str) -> bytes | None:
    """Presentation form (escapes allowed, final dot optional) -> lowercase wire name; None when it
    is not a valid name (an empty or overlong label, a name over 255 octets, a stray character)."""
    if text == ".":
        return b"\x00"
    out, current, i, closed = bytearray(), bytearray(), 0, False
    while i < len(text):
        ch, closed = text[i], False
        if ch == "\\":
            digits = text[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit():
                if int(digits) > 255:
                    return None
                current.append(int(digits))
                i += 4
                continue
            if i + 1 == len(text) or not 32 <= ord(text[i + 1]) <= 126:
                return None
            current.append(ord(text[i + 1]))
            i += 2
            continue
        if ch == ".":
            if not 0 < len(current) <= codes.MAX_LABEL_LENGTH:
                return None
            out.append(len(current))
            out += current
            current, closed = bytearray(), True
        elif not 33 <= ord(ch) <= 126:
            return None
        else:
            current.append(ord(ch))
        i += 1
    if not closed:
        if not 0 < len(current) <= codes.MAX_LABEL_LENGTH:
            return None
        out.append(len(current))
        out += current
    out.append(0)
    return bytes(out).lower() if len(out) <= codes.MAX_NAME_LENGTH else None


def _wire_of_label(owner: dnslib.DNSLabel) -> bytes:
    return b"".join(bytes((len(part),)) + part for part in owner.label) + b"\x00"


def _label_text(owner: dnslib.DNSLabel) -> str:
    return to_text(_wire_of_label(owner).lower())


def _groups_used(replacement: str) -> list[int]:
    return [int(n) for n in _GROUP.findall(replacement) if int(n) <= MAX_GROUP]


def _compile(pattern: str, replacement: str | None, what: str) -> re.Pattern[str]:
    """A rule's regex; ValueError when it does not compile or ``replacement`` names a missing group."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}: invalid regex matching pattern {pattern!r}: {exc}") from None
    if replacement is not None:
        missing = [n for n in _groups_used(replacement) if n > compiled.groups]
        if missing:
            raise ValueError(
                f"{what}: the rewrite pattern {replacement!r} uses group {{{missing[0]}}} but the "
                f"regex {pattern!r} has {compiled.groups} group(s)"
            )
    return compiled


def _substitute(found: re.Match[str], replacement: str) -> str:
    def group(ref: re.Match[str]) -> str:
        n = int(ref.group(1))
        return (found.group(n) or "") if n <= (found.re.groups) else ref.group(0)

    return _GROUP.sub(group, replacement)


# --- matching a question's name ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameMatch:
    """A rule's FROM: how it is compared with the (lowercase, dotted) question name."""

    kind: Match
    text: str  # normalised as CoreDNS does, or the regex's source
    regex: re.Pattern[str] | None = None

    def search(self, name: str) -> re.Match[str] | bool:
        match self.kind:
            case Match.EXACT:
                return name == self.text
            case Match.PREFIX:
                return name.startswith(self.text)
            case Match.SUFFIX:
                return name.endswith(self.text)
            case Match.SUBSTRING:
                return self.text in name
        assert self.regex is not None
        return self.regex.search(name) or False


def _name_match(kind: Match, text: str, what: str, replacement: str | None = None) -> NameMatch:
    if kind is Match.REGEX:
        return NameMatch(kind, text, _compile(text, replacement, what))
    return NameMatch(kind, _normal(text, dot=kind in (Match.EXACT, Match.SUFFIX)))


def _match_kind(word: str, what: str) -> Match:
    try:
        return Match(word.lower())
    except ValueError:
        raise ValueError(
            f"{what} supports only exact, prefix, suffix, substring and regex name matching, not {word!r}"
        ) from None


# --- response rules -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegexRewriter:
    """``answer name|value FROM TO``: a name the regex finds anything in becomes TO, groups filled."""

    pattern: re.Pattern[str]
    replacement: str

    def rewrite(self, name: str) -> str:
        found = self.pattern.search(name)
        return _substitute(found, self.replacement) if found else name


@dataclass(frozen=True, slots=True)
class RemapRewriter:
    """``answer auto``: the rewritten name, or a name below it, back to the one asked."""

    rewritten: str
    original: str

    def rewrite(self, name: str) -> str:
        if name == self.rewritten:
            return self.original
        if name.endswith("." + self.rewritten):
            return name[: len(name) - len(self.rewritten)] + self.original
        return name


@dataclass(frozen=True, slots=True)
class SuffixRewriter:
    """``answer auto`` of a ``suffix`` rule: the new suffix swapped back for the old."""

    suffix: str
    replacement: str

    def rewrite(self, name: str) -> str:
        return name[: len(name) - len(self.suffix)] + self.replacement if name.endswith(self.suffix) else name


Rewriter = RegexRewriter | RemapRewriter | SuffixRewriter


@dataclass(frozen=True, slots=True)
class OwnerNames:
    """Rewrite the owner name of every record."""

    rewriter: Rewriter


@dataclass(frozen=True, slots=True)
class TargetNames:
    """Rewrite the name a record points to (CNAME, DNAME, NS, PTR, MX, SRV, NAPTR, SOA MNAME)."""

    rewriter: Rewriter


@dataclass(frozen=True, slots=True)
class TtlClamp:
    """Keep every record's TTL within ``low``..``high``."""

    low: int
    high: int

    def clamp(self, ttl: int) -> int:
        return self.low if ttl < self.low else self.high if ttl > self.high else ttl


@dataclass(frozen=True, slots=True)
class RcodeChange:
    """A response with rcode ``old`` gets ``new``."""

    old: int
    new: int


ResponseRule = OwnerNames | TargetNames | TtlClamp | RcodeChange


# --- rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameRule:
    """``name``: the question's name is rewritten; ``answers`` (and ``auto``) map the response back."""

    mode: Mode
    match: NameMatch
    replacement: str
    auto: bool = False  # map the rewritten name back to the asked one (always for ``exact``)
    answers: tuple[OwnerNames | TargetNames, ...] = ()

    def rewrite(self, name: str) -> str | None:
        """The new name, or None when the rule does not apply to ``name``."""
        found = self.match.search(name)
        if not found:
            return None
        text = self.match.text
        match self.match.kind:
            case Match.EXACT:
                return self.replacement
            case Match.PREFIX:
                return self.replacement + name[len(text) :]
            case Match.SUFFIX:
                return name[: len(name) - len(text)] + self.replacement
            case Match.SUBSTRING:
                return name.replace(text, self.replacement)
        assert isinstance(found, re.Match)
        return _substitute(found, self.replacement)


@dataclass(frozen=True, slots=True)
class TypeRule:
    """``type FROM TO``: the question's type."""

    mode: Mode
    old: int
    new: int


@dataclass(frozen=True, slots=True)
class ClassRule:
    """``class FROM TO``: the question's class."""

    mode: Mode
    old: int
    new: int


@dataclass(frozen=True, slots=True)
class TtlRule:
    """``ttl``: the TTLs of the response to a matching question are clamped to ``low``..``high``."""

    mode: Mode
    match: NameMatch
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class RcodeRule:
    """``rcode``: the response to a matching question with rcode ``old`` gets ``new``."""

    mode: Mode
    match: NameMatch
    old: int
    new: int


@dataclass(frozen=True, slots=True)
class Edns0Rule:
    """``edns0``: one EDNS0 option of the query is set, appended, replaced or removed."""

    mode: Mode
    option: Option
    action: Action
    code: int
    data: bytes = b""  # ``local`` with fixed data
    variable: str = ""  # ``local`` with one of VARIABLES
    v4_bits: int = 0  # ``subnet``
    v6_bits: int = 0
    revert: bool = False


Rule = NameRule | TypeRule | ClassRule | TtlRule | RcodeRule | Edns0Rule


# --- parsing --------------------------------------------------------------------------------------


def parse(args: Sequence[str], block: Sequence[Sequence[str]] | None = None) -> Rule:
    """One ``rewrite`` directive: the words after ``rewrite`` and, when written, its block's lines."""
    words = list(args)
    if block is not None:
        if len(words) >= 2:
            raise ValueError("a { } block may follow only 'rewrite', 'rewrite stop' or 'rewrite continue'")
        words += [word for line in block for word in line]
    if not words:
        raise ValueError("no rule type specified for rewrite")
    mode = Mode.STOP
    if words[0].lower() in (Mode.STOP, Mode.CONTINUE):
        mode = Mode(words[0].lower())
        words = words[1:]
        if not words:
            raise ValueError(f"{mode} rule must begin with a rule type")
    field_, rest = words[0].lower(), words[1:]
    match field_:
        case "name":
            return _parse_name(mode, rest)
        case "type":
            old, new = _two(rest, field_)
            return TypeRule(mode, _type(old), _type(new))
        case "class":
            old, new = _two(rest, field_)
            return ClassRule(mode, _class(old), _class(new))
        case "ttl":
            return _parse_ttl(mode, rest)
        case "rcode":
            return _parse_rcode(mode, rest)
        case "edns0":
            return _parse_edns0(mode, rest)
        case "answer":
            raise ValueError("response rewrites must begin with a name rule")
        case "cname":
            raise ValueError("cname target rewrites are not supported yet")
    raise ValueError(f"invalid rule type {words[0]!r}")


def _two(rest: list[str], field_: str) -> tuple[str, str]:
    if len(rest) != 2:
        raise ValueError(f"{field_} rules must have exactly two arguments")
    return rest[0], rest[1]


def _type(word: str) -> int:
    return parse_qtype(word)


def _class(word: str) -> int:
    name = word.upper()
    number = dnslib.CLASS.reverse.get(_CLASS_ALIASES.get(name, name))
    if number is None or name in _CLASS_ALIASES.values():
        raise ValueError(f"invalid class {name!r}")
    return number


def _parse_name(mode: Mode, rest: list[str]) -> NameRule:
    if len(rest) < 2:
        raise ValueError("too few arguments for a name rule")
    if len(rest) == 2:
        kind, source, target, options = Match.EXACT, rest[0], rest[1], []
    else:
        kind = _match_kind(rest[0], "name rule")
        source, target, options = rest[1], rest[2], rest[3:]
    auto, answers = _parse_answers(kind, options)
    if kind is Match.REGEX:
        match = _name_match(kind, source, "name rule", target)
        return NameRule(mode, match, _normal(target, dot=True), auto, answers)
    match = _name_match(kind, source, "name rule")
    replacement = _normal(target, dot=kind in (Match.EXACT, Match.SUFFIX))
    if kind is Match.EXACT:
        auto = True
    elif kind is Match.SUFFIX and auto:
        back = SuffixRewriter(replacement, match.text)
        answers = (OwnerNames(back), TargetNames(back), *answers)
        auto = False
    return NameRule(mode, match, replacement, auto, answers)


def _parse_answers(kind: Match, words: list[str]) -> tuple[bool, tuple[OwnerNames | TargetNames, ...]]:
    """``answer auto``, ``answer name FROM TO``, ``answer value FROM TO``, the later ``answer``s optional."""
    what = f"{kind} name rule"
    if not words:
        return False, ()
    if len(words) < 2:
        raise ValueError(f"invalid arguments for {what}: {' '.join(words)!r}")
    if words[0] != "answer":
        raise ValueError(f"{what}: unexpected {words[0]!r}, only answer options may follow FROM TO")
    auto, answers, names, i = False, [], 0, 0
    while i < len(words):
        if words[i] == "answer":
            i += 1
        if i == len(words):
            raise ValueError(f"{what}: answer needs auto, name or value")
        option, i = words[i], i + 1
        if option == "auto":
            auto = True
            continue
        if option not in ("name", "value"):
            raise ValueError(f"{what}: invalid answer option {option!r}: use auto, name or value")
        if len(words) - i < 2:
            raise ValueError(f"{what}: answer {option} needs 2 arguments, FROM and TO")
        pattern = _compile(words[i], words[i + 1], f"{what}: answer {option}")
        rewriter = RegexRewriter(pattern, _normal(words[i + 1], dot=True))
        answers.append(OwnerNames(rewriter) if option == "name" else TargetNames(rewriter))
        names += option == "name"
        i += 2
    if auto and names:
        raise ValueError(f"{what}: answer auto cannot be combined with answer name")
    return auto, tuple(answers)


def _parse_ttl(mode: Mode, rest: list[str]) -> TtlRule:
    if len(rest) < 2:
        raise ValueError(f"too few ({len(rest)}) arguments for a ttl rule")
    if len(rest) > 3:
        raise ValueError(f"too many ({len(rest)}) arguments for a ttl rule")
    low, high = _ttl_range(rest[-1])
    kind = _match_kind(rest[0], "ttl rule") if len(rest) == 3 else Match.EXACT
    return TtlRule(mode, _name_match(kind, rest[-2], "ttl rule"), low, high)


def _ttl_seconds(text: str, whole: str) -> int:
    if not text.isdigit():
        raise ValueError(f"invalid TTL {whole!r} for a ttl rule: use SECONDS, MIN-MAX, MIN- or -MAX")
    value = int(text)
    if value > codes.MAX_TTL:
        raise ValueError(f"invalid TTL {whole!r} for a ttl rule: {value} is above {codes.MAX_TTL}")
    return value


def _ttl_range(text: str) -> tuple[int, int]:
    if "-" not in text:
        value = _ttl_seconds(text, text)
        return value, value
    low_text, _, high_text = text.partition("-")
    if not low_text and not high_text:
        raise ValueError("invalid TTL '-' for a ttl rule: give MIN, MAX or both")
    low = _ttl_seconds(low_text, text) if low_text else 0
    high = _ttl_seconds(high_text, text) if high_text else codes.MAX_TTL
    if low > high:
        raise ValueError(f"invalid TTL {text!r} for a ttl rule: {low} is above {high}")
    return low, high


def _parse_rcode(mode: Mode, rest: list[str]) -> RcodeRule:
    if len(rest) < 3:
        raise ValueError(f"too few ({len(rest)}) arguments for a rcode rule")
    if len(rest) > 4:
        raise ValueError(f"too many ({len(rest)}) arguments for a rcode rule")
    old, new = _rcode(rest[-2], "matching"), _rcode(rest[-1], "replacement")
    kind = _match_kind(rest[0], "rcode rule") if len(rest) == 4 else Match.EXACT
    return RcodeRule(mode, _name_match(kind, rest[-3], "rcode rule"), old, new)


def _rcode(word: str, role: str) -> int:
    if word.isdigit() and int(word) <= codes.MAX_RCODE:
        return int(word)
    number = _RCODES.get(word.upper())
    if number is None:
        raise ValueError(f"invalid {role} RCODE {word!r} for a rcode rule")
    return number


def _parse_edns0(mode: Mode, rest: list[str]) -> Edns0Rule:
    if len(rest) < 2:
        raise ValueError("too few arguments for an EDNS0 rule")
    revert = rest[-1].lower() == "revert"
    if revert:
        rest = rest[:-1]
    words = [rest[0].lower(), rest[1].lower(), *rest[2:]]
    try:
        option = Option(words[0])
    except ValueError:
        raise ValueError(f"invalid EDNS0 option {rest[0]!r}: use local, nsid or subnet") from None
    try:
        action = Action(words[1])
    except ValueError:
        raise ValueError(f"invalid EDNS0 action {rest[1]!r}: use set, append, replace or unset") from None
    values = words[2:]
    match option:
        case Option.LOCAL:
            wanted = 1 if action is Action.UNSET else 2
            if len(values) != wanted:
                raise ValueError(
                    "EDNS0 local unset needs CODE" if wanted == 1 else f"EDNS0 local {action} needs CODE DATA"
                )
            code = _option_code(values[0])
            if action is Action.UNSET:
                return Edns0Rule(mode, option, action, code, revert=revert)
            data = values[1]
            if data.startswith("{") and data.endswith("}"):
                return Edns0Rule(mode, option, action, code, variable=_variable(data), revert=revert)
            return Edns0Rule(mode, option, action, code, data=_option_data(data), revert=revert)
        case Option.NSID:
            if values:
                raise ValueError("EDNS0 NSID rules do not accept arguments")
            return Edns0Rule(mode, option, action, codes.EDNS_NSID, revert=revert)
    if action is Action.UNSET:
        if values:
            raise ValueError("EDNS0 subnet unset does not accept arguments")
        return Edns0Rule(mode, option, action, codes.EDNS_CLIENT_SUBNET, revert=revert)
    if len(values) != 2:
        raise ValueError(f"EDNS0 subnet {action} needs the IPv4 and IPv6 bit mask lengths")
    v4, v6 = (_bits(value, family) for value, family in zip(values, _MAX_PREFIX, strict=True))
    return Edns0Rule(mode, option, action, codes.EDNS_CLIENT_SUBNET, v4_bits=v4, v6_bits=v6, revert=revert)


def _number(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def _option_code(text: str) -> int:
    code = _number(text)
    if code is None or not 0 <= code <= MAX_OPTION_CODE:
        raise ValueError(f"invalid EDNS0 local option code {text!r}: use 0-65535, decimal or 0x hex")
    return code


def _option_data(text: str) -> bytes:
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise ValueError(f"invalid EDNS0 local data {text!r}: not hex after 0x") from None
    return text.encode()


def _variable(text: str) -> str:
    if text in VARIABLES:
        return text
    if "/" in text:
        raise ValueError(f"EDNS0 local variable {text} needs the metadata plugin, which kdns does not have")
    raise ValueError(f"unsupported EDNS0 local variable {text}: use one of {', '.join(VARIABLES)}")


def _bits(text: str, family: int) -> int:
    value = _number(text)
    if value is None or not 0 <= value <= _MAX_PREFIX[family]:
        version = "IPv4" if family == codes.FAMILY_IPV4 else "IPv6"
        raise ValueError(f"invalid {version} bit mask length {text!r}: use 0-{_MAX_PREFIX[family]}")
    return value


# --- applying -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client:
    """Where a query came from and arrived: what ``edns0`` variables and ``subnet`` read."""

    ip: str
    port: int = 0
    protocol: str = "udp"
    server_ip: str = ""
    server_port: int = 0


# Which rules a question reaches is decided once per question, for every client alike (the block's
# answer is packed once): as for a client with an address that sent no EDNS0 options. This client
# stands in for it; its data is never sent (``edns0_options`` runs the rules again for the real one).
STAND_IN_CLIENT = Client("0.0.0.0", server_ip="0.0.0.0")


@dataclass(frozen=True, slots=True)
class Reverter:
    """What to do to the response so the client sees what it asked: the response rules of the rules
    that applied (in their order; applied last to first, as CoreDNS does) and the EDNS0 options to
    take back out (code, and the client's own data to put back, or None)."""

    question: tuple[bytes, int, int]
    rules: tuple[ResponseRule, ...] = ()
    restore_options: tuple[tuple[int, bytes | None], ...] = ()

    @property
    def rewrites_response(self) -> bool:
        return bool(self.rules or self.restore_options)


@dataclass(frozen=True, slots=True)
class Rewritten:
    """A question after the rules: what to answer or send on, and how to map the response back."""

    qname: bytes
    qtype: int
    qclass: int
    options: tuple[tuple[int, bytes], ...]
    reverter: Reverter
    servfail: bool = False  # a name rule made an invalid name: CoreDNS answers SERVFAIL
    options_changed: bool = False
    # the edns0 rules the question reached, in order, ``{qname}`` and ``{qtype}`` read as they stood:
    # what ``edns0_options`` runs for each query sent on
    edns0: tuple[Edns0Rule, ...] = ()

    @property
    def changed(self) -> bool:
        return (self.qname, self.qtype, self.qclass) != self.reverter.question or self.options_changed


@dataclass(slots=True)
class _Run:
    """The mutable state of one run of the rules over one question."""

    name: str
    qtype: int
    qclass: int
    options: list[tuple[int, bytes]]
    client: Client | None
    rules: list[ResponseRule] = field(default_factory=list)
    restore: list[tuple[int, bytes | None]] = field(default_factory=list)
    edns0: list[Edns0Rule] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rewrite:
    """The ``rewrite`` rules of a server block, in the order written."""

    rules: tuple[Rule, ...]

    @property
    def needs_client(self) -> bool:
        return any(
            isinstance(rule, Edns0Rule)
            and (rule.option is Option.SUBNET or rule.variable in CLIENT_VARIABLES)
            for rule in self.rules
        )

    @property
    def edits_options(self) -> bool:
        return any(isinstance(rule, Edns0Rule) for rule in self.rules)

    def apply(
        self,
        qname: bytes,
        qtype: int,
        qclass: int,
        *,
        client: Client | None = None,
        options: Sequence[tuple[int, bytes]] = (),
    ) -> Rewritten:
        """Run the rules over a question (``qname`` lowercase wire) and the EDNS0 options it carries."""
        question = (qname, qtype, qclass)
        asked = to_text(qname)
        run = _Run(asked, qtype, qclass, list(options), client)
        for rule in self.rules:
            applied = _apply_rule(rule, run)
            if applied is None:  # the name is no longer a name
                return Rewritten(qname, qtype, qclass, tuple(options), Reverter(question), servfail=True)
            if applied and rule.mode is Mode.STOP:
                break
        new_name = _name_wire(run.name) if run.name != asked else qname
        if new_name is None:
            return Rewritten(qname, qtype, qclass, tuple(options), Reverter(question), servfail=True)
        reverter = Reverter(question, tuple(run.rules), tuple(run.restore))
        sent = tuple(run.options)
        return Rewritten(
            new_name,
            run.qtype,
            run.qclass,
            sent,
            reverter,
            options_changed=sent != tuple(options),
            edns0=tuple(run.edns0),
        )


def edns0_options(
    rules: Sequence[Edns0Rule], *, client: Client | None, options: Sequence[tuple[int, bytes]] = ()
) -> tuple[tuple[tuple[int, bytes], ...], tuple[tuple[int, bytes | None], ...]]:
    """The EDNS0 options a query carries upstream once ``rules`` (``Rewritten.edns0``) ran over the
    client's ``options`` for ``client``, and what to restore in the response (``Reverter``'s
    ``restore_options``). Only options of the codes the rules name are sent: kdns sends upstream its
    own OPT record, not the client's. A rule that applies and is ``stop`` ends the run."""
    run = _Run("", 0, 0, list(options), client)
    for rule in rules:
        if _apply_edns0(rule, run) and rule.mode is Mode.STOP:
            break
    named = {rule.code for rule in rules}
    return tuple(o for o in run.options if o[0] in named), tuple(run.restore)


def _apply_rule(rule: Rule, run: _Run) -> bool | None:
    """Whether ``rule`` applied (None: it made a name that is not valid)."""
    match rule:
        case NameRule():
            new = rule.rewrite(run.name)
            if new is None:
                return False
            if _name_wire(new) is None:
                return None
            if rule.auto:
                back = RemapRewriter(new, run.name)
                run.rules += [OwnerNames(back), TargetNames(back)]
            run.rules += rule.answers
            run.name = new
            return True
        case TypeRule() | ClassRule():
            current = run.qtype if isinstance(rule, TypeRule) else run.qclass
            if current != rule.old:
                return False
            if isinstance(rule, TypeRule):
                run.qtype = rule.new
            else:
                run.qclass = rule.new
            return True
        case TtlRule():
            if not rule.match.search(run.name):
                return False
            run.rules.append(TtlClamp(rule.low, rule.high))
            return True
        case RcodeRule():
            if not rule.match.search(run.name):
                return False
            run.rules.append(RcodeChange(rule.old, rule.new))
            return True
    run.edns0.append(_bound(rule, run))
    return _apply_edns0(rule, run)


def _bound(rule: Edns0Rule, run: _Run) -> Edns0Rule:
    """``rule`` with ``{qname}`` or ``{qtype}`` replaced by their value at this point of the run."""
    match rule.variable:
        case "{qname}":
            return replace(rule, variable="", data=run.name.encode())
        case "{qtype}":
            return replace(rule, variable="", data=run.qtype.to_bytes(2, "big"))
    return rule


def _apply_edns0(rule: Edns0Rule, run: _Run) -> bool:
    data = _option_value(rule, run)
    if data is None:
        return False
    at = next((i for i, (code, _) in enumerate(run.options) if code == rule.code), None)
    if at is None:
        if rule.action not in (Action.SET, Action.APPEND):
            return False
        run.options.append((rule.code, data))
        original = None
    else:
        if rule.action is Action.APPEND:
            return False
        original = run.options[at][1]
        if rule.action is Action.UNSET:
            del run.options[at]
        else:
            if rule.option is Option.SUBNET:
                data = _subnet(run.client, rule, original[2] if len(original) > 2 else None)
                if data is None:
                    return False
            run.options[at] = (rule.code, data)
    if rule.revert and rule.action is not Action.UNSET:
        run.restore.append((rule.code, original))
    return True


def _option_value(rule: Edns0Rule, run: _Run) -> bytes | None:
    """The option's data for ``rule``, or None when it cannot be had (no client to read)."""
    if rule.action is Action.UNSET or rule.option is Option.NSID:
        return b""
    if rule.option is Option.SUBNET:
        return _subnet(run.client, rule, None)
    if not rule.variable:
        return rule.data
    client = run.client
    match rule.variable:
        case "{qname}":
            return run.name.encode()
        case "{qtype}":
            return run.qtype.to_bytes(2, "big")
    if client is None:
        return None
    match rule.variable:
        case "{client_ip}":
            return _packed_ip(client.ip)
        case "{server_ip}":
            return _packed_ip(client.server_ip)
        case "{client_port}":
            return client.port.to_bytes(2, "big")
        case "{server_port}":
            return client.server_port.to_bytes(2, "big")
    return client.protocol.encode()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _packed_ip(text: str) -> bytes | None:
    ip = _address(text)
    return ip.packed if ip is not None else None


def _subnet(client: Client | None, rule: Edns0Rule, asked: int | None) -> bytes | None:
    """RFC 7871 client subnet data for the client's address cut to the rule's prefix (or the
    client's own, when it asked for a shorter one)."""
    ip = _address(client.ip) if client is not None else None
    if ip is None:
        return None
    family = codes.FAMILY_IPV4 if ip.version == 4 else codes.FAMILY_IPV6
    bits = rule.v4_bits if family == codes.FAMILY_IPV4 else rule.v6_bits
    if asked is not None:
        bits = min(bits, asked)
    network = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
    address = network.network_address.packed[: (bits + 7) // 8]
    return family.to_bytes(2, "big") + bytes((bits, 0)) + address


# --- reverting: kdns's answers ----------------------------------------------------------------------


def _names_back(rules: Sequence[ResponseRule], kind: type[OwnerNames | TargetNames], text: str) -> str:
    for rule in reversed(rules):
        if isinstance(rule, kind):
            text = rule.rewriter.rewrite(text)
    return text


def _wire_back(rules: Sequence[ResponseRule], kind: type[OwnerNames | TargetNames], wire: bytes) -> bytes:
    text = to_text(wire)
    new = _names_back(rules, kind, text)
    if new == text:
        return wire
    back = _name_wire(new)
    if back is None:
        raise _Unpackable(new)
    return back


class _Unpackable(Exception):
    """A response rule made a name that cannot be packed."""


def _ttl_back(rules: Sequence[ResponseRule], ttl: int) -> int:
    for rule in reversed(rules):
        if isinstance(rule, TtlClamp):
            ttl = rule.clamp(ttl)
    return ttl


def _rcode_back(rules: Sequence[ResponseRule], rcode: int) -> int:
    for rule in reversed(rules):
        if isinstance(rule, RcodeChange) and rcode == rule.old:
            rcode = rule.new
    return rcode


def _rdata_back(rules: Sequence[ResponseRule], rtype: int, value: object) -> object:
    if rtype in (codes.CNAME, codes.PTR, codes.NS):
        assert isinstance(value, bytes)
        return _wire_back(rules, TargetNames, value)
    if rtype == codes.SRV:
        priority, weight, port, target = value  # type: ignore[misc]
        return (priority, weight, port, _wire_back(rules, TargetNames, target))
    if rtype == codes.SOA:
        mname, *rest = value  # type: ignore[misc]
        return (_wire_back(rules, TargetNames, mname), *rest)
    return value


def _rrsets_back(rules: Sequence[ResponseRule], rrsets: tuple[RRset, ...]) -> tuple[RRset, ...]:
    return tuple(
        RRset(
            _wire_back(rules, OwnerNames, rrset.name),
            rrset.rtype,
            _ttl_back(rules, rrset.ttl),
            tuple(_rdata_back(rules, rrset.rtype, value) for value in rrset.rdatas),
        )
        for rrset in rrsets
    )


def revert_answer(reverter: Reverter, answer: Answer) -> Answer:
    """kdns's answer to the rewritten question, as the client must see it. A rule that makes a name
    that cannot be packed turns the answer into SERVFAIL."""
    rules = reverter.rules
    if not rules:
        return answer
    try:
        return replace(
            answer,
            rcode=_rcode_back(rules, answer.rcode),
            answer=_rrsets_back(rules, answer.answer),
            authority=_rrsets_back(rules, answer.authority),
            additional=_rrsets_back(rules, answer.additional),
        )
    except _Unpackable:
        return Answer(rcode=codes.SERVFAIL, authoritative=False, depends=answer.depends)


# --- reverting: forwarded answers -------------------------------------------------------------------


def _target_attribute(rtype: int) -> str:
    if rtype == codes.SRV:
        return "target"
    if rtype == codes.SOA:
        return "mname"
    if rtype == dnslib.QTYPE.reverse["NAPTR"]:
        return "replacement"
    return "label"


def _record_back(rules: Sequence[ResponseRule], rr: dnslib.RR) -> None:
    owner = _label_text(rr.rname)
    new_owner = _names_back(rules, OwnerNames, owner)
    if new_owner != owner:
        rr.rname = _text_label(new_owner)
    rr.ttl = _ttl_back(rules, rr.ttl)
    attribute = _target_attribute(rr.rtype)
    pointed = getattr(rr.rdata, attribute, None) if rr.rtype in _VALUE_TYPES else None
    if isinstance(pointed, dnslib.DNSLabel):  # rdata dnslib could not read stays as it is
        target = _label_text(pointed)
        new_target = _names_back(rules, TargetNames, target)
        if new_target != target:
            setattr(rr.rdata, attribute, _text_label(new_target))


def _text_label(text: str) -> dnslib.DNSLabel:
    wire = _name_wire(text)
    if wire is None:
        raise _Unpackable(text)
    return label(wire)


def _full_rcode(record: dnslib.DNSRecord, opt: dnslib.RR | None) -> int:
    high = (opt.ttl >> 24) << codes.EXTENDED_RCODE_SHIFT if opt is not None else 0
    return record.header.rcode | high


def _set_rcode(record: dnslib.DNSRecord, opt: dnslib.RR | None, rcode: int) -> None:
    record.header.rcode = rcode & codes.RCODE_MASK
    if opt is not None:
        opt.ttl = (opt.ttl & 0x00FFFFFF) | (rcode >> codes.EXTENDED_RCODE_SHIFT) << 24


def _restore_options(opt: dnslib.RR, restore: Sequence[tuple[int, bytes | None]]) -> None:
    options = list(opt.rdata)
    for code, original in restore:
        options = [o for o in options if o.code != code]
        if original is not None:
            options.append(dnslib.EDNSOption(code, original))
    opt.rdata = options


def revert_record(reverter: Reverter, record: dnslib.DNSRecord) -> dnslib.DNSRecord:
    """A forwarded response to the rewritten question, as the client must see it: a changed copy
    with the client's question. A rule that makes a name that cannot be packed gives SERVFAIL."""
    out = copy.deepcopy(record)
    qname, qtype, qclass = reverter.question
    out.questions = [dnslib.DNSQuestion(label(qname), qtype, qclass)]
    opt = next((rr for rr in out.ar if rr.rtype == codes.OPT), None)
    rules = reverter.rules
    try:
        for rr in [*out.rr, *out.auth, *out.ar]:
            if rr.rtype != codes.OPT:
                _record_back(rules, rr)
    except _Unpackable:
        failed = dnslib.DNSRecord(dnslib.DNSHeader(id=record.header.id, qr=1, rcode=codes.SERVFAIL))
        failed.questions = out.questions
        return failed
    _set_rcode(out, opt, _rcode_back(rules, _full_rcode(out, opt)))
    if opt is not None and reverter.restore_options:
        _restore_options(opt, reverter.restore_options)
    return out
