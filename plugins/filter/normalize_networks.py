# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: normalize_networks
short_description: Validate and normalise a list of addresses and CIDR networks
version_added: 0.1.0
author:
  - sipguard maintainers (@sipguard)
description:
  - Turns each IPv4 or IPv6 address or CIDR network into its canonical text (C(2001:DB8::/32) becomes
    C(2001:db8::/32), a single address loses its C(/32) or C(/128)), dropping duplicates and keeping order.
  - Fails naming the value for anything that is not an address or network, and for a network written
    with host bits set (C(10.0.0.1/8)), which would otherwise be silently widened.
  - The same check M(sipguard.firewall.ufw_port) and M(sipguard.firewall.port_audit) make of their
    O(sipguard.firewall.ufw_port#module:trusted_sources) on the hosts, one implementation with Python's
    C(ipaddress) - a value accepted here is accepted there.
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

from ansible_collections.sipguard.firewall.plugins.module_utils._networks import normalize_network


def normalize_networks(values):
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise AnsibleFilterError("expected a list of addresses and networks, got %r" % (values,))
    result = []
    for value in values:
        try:
            text = normalize_network(value)
        except ValueError as exc:
            raise AnsibleFilterError(str(exc))
        if text not in result:
            result.append(text)
    return result


class FilterModule:
    def filters(self):
        return {"normalize_networks": normalize_networks}
