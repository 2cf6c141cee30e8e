"""CoreDNS's ``log``: a line per query, as the rules of the block the query went to say.

A listener whose blocks log (some ``LogSettings``) calls its ``QueryLogger`` for every query it
answers; one whose blocks do not has none, and its transports skip the call. The logger finds the
query's block as the router does (the longest of the listener's zones holding the question's name),
then takes the first of that block's rules with a name holding it, as CoreDNS's log takes its first
matching name: that rule alone decides. The line is logged (to ``kdns.query``, at INFO) when the
rule's classes hold the response's class (``classify``), in the rule's format (``logformat``). A
query without a question to read went to no block and is not logged, as CoreDNS never passes one to
its plugins.

Example, the default format: ``127.0.0.1:55231 - 28394 "A IN example.org. udp 41 false 4096" NOERROR
qr,rd,ra 68 0.000347s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kdns.config import LogClass, LogSettings
from kdns.ops.logformat import Exchanged, Format, parse_format, render
from kdns.transport.exchange import Via
from kdns.wire.classify import classify
from kdns.wire.message import read_message
from kdns.zone.names import is_within, longest_zone, to_wire

log = logging.getLogger("kdns.query")


@dataclass(frozen=True, slots=True)
class Rule:
    """A ``LogRule`` made ready: its names in wire form, its format read."""

    names: tuple[bytes, ...]
    format: Format
    classes: frozenset[LogClass] | None  # None: every class, nothing to classify


def compile_rules(settings: LogSettings | None) -> tuple[Rule, ...]:
    if settings is None:
        return ()
    return tuple(
        Rule(
            tuple(to_wire(name) for name in rule.names),
            parse_format(rule.format),
            None if LogClass.ALL in rule.classes else rule.classes,
        )
        for rule in settings.rules
    )


class QueryLogger:
    """The query log of one listener: its blocks' zones and log rules."""

    def __init__(
        self,
        blocks: Iterable[tuple[tuple[str, ...], LogSettings | None]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.blocks: dict[bytes, tuple[Rule, ...]] = {}
        for zones, settings in blocks:
            rules = compile_rules(settings)
            self.blocks |= {to_wire(zone): rules for zone in zones}
        self.clock = clock

    def __call__(self, client: tuple, query: bytes, response: bytes, via: Via, seconds: float) -> None:
        text = self.line(client, query, response, via, seconds)
        if text is not None:
            log.info("%s", text)

    def line(self, client: tuple, query: bytes, response: bytes, via: Via, seconds: float) -> str | None:
        """The line for this query, or None when its block's rules do not log it."""
        asked = read_message(query)
        if asked is None or asked.question is None:
            return None
        qname = asked.question[0].lower()
        zone = longest_zone(qname, self.blocks)
        if zone is None:
            return None
        for rule in self.blocks[zone]:
            if any(is_within(qname, name) for name in rule.names):
                answered = read_message(response)
                if rule.classes is not None and classify(answered, int(self.clock())) not in rule.classes:
                    return None
                exchanged = Exchanged(
                    client, via.local, via.proto, asked, len(query), answered, len(response), seconds
                )
                return render(rule.format, exchanged)
        return None
