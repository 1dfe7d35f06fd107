# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: normalize_networks
short_description: Validate and normalise a list of addresses and CIDR networks with netaddr
version_added: 0.1.0
author:
  - sipguard maintainers (@sipguard)
description:
  - Turns each IPv4 or IPv6 address or CIDR network into its canonical text (C(2001:DB8::/32) becomes
    C(2001:db8::/32), a single address loses its C(/32) or C(/128)), dropping duplicates and keeping order.
  - Fails naming the value for anything that is not an address or network, and for a network written
    with host bits set (C(10.0.0.1/8)), which would otherwise be silently widened.
  - Runs on the controller; needs the Python library C(netaddr).
options:
  _input:
    description: Addresses and CIDR networks.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Validate the trusted sources before anything changes
  ansible.builtin.set_fact:
    trusted: "{{ ['192.0.2.0/24', '2001:DB8::/32', '198.51.100.7/32'] | sipguard.firewall.normalize_networks }}"
    # ['192.0.2.0/24', '2001:db8::/32', '198.51.100.7']
"""

RETURN = r"""
_value:
  description: The canonical addresses and networks, in the order given, without duplicates.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError


def _netaddr():
    """netaddr, imported on first use: every Ansible worker that templates the role's
    (usually empty) trusted sources would otherwise pay its ~50 ms import."""
    try:
        import netaddr  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise AnsibleFilterError("sipguard.firewall.normalize_networks needs the Python library netaddr "
                                 "on the controller (pip install netaddr)")
    return netaddr


def _network(value):
    netaddr = _netaddr()
    text = str(value).strip()
    try:
        # netaddr 1.x parses with inet_pton rules: legacy spellings such as "10.1" are refused.
        network = netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise AnsibleFilterError("%r is not an IPv4/IPv6 address or CIDR network: %s" % (value, exc))
    if network.ip != network.network:
        raise AnsibleFilterError("%r has host bits set; did you mean %s?" % (value, network.cidr))
    return network


def normalize_networks(values):
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise AnsibleFilterError("expected a list of addresses and networks, got %r" % (values,))
    result = []
    for value in values:
        network = _network(value)
        host_prefix = 32 if network.version == 4 else 128
        text = str(network.ip) if network.prefixlen == host_prefix else str(network.cidr)
        if text not in result:
            result.append(text)
    return result


class FilterModule:
    def filters(self):
        return {"normalize_networks": normalize_networks}
