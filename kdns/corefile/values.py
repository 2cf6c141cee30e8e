"""Reading a directive's words: durations as Go writes them, zones and CIDRs, addresses, argument
counts. A problem stops that directive with ``Refusal`` naming its FILE:LINE; the loader collects
them and goes on with the next directive."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import NoReturn, TypeVar

from kdns.config import (
    NOT_NEGATIVE,
    SECONDS,
    Bounds,
    NotAnIPAddress,
    parse_upstream_address,
    parse_whole_number,
    split_address,
)
from kdns.corefile.syntax import CorefileError, Directive, Token
from kdns.zone.names import BadName, zone_names


class Refusal(CorefileError):
    """One directive cannot be used: ``FILE:LINE: problem``."""


def fail(token: Token, message: str) -> NoReturn:
    raise Refusal(f"{token.where}: {message}")


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` in seconds: ``500ms``, ``5s``, ``1m30s``, ``1.5h``, ``0``; ValueError."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            break
        total += float(m[1]) * _UNIT_SECONDS[m[2]]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"{text!r} is not a duration (such as 500ms, 5s, 1m or 1h)")
    return -total if text.startswith("-") else total


_T = TypeVar("_T")


def value(token: Token, what: str, parse: Callable[[str], _T]) -> _T:
    """``parse(token.text)``; a ValueError's problem stops loading as ``FILE:LINE: what: problem``."""
    try:
        return parse(token.text)
    except ValueError as exc:
        fail(token, f"{what}: {exc}")


def duration(token: Token, what: str, bounds: Bounds = SECONDS) -> float:
    return value(token, what, lambda text: bounds.require(parse_duration(text)))


def integer(token: Token, what: str, bounds: Bounds = NOT_NEGATIVE) -> int:
    return value(token, what, partial(parse_whole_number, bounds=bounds))


def zones_of(token: Token) -> list[str]:
    """Zone names (lowercase, no final dot; ``.`` for the root) of a zone or a CIDR, as CoreDNS reads them."""
    try:
        return zone_names(token.text)
    except BadName as exc:
        fail(token, str(exc))


def within(name: str, zone: str) -> bool:
    return zone in {".", name} or name.endswith("." + zone)


def host_port(token: Token, what: str) -> str:
    """An ``HOST:PORT`` listen address, kept as written (``:PORT`` is every interface)."""
    value(token, what, split_address)
    return token.text


def upstream(token: Token) -> str | None:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` of a forward target, with ``tls://`` kept and ``dns://``
    dropped; None when no IP is written (a resolv.conf file, perhaps)."""
    try:
        parse_upstream_address(token.text)
    except NotAnIPAddress:
        return None
    except ValueError as exc:
        fail(token, f"forward: {exc}")
    return token.text.removeprefix("dns://")


def args(d: Directive, low: int, high: int | None, usage: str) -> tuple[Token, ...]:
    if len(d.args) < low or (high is not None and len(d.args) > high):
        fail(d.name, f"wrong number of arguments: {usage}")
    return d.args


def no_block(d: Directive, what: str | None = None) -> None:
    if d.block is not None:
        fail(d.name, f"{what or d.name.text} takes no '{{' block")


def unknown_option(owner: Directive, option: Directive) -> NoReturn:
    fail(option.name, f"{owner.name.text}: unknown option {option.name.text!r}")


def zones_in(tokens: tuple[Token, ...]) -> tuple[str, ...]:
    """The zones of several words, in order, each once."""
    return tuple(dict.fromkeys(zone for token in tokens for zone in zones_of(token)))


def plain(d: Directive) -> tuple[list[str], list[list[str]] | None]:
    """A directive's words as a plugin's own parser takes them: its arguments, and its block's lines
    (None without a block)."""
    block = [[o.name.text, *(t.text for t in o.args)] for o in d.block] if d.block is not None else None
    return [t.text for t in d.args], block
