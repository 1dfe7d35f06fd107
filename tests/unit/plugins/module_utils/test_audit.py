# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""port_audit's own decisions: UFW's first-match verdict over real rule files, which
listening sockets serve a family, and the whole audit on hosts captured in the states
users meet (IPV6=no, the legacy backend; FakeHost in fakes.py)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._audit import run_audit, ufw_rule_verdict
from ansible_collections.sipguard.firewall.plugins.module_utils._exposure import serves as _serves
from ansible_collections.sipguard.firewall.plugins.module_utils._listeners import Listener
from ansible_collections.sipguard.firewall.plugins.module_utils._request import PortRequest
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.rules import parse_rules_file
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.fakes import (
    FakeHost,
    ipv6_off_host,
    legacy_host,
)

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


# ------------------------------------------------------------------ the audit on captured hosts

def audit(host, **overrides):
    values = dict(port=5061, protocols=["tcp", "udp"], families=["ipv4", "ipv6"], state="closed",
                  action="deny", trusted_sources=[], conflicts="shadow", inactive="skip",
                  comment="sipguard", lock_timeout=0)
    values.update(overrides)
    return run_audit(host, PortRequest.from_params(values))


def by_family(result):
    return {(item["family"], item["protocol"]): item for item in result["summary"]}


def test_ipv6_off_with_ufw_drop_policy_is_exposed_on_ipv4_only():
    # `allow 5061` with IPV6=no and a listener on [::]:5061 (IPV6_V6ONLY=0, both families).
    result = audit(ipv6_off_host(proc="dual_stack"))
    summary = by_family(result)
    assert [key for key, item in summary.items() if item["exposed"]] == [("ipv4", "tcp"), ("ipv4", "udp")]
    for protocol in ("tcp", "udp"):
        ipv6 = summary[("ipv6", protocol)]
        assert ipv6["listening"] is True and ipv6["firewall"] == "drop" and ipv6["reasons"] == []
        assert ipv6["deciding_rule"] is None  # the policy DROP UFW loads for IPV6=no
        assert ipv6["ufw_verdict"] is None  # UFW's IPv6 rule list is not loaded, so it decides nothing
        assert ipv6["notes"][0].startswith("UFW does not manage IPv6 on this host (IPV6=no in /etc/default/ufw)")
    assert not any(reason.startswith("ipv6/") for reason in result["reasons"])
    assert result["ufw"]["ipv6"] is False


def test_ipv6_off_with_ufw_disabled_is_exposed_on_ipv6_saying_why():
    host = ipv6_off_host("ipv6_off_disabled.v6.save", "ufw_disabled.v4.save", proc="dual_stack", loaded=False,
                         conf="ENABLED=no\n")
    summary = by_family(audit(host))
    assert summary[("ipv6", "tcp")]["exposed"] is True
    assert summary[("ipv6", "tcp")]["reasons"][1] == (
        "no rule decides tcp port 5061, so the filter INPUT policy ACCEPT lets it in (path INPUT); "
        "UFW does not manage IPv6 on this host (IPV6=no in /etc/default/ufw)")


def test_on_the_legacy_backend_the_audit_names_it_and_calls_nothing_foreign():
    host = legacy_host(rules_dir="sipguard-prepended", proc="dual_stack")
    result = audit(host)
    assert result["ufw"]["backend"] == "legacy" and result["ufw"]["active"] is True
    assert result["exposed"] is False
    assert all(item["notes"] == [] for item in result["summary"]), result["summary"]


def test_on_the_nft_backend_legacy_tables_beside_it_are_still_named():
    host = FakeHost(saves=("legacy_alongside.nft.v4.save", "ufw_deny.v6.save"), proc="dual_stack",
                    other_saves={("legacy", "ipv4"): "legacy_alongside.legacy.v4.save"},
                    files={"/proc/net/ip_tables_names": "nat\nfilter\n"}, nft="compat_only.nft")
    summary = by_family(audit(host))
    assert summary[("ipv4", "tcp")]["notes"] == [
        "iptables-legacy holds 2 rules (tables filter, nat) that ufw on the nft backend neither shows nor manages; "
        "the kernel applies both rule sets, so NAT there takes traffic past ufw; review them with "
        "`iptables-legacy-save`"]
    assert summary[("ipv4", "udp")]["exposed"] is True
