"""``hosts [FILE [ZONES...]] { ... }``: static names from a hosts file and inline lines."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from kdns.config import COREFILE_HOSTS_FILE, EVERY_ZONE, HOSTS_TTL, HostsSettings
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, duration, fail, integer, no_block, zones_in


def setup(d: Directive, draft: Draft) -> None:
    words = d.args
    settings: dict[str, object] = {"path": Path(words[0].text) if words else COREFILE_HOSTS_FILE}
    zones = zones_in(words[1:])
    if zones:
        settings["zones"] = zones
    entries: list[tuple[str, str]] = []
    for o in d.options:
        no_block(o, f"hosts option {o.name.text}")
        _option(o, settings, entries, draft)
    draft.hosts = HostsSettings(**settings, entries=tuple(entries))  # type: ignore[arg-type]


def _option(o: Directive, settings: dict[str, object], entries: list[tuple[str, str]], draft: Draft) -> None:
    name = o.name.text
    match name:
        case "ttl":
            settings["ttl"] = integer(args(o, 1, 1, "ttl SECONDS")[0], "hosts ttl", HOSTS_TTL)
        case "reload":
            settings["reload"] = duration(args(o, 1, 1, "reload DURATION")[0], "hosts reload")
        case "fallthrough":
            settings["fallthrough"] = zones_in(o.args) or EVERY_ZONE
        case "no_reverse" | "fallthrough_unsupported":
            args(o, 0, 0, name)
            draft.warn(o.name, f"hosts: {name} is ignored")
        case _:
            if settings.get("fallthrough"):
                fail(o.name, f"hosts: unknown option {name!r}")
            try:
                ip = ipaddress.ip_address(name.split("%")[0])
            except ValueError:
                draft.warn(o.name, f"hosts: {name!r} is not an IP address; the line is skipped")
                return
            if not o.args:
                draft.warn(o.name, f"hosts: {name} has no names; the line is skipped")
            entries += [(str(ip), t.text.rstrip(".").lower()) for t in o.args]
