"""``errors``, ``log`` and ``debug``: what a block logs. ``log`` adds a rule to the block's query log
(``LogSettings``); ``errors`` and ``debug`` change nothing, kdns logs errors anyway."""

from __future__ import annotations

from kdns.config import COMBINED_LOG_FORMAT, COMMON_LOG_FORMAT, EVERY_ZONE, LogClass, LogRule, choices
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive, Token
from kdns.corefile.values import args, fail, no_block, unknown_option, within
from kdns.zone.names import BadName, to_wire

FORMATS = {"{common}": COMMON_LOG_FORMAT, "{combined}": COMBINED_LOG_FORMAT}  # CoreDNS's shorthands


def errors(d: Directive, draft: Draft) -> None:
    words = args(d, 0, 1, "errors [stdout]")
    if words and words[0].text != "stdout":
        fail(words[0], "errors: only stdout is a valid argument")
    for o in d.options:
        if o.name.text not in {"consolidate", "stacktrace"}:
            unknown_option(d, o)
        draft.warn(o.name, f"errors: {o.name.text} is ignored: kdns logs each error in its own format")


def log(d: Directive, draft: Draft) -> None:
    """``log [NAMES...] [FORMAT] { class CLASSES... }``: one rule of the block's query log. As CoreDNS
    reads it, a last argument of several holding a ``{`` is the format, and a lone argument a name."""
    words = list(d.args)
    fmt = COMMON_LOG_FORMAT
    if len(words) > 1 and "{" in words[-1].text:
        fmt = FORMATS.get(words[-1].text, words[-1].text)
        words.pop()
    elif len(words) == 1 and "{" in words[0].text:
        draft.warn(
            words[0],
            f"log: {words[0].text!r} is read as a name, as CoreDNS reads a lone argument "
            f"(a format needs the names before it: log . {words[0].text})",
        )
    names: dict[str, None] = {}
    for word in words:
        name = _name(word)
        if not any(within(name, zone) or within(zone, name) for zone in draft.zones):
            draft.warn(word, f"log: {name} is outside the block's zones: it logs none of the block's queries")
        names[name] = None
    classes: set[LogClass] = set()
    for o in d.options:
        if o.name.text != "class":
            unknown_option(d, o)
        for word in args(o, 1, None, "class CLASS..."):
            try:
                classes.add(LogClass(word.text))
            except ValueError:
                fail(word, f"log: unknown class {word.text!r}: expected {choices(LogClass, ', ')}")
    draft.log_rules.append(LogRule(tuple(names) or EVERY_ZONE, fmt, frozenset(classes or {LogClass.ALL})))


def _name(word: Token) -> str:
    """A name of a ``log`` line: lowercase, without its final dot; ``.`` for the root."""
    try:
        to_wire(word.text)
    except BadName as exc:
        fail(word, f"log: {exc}")
    return word.text.rstrip(".").lower() or "."


def debug(d: Directive, draft: Draft) -> None:
    no_block(d)
    args(d, 0, 0, "debug")
    draft.warn(d.name, "debug is ignored (kdns has --log-level debug)")
