"""CoreDNS plugins beyond ``kubernetes`` and ``forward``, as a server block runs them.

Each module owns one plugin: its settings (a frozen value, which the Corefile's parser for that
plugin builds) and its logic, kept pure where it can be (a rewrite of a question and its mapping
back, a template's match and records) so that it is tested with tables. A server block runs them in
CoreDNS's plugin order.
"""
