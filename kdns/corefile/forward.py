"""``forward FROM TO... { ... }``: where the names of a block go upstream. A block may have several
stanzas, each for its own FROM zone; a query goes to the first that holds its name, and ``next``
hands it on to a later one (``kdns.upstream.routes``)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from kdns.config import (
    DEFAULT_MAX_CONCURRENT,
    MAX_UPSTREAMS,
    ForwardPolicy,
    ForwardSettings,
    choices,
    parse_choice,
    parse_failover_rcode,
    parse_rcode,
    parse_tls_files,
)
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive, Token
from kdns.corefile.values import (
    args,
    duration,
    fail,
    integer,
    no_block,
    unknown_option,
    upstream,
    value,
    zones_of,
)


def setup(d: Directive, draft: Draft) -> None:
    words = args(d, 2, None, "forward FROM TO...")
    zone = zones_of(words[0])[0]  # a CIDR's first zone, as CoreDNS takes it
    for earlier in draft.forward:
        if earlier.zone == zone:
            fail(words[0], f"forward: {zone} is forwarded twice in one server block")
    if len(words) - 1 > MAX_UPSTREAMS:
        fail(words[MAX_UPSTREAMS + 1], f"forward: more than {MAX_UPSTREAMS} upstreams")
    upstreams: list[str] = []  # addresses, and resolv.conf files whose nameservers stand in their place
    for to in words[1:]:
        address = upstream(to)
        if address is not None:
            upstreams.append(address)
        elif "/" in to.text or os.path.isfile(to.text):
            upstreams.append(to.text)
        else:
            fail(to, f"forward: {to.text!r} is neither an IP address nor a resolv.conf file")
    settings: dict[str, object] = {"upstreams": tuple(upstreams), "zone": zone}
    draft.last_next = None
    for option in d.options:
        _option(d, option, settings, draft)
    draft.forward.append(ForwardSettings(**settings))  # type: ignore[arg-type]


def finish(draft: Draft) -> None:
    """Once the block is read: a ``next`` in its last stanza hands nothing on (CoreDNS hands on only
    to another forward stanza), so say so."""
    if draft.last_next is not None:
        draft.warn(
            draft.last_next,
            "forward: next in the block's last forward stanza is not acted on "
            "(no forward stanza after it): the upstream's answer stands",
        )


def _option(d: Directive, o: Directive, settings: dict[str, object], draft: Draft) -> None:
    name = o.name.text
    no_block(o, f"forward option {name}")
    match name:
        case "max_concurrent":
            n = integer(args(o, 1, 1, "max_concurrent N")[0], name)
            if n == 0:
                draft.warn(
                    o.name,
                    "forward: max_concurrent 0 (no limit) is not supported; "
                    f"kdns keeps {DEFAULT_MAX_CONCURRENT}",
                )
            else:
                settings["max_concurrent"] = n
        case "policy":
            policy = args(o, 1, 1, f"policy {choices(ForwardPolicy)}")[0]
            settings["policy"] = value(policy, name, partial(parse_choice, ForwardPolicy))
        case "health_check":
            _health_check(o, settings, draft)
        case "max_fails":
            settings["max_fails"] = integer(args(o, 1, 1, "max_fails N")[0], name)
        case "force_tcp" | "prefer_udp" | "failfast_all_unhealthy_upstreams":
            args(o, 0, 0, name)
            settings[name] = True
        case "expire":
            settings["expire"] = duration(args(o, 1, 1, "expire DURATION")[0], name)
        case "tls_servername":
            settings["tls_servername"] = args(o, 1, 1, "tls_servername NAME")[0].text
        case "tls":
            words = args(o, 0, 3, "tls [CERT KEY [CA]]")
            files = value(Token(" ".join(t.text for t in words), o.name.file, o.name.line), name, _tls_files)
            settings["tls_cert"], settings["tls_key"], settings["tls_ca"] = files
        case "except":
            names = args(o, 1, None, "except IGNORED_NAMES...")
            settings["except_names"] = tuple(dict.fromkeys(z for t in names for z in zones_of(t)))
        case "failover":
            words = args(o, 1, None, "failover RCODE...")
            settings["failover_rcodes"] = tuple(value(t, name, parse_failover_rcode) for t in words)
        case "next":
            words = args(o, 1, None, "next RCODE...")
            settings["next_rcodes"] = tuple(value(t, name, parse_rcode) for t in words)
            draft.last_next = o.name
        case _:
            unknown_option(d, o)


def _health_check(o: Directive, settings: dict[str, object], draft: Draft) -> None:
    words = args(o, 1, 4, "health_check DURATION [no_rec] [domain NAME]")
    seconds = duration(words[0], "health_check")
    if seconds > 0:
        settings["health_check"] = seconds
    else:
        draft.warn(o.name, "forward: health_check 0 does not turn health checks off in kdns")
    rest = list(words[1:])
    while rest:
        word = rest.pop(0)
        if word.text == "no_rec":
            settings["health_check_rd"] = False
        elif word.text == "domain" and rest:
            settings["health_check_domain"] = rest.pop(0).text
        else:
            fail(word, f"health_check: unexpected {word.text!r} (no_rec, or domain NAME)")


def _tls_files(text: str) -> tuple[Path | None, Path | None, Path | None]:
    return parse_tls_files(text.split())
