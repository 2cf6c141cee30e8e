"""``errors``, ``log`` and ``debug``: what a block logs."""

from __future__ import annotations

from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, fail, no_block, unknown_option

LOG_CLASSES = frozenset({"all", "success", "denial", "error"})


def errors(d: Directive, draft: Draft) -> None:
    words = args(d, 0, 1, "errors [stdout]")
    if words and words[0].text != "stdout":
        fail(words[0], "errors: only stdout is a valid argument")
    for o in d.options:
        if o.name.text not in {"consolidate", "stacktrace"}:
            unknown_option(d, o)
        draft.warn(o.name, f"errors: {o.name.text} is ignored: kdns logs each error in its own format")


def log(d: Directive, draft: Draft) -> None:
    classes: set[str] = set()
    for o in d.options:
        if o.name.text != "class":
            unknown_option(d, o)
        classes |= {t.text for t in args(o, 1, None, "class CLASS...")}
    if classes - LOG_CLASSES:
        fail(d.name, f"log: unknown classes {' '.join(sorted(classes - LOG_CLASSES))}")
    if classes == {"error"}:
        draft.warn(d.name, "log: only errors are asked for: kdns logs them anyway, not queries")
        return
    draft.log_queries = True
    if d.args or classes:
        draft.warn(d.name, "log: names, format and classes are ignored: kdns logs every query its own way")


def debug(d: Directive, draft: Draft) -> None:
    no_block(d)
    args(d, 0, 0, "debug")
    draft.warn(d.name, "debug is ignored (kdns has --log-level debug)")
