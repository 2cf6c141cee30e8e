"""``bind``, ``bufsize``, ``reload``, ``loop``, ``loadbalance`` and ``autopath``: how a block's server
runs."""

from __future__ import annotations

from kdns.config import (
    COREFILE_BUFSIZE,
    COREFILE_RELOAD,
    LOADBALANCE_POLICY,
    MAX_UDP_SIZE,
    RELOAD,
    RELOAD_JITTER,
    parse_ip,
)
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, duration, fail, integer, no_block


def bind(d: Directive, draft: Draft) -> None:
    if d.block is not None:
        fail(d.name, "bind: except is not supported by kdns")
    for token in args(d, 1, None, "bind ADDRESS..."):
        try:
            draft.listen.append(parse_ip(token.text))
        except ValueError as exc:
            fail(token, f"bind: {exc} (interface names are not supported)")


def bufsize(d: Directive, draft: Draft) -> None:
    no_block(d)
    words = args(d, 0, 1, "bufsize [SIZE]")
    draft.bufsize = integer(words[0], "bufsize", MAX_UDP_SIZE) if words else COREFILE_BUFSIZE


def reload(d: Directive, draft: Draft) -> None:
    no_block(d)
    words = args(d, 0, 2, "reload [INTERVAL [JITTER]]")
    draft.shared.reload = duration(words[0], "reload interval", RELOAD) if words else COREFILE_RELOAD
    if len(words) > 1:
        duration(words[1], "reload jitter", RELOAD_JITTER)


def loop(d: Directive, draft: Draft) -> None:
    no_block(d)
    args(d, 0, 0, "loop")


def loadbalance(d: Directive, draft: Draft) -> None:
    no_block(d)
    words = args(d, 0, None, f"loadbalance [{LOADBALANCE_POLICY}]")
    if words and (words[0].text != LOADBALANCE_POLICY or len(words) > 1):
        fail(words[0], f"loadbalance: policy {words[0].text!r} is not supported (only {LOADBALANCE_POLICY})")
    draft.loadbalance = True


def autopath(d: Directive, draft: Draft) -> None:
    no_block(d)
    if [t.text for t in d.args] != ["@kubernetes"]:
        fail(d.name, "autopath: only 'autopath @kubernetes' is supported")
    if not draft.pods_verified:
        draft.warn(d.name, "autopath does nothing without 'pods verified' (as in CoreDNS)")
        return
    draft.autopath = True
