"""``cache [TTL] [ZONES...] { ... }``: the cache of a block's forwarded answers (cluster answers are
kept current by the cluster, never by a TTL)."""

from __future__ import annotations

import math

from kdns.config import (
    CACHE_TTL,
    COREFILE_SERVE_STALE,
    PREFETCH_PERCENTAGE,
    SERVFAIL_TTL,
    WHOLE_NUMBER,
    CacheSettings,
    parse_whole_number,
)
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive, Token
from kdns.corefile.values import args, duration, fail, integer, no_block, unknown_option, value, zones_in


def setup(d: Directive, draft: Draft) -> None:
    words = list(d.args)
    settings: dict[str, object] = {}
    if words and WHOLE_NUMBER.fullmatch(words[0].text):
        ttl = integer(words.pop(0), "cache TTL", CACHE_TTL)
        settings["success_ttl"] = settings["denial_ttl"] = ttl
    if any(zone != "." for zone in zones_in(tuple(words))):
        draft.warn(words[0], "cache: zones are ignored: kdns caches every forwarded answer of the block")
    min_ttls: dict[str, int] = {}
    for option in d.options:
        _option(d, option, settings, min_ttls, draft)
    if len(set(min_ttls.values())) > 1:
        draft.warn(d.name, "cache: kdns has one minimum TTL for success and denial; using the lower")
    if min_ttls:
        settings["min_ttl"] = min(min_ttls.values())
    draft.cache = CacheSettings(**settings)  # type: ignore[arg-type]


def _option(
    d: Directive, o: Directive, settings: dict[str, object], min_ttls: dict[str, int], draft: Draft
) -> None:
    name = o.name.text
    no_block(o, f"cache option {name}")
    match name:
        case "success" | "denial":
            words = args(o, 1, 3, f"{name} CAPACITY [TTL [MINTTL]]")
            # 0: that kind is not cached (CoreDNS's 'success 0' / 'denial 0')
            settings[f"{name}_capacity"] = integer(words[0], f"{name} capacity")
            if len(words) > 1:
                settings[f"{name}_ttl"] = integer(words[1], f"{name} TTL", CACHE_TTL)
            if len(words) > 2:
                min_ttls[name] = integer(words[2], f"{name} minimum TTL")
        case "prefetch":
            words = args(o, 1, 3, "prefetch AMOUNT [[DURATION] [PERCENTAGE%]]")
            settings["prefetch"] = integer(words[0], "prefetch amount")
            if len(words) > 1:
                settings["prefetch_window"] = duration(words[1], "prefetch duration")
            if len(words) > 2:
                settings["prefetch_percentage"] = _percentage(words[2])
        case "serve_stale":
            words = args(o, 0, 2, "serve_stale [DURATION [immediate|verify]]")
            settings["serve_stale"] = duration(words[0], name) if words else COREFILE_SERVE_STALE
            mode = words[1].text.lower() if len(words) > 1 else "immediate"
            if mode not in {"immediate", "verify"}:
                fail(words[1], f"serve_stale: {words[1].text!r} is not immediate or verify")
            settings["stale_verify"] = mode == "verify"
        case "servfail":
            seconds = duration(args(o, 1, 1, "servfail DURATION")[0], name, SERVFAIL_TTL)
            settings["servfail_ttl"] = math.ceil(seconds)
        case "disable":
            words = args(o, 1, None, "disable success|denial [ZONES...]")
            if words[0].text not in {"success", "denial"}:
                fail(words[0], f"cache: disable {words[0].text!r}: expected success or denial")
            settings[f"disable_{words[0].text}"] = zones_in(words[1:]) or draft.zones
        case "keepttl":
            args(o, 0, 0, "keepttl")
            settings["keep_ttl"] = True
        case _:
            unknown_option(d, o)


def _percentage(token: Token) -> int:
    """``PERCENTAGE%``: a whole number within ``PREFETCH_PERCENTAGE``, the sign required (as CoreDNS)."""
    if not token.text.endswith("%"):
        fail(token, f"prefetch: {token.text!r} is no percentage (such as 10%)")
    return value(
        token, "prefetch percentage", lambda text: parse_whole_number(text[:-1], PREFETCH_PERCENTAGE)
    )
