"""CoreDNS Corefiles: ``kdns serve --corefile FILE`` runs a cluster's existing Corefile as written,
and ``kdns check --corefile FILE`` says what it would run.

- ``syntax``: the Caddyfile dialect (server blocks, directives, imports, environment variables);
- ``values``: reading a directive's words (durations, zones, addresses) and refusing bad ones;
- ``context``: what loading builds, one draft per server block and the settings they share;
- one module per plugin (``kubernetes``, ``forward``, ``cache``, ``hosts``, ``template``) or per
  group of small ones (``ops``: health, ready, prometheus; ``log``: errors, log, debug; ``server``:
  bind, reload, loop, loadbalance, autopath), each setting up its directive;
- ``plugins``: which directive each sets up, CoreDNS's plugin order, and what is refused and why;
- ``load``: the Corefile as ``ServeConfig``, with every problem found at once.
"""

from kdns.corefile.load import load
from kdns.corefile.syntax import CorefileError, Directive, Parsed, ServerBlock, Token, parse, tokenize
from kdns.corefile.values import parse_duration

__all__ = [
    "CorefileError",
    "Directive",
    "Parsed",
    "ServerBlock",
    "Token",
    "load",
    "parse",
    "parse_duration",
    "tokenize",
]
