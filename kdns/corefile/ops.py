"""``health``, ``ready`` and ``prometheus``: the HTTP endpoints beside DNS, one of each for the whole
server whichever block names them (CoreDNS shares one listener per address as well)."""

from __future__ import annotations

from dataclasses import replace

from kdns.config import COREFILE_METRICS, DEFAULT_HEALTH, DEFAULT_READY
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, duration, host_port, no_block, unknown_option


def health(d: Directive, draft: Draft) -> None:
    words = args(d, 0, 1, "health [ADDRESS]")
    address = host_port(words[0], "health") if words else DEFAULT_HEALTH
    shared = draft.shared
    lameduck = shared.ops.lameduck
    for o in d.options:
        no_block(o)
        if o.name.text != "lameduck":
            unknown_option(d, o)
        lameduck = duration(args(o, 1, 1, "lameduck DURATION")[0], "lameduck")
    _one(d, draft, "health", address)
    shared.ops = replace(shared.ops, health=address, lameduck=lameduck)


def ready(d: Directive, draft: Draft) -> None:
    no_block(d)
    words = args(d, 0, 1, "ready [ADDRESS]")
    address = host_port(words[0], "ready") if words else DEFAULT_READY
    _one(d, draft, "ready", address)
    draft.shared.ops = replace(draft.shared.ops, ready=address)


def prometheus(d: Directive, draft: Draft) -> None:
    no_block(d)
    words = args(d, 0, 1, "prometheus [ADDRESS]")
    address = host_port(words[0], "prometheus") if words else COREFILE_METRICS
    _one(d, draft, "metrics", address)
    draft.shared.ops = replace(draft.shared.ops, metrics=address)


def _one(d: Directive, draft: Draft, field: str, address: str) -> None:
    before = getattr(draft.shared.ops, field)
    if before is not None and before != address:
        draft.warn(d.name, f"{d.name.text}: kdns serves one endpoint; {address} replaces {before}")
