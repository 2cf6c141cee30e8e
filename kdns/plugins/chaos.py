"""CoreDNS's ``chaos``: who this server is, asked in class CH (``dig CH TXT version.bind``).

``version.bind`` and ``version.server`` answer the version, ``authors.bind`` one TXT record per
author, ``hostname.bind`` and ``id.server`` the host's name; TTL 0. Other CH questions go to the
next plugin.
"""

from __future__ import annotations

from kdns import __version__
from kdns.codes import CH, NOERROR, TXT
from kdns.config import ChaosSettings
from kdns.resolver import Answer, RRset
from kdns.zone.names import to_wire

AUTHORS = ("kdns",)  # what authors.bind says when the Corefile names nobody
VERSION_NAMES = ("version.bind", "version.server")
HOSTNAME_NAMES = ("hostname.bind", "id.server")


class Chaos:
    def __init__(self, settings: ChaosSettings, *, hostname: str) -> None:
        version = settings.version or f"kdns-{__version__}"
        texts: dict[str, tuple[str, ...]] = {
            **dict.fromkeys(VERSION_NAMES, (version,)),
            **dict.fromkeys(HOSTNAME_NAMES, (hostname,)),
            "authors.bind": settings.authors or AUTHORS,
        }
        self.answers = {
            to_wire(name): Answer(
                rcode=NOERROR,
                authoritative=False,
                answer=(RRset(to_wire(name), TXT, 0, tuple((t.encode(),) for t in values), rclass=CH),),
            )
            for name, values in texts.items()
        }

    def answer(self, qname: bytes, qtype: int, qclass: int) -> Answer | None:
        """The answer to a CH TXT question this plugin knows; ``None`` for the next plugin."""
        if qclass != CH or qtype != TXT:
            return None
        return self.answers.get(qname)
