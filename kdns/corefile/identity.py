"""``chaos [VERSION] [AUTHORS...]`` and ``whoami``: who the server is, and who the client is."""

from __future__ import annotations

from kdns.config import ChaosSettings
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, no_block


def chaos(d: Directive, draft: Draft) -> None:
    no_block(d)
    words = [t.text for t in d.args]
    draft.chaos = ChaosSettings(version=words[0] if words else None, authors=tuple(words[1:]))


def whoami(d: Directive, draft: Draft) -> None:
    no_block(d)
    args(d, 0, 0, "whoami")
    draft.whoami = True
