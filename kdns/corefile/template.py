"""``template CLASS TYPE [ZONES...] { ... }``: answers made from the question."""

from __future__ import annotations

from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, fail


def setup(d: Directive, draft: Draft) -> None:
    args(d, 1, None, "template CLASS [TYPE [ZONE...]]")
    options = {o.name.text for o in d.options}
    nxdomain = all(
        len(o.args) == 1 and o.args[0].text.upper() == "NXDOMAIN" for o in d.options if o.name.text == "rcode"
    )
    if "rcode" not in options or not nxdomain or options - {"rcode", "match", "fallthrough"}:
        fail(d.name, "plugin template is not supported by kdns (beyond templates that answer NXDOMAIN)")
    zones = " ".join(t.text for t in d.args[2:]) or "every name"
    draft.warn(d.name, f"template: kdns does not answer NXDOMAIN for {zones} itself; forward gets them")
