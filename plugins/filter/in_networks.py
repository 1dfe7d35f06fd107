# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: in_networks
short_description: The addresses that fall inside any of the given networks
version_added: 0.1.0
author:
  - sipguard maintainers (@sipguard)
description:
  - Keeps the addresses (IPv4 or IPv6) of the input that lie inside at least one of O(networks);
    anything that is not an address (a link-local address with a zone, a name) is left out.
  - The C(sipguard.firewall.sips) role uses it to tell whether the controller itself is a trusted
    source, in which case the port being open to it is the intended result.
  - Runs on the controller; needs the Python library C(netaddr).
options:
  _input:
    description: Addresses.
    type: list
    elements: str
    required: true
  networks:
    description: Addresses and CIDR networks, as C(sipguard.firewall.normalize_networks) returns them.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Which of the controller's addresses are trusted?
  ansible.builtin.debug:
    msg: "{{ ['192.0.2.7', '203.0.113.9'] | sipguard.firewall.in_networks(['192.0.2.0/24']) }}"
    # ['192.0.2.7']
"""

RETURN = r"""
_value:
  description: The input addresses inside any of the networks, in input order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError


def in_networks(addresses, networks):
    if not networks:
        return []  # nothing is inside no network; netaddr (~50 ms to import) is not needed
    try:
        import netaddr  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise AnsibleFilterError("sipguard.firewall.in_networks needs the Python library netaddr on the controller")
    try:
        cidrs = [netaddr.IPNetwork(network) for network in networks]
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise AnsibleFilterError("in_networks: bad network in %r: %s" % (networks, exc))
    inside = []
    for address in addresses:
        try:
            ip = netaddr.IPAddress(str(address))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            continue
        if any(ip.version == cidr.version and ip in cidr for cidr in cidrs):
            inside.append(str(address))
    return inside


class FilterModule:
    def filters(self):
        return {"in_networks": in_networks}
