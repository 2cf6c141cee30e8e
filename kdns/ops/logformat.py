"""CoreDNS's replacer: a ``log`` format's placeholders filled in from a query and its response.

A format is read once into literal text and placeholders (``parse_format``); ``render`` fills it in
for one query. A placeholder is the text from a ``{`` to the first ``}`` after it with no other ``{``
in between, so ``{{type}}`` is a brace, the query's type and a brace. The placeholders:

``{type}`` ``{class}`` ``{name}`` (lowercase, with its final dot) of the question, ``{proto}``
(``udp``, ``tcp``), ``{remote}`` ``{port}`` of the client and ``{local}`` of the server (IPv6 in
brackets), ``{size}`` of the query in bytes; the query's ``{>id}``, ``{>opcode}``, ``{>do}`` and
``{>bufsize}`` (its EDNS size, at least 512; 65535 over TCP); the response's ``{rcode}``,
``{rsize}`` (bytes sent), ``{>rflags}`` (``qr,aa,rd``) and the ``{duration}`` until it was sent
(``0.000347s``). ``{/LABEL}`` is a metadata label: kdns sets none, so it is always ``-``. Anything
else in braces (``{common}`` within a longer format, ``{>ID}``: the names are case-sensitive) is
printed as written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dnslib

from kdns.codes import CLASS_NAMES, FLAG_NAMES, NO_EDNS_UDP_SIZE, RCODE_NAMES, TCP_MAX_SIZE
from kdns.wire.message import Message
from kdns.zone.names import to_text

EMPTY = "-"  # CoreDNS's value for what is not known
CLASS_TEXT = {number: name for name, number in CLASS_NAMES.items()}
LITERAL, LABEL, METADATA = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Exchanged:
    """One query and its response, as the log sees them."""

    client: tuple  # (host, port, ...) as the socket names the client
    local: str  # the server's address, as its socket is bound
    proto: str  # "udp" or "tcp"
    query: Message
    query_size: int
    response: Message | None  # None: too short to read
    response_size: int
    seconds: float  # from the query's arrival to its response's sending


Format = tuple[tuple[int, str], ...]  # (LITERAL, text), (LABEL, "{type}"), (METADATA, "label")


def parse_format(text: str) -> Format:
    """``text`` as literal pieces and placeholders, in order."""
    nodes: list[tuple[int, str]] = []
    literal = ""
    while (close := text.find("}")) >= 0:
        opened = text.rfind("{", 0, close)
        word = text[opened : close + 1] if opened >= 0 else ""
        if word in LABELS or word.startswith("{/"):
            if literal + text[:opened]:
                nodes.append((LITERAL, literal + text[:opened]))
            literal = ""
            nodes.append((LABEL, word) if word in LABELS else (METADATA, word[2:-1]))
        else:  # no placeholder: everything up to the brace is text
            literal += text[: close + 1]
        text = text[close + 1 :]
    if literal + text:
        nodes.append((LITERAL, literal + text))
    return tuple(nodes)


def render(fmt: Format, exchanged: Exchanged) -> str:
    """The log line ``fmt`` makes of ``exchanged``."""
    parts = []
    for kind, text in fmt:
        if kind == LITERAL:
            parts.append(text)
        else:  # kdns sets no metadata: every label of it is empty
            parts.append(LABELS[text](exchanged) if kind == LABEL else EMPTY)
    return "".join(parts)


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _type(x: Exchanged) -> str:
    if x.query.question is None:
        return ""
    qtype = x.query.question[1]
    return dnslib.QTYPE.forward.get(qtype, f"TYPE{qtype}")


def _class(x: Exchanged) -> str:
    if x.query.question is None:
        return ""
    qclass = x.query.question[2]
    return CLASS_TEXT.get(qclass, f"CLASS{qclass}")


def _name(x: Exchanged) -> str:
    return to_text(x.query.question[0].lower()) if x.query.question is not None else "."


def _bufsize(x: Exchanged) -> str:
    if x.proto == "tcp":
        return str(TCP_MAX_SIZE)
    edns = x.query.edns
    return str(max(edns.udp_size if edns is not None else 0, NO_EDNS_UDP_SIZE))


def _rcode(x: Exchanged) -> str:
    if x.response is None:
        return EMPTY
    rcode = x.response.rcode
    return RCODE_NAMES.get(rcode, str(rcode))


def _rflags(x: Exchanged) -> str:
    if x.response is None:
        return EMPTY
    flags = x.response.flags
    return ",".join(name for name, bit in FLAG_NAMES if flags & bit)


def go_seconds(seconds: float) -> str:
    """A duration as CoreDNS writes it: seconds, to the nanosecond, without trailing zeros."""
    whole, nanos = divmod(max(round(seconds * 1e9), 0), 10**9)
    return f"{whole}.{nanos:09d}".rstrip("0") if nanos else str(whole)


LABELS: dict[str, Callable[[Exchanged], str]] = {
    "{type}": _type,
    "{name}": _name,
    "{class}": _class,
    "{proto}": lambda x: x.proto,
    "{size}": lambda x: str(x.query_size),
    "{remote}": lambda x: _bracketed(x.client[0]),
    "{port}": lambda x: str(x.client[1]),
    "{local}": lambda x: _bracketed(x.local),
    "{>id}": lambda x: str(x.query.id),
    "{>opcode}": lambda x: str(x.query.opcode),
    "{>do}": lambda x: "true" if x.query.edns is not None and x.query.edns.do else "false",
    "{>bufsize}": _bufsize,
    "{rcode}": _rcode,
    "{rsize}": lambda x: str(x.response_size),
    "{duration}": lambda x: go_seconds(x.seconds) + "s",
    "{>rflags}": _rflags,
}
