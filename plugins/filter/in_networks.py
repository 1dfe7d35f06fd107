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
    anything that is not an address (a name) is left out; a zone (C(fe80::1%eth0)) is ignored.
  - The C(sipguard.firewall.sips) role uses it to tell whether the controller itself is a trusted
    source, in which case the port being open to it is the intended result.
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

from ansible_collections.sipguard.firewall.plugins.module_utils._networks import inside


def in_networks(addresses, networks):
    try:
        return inside(addresses, networks or [])
    except ValueError as exc:
        raise AnsibleFilterError("in_networks: bad network: %s" % exc)


class FilterModule:
    def filters(self):
        return {"in_networks": in_networks}
