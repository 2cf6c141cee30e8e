"""``k8s_external [ZONES...] { apex APEX; ttl TTL; headless; fallthrough [ZONES...] }``: Services'
external and load balancer IPs under zones of their own, read from the cluster the block's
``kubernetes`` follows."""

from __future__ import annotations

from kdns.config import EVERY_ZONE, TTL, ExternalSettings
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, fail, integer, no_block, unknown_option, zones_in
from kdns.zone.names import BadName, to_wire


def setup(d: Directive, draft: Draft) -> None:
    settings: dict[str, object] = {"zones": zones_in(d.args)}
    for o in d.options:
        name = o.name.text
        no_block(o, f"k8s_external option {name}")
        match name:
            case "apex":
                apex = args(o, 1, 1, "apex APEX")[0]
                try:
                    to_wire(apex.text)
                except BadName as exc:
                    fail(apex, f"k8s_external: apex: {exc}")
                settings["apex"] = apex.text.rstrip(".").lower()
            case "ttl":
                settings["ttl"] = integer(args(o, 1, 1, "ttl SECONDS")[0], "k8s_external ttl", TTL)
            case "headless":
                args(o, 0, 0, "headless")
                settings["headless"] = True
            case "fallthrough":
                settings["fallthrough"] = zones_in(o.args) or EVERY_ZONE
            case _:
                unknown_option(d, o)
    if not draft.kubernetes:
        fail(d.name, "k8s_external needs the kubernetes plugin in the same server block")
    draft.external = ExternalSettings(**settings)  # type: ignore[arg-type]
