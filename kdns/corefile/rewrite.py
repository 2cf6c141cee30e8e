"""``rewrite [continue|stop] FIELD ...`` (or its ``{ }`` form): rules the block applies to a question
before its other plugins answer, and to their answer after (``edns0`` rules to the options of the
queries it forwards); ``kdns.plugins.rewrite`` reads them."""

from __future__ import annotations

from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import fail, plain
from kdns.plugins import rewrite


def setup(d: Directive, draft: Draft) -> None:
    words, block = plain(d)
    try:
        rule = rewrite.parse(words, block)
    except ValueError as exc:
        fail(d.name, f"rewrite: {exc}")
    draft.rewrites.append(rule)
