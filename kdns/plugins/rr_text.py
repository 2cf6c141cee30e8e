"""One resource record in zone-file text (RFC 1035 section 5), read as CoreDNS's templates read it.

``parse_record(text)`` returns a ``Record``: the owner in lowercase wire form, type, class, TTL and
rdata in the form ``RRset`` keeps for that type (see ``kdns.resolver.RRset``). It follows Go's
``dns.NewRR``, which CoreDNS calls on a template's output: the first record only (text after the
first line is ignored), the origin is the root (every name is absolute: ``example.com`` is
``example.com.``, ``@`` is the root), TTL 3600 and class IN when not written, TTL and class in
either order, ``( ... )`` groups lines, ``;`` starts a comment, TTLs and SOA timers may be written
as durations (``1h30m``). It raises ``ValueError`` with the reason.

The types are those kdns packs: A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT. Names with ``\\``
escapes are refused.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kdns import codes
from kdns.zone.names import BadName, to_wire

DEFAULT_TTL = 3600  # Go's dns.NewRR, when the text gives none
MAX_STRING = 255  # octets of one TXT character-string
TYPES = {
    "A": codes.A,
    "AAAA": codes.AAAA,
    "CNAME": codes.CNAME,
    "MX": codes.MX,
    "NS": codes.NS,
    "PTR": codes.PTR,
    "SOA": codes.SOA,
    "SRV": codes.SRV,
    "TXT": codes.TXT,
}
_DURATION = re.compile(r"(?:\d+[smhdw])+|\d+", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_GENERIC_CLASS = re.compile(r"CLASS(\d{1,5})")


@dataclass(frozen=True, slots=True)
class Record:
    name: bytes
    rtype: int
    rclass: int
    ttl: int
    rdata: object


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    quoted: bool


def parse_record(text: str) -> Record:
    words = _words(text)
    if not words:
        raise ValueError("no record in the text")
    owner, rest = _name(words[0]), words[1:]
    ttl: int | None = None
    rclass: int | None = None
    while rest:
        word = rest[0].text
        if ttl is None and _DURATION.fullmatch(word):
            ttl = _duration(word)
        elif rclass is None and _class(word) is not None:
            rclass = _class(word)
        else:
            break
        rest = rest[1:]
    if not rest:
        raise ValueError("no record type")
    type_name = rest[0].text.upper()
    rtype = TYPES.get(type_name)
    if rtype is None:
        raise ValueError(f"record type {rest[0].text} is not one kdns serves ({', '.join(TYPES)})")
    rdata = _rdata(rtype, rest[1:])
    return Record(
        owner, rtype, codes.IN if rclass is None else rclass, DEFAULT_TTL if ttl is None else ttl, rdata
    )


def _words(text: str) -> list[_Word]:
    """The words of the first record: quotes kept apart, comments and ``( )`` line grouping removed."""
    words: list[_Word] = []
    depth, i = 0, 0
    text = text.lstrip(" \t")
    while i < len(text):
        c = text[i]
        if c == "\n" and depth == 0:
            break
        if c in " \t\r\n":
            i += 1
        elif c == ";":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif c == "(":
            depth, i = depth + 1, i + 1
        elif c == ")":
            if depth == 0:
                raise ValueError("unbalanced )")
            depth, i = depth - 1, i + 1
        elif c == '"':
            end = i + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise ValueError("unterminated quoted string")
            words.append(_Word(text[i + 1 : end], quoted=True))
            i = end + 1
        else:
            m = re.compile(r'[^\s;()"]+').match(text, i)
            assert m is not None
            words.append(_Word(m.group(0), quoted=False))
            i = m.end()
    if depth:
        raise ValueError("unbalanced (")
    return words


def _name(word: _Word) -> bytes:
    text = word.text
    if "\\" in text:
        raise ValueError(f"name {text!r}: escapes in names are not supported")
    if text == "@":
        text = "."
    try:
        return to_wire(text)
    except BadName as exc:
        raise ValueError(str(exc)) from None


def _class(word: str) -> int | None:
    named = codes.CLASS_NAMES.get(word.upper())
    if named is not None:
        return named
    generic = _GENERIC_CLASS.fullmatch(word.upper())
    return int(generic.group(1)) if generic and int(generic.group(1)) <= 0xFFFF else None


def _duration(word: str) -> int:
    if word.isdigit():
        seconds = int(word)
    else:
        seconds = sum(int(n) * _UNIT_SECONDS[u.lower()] for n, u in re.findall(r"(\d+)([a-zA-Z])", word))
    if seconds > 0xFFFFFFFF:
        raise ValueError(f"{word} is more than 32 bits")
    return seconds


def _number(word: _Word, bits: int, what: str) -> int:
    if not word.text.isdigit() or int(word.text) >= 1 << bits:
        raise ValueError(f"bad {what} {word.text!r}")
    return int(word.text)


def _timer(word: _Word, what: str) -> int:
    if not _DURATION.fullmatch(word.text):
        raise ValueError(f"bad {what} {word.text!r}")
    return _duration(word.text)


def _rdata(rtype: int, words: list[_Word]) -> object:
    counts = {codes.A: 1, codes.AAAA: 1, codes.CNAME: 1, codes.NS: 1, codes.PTR: 1, codes.MX: 2, codes.SRV: 4}
    wanted = counts.get(rtype, 7 if rtype == codes.SOA else None)
    if wanted is not None and len(words) != wanted:
        problem = "missing rdata" if len(words) < wanted else f"extra text {words[wanted].text!r}"
        raise ValueError(f"{problem}: {_type_name(rtype)} takes {wanted} field(s)")
    match rtype:
        case codes.A:
            return _address(words[0].text, ipaddress.IPv4Address)
        case codes.AAAA:
            return _address(words[0].text, ipaddress.IPv6Address)
        case codes.CNAME | codes.NS | codes.PTR:
            return _name(words[0])
        case codes.MX:
            return (_number(words[0], 16, "MX preference"), _name(words[1]))
        case codes.SRV:
            priority, weight, port = (
                _number(w, 16, f"SRV {n}") for w, n in zip(words, _SRV_FIELDS, strict=False)
            )
            return (priority, weight, port, _name(words[3]))
        case codes.SOA:
            serial = _number(words[2], 32, "SOA serial")
            timers = tuple(_timer(w, "SOA timer") for w in words[3:])
            return (_name(words[0]), _name(words[1]), serial, *timers)
    if not words:
        raise ValueError("missing rdata: TXT takes one or more strings")
    return tuple(_character_string(w) for w in words)


_SRV_FIELDS = ("priority", "weight", "port")


def _address(text: str, kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]) -> bytes:
    try:
        return kind(text).packed
    except ValueError:
        raise ValueError(f"bad {'A' if kind is ipaddress.IPv4Address else 'AAAA'} address {text!r}") from None


def _character_string(word: _Word) -> bytes:
    out, i, text = bytearray(), 0, word.text
    while i < len(text):
        if text[i] == "\\":
            digits = text[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit() and int(digits) < 256:
                out.append(int(digits))
                i += 4
                continue
            if i + 1 >= len(text):
                raise ValueError("trailing backslash in a string")
            out += text[i + 1].encode()
            i += 2
            continue
        out += text[i].encode()
        i += 1
    if len(out) > MAX_STRING:
        raise ValueError(f"a TXT string is longer than {MAX_STRING} octets")
    return bytes(out)


def _type_name(rtype: int) -> str:
    return next(name for name, value in TYPES.items() if value == rtype)
