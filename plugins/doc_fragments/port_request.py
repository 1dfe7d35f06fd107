# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The options ufw_port and port_audit share: which paths of the port, and who is trusted.

    Their argument spec is ``REQUEST_ARGUMENT_SPEC`` in ``plugins/module_utils/_request.py``."""

    DOCUMENTATION = r"""
options:
  protocols:
    description: The transport protocols of the port. At least one.
    type: list
    elements: str
    choices: [tcp, udp]
    default: [tcp, udp]
  families:
    description: The address families of the port. At least one.
    type: list
    elements: str
    choices: [ipv4, ipv6]
    default: [ipv4, ipv6]
  trusted_sources:
    description:
      - Addresses or CIDR networks (IPv4 and IPv6) the port stays open to. Access from them alone
        is not exposure; M(sipguard.firewall.ufw_port) puts their allow rules ahead of its deny.
      - A network given with host bits set (V(10.0.0.1/8)) is an error, not silently widened.
    type: list
    elements: str
    default: []
"""
