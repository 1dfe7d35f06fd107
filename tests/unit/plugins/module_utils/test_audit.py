# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""port_audit's own decisions: UFW's first-match verdict over real rule files, and
which listening sockets serve a family."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._audit import _serves, ufw_rule_verdict
from ansible_collections.sipguard.firewall.plugins.module_utils._listeners import Listener
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw_rules import parse_rules_file

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "ufw")


def rules(directory, name="user.rules"):
    with open(os.path.join(FIXTURES, directory, name), encoding="utf-8") as handle:
        return parse_rules_file(handle.read()).rules


@pytest.mark.parametrize("directory, name, protocol, action, rule, open_from", [
    ("allow-5061", "user.rules", "tcp", "allow", "5061 ALLOW IN Anywhere", []),
    ("ranges", "user.rules", "udp", "allow", "5000:6000/udp ALLOW IN Anywhere", []),
    ("sipguard-prepended", "user.rules", "tcp", "deny", "5061/tcp DENY IN Anywhere # sipguard", []),
    ("sipguard-prepended", "user.rules", "udp", "reject", "5061/udp REJECT IN Anywhere # sipguard", []),
    # The range comes first and decides for everyone; the source-limited allows after it never count.
    ("sipguard-before", "user.rules", "tcp", "allow", "5060:5062/tcp ALLOW IN Anywhere", []),
    ("sipguard-before", "user6.rules", "tcp", "allow", "5060:5062/tcp (v6) ALLOW IN Anywhere (v6)", []),
    ("source-restricted", "user.rules", "udp", "default deny", None,
     ["203.0.113.7 (5061 ALLOW IN 203.0.113.7)"]),
    ("interfaces", "user.rules", "tcp", "default deny", None,
     ["on eth0 (5061/tcp on eth0 ALLOW IN Anywhere)"]),
    ("route", "user.rules", "tcp", "default deny", None, []),
    ("out", "user.rules", "tcp", "default deny", None, []),
])
def test_ufw_first_match_with_the_sources_it_stays_open_from(directory, name, protocol, action, rule, open_from):
    verdict = ufw_rule_verdict(rules(directory, name), 5061, protocol, "deny")
    assert verdict == dict(action=action, rule=rule, open_from=open_from)


def listener(family, address, wildcard, dual_stack):
    return Listener(protocol="tcp", family=family, address=address, port=5061, inode=1, uid=0,
                    wildcard=wildcard, loopback_only=False, dual_stack=dual_stack)


@pytest.mark.parametrize("socket, family, serves", [
    (listener("ipv4", "0.0.0.0", True, False), "ipv4", True),
    (listener("ipv4", "0.0.0.0", True, False), "ipv6", False),
    (listener("ipv6", "::", True, None), "ipv4", True),   # V6ONLY unknown: could take IPv4, say so
    (listener("ipv6", "::", True, False), "ipv4", False),  # known IPv6-only
    (listener("ipv6", "fd00::1", False, False), "ipv4", False),
    (listener("ipv6", "::", True, None), "ipv6", True),
])
def test_which_family_a_socket_serves(socket, family, serves):
    assert _serves(socket, family) is serves
