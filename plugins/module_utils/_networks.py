# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Addresses and networks (trusted sources), checked and compared in one way everywhere.

Private to the sipguard.firewall collection: no compatibility promise outside it.

Pure and stdlib-only (``ipaddress``), so the hosts (``ufw_port``, ``port_audit``) and the
controller (the ``normalize_networks`` and ``in_networks`` filters, the report model) use the
same code: a value the role accepts is a value the modules accept.
"""

from __future__ import annotations

import ipaddress


def parse_network(value):
    """The ip_network of an address or CIDR network. Raises ValueError naming the value, and the
    network meant when host bits are set (10.0.0.1/8 would otherwise be silently widened)."""
    text = str(value).strip()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValueError("%r is not an IPv4/IPv6 address or CIDR network: %s" % (value, exc))
    if ipaddress.ip_interface(text).ip != network.network_address:
        raise ValueError("%r has host bits set; did you mean %s?" % (value, network))
    return network


def normalize_network(value):
    """The canonical text: lower case, an address without /32 or /128, else network/prefix."""
    network = parse_network(value)
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def family_of(text):
    """ipv4 or ipv6 of a normalised address or network."""
    return "ipv6" if ":" in text else "ipv4"


def inside(addresses, networks):
    """The addresses (a zone such as %eth0 dropped; names and other text left out) that lie inside
    any of networks, in input order."""
    parsed = [parse_network(network) for network in networks]
    found = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(str(address).split("%", 1)[0].strip())
        except ValueError:
            continue
        if any(ip.version == network.version and ip in network for network in parsed):
            found.append(str(address))
    return found
