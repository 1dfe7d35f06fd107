# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The state generator and the probe topology, without containers: reproducible, and covering the grammar."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest

from ansible_collections.sipguard.firewall.tests.differential import grammar, topology

PLACEHOLDERS = topology.target_placeholders(0)


def test_same_seed_same_states():
    assert grammar.states(7, 50) == grammar.states(7, 50)
    assert [grammar.reproducer(state, PLACEHOLDERS) for state in grammar.states(7, 50)] == \
        [grammar.reproducer(state, PLACEHOLDERS) for state in grammar.states(7, 50)]


def test_other_seed_other_states():
    assert grammar.states(7, 50) != grammar.states(8, 50)


def test_a_state_reproduces_alone():
    """--only I gives state I of the full run: it depends on (seed, index) alone."""
    run = grammar.states(11, 40)
    assert grammar.states(11, 40, only=[3, 29]) == [run[3], run[29]]
    assert grammar.generate(11, 29) == run[29]


def test_a_longer_run_starts_with_the_shorter_one():
    assert grammar.states(5, 80)[:30] == grammar.states(5, 30)


def test_known_state_is_stable():
    """A fixture's (seed, index) must keep meaning the same state: pin one."""
    assert grammar.reproducer(grammar.generate(1, 3), PLACEHOLDERS).splitlines() == [
        "# differential state seed=1 index=3 (target 10.89.20.10 / 10.89.21.10)",
        "ufw default reject incoming",
        "ufw allow 5060,5061/udp",
        "sed -i 's/^ENABLED=.*/ENABLED=yes/' /etc/ufw/ufw.conf",
        "/lib/ufw/ufw-init start",
        "# modules: trusted_sources=[]; close action=deny conflicts=shadow inactive=fail",
    ]


def _words(states):
    return Counter(word for state in states for command in state.ufw for word in command)


def test_grammar_covers_every_dimension():
    run = grammar.states(2026, 1000)
    words = _words(run)
    for action in ("allow", "deny", "reject", "limit"):
        assert words[action] > 20, action
    for spec in ("5061", "5000:5100", "5060,5061", "5062:5070"):
        assert any(spec in word for word in words), spec
    assert words["proto"] and words["tcp"] + words["udp"] > 50
    assert words["on"] > 20 and words["eth0"] and words["eth1"]
    assert words["app"] and words["insert"] and words["out"]
    assert words["0.0.0.0/0"] and words["::/0"], "IPv4-only and IPv6-only rules for any address"
    for network in topology.NAMED_NETWORKS.values():
        assert words[network["ipv4"]] + words[network["ipv6"]], network
    assert any(word.startswith("<target-") for word in words), "rules to the target's own addresses"
    assert words[topology.ELSEWHERE["ipv4"]] + words[topology.ELSEWHERE["ipv6"]], "rules to an address not the target's"
    assert {state.ipv6 for state in run} == {"yes", "no", "no-after-rules"}
    assert {state.default_incoming for state in run} == {None, "deny", "reject", "allow"}
    assert {state.activation for state in run} == {"active", "inactive", "enabled-not-loaded"}
    assert {state.close_action for state in run} == {"deny", "reject"}
    assert {state.close_conflicts for state in run} == {"shadow", "remove", "fail"}
    assert {state.close_inactive for state in run} == {"enable", "skip", "fail"}
    assert sum(1 for state in run if state.app_ports) > 50
    assert sum(1 for state in run if state.before_rules) > 50
    assert sum(1 for state in run if state.outside) > 50
    assert sum(1 for state in run if state.has_redirect) > 5
    assert {family for state in run for family, _line in state.before_rules} == set(topology.FAMILIES)
    assert {command[0] for state in run for command in state.outside} == {"iptables", "ip6tables"}
    assert sum(1 for state in run if state.trusted_sources) > 200


def test_accepts_name_only_networks_a_probe_comes_from():
    """An allow or limit from a network no prober address is in would be exposure nobody can see."""
    nowhere = set(topology.NAMED_NETWORKS["nowhere"].values())
    for state in grammar.states(3, 1000):
        for command in state.ufw:
            if {"allow", "limit"} & set(command):
                assert not nowhere & set(command), command
        for _family, line in state.before_rules:
            assert not any(network in line for network in nowhere), line
        for command in state.outside:
            assert not nowhere & set(command), command


def test_rules_keep_to_one_family():
    """ufw refuses a rule that mixes an IPv4 source with an IPv6 destination."""
    for state in grammar.states(4, 500):
        for command in state.ufw:
            versions = set()
            for word in command:
                word = grammar.fill(word, PLACEHOLDERS)
                try:
                    versions.add(ipaddress.ip_network(word, strict=False).version)
                except ValueError:
                    continue
            assert len(versions) <= 1, command


@pytest.mark.parametrize("family", topology.FAMILIES)
def test_every_network_holds_crossed_and_direct_probers(family):
    """Each region the named networks cut the address space into has a direct and a crossed
    sender, so a rule naming a source and an interface is matched by some probe."""
    regions = {}
    for vantage in topology.vantages(family):
        inside = frozenset(name for name, network in topology.NAMED_NETWORKS.items()
                           if topology.in_networks(vantage.address, [network[family]]))
        regions.setdefault(inside, set()).add(vantage.crossed)
    assert len(regions) == 7  # three per side, and the outsiders in none
    assert all(kinds == {True, False} for kinds in regions.values()), regions


def test_probe_plan_keeps_under_ufw_limit():
    """UFW's limit rejects the sixth new connection from one source within 30 s."""
    per_source = Counter((vantage.address) for _key, _protocol, vantage, _destination, _port in topology.probe_plan())
    assert max(per_source.values()) <= 5
    keys = [key for key, *_rest in topology.probe_plan()]
    assert len(keys) == len(set(keys))


def test_crossed_packets_arrive_on_the_other_interface():
    direct, crossed = topology.Vantage("a", "ipv4", 248), topology.Vantage("a", "ipv4", 249)
    assert (direct.arrives_on("a"), direct.arrives_on("b")) == ("eth0", "eth1")
    assert (crossed.arrives_on("a"), crossed.arrives_on("b")) == ("eth1", "eth0")
    assert topology.host_address("b", "ipv6", 250) == "fd00:5020:0:b::fa"


def test_steps_fill_the_target_addresses():
    state = grammar.State(seed=0, index=0, ipv6="no-after-rules", default_incoming=None, app_ports="5061/tcp",
                          ufw=(("allow", "in", "from", "any", "to", "<target-b-ipv6>", "port", "5061"),),
                          before_rules=(("ipv4", "-A ufw-before-input -p udp --dport 5061 -j ACCEPT"),),
                          outside=(("ip6tables", "-I", "INPUT", "-p", "tcp", "--dport", "5061", "-j", "ACCEPT"),),
                          activation="active")
    steps = grammar.steps(state, topology.target_placeholders(2))
    assert steps[1] == ("ufw", [["allow", "in", "from", "any", "to", "fd00:5020:0:b::c", "port", "5061"]])
    kinds = [kind for kind, _body in steps]
    assert kinds == ["sh", "ufw", "sh", "sh", "sh", "sh", "sh"]
    assert "IPV6=no" in steps[3][1] and "ufw-init start" in steps[5][1] and steps[6][1].startswith("ip6tables -I")
