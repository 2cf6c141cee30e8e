"""A Corefile as ``ServeConfig``: each server block's directives set up in turn, every problem found
on the way reported at once.

A block's key names its zones and port (``[dns://]ZONE[:PORT]``, reverse zones as CIDRs); a block
whose keys name several ports serves on each. ``kubernetes`` goes first within a block (``autopath``
and the others read what it sets); the other directives follow in the order written, each checked
on its own, so one bad directive does not hide the next.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from kdns.config import COREFILE_PORT, ServeConfig, ServerSettings, ZoneSettings, parse_port
from kdns.corefile.context import Draft, Shared
from kdns.corefile.plugins import FINISHES, REPEATABLE, SETUPS, handlers, refusal
from kdns.corefile.syntax import CorefileError, Directive, ServerBlock, Token, parse
from kdns.corefile.values import Refusal, fail, value, zones_of


def load(
    path: Path, *, environ: Mapping[str, str] = os.environ, import_dir: Path | None = None
) -> tuple[ServeConfig, list[str]]:
    """The ServeConfig a Corefile asks for, and warnings (``FILE:LINE: ...``) for what kdns ignores.
    Raises ``CorefileError`` with every problem found."""
    path = Path(path)
    parsed = parse(path, environ=environ, import_dir=import_dir)
    if not parsed.blocks:
        raise CorefileError(f"{path}:1: no server block")
    shared = Shared(environ, warnings=list(parsed.warnings))
    problems: list[str] = []
    servers: list[ServerSettings] = []
    served: dict[tuple[str, int], Token] = {}
    for block in parsed.blocks:
        try:
            keys = _keys(block)
        except Refusal as exc:
            problems += exc.problems
            continue
        for port, zones in keys.items():
            for zone in zones:
                if (zone, port) in served:
                    problems.append(
                        f"{block.keys[0].where}: zone {zone} port {port} is served twice "
                        f"(first at {served[(zone, port)].where})"
                    )
                served.setdefault((zone, port), block.keys[0])
        draft = Draft(shared, zones=tuple(z for zones in keys.values() for z in zones), key=block.keys[0])
        problems += _set_up(block, draft)
        plugins = handlers([d.name.text for d in block.directives])
        servers += [replace(draft.settings(zones, port), plugins=plugins) for port, zones in keys.items()]
    problems += _listeners_apart(servers, parsed.blocks)
    if problems:
        raise CorefileError(*problems)
    cluster = shared.cluster
    config = ServeConfig(
        zone=cluster.zone if cluster else ZoneSettings(),
        kube=cluster.kube if cluster else None,  # no kubernetes plugin: no cluster to follow
        namespaces=cluster.namespaces if cluster else (),
        labels=cluster.labels if cluster else None,
        servers=tuple(servers),
        ops=shared.ops,
        corefile=path,
        imports=(*parsed.files[1:], *(Path(pattern) for pattern in parsed.patterns)),
        reload=shared.reload,
    )
    return config, list(dict.fromkeys(shared.warnings))


def _keys(block: ServerBlock) -> dict[int, tuple[str, ...]]:
    """The zones of a block's keys, by port."""
    by_port: dict[int, list[str]] = {}
    for key in block.keys:
        zones, port = _server_key(key)
        by_port.setdefault(port, []).extend(zones)
    return {port: tuple(dict.fromkeys(zones)) for port, zones in by_port.items()}


def _server_key(token: Token) -> tuple[list[str], int]:
    """The zones and port of a server block key ``[dns://]ZONE[:PORT]``."""
    text = token.text
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme != "dns":
            fail(token, f"{scheme}:// servers are not supported by kdns (only plain DNS)")
    zone, port = text, None
    if text.count(":") == 1 or (text.count(":") > 1 and "/" not in text):
        zone, _, port = text.rpartition(":")
    if not zone:
        fail(token, f"{token.text!r} names no zone")
    zones = zones_of(Token(zone, token.file, token.line))
    if port is None:
        return zones, COREFILE_PORT
    return zones, value(token, repr(token.text), lambda _: parse_port(port))


def _set_up(block: ServerBlock, draft: Draft) -> list[str]:
    """Set up each directive of ``block`` into ``draft``; the problems found."""
    problems: list[str] = []
    seen: dict[str, Token] = {}
    ordered = sorted(block.directives, key=lambda d: d.name.text != "kubernetes")
    for d in ordered:
        try:
            _check_once(d, seen)
            setup = SETUPS.get(d.name.text)
            if setup is None:
                fail(d.name, refusal(d.name.text))
            setup(d, draft)
        except Refusal as exc:
            problems += exc.problems
    for finish in FINISHES:
        finish(draft)
    return sorted(problems, key=_position)


def _check_once(d: Directive, seen: dict[str, Token]) -> None:
    name = d.name.text
    if name in seen and name not in REPEATABLE:
        fail(d.name, f"{name} is given twice in one server block (first at {seen[name].where})")
    seen.setdefault(name, d.name)


def _position(problem: str) -> tuple[str, int]:
    file, _, rest = problem.partition(":")
    line = rest.partition(":")[0]
    return file, int(line) if line.isdigit() else 0


def _listeners_apart(servers: list[ServerSettings], blocks: list[ServerBlock]) -> list[str]:
    """Blocks on one port must listen on the same addresses or on addresses apart (as sockets do)."""
    by_port: dict[int, set[tuple[str, ...]]] = {}
    for server in servers:
        by_port.setdefault(server.port, set()).add(server.listen)
    problems = []
    for port, listens in by_port.items():
        addresses = [a for listen in listens for a in listen]
        if len(addresses) != len(set(addresses)) or (
            len(listens) > 1 and any(a in {"0.0.0.0", "::"} for a in addresses)
        ):
            where = blocks[0].keys[0].where
            problems.append(
                f"{where}: blocks on port {port} bind overlapping addresses "
                f"({'; '.join(' '.join(listen) for listen in sorted(listens))}): give them the same bind, "
                "or addresses apart"
            )
    return problems
