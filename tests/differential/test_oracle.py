# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The comparison of verdicts with probe results, on made-up results (no containers)."""

from __future__ import annotations

import pytest

from ansible_collections.sipguard.firewall.tests.differential import grammar, oracle, topology

PROBES = oracle.plan_probes()
A_HOST = topology.NAMED_NETWORKS["a-host"]


def state(trusted=(), outside=()):
    return grammar.State(seed=0, index=0, ipv6="yes", default_incoming=None, app_ports=None, ufw=(),
                         before_rules=(), outside=outside, activation="active", trusted_sources=tuple(trusted))


def network(reached):
    """Probe results: 'open' where reached(probe), else what a drop looks like."""
    return {probe.key: "open" if reached(probe) else ("filtered" if probe.protocol == "tcp" else "open|filtered")
            for probe in PROBES}


def audit(exposed=(), firewall="drop"):
    return {"summary": [{"family": family, "protocol": protocol, "listening": True,
                         "exposed": (family, protocol) in exposed, "firewall": firewall, "deciding_rule": None,
                         "reasons": ["why"] if (family, protocol) in exposed else []}
                        for family in topology.FAMILIES for protocol in topology.PROTOCOLS]}


def close(reasons=(), before=(), **extra):
    result = {"effective": not reasons, "reasons": ["%s/%s: still" % pair for pair in reasons],
              "before": {"effective": not before, "reasons": ["%s/%s: open" % pair for pair in before]}}
    result.update(extra)
    return result


def only_5061_from(network_text):
    return lambda probe: probe.port == topology.PORT and topology.in_networks(probe.vantage.address, [network_text])


NOTHING = network(lambda probe: False)
EVERYTHING = network(lambda probe: True)
ALL = [(family, protocol) for family in topology.FAMILIES for protocol in topology.PROTOCOLS]


def checks(found):
    return sorted({(item.check, item.where) for item in found})


def test_closed_everywhere_agrees():
    found, made = oracle.judge(state(), audit(), NOTHING, close(), NOTHING)
    assert found == []
    assert made["audit exposed"] == 4 and made["close reasons"] == 4 and made["other ports unchanged"] > 0


def test_open_and_closed_by_the_close_agrees():
    before = network(lambda probe: True)
    after = network(lambda probe: probe.port != topology.PORT)
    found, _made = oracle.judge(state(), audit(exposed=ALL, firewall="accept"), before, close(before=ALL), after)
    assert found == []


def test_exposure_the_audit_misses():
    before = network(lambda probe: probe.port == topology.PORT and probe.family == "ipv6")
    found, _made = oracle.judge(state(), audit(firewall="uncertain"), before, close(), NOTHING)
    assert checks(found) == [("audit exposed", "ipv6/tcp"), ("audit exposed", "ipv6/udp")]


def test_exposure_nobody_can_reach():
    """The IPV6=no case of issue 12: the modules say exposed, the loaded rules drop it."""
    exposed = [("ipv6", "tcp"), ("ipv6", "udp")]
    found, _made = oracle.judge(state(), audit(exposed=exposed), NOTHING,
                                close(reasons=exposed, before=exposed), NOTHING)
    assert checks(found) == [("audit exposed", "ipv6/tcp"), ("audit exposed", "ipv6/udp"),
                             ("close effective", "5061"),
                             ("close reasons", "ipv6/tcp"), ("close reasons", "ipv6/udp")]


def test_the_two_modules_disagreeing():
    found, _made = oracle.judge(state(), audit(), NOTHING, close(before=[("ipv4", "udp")]), NOTHING)
    assert checks(found) == [("audit vs close before", "ipv4/udp")]


def test_trusted_sources_do_not_count_as_exposure():
    trusted = list(A_HOST.values())
    reached = network(only_5061_from(A_HOST["ipv4"]))
    reached.update({key: value for key, value in network(only_5061_from(A_HOST["ipv6"])).items() if value == "open"})
    found, made = oracle.judge(state(trusted), audit(firewall="uncertain"), reached, close(), reached)
    assert found == []
    assert made["trusted access"] == 16  # a-host's two addresses x 2 destinations x 2 protocols x 2 families


def test_trusted_source_losing_access():
    trusted = list(A_HOST.values())
    reached = network(only_5061_from(A_HOST["ipv4"]))
    found, _made = oracle.judge(state(trusted), audit(firewall="uncertain"), reached, close(), NOTHING)
    assert {item.check for item in found} == {"trusted access"}
    assert len(found) == 8


def test_an_untrusted_prober_next_to_a_trusted_one_counts():
    """Trusting a-host leaves a-pair's other two addresses untrusted."""
    reached = network(only_5061_from(topology.NAMED_NETWORKS["a-pair"]["ipv4"]))
    found, _made = oracle.judge(state([A_HOST["ipv4"]]), audit(firewall="uncertain"), reached, close(), NOTHING)
    assert [item.where for item in found if item.check == "audit exposed"] == ["ipv4/tcp", "ipv4/udp"]
    assert {item.check for item in found} == {"audit exposed", "trusted access"}


@pytest.mark.parametrize("firewall,reached,wrong", [
    ("accept", lambda probe: True, False),
    ("accept", lambda probe: probe.vantage.side == "a", True),
    ("drop", lambda probe: False, False),
    ("reject", lambda probe: probe.vantage.host == 252, True),
    ("uncertain", lambda probe: probe.vantage.side == "a", False),
])
def test_firewall_verdict(firewall, reached, wrong):
    """accept: every probe got in; drop or reject: none did; uncertain: no promise."""
    before = network(reached)
    # Every other verdict as the network has it, so that only the firewall one can be wrong.
    exposed = [pair for pair in ALL if any(before[probe.key] == "open" for probe in PROBES
                                           if (probe.family, probe.protocol, probe.port) == pair + (topology.PORT,))]
    after = network(lambda probe: probe.port != topology.PORT and reached(probe))
    found, _made = oracle.judge(state(), audit(exposed=exposed, firewall=firewall), before, close(before=exposed), after)
    assert {item.check for item in found} == ({"audit firewall"} if wrong else set()), found


def test_redirect_skips_the_firewall_verdict():
    redirect = (("iptables", "-t", "nat", "-I", "PREROUTING", "-p", "tcp", "--dport", "5061", "-j", "REDIRECT",
                 "--to-ports", "8080"),)
    found, made = oracle.judge(state(outside=redirect), audit(exposed=ALL, firewall="drop"), EVERYTHING,
                               close(before=ALL), network(lambda probe: probe.port != topology.PORT))
    assert found == [] and "audit firewall" not in made


def test_refused_close_must_change_nothing():
    refused = {"failed": True, "msg": "UFW is inactive on this host and inactive=fail"}
    found, _made = oracle.judge(state(), audit(exposed=ALL, firewall="accept"), EVERYTHING, refused, EVERYTHING)
    assert found == []
    found, _made = oracle.judge(state(), audit(exposed=ALL, firewall="accept"), EVERYTHING, refused,
                                network(lambda probe: probe.port != topology.PORT))
    assert {item.check for item in found} == {"close refused: nothing changed"}


def test_skipped_close_must_change_nothing():
    skipped = {"effective": False, "skipped": True, "reasons": ["UFW is inactive and inactive=skip"]}
    found, _made = oracle.judge(state(), audit(exposed=ALL, firewall="accept"), EVERYTHING, skipped, EVERYTHING)
    assert found == []


def test_other_ports_must_not_change():
    after = network(lambda probe: probe.port not in (topology.PORT, 22))
    found, _made = oracle.judge(state(), audit(exposed=ALL, firewall="accept"), EVERYTHING, close(before=ALL), after)
    assert {item.check for item in found} == {"other ports unchanged"}
    assert all("/22/" in item.where for item in found)


def test_a_datagram_the_listener_got_counts_as_reached():
    """With IPV6=no UFW drops all IPv6 output: no echo, but the server got the datagram."""
    before = {key: oracle.DELIVERED if value == "open" else value
              for key, value in network(lambda probe: probe.protocol == "udp" and probe.port == topology.PORT).items()}
    found, _made = oracle.judge(state(), audit(firewall="uncertain"), before, close(), NOTHING)
    assert checks(found) == [("audit exposed", "ipv4/udp"), ("audit exposed", "ipv6/udp")]


def test_closed_and_filtered_are_the_same_to_other_ports():
    """ICMP errors are rate-limited: a REJECT may answer one probe and not the next."""
    rejected = {key: "closed" for key in NOTHING}
    found, _made = oracle.judge(state(), audit(firewall="uncertain"), rejected, close(), NOTHING)
    assert found == []


def test_outsiders_are_never_trusted():
    """Trusting both networks leaves the outsiders: exposure to the rest of the world shows."""
    both = list(topology.NAMED_NETWORKS["both-lans"].values())
    found, _made = oracle.judge(state(both), audit(exposed=ALL, firewall="accept"), EVERYTHING, close(before=ALL),
                                network(lambda probe: probe.port != topology.PORT or probe.vantage.side != "x"))
    assert found == []
    found, _made = oracle.judge(state(both), audit(firewall="accept"), EVERYTHING, close(), EVERYTHING)
    assert {item.check for item in found} == {"audit exposed", "close reasons", "close effective"}


def test_a_dead_listener_is_the_harness_failing():
    result = audit()
    result["summary"][0]["listening"] = False
    with pytest.raises(oracle.HarnessError, match="listener"):
        oracle.judge(state(), result, NOTHING, close(), NOTHING)


def test_network_summary_lines():
    lines = oracle.network_summary(PROBES, network(only_5061_from(A_HOST["ipv4"])))
    assert lines[0] == "ipv4/tcp/5061: reached from a248>a a248>b a249>a a249>b (4 of 28 probes); filtered 24"
    assert lines[-1] == "ipv6/tcp/8080: reached by no probe; filtered 3"
