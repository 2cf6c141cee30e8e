"""``acl [ZONES...] { allow|block|filter|drop [type QTYPE...] [net SOURCE...] }``: who may ask what."""

from __future__ import annotations

import ipaddress

from kdns.config import AclAction, AclRule, AclSettings, choices, parse_choice
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive, Token
from kdns.corefile.values import fail, no_block, value, zones_in
from kdns.wire.records import parse_qtype

ANY = "*"


def setup(d: Directive, draft: Draft) -> None:
    rules = [_rule(o) for o in d.options]
    if not rules:
        fail(d.name, f"acl: no rules (lines of {choices(AclAction)} with their type and net)")
    draft.acl.append(AclSettings(rules=tuple(rules), zones=zones_in(d.args)))


def _rule(o: Directive) -> AclRule:
    no_block(o, f"acl rule {o.name.text}")
    action = value(o.name, "acl", lambda text: parse_choice(AclAction, text))
    qtypes: list[int] = []
    nets: list[str] = []
    part: list[int] | list[str] | None = None
    for word in o.args:
        if word.text in {"type", "net"}:
            part = qtypes if word.text == "type" else nets
        elif part is None:
            fail(word, f"acl: {word.text!r}: expected 'type QTYPE...' or 'net SOURCE...'")
        elif part is qtypes:
            if word.text != ANY:
                qtypes.append(value(word, "acl type", parse_qtype))
        elif word.text != ANY:
            nets.append(_net(word))
    return AclRule(action, qtypes=tuple(qtypes), nets=tuple(nets))


def _net(word: Token) -> str:
    def network(text: str) -> str:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or a CIDR network") from None

    return value(word, "acl net", network)
