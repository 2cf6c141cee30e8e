"""``transfer [ZONES...] { to ADDRESS... }``: zone transfers of the cluster's zones, to whom."""

from __future__ import annotations

from kdns.config import TransferSettings, parse_transfer_to
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, fail, no_block, unknown_option, value, zones_in


def setup(d: Directive, draft: Draft) -> None:
    to: list[str] = []
    for o in d.options:
        no_block(o, f"transfer option {o.name.text}")
        if o.name.text != "to":
            unknown_option(d, o)
        to += [value(t, "transfer to", parse_transfer_to) for t in args(o, 1, None, "to ADDRESS...")]
    if not to:
        fail(d.name, "transfer: 'to' is required (the addresses that may transfer the zones)")
    draft.transfer = TransferSettings(to=tuple(dict.fromkeys(to)), zones=zones_in(d.args))
