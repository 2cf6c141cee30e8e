"""The addresses that answer for ``ns.dns.<zone>``: listen addresses, wildcards widened to the host's
interfaces, loopback and link-local left out."""

from __future__ import annotations

import pytest

from kdns.sources.host_addresses import interface_addresses, serving_addresses

HOST = ["127.0.0.1", "10.0.0.5", "169.254.7.7", "::1", "fd00::2", "fe80::1", "2001:db8::9"]


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        (["127.0.0.1"], ()),  # loopback only: nothing to give, as CoreDNS gives nothing
        (["::1"], ()),
        (["10.1.2.3"], ("10.1.2.3",)),
        (["10.1.2.3", "127.0.0.1"], ("10.1.2.3",)),
        (["0.0.0.0"], ("10.0.0.5",)),  # a wildcard: that family's interface addresses
        (["::"], ("fd00::2", "2001:db8::9")),
        (["0.0.0.0", "::"], ("10.0.0.5", "fd00::2", "2001:db8::9")),
        (["10.0.0.5", "0.0.0.0"], ("10.0.0.5",)),  # once each
        (["169.254.1.1"], ()),  # link-local: no use off its link
    ],
)
def test_serving_addresses(listen, expected):
    assert serving_addresses(listen, HOST) == expected


def test_the_hosts_interfaces_are_read():
    """Every host has a loopback interface, and reading the others never fails."""
    addresses = interface_addresses()
    assert "127.0.0.1" in addresses
    assert all(":" in address or address.count(".") == 3 for address in addresses)
