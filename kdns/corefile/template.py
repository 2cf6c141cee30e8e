"""``template CLASS TYPE [ZONES...] { ... }``: answers made from the question
(``kdns.plugins.template`` reads and runs them)."""

from __future__ import annotations

from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import fail, plain
from kdns.plugins import template


def setup(d: Directive, draft: Draft) -> None:
    words, block = plain(d)
    try:
        made = template.parse(words, block)
    except ValueError as exc:
        fail(d.name, f"template: {exc}")
    draft.templates.append(made)
