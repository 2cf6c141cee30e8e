"""``forward FROM TO... { ... }``: where the names of a block go upstream. A block may have several
stanzas, each for its own FROM zone; a query goes to the first that holds its name."""

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
    upstreams: list[str] = []
    files: list[Token] = []
    for to in words[1:]:
        address = upstream(to)
        if address is not None:
            upstreams.append(address)
        elif "/" in to.text or os.path.isfile(to.text):
            files.append(to)
        else:
            fail(to, f"forward: {to.text!r} is neither an IP address nor a resolv.conf file")
    if len(files) > 1 or (files and upstreams):
        fail(files[-1], "forward: give either one resolv.conf file or IP addresses, not both")
    settings: dict[str, object] = {"upstreams": tuple(upstreams), "zone": zone}
    if files:
        settings["resolv_conf"] = Path(files[0].text)
    for option in d.options:
        _option(d, option, settings, draft)
    draft.forward.append(ForwardSettings(**settings))  # type: ignore[arg-type]


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
            words = args(o, 1, None, "health_check DURATION [no_rec] [domain NAME]")
            seconds = duration(words[0], name)
            if seconds > 0:
                settings["health_check"] = seconds
            else:
                draft.warn(o.name, "forward: health_check 0 does not turn health checks off in kdns")
            if len(words) > 1:
                draft.warn(words[1], "forward: health_check's no_rec and domain are ignored")
        case "max_fails":
            settings["max_fails"] = integer(args(o, 1, 1, "max_fails N")[0], name)
        case "force_tcp":
            args(o, 0, 0, "force_tcp")
            settings["force_tcp"] = True
        case "prefer_udp":
            args(o, 0, 0, "prefer_udp")
        case "expire":
            duration(args(o, 1, 1, "expire DURATION")[0], name)
            draft.warn(o.name, "forward: expire is not used: kdns does not keep upstream connections open")
        case "except" | "tls" | "tls_servername" | "next" | "failover" | "failfast_all_unhealthy_upstreams":
            fail(o.name, f"forward: option {name} is not supported by kdns")
        case _:
            unknown_option(d, o)
