# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import ipaddress
import os

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.bypasses import (
    find_bypasses,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import (
    BYPASS_BEFORE_RULES,
    BYPASS_INPUT_ACCEPT,
    BYPASS_LEGACY_RULES,
    BYPASS_NAT,
    BYPASS_NFT_TABLE,
    BYPASS_UFW_ALLOWS,
    Criterion,
    NetfilterParseError,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import (
    parse_iptables_save,
    parse_nft_ruleset,
    unmanaged_nft_tables,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.walk import (
    has_ufw_chains,
    verdict_for_port,
)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'netfilter')


def fixture_text(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def tables_of(name):
    return parse_iptables_save(fixture_text(name))


def family_of(name):
    return 'ipv6' if '.v6.' in name else 'ipv4'


def rule_at(name, table, chain, index):
    return tables_of(name)[table].chains[chain].rules[index - 1]


# Counted independently of the parser: `awk '/^\*/{t=substr($0,2)} /^:/{k[t]++} /^-A/{c[t]++}'`.
@pytest.mark.parametrize('name, expected', [
    ('ufw_deny.v4.save', {'filter': (35, 69)}),
    ('ufw_deny.v6.save', {'filter': (34, 109)}),
    ('ufw_deny.legacy.v4.save', {}),
    ('ufw_disabled.v4.save', {'filter': (21, 18)}),
    ('no_tables.v4.save', {}),
    ('ufw_legacy_deny.v4.save', {'filter': (35, 69)}),
    ('ufw_legacy_deny.v6.save', {'filter': (34, 109)}),
    ('input_accept_ahead.v4.save', {'filter': (35, 70)}),
    ('goto_chain.v4.save', {'filter': (36, 72)}),
    ('before_rules_accept.v4.save', {'filter': (35, 70)}),
    ('before_rules_accept.v6.save', {'filter': (34, 110)}),
    ('docker_published.v4.save', {'filter': (39, 82), 'nat': (5, 8)}),
    ('redirect.v4.save', {'filter': (35, 69), 'nat': (4, 3)}),
    ('kubernetes.v4.save', {'filter': (43, 81), 'nat': (18, 28)}),
    ('multiport_ranges.v4.save', {'filter': (35, 71)}),
    ('unknown_matches.v4.save', {'filter': (35, 76)}),
    ('hardening.v4.save', {'filter': (35, 75)}),
    ('legacy_alongside.nft.v4.save', {'filter': (35, 69)}),
    ('legacy_alongside.legacy.v4.save', {'filter': (3, 1), 'nat': (4, 1)}),
    ('ipv6_off.v4.save', {'filter': (35, 68)}),
    ('ipv6_off.v6.save', {'filter': (3, 2)}),
    ('ipv6_off_policy_accept.v6.save', {'filter': (3, 2)}),
    ('ipv6_off_accept_rule.v6.save', {'filter': (3, 3)}),
    ('ipv6_off_disabled.v6.save', {'filter': (3, 2)}),
    ('ufw_legacy_deny.nft.v4.save', {}),
    ('switched_to_nft.v4.save', {}),
    ('switched_to_nft.legacy.v4.save', {'filter': (35, 69)}),
    ('nft_alongside.nft.v4.save', {'nat': (4, 1)}),
])
def test_parse_counts_chains_and_rules(name, expected):
    tables = tables_of(name)
    counts = {table.name: (len(table.chains), sum(len(chain.rules) for chain in table.chains.values()))
              for table in tables.values()}
    assert counts == expected


def test_parse_keeps_policies_and_rule_positions():
    filter_table = tables_of('ufw_deny.v4.save')['filter']
    assert (filter_table.chains['INPUT'].policy, filter_table.chains['FORWARD'].policy) == ('ACCEPT', 'DROP')
    assert filter_table.chains['ufw-user-input'].policy is None
    deny = filter_table.chains['ufw-user-input'].rules[1]
    assert (deny.table, deny.chain, deny.index, deny.line_number) == ('filter', 'ufw-user-input', 2, 102)
    assert deny.raw == '-A ufw-user-input -p tcp -m tcp --dport 5061 -j DROP'


@pytest.mark.parametrize('name, table, chain, index, read, expected', [
    ('docker_published.v4.save', 'nat', 'DOCKER', 2, lambda rule: (
        rule.protocol.value, rule.in_interface, rule.dports.ranges, rule.target, rule.target_options),
     ('tcp', Criterion('-i', 'docker0', True), ((5061, 5061),), 'DNAT', {'--to-destination': '172.17.0.2:5061'})),
    ('docker_published.v4.save', 'filter', 'DOCKER', 1, lambda rule: (
        rule.destination.value, rule.out_interface, rule.in_interface.negated),
     (ipaddress.ip_network('172.17.0.2/32'), Criterion('-o', 'docker0'), True)),
    ('docker_published.v4.save', 'nat', 'PREROUTING', 1, lambda rule: (
        rule.modules, rule.option('--dst-type').args, rule.target),
     (('addrtype',), ('LOCAL',), 'DOCKER')),
    ('multiport_ranges.v4.save', 'filter', 'ufw-user-input', 2, lambda rule: (rule.modules, rule.dports.ranges),
     (('multiport',), ((5060, 5062), (8000, 8000)))),
    ('multiport_ranges.v4.save', 'filter', 'INPUT', 1, lambda rule: (rule.dports.ranges, rule.dports.negated),
     (((1, 1024), (5000, 5100)), True)),
    ('ufw_deny.v4.save', 'filter', 'ufw-before-input', 9, lambda rule: (rule.sports.ranges, rule.dports.ranges),
     (((67, 67),), ((68, 68),))),
    ('kubernetes.v4.save', 'filter', 'KUBE-FIREWALL', 1, lambda rule: (
        rule.source, str(rule.destination), rule.option('--ctstate').negated, rule.option('--ctstate').args,
        rule.option('--comment').args),
     (Criterion('-s', ipaddress.ip_network('127.0.0.0/8'), True), '-d 127.0.0.0/8', True,
      ('RELATED,ESTABLISHED,DNAT',), ('block incoming localnet connections',))),
    ('kubernetes.v4.save', 'nat', 'CNI-HOSTPORT-DNAT', 1, lambda rule: rule.option('--comment').args[0],
     'dnat name: "cbr0" id: "0c7e2d4c5a1b9f3e8d6a7b2c1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"'),
    ('kubernetes.v4.save', 'nat', 'KUBE-POSTROUTING', 3, lambda rule: (rule.target, rule.target_options),
     ('MASQUERADE', {'--random-fully': ''})),
    ('kubernetes.v4.save', 'nat', 'KUBE-SVC-JZ4GVQ4ZSNXG5DKW', 2, lambda rule: rule.unknown_matches,
     ('-m statistic --mode random --probability 0.50000000000',)),
    ('ufw_deny.v4.save', 'filter', 'ufw-after-logging-forward', 1, lambda rule: (
        rule.modules, rule.target, rule.target_options, rule.unknown_matches),
     (('limit',), 'LOG', {'--log-prefix': '[UFW BLOCK] '}, ('-m limit --limit 3/min --limit-burst 10',))),
    ('ufw_deny.v4.save', 'filter', 'ufw-user-limit', 2, lambda rule: rule.target_options,
     {'--reject-with': 'icmp-port-unreachable'}),
    ('ufw_deny.v6.save', 'filter', 'ufw6-before-input', 2, lambda rule: (rule.modules, rule.unknown_matches),
     (('rt',), ())),
    ('goto_chain.v4.save', 'filter', 'INPUT', 1, lambda rule: (rule.target, rule.goto), ('SIP-PEERS', True)),
    ('hardening.v4.save', 'filter', 'INPUT', 4, lambda rule: (
        rule.option('--tcp-flags').negated, rule.option('--tcp-flags').args, rule.unknown_matches),
     (True, ('FIN,SYN,RST,ACK', 'SYN'), ())),
    ('hardening.v4.save', 'filter', 'INPUT', 5, lambda rule: (rule.criteria, rule.unknown_matches),
     ((Criterion('-f', ''),), ())),
    ('unknown_matches.v4.save', 'filter', 'INPUT', 1, lambda rule: rule.unknown_matches,
     ('-m set --match-set sip-peers src',)),
    ('unknown_matches.v4.save', 'filter', 'ufw-user-input', 3, lambda rule: rule.unknown_matches,
     ('-m recent --update --seconds 30 --hitcount 6 --name DEFAULT --mask 255.255.255.255 --rsource',)),
    ('ufw_deny.v4.save', 'filter', 'ufw-user-input', 2, lambda rule: rule.unknown_matches, ()),
])
def test_parse_fields(name, table, chain, index, read, expected):
    assert read(rule_at(name, table, chain, index)) == expected


def describe(verdict):
    where = 'policy' if verdict.rule is None else '%s %d' % (verdict.rule.chain, verdict.rule.index)
    return '%s %s' % (verdict.action, where)


# Each fixture: the closed port both ways, and neighbours (22, 5060, 5063, 8000).
@pytest.mark.parametrize('name, protocol, port, expected', [
    ('ufw_deny.v4.save', 'tcp', 5061, 'drop ufw-user-input 2'),
    ('ufw_deny.v4.save', 'udp', 5061, 'drop ufw-user-input 3'),
    ('ufw_deny.v4.save', 'tcp', 22, 'accept ufw-user-input 1'),
    ('ufw_deny.v4.save', 'udp', 5060, 'accept ufw-track-input 2'),
    ('ufw_deny.v6.save', 'tcp', 5061, 'drop ufw6-user-input 2'),
    ('ufw_deny.v6.save', 'udp', 5061, 'drop ufw6-user-input 3'),
    ('ufw_deny.v6.save', 'tcp', 22, 'accept ufw6-user-input 1'),
    ('ufw_deny.v6.save', 'tcp', 5060, 'accept ufw6-track-input 1'),
    ('ufw_legacy_deny.v4.save', 'tcp', 5061, 'drop ufw-user-input 2'),
    ('ufw_legacy_deny.v6.save', 'udp', 5061, 'drop ufw6-user-input 3'),
    ('ufw_disabled.v4.save', 'tcp', 5061, 'accept policy'),
    ('ufw_disabled.v4.save', 'udp', 5060, 'accept policy'),
    ('no_tables.v4.save', 'tcp', 5061, 'accept policy'),
    ('input_accept_ahead.v4.save', 'tcp', 5061, 'accept INPUT 1'),
    ('input_accept_ahead.v4.save', 'udp', 5061, 'drop ufw-user-input 3'),
    ('input_accept_ahead.v4.save', 'tcp', 22, 'accept ufw-user-input 1'),
    ('goto_chain.v4.save', 'tcp', 5061, 'accept policy'),
    ('goto_chain.v4.save', 'udp', 5061, 'drop ufw-user-input 3'),
    ('before_rules_accept.v4.save', 'tcp', 5061, 'accept ufw-before-input 13'),
    ('before_rules_accept.v4.save', 'udp', 5061, 'drop ufw-user-input 3'),
    ('before_rules_accept.v6.save', 'udp', 5061, 'accept ufw6-before-input 34'),
    ('before_rules_accept.v6.save', 'tcp', 5061, 'drop ufw6-user-input 2'),
    ('docker_published.v4.save', 'tcp', 5061, 'drop ufw-user-input 2'),
    ('docker_published.v4.save', 'udp', 5061, 'drop ufw-user-input 3'),
    ('redirect.v4.save', 'tcp', 5061, 'drop ufw-user-input 2'),
    ('kubernetes.v4.save', 'tcp', 5061, 'drop ufw-user-input 2'),
    ('kubernetes.v4.save', 'udp', 5061, 'drop ufw-user-input 3'),
    ('kubernetes.v4.save', 'tcp', 22, 'accept ufw-user-input 1'),
    ('multiport_ranges.v4.save', 'tcp', 5061, 'drop ufw-user-input 2'),
    ('multiport_ranges.v4.save', 'tcp', 5063, 'accept ufw-track-input 1'),
    ('multiport_ranges.v4.save', 'tcp', 8000, 'accept INPUT 1'),
    ('multiport_ranges.v4.save', 'tcp', 22, 'accept ufw-user-input 1'),
    ('multiport_ranges.v4.save', 'udp', 5061, 'accept ufw-user-input 3'),
    ('multiport_ranges.v4.save', 'udp', 5101, 'accept ufw-track-input 2'),
    ('legacy_alongside.nft.v4.save', 'tcp', 5061, 'drop ufw-user-input 2'),
    ('legacy_alongside.legacy.v4.save', 'tcp', 5061, 'accept INPUT 1'),
    ('legacy_alongside.legacy.v4.save', 'udp', 5061, 'accept policy'),
    ('unknown_matches.v4.save', 'tcp', 22, 'accept ufw-user-input 1'),
    ('hardening.v4.save', 'tcp', 5061, 'drop ufw-user-input 2'),
    ('hardening.v4.save', 'udp', 5061, 'drop ufw-user-input 3'),
    ('hardening.v4.save', 'tcp', 22, 'accept ufw-user-input 1'),
    ('hardening.v4.save', 'tcp', 5060, 'reject INPUT 6'),
])
def test_verdict(name, protocol, port, expected):
    assert describe(verdict_for_port(tables_of(name), family_of(name), protocol, port)) == expected


def test_verdict_path_follows_jumps_and_returns():
    verdict = verdict_for_port(tables_of('ufw_deny.v4.save'), 'ipv4', 'tcp', 5061)
    assert verdict.path == ('INPUT', 'ufw-before-logging-input', 'ufw-before-input', 'ufw-not-local',
                            'ufw-user-input')
    assert verdict.rule.raw == '-A ufw-user-input -p tcp -m tcp --dport 5061 -j DROP'
    assert verdict.undecided == ()


@pytest.mark.parametrize('source, expected', [
    (None, 'accept policy'),
    ('192.0.2.5', 'accept SIP-PEERS 1'),
    ('198.51.100.7', 'accept policy'),  # RETURN from a chain entered by goto ends INPUT itself
    ('203.0.113.9', 'accept policy'),
])
def test_goto_returns_to_the_policy_not_to_the_next_input_rule(source, expected):
    verdict = verdict_for_port(tables_of('goto_chain.v4.save'), 'ipv4', 'tcp', 5061, source)
    assert describe(verdict) == expected
    assert verdict.path == ('INPUT', 'SIP-PEERS')


@pytest.mark.parametrize('protocol, port, source, expected, undecided', [
    ('tcp', 5061, None, 'uncertain ufw-user-input 3',
     ('-m recent --update --seconds 30 --hitcount 6 --name DEFAULT --mask 255.255.255.255 --rsource',)),
    ('udp', 5061, None, 'uncertain INPUT 1', ('-m set --match-set sip-peers src',)),
    ('tcp', 5060, None, 'uncertain ufw-user-input 6', ('-s 10.0.0.0/8',)),
    ('tcp', 5060, '10.1.2.3', 'accept ufw-user-input 6', ()),
    ('tcp', 5060, '192.0.2.1', 'drop ufw-user-input 8', ()),
    ('udp', 5060, '192.0.2.1', 'drop ufw-user-input 9', ()),
])
def test_undecidable_matches_make_the_verdict_uncertain(protocol, port, source, expected, undecided):
    verdict = verdict_for_port(tables_of('unknown_matches.v4.save'), 'ipv4', protocol, port, source)
    assert (describe(verdict), verdict.undecided) == (expected, undecided)


def test_ipv6_routing_header_rule_never_matches_a_plain_packet():
    # ufw6-before-input drops `-m rt --rt-type 0`; were it undecided, every open port would be uncertain.
    verdict = verdict_for_port(tables_of('ufw_deny.v6.save'), 'ipv6', 'tcp', 22)
    assert (describe(verdict), verdict.undecided) == ('accept ufw6-user-input 1', ())


LEGACY = 'legacy_alongside.legacy.v4.save'


def bypasses_of(name, protocol, legacy=None, nft=None):
    return find_bypasses(
        tables_of(name), family_of(name), protocol, 5061,
        legacy_tables=tables_of(legacy) if legacy else None,
        nft_tables=parse_nft_ruleset(fixture_text(nft)) if nft else None)


def located(bypass):
    return (bypass.kind, None if bypass.rule is None else '%s %s %d' % (
        bypass.rule.table, bypass.rule.chain, bypass.rule.index))


@pytest.mark.parametrize('name, protocol, legacy, expected', [
    ('input_accept_ahead.v4.save', 'tcp', None, [(BYPASS_INPUT_ACCEPT, 'filter INPUT 1')]),
    ('goto_chain.v4.save', 'tcp', None, [(BYPASS_INPUT_ACCEPT, 'filter SIP-PEERS 1'), (BYPASS_INPUT_ACCEPT, None)]),
    ('before_rules_accept.v4.save', 'tcp', None, [(BYPASS_BEFORE_RULES, 'filter ufw-before-input 13')]),
    ('before_rules_accept.v6.save', 'udp', None, [(BYPASS_BEFORE_RULES, 'filter ufw6-before-input 34')]),
    ('docker_published.v4.save', 'tcp', None, [(BYPASS_NAT, 'nat DOCKER 2')]),
    ('docker_published.v4.save', 'udp', None, [(BYPASS_NAT, 'nat DOCKER 3')]),
    ('redirect.v4.save', 'tcp', None, [(BYPASS_NAT, 'nat PREROUTING 1')]),
    ('kubernetes.v4.save', 'tcp', None, [(BYPASS_NAT, 'nat KUBE-SEP-PX3D4XRAVB2EQZ6M 2'),
                                         (BYPASS_NAT, 'nat KUBE-SEP-KQ7XUWVDTN6GL4HB 2')]),
    ('kubernetes.v4.save', 'udp', None, [(BYPASS_NAT, 'nat CNI-DN-5d3f9a8a0f5e4c1b7a2e9 3')]),
    ('multiport_ranges.v4.save', 'udp', None, [(BYPASS_UFW_ALLOWS, 'filter ufw-user-input 3')]),
    ('ufw_disabled.v4.save', 'tcp', None, [(BYPASS_UFW_ALLOWS, None)]),
    ('no_tables.v4.save', 'udp', None, [(BYPASS_UFW_ALLOWS, None)]),
    ('unknown_matches.v4.save', 'tcp', None, [(BYPASS_UFW_ALLOWS, 'filter ufw-user-limit-accept 1')]),
    ('unknown_matches.v4.save', 'udp', None, [(BYPASS_INPUT_ACCEPT, 'filter INPUT 1')]),
    ('legacy_alongside.nft.v4.save', 'tcp', LEGACY, [(BYPASS_LEGACY_RULES, None)]),
    ('legacy_alongside.nft.v4.save', 'udp', LEGACY, [(BYPASS_LEGACY_RULES, None), (BYPASS_NAT, 'nat PREROUTING 1')]),
])
def test_each_bypass_kind_is_found(name, protocol, legacy, expected):
    assert [located(bypass) for bypass in bypasses_of(name, protocol, legacy)] == expected


@pytest.mark.parametrize('name, protocol, legacy, phrases', [
    ('input_accept_ahead.v4.save', 'tcp', None, [
        'filter INPUT rule 1 accepts tcp port 5061 ahead of ufw\'s chains',
        '`-A INPUT -p tcp -m tcp --dport 5061 -j ACCEPT`', 'delete it with `iptables -D INPUT 1`']),
    ('goto_chain.v4.save', 'tcp', None, [
        'without it ever reaching ufw\'s chains (path INPUT > SIP-PEERS)', 'goto (-g)']),
    ('before_rules_accept.v6.save', 'udp', None, [
        'before ufw\'s user rules are consulted', '/etc/ufw/before6.rules', '`ufw reload`']),
    ('docker_published.v4.save', 'tcp', None, [
        'sends tcp port 5061 on to 172.17.0.2:5061', 'path PREROUTING > DOCKER',
        'forwarded through FORWARD, not INPUT', 'a Docker container publishes the port', 'DOCKER-USER']),
    ('kubernetes.v4.save', 'udp', None, [
        'on to 10.244.0.12:5061', 'hostPort (CNI portmap)']),
    ('kubernetes.v4.save', 'tcp', None, ['a Kubernetes Service (NodePort or external IP)']),
    ('redirect.v4.save', 'tcp', None, ['redirects tcp port 5061 to local port 15061']),
    # DNAT to the host's own address under another port (captured from a bypass-scenario container).
    ('dnat_to_self.v4.save', 'tcp', None, [
        'nat PREROUTING rule 1 sends tcp port 5061 on to 10.89.7.156:5062',
        'if that address is this host\'s own, it arrives as port 5062, which ufw\'s rule for port 5061 does not cover']),
    ('dnat_to_self.v6.save', 'tcp', None, [
        'sends tcp port 5061 on to [fd00:5061::199]:5062', 'it arrives as port 5062']),
    ('unknown_matches.v4.save', 'udp', None, [
        'if the packet also satisfies -m set --match-set sip-peers src, which the rule set cannot tell']),
    ('ufw_disabled.v4.save', 'tcp', None, ['policy ACCEPT lets it in', 'ufw is disabled or has no deny']),
    ('no_tables.v4.save', 'tcp', None, ['ufw is not active']),
    ('legacy_alongside.nft.v4.save', 'udp', LEGACY, [
        'iptables-legacy holds 2 rules (tables filter, nat)', '`iptables-legacy-save`',
        'iptables-legacy: nat PREROUTING rule 1 sends udp port 5061 on to 192.0.2.10:5061']),
])
def test_bypass_reasons_say_what_to_act_on(name, protocol, legacy, phrases):
    reasons = ' | '.join(bypass.reason for bypass in bypasses_of(name, protocol, legacy))
    for phrase in phrases:
        assert phrase in reasons


@pytest.mark.parametrize('name, legacy, nft', [
    ('ufw_deny.v4.save', 'ufw_deny.legacy.v4.save', 'compat_only.nft'),
    ('ufw_deny.v6.save', None, 'compat_only.nft'),
    ('ufw_legacy_deny.v4.save', None, None),
    ('ufw_legacy_deny.v6.save', None, None),
    ('hardening.v4.save', None, None),
    # IPV6=no: UFW loads no IPv6 chain, and its INPUT DROP with only loopback accepted closes every port.
    ('ipv6_off.v6.save', None, None),
])
def test_no_bypass_on_a_clean_close(name, legacy, nft):
    for protocol in ('tcp', 'udp'):
        assert find_bypasses(
            tables_of(name), family_of(name), protocol, 5061,
            legacy_tables=tables_of(legacy) if legacy else None,
            nft_tables=parse_nft_ruleset(fixture_text(nft)) if nft else None) == []


def test_redirect_to_the_same_port_and_into_the_port_are_not_bypasses():
    assert bypasses_of('redirect.v4.save', 'udp') == []


def test_nft_ruleset_tables_chains_and_rules():
    tables = parse_nft_ruleset(fixture_text('unmanaged_tables.nft'))
    assert [(table.family, table.name, table.rule_count) for table in tables] == [
        ('ip', 'filter', 69), ('ip6', 'filter', 109), ('inet', 'filter', 2), ('ip', 'sipnat', 1),
        ('inet', 'audit', 1)]
    inet_filter = tables[2]
    assert list(inet_filter.chains) == ['input']
    assert inet_filter.chains['input'].hook == 'input'
    assert inet_filter.chains['input'].rules == [
        'ip saddr @sip_peers udp dport 5061 accept', 'tcp dport { 5060-5062, 8443 } accept']
    assert tables[0].chains['ufw-user-input'].hook is None
    assert [(table.family, table.name) for table in unmanaged_nft_tables(tables)] == [
        ('inet', 'filter'), ('ip', 'sipnat'), ('inet', 'audit')]


def test_compat_tables_are_managed():
    tables = parse_nft_ruleset(fixture_text('compat_only.nft'))
    assert [(table.family, table.name) for table in tables] == [('ip', 'filter'), ('ip6', 'filter')]
    assert unmanaged_nft_tables(tables) == []


@pytest.mark.parametrize('family, protocol, expected', [
    ('ipv4', 'tcp', [
        ('inet filter', '`tcp dport { 5060-5062, 8443 } accept` in chain input (hook input)'),
        ('ip sipnat', '`tcp dport 5061 dnat to 192.0.2.20:5061` in chain prerouting (hook prerouting)'),
        ('inet audit', 'none of its rules names tcp port 5061')]),
    ('ipv4', 'udp', [
        ('inet filter', '`ip saddr @sip_peers udp dport 5061 accept` in chain input (hook input)'),
        ('ip sipnat', 'none of its rules names udp port 5061'),
        ('inet audit', 'none of its rules names udp port 5061')]),
    ('ipv6', 'tcp', [
        ('inet filter', '`tcp dport { 5060-5062, 8443 } accept`'),
        ('inet audit', 'none of its rules names tcp port 5061')]),
])
def test_unmanaged_nft_tables_are_bypasses(family, protocol, expected):
    clean = 'ufw_deny.v4.save' if family == 'ipv4' else 'ufw_deny.v6.save'
    bypasses = find_bypasses(tables_of(clean), family, protocol, 5061,
                             nft_tables=parse_nft_ruleset(fixture_text('unmanaged_tables.nft')))
    assert [bypass.kind for bypass in bypasses] == [BYPASS_NFT_TABLE] * len(expected)
    for bypass, (table, phrase) in zip(bypasses, expected):
        assert 'unmanaged nft table %s ' % table in bypass.reason
        assert phrase in bypass.reason


def truncated(name, marker):
    """The fixture cut just before its last line starting with marker."""
    lines = fixture_text(name).splitlines()
    last = max(number for number, line in enumerate(lines) if line.startswith(marker))
    return '\n'.join(lines[:last])


BROKEN_RULE_SET = ('*filter\n:INPUT ACCEPT [0:0]\n:ufw-user-input - [0:0]\n%s\nCOMMIT\n')


@pytest.mark.parametrize('text, line_number, line, problem', [
    (truncated('ufw_deny.v4.save', 'COMMIT'), 106, '-A ufw-user-limit-accept -j ACCEPT', 'not closed by COMMIT'),
    ('-A INPUT -j ACCEPT\n', 1, '-A INPUT -j ACCEPT', 'outside any *table'),
    ('*filter\n:INPUT\nCOMMIT\n', 2, ':INPUT', 'without a policy'),
    (BROKEN_RULE_SET % '-A ufw-missing -j DROP', 4, '-A ufw-missing -j DROP', 'not declared'),
    (BROKEN_RULE_SET % '-A INPUT -m comment --comment "open -j ACCEPT', 4,
     '-A INPUT -m comment --comment "open -j ACCEPT', 'quotation'),
    (BROKEN_RULE_SET % '-A INPUT -j', 4, '-A INPUT -j', '-j needs a value'),
    (BROKEN_RULE_SET % '-A INPUT -p tcp -m tcp --dport 70000 -j DROP', 4,
     '-A INPUT -p tcp -m tcp --dport 70000 -j DROP', 'bad port list'),
    (BROKEN_RULE_SET % '-A INPUT -s 10.0.0.300 -j DROP', 4, '-A INPUT -s 10.0.0.300 -j DROP', 'not an address'),
    (BROKEN_RULE_SET % '-A INPUT -p tcp !', 4, '-A INPUT -p tcp !', 'negates nothing'),
    (BROKEN_RULE_SET % 'hello', 4, 'hello', 'expected "-A CHAIN'),
    ('*filter\n*nat\n', 2, '*nat', 'table filter is not closed'),
])
def test_malformed_iptables_save_names_the_line(text, line_number, line, problem):
    with pytest.raises(NetfilterParseError) as raised:
        parse_iptables_save(text)
    assert (raised.value.line_number, raised.value.line) == (line_number, line)
    assert str(raised.value).startswith('line %d: ' % line_number)
    assert problem in str(raised.value)


@pytest.mark.parametrize('text, line_number, problem', [
    (truncated('unmanaged_tables.nft', '}'), 416, 'table inet audit is not closed'),
    ('chain input {\n}\n', 1, 'expected "table FAMILY NAME {"'),
    ('table inet t {\n\tset s {\n\t\telements = { 1 }\n\t} }\n}\n', 4, 'unbalanced'),
])
def test_malformed_nft_ruleset_names_the_line(text, line_number, problem):
    with pytest.raises(NetfilterParseError) as raised:
        parse_nft_ruleset(text)
    assert raised.value.line_number == line_number
    assert problem in str(raised.value)


def test_jump_loop_is_refused_not_followed_forever():
    tables = parse_iptables_save('*filter\n:INPUT ACCEPT [0:0]\n:a - [0:0]\n:b - [0:0]\n'
                                 '-A INPUT -j a\n-A a -j b\n-A b -j a\nCOMMIT\n')
    with pytest.raises(NetfilterParseError) as raised:
        verdict_for_port(tables, 'ipv4', 'tcp', 5061)
    assert raised.value.line == '-A b -j a'


def test_counters_from_iptables_save_c_are_ignored():
    tables = parse_iptables_save('*filter\n:INPUT DROP [10:600]\n[3:180] -A INPUT -p tcp -m tcp --dport 5061 '
                                 '-j ACCEPT\nCOMMIT\n')
    rule = tables['filter'].chains['INPUT'].rules[0]
    assert rule.raw == '-A INPUT -p tcp -m tcp --dport 5061 -j ACCEPT'
    assert describe(verdict_for_port(tables, 'ipv4', 'udp', 5061)) == 'drop policy'


@pytest.mark.parametrize('arguments', [
    ('ipv5', 'tcp', 5061, None),
    ('ipv4', 'sctp', 5061, None),
    ('ipv4', 'tcp', 0, None),
    ('ipv4', 'tcp', 5061, '2001:db8::1'),
])
def test_verdict_refuses_questions_it_cannot_answer(arguments):
    with pytest.raises(ValueError):
        verdict_for_port(tables_of('ufw_deny.v4.save'), *arguments)


@pytest.mark.parametrize('name, ufw', [
    ('ufw_deny.v4.save', True),
    ('ufw_deny.v6.save', True),
    ('ufw_legacy_deny.v6.save', True),
    ('ipv6_off.v4.save', True),
    ('ipv6_off.v6.save', False),
    ('ufw_disabled.v4.save', False),
    ('switched_to_nft.v4.save', False),
    ('switched_to_nft.legacy.v4.save', True),
])
def test_ufw_chains_are_found_where_they_are_loaded(name, ufw):
    assert has_ufw_chains(tables_of(name), family_of(name)) is ufw


def test_why_ufw_has_no_chains_is_said_in_the_reason():
    reasons = [bypass.reason for bypass in find_bypasses(
        tables_of('ipv6_off_policy_accept.v6.save'), 'ipv6', 'udp', 5061, ufw_absent_reason='UFW skips IPv6')]
    assert reasons == ['no rule decides udp port 5061, so the filter INPUT policy ACCEPT lets it in (path INPUT); '
                       'UFW skips IPv6']


def test_on_the_legacy_backend_the_nft_side_is_the_other_rule_set():
    bypasses = find_bypasses(tables_of('ufw_legacy_deny.v4.save'), 'ipv4', 'udp', 5061,
                             other_tables=tables_of('nft_alongside.nft.v4.save'), backend='legacy')
    assert [located(bypass) for bypass in bypasses] == [(BYPASS_LEGACY_RULES, None), (BYPASS_NAT, 'nat PREROUTING 1')]
    assert bypasses[0].reason.startswith('iptables-nft holds 1 rule (tables nat) that ufw on the legacy backend '
                                         'neither shows nor manages')
    assert bypasses[0].reason.endswith('review them with `iptables-nft-save`')
    assert bypasses[1].reason.startswith('iptables-nft: nat PREROUTING rule 1 sends udp port 5061')


# --- accepts that only trusted sources match (found by the differential test) ------------------
# The captured rule sets with the accepting rule narrowed to one source network.

def _narrowed(name, old, new):
    text = fixture_text(name)
    assert old in text
    return parse_iptables_save(text.replace(old, new))


@pytest.mark.parametrize("name,old,new", [
    ("input_accept_ahead.v4.save", "-A INPUT -p tcp -m tcp --dport 5061 -j ACCEPT",
     "-A INPUT -s 10.89.20.0/24 -p tcp -m tcp --dport 5061 -j ACCEPT"),
    ("before_rules_accept.v4.save", "-A ufw-before-input -p tcp -m tcp --dport 5061 -j ACCEPT",
     "-A ufw-before-input -s 10.89.20.0/24 -p tcp -m tcp --dport 5061 -j ACCEPT"),
])
def test_an_accept_only_trusted_sources_match_is_no_bypass(name, old, new):
    tables = _narrowed(name, old, new)

    def kinds(trusted):
        return [bypass.kind for bypass in find_bypasses(tables, "ipv4", "tcp", 5061, trusted=trusted)]
    assert kinds(["10.89.20.0/24"]) == []                 # only the trusted network is let in
    assert kinds(["10.0.0.0/8", "fd00::/8"]) == []         # inside a wider trusted network
    assert kinds([]) and kinds(["10.89.21.0/24"])          # untrusted senders in that network get in
    assert kinds(["10.89.20.0/25"])                        # half of it is not trusted


def test_a_wider_accept_than_the_trusted_network_stays_a_bypass():
    tables = _narrowed("input_accept_ahead.v4.save", "-A INPUT -p tcp -m tcp --dport 5061 -j ACCEPT",
                       "-A INPUT -s 10.89.0.0/16 -p tcp -m tcp --dport 5061 -j ACCEPT")
    assert [bypass.kind for bypass in find_bypasses(tables, "ipv4", "tcp", 5061, trusted=["10.89.20.0/24"])] \
        == ["input_accept"]


def minimal_rules(*user_rules, policy="DROP", input_rules=(), nat_rules=(), extra_chains=()):
    """A minimal iptables-save text: filter INPUT with the policy and input_rules, then (with
    user_rules) a jump to ufw-user-input holding them; a nat table with nat_rules."""
    lines = ["*filter", ":INPUT %s [0:0]" % policy, ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"]
    chains = (["ufw-user-input"] if user_rules else []) + list(extra_chains)
    lines += [":%s - [0:0]" % chain for chain in chains] + list(input_rules)
    if user_rules:
        lines.append("-A INPUT -j ufw-user-input")
    lines += ["-A ufw-user-input %s" % rule for rule in user_rules] + ["COMMIT"]
    if nat_rules:
        lines += ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                  ":POSTROUTING ACCEPT [0:0]"] + list(nat_rules) + ["COMMIT"]
    return "\n".join(lines) + "\n"


def redirect_to_8080(*input_rules, protocol="udp"):
    return minimal_rules(input_rules=("-A INPUT -i lo -j ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT")
                         + input_rules,
                         nat_rules=("-A PREROUTING -p %s -m %s --dport 5061 -j REDIRECT --to-ports 8080"
                                    % (protocol, protocol),))


def test_a_redirect_to_a_port_the_filter_drops_lets_nothing_in():
    """The differential test's minimal state: 5061/udp redirected to 8080, which nothing allows."""
    dropped = parse_iptables_save(redirect_to_8080())
    assert [bypass.kind for bypass in find_bypasses(dropped, "ipv4", "udp", 5061)] == []
    allowed = parse_iptables_save(redirect_to_8080("-A INPUT -p udp -m udp --dport 8080 -j ACCEPT"))
    reasons = [bypass.reason for bypass in find_bypasses(allowed, "ipv4", "udp", 5061)]
    assert len(reasons) == 1 and "redirects udp port 5061 to local port 8080" in reasons[0]


ALLOW_TO_ANOTHER_ADDRESS = minimal_rules("-d 10.89.20.77/32 -p udp -m udp --dport 5061 -j ACCEPT")


def test_an_allow_to_an_address_the_host_does_not_have_lets_nothing_in():
    """The differential test's minimal state: `allow in to 10.89.20.77 port 5061 proto udp`."""
    tables = parse_iptables_save(ALLOW_TO_ANOTHER_ADDRESS)

    def kinds(local):
        return [bypass.kind for bypass in find_bypasses(tables, "ipv4", "udp", 5061, local_addresses=local)]
    assert kinds(["10.89.7.81"]) == []                       # not one of ours: nothing sent here matches
    assert kinds(["10.89.20.77"]) == ["ufw_allows"]          # ours: it lets the port in
    assert kinds(["10.89.20.77", "10.89.7.81"]) == ["ufw_allows"]  # one of ours: still in (to that address)
    assert kinds(None) == ["ufw_allows"]                     # addresses unknown: conservative


def test_tcp_is_not_let_in_where_no_reply_can_leave():
    """UFW's ip6tables with IPV6=no (captured) plus an INPUT accept: OUTPUT drops all but loopback."""
    tables = tables_of("ipv6_off_accept_rule.v6.save")
    assert find_bypasses(tables, "ipv6", "tcp", 5061) == []
    opened = parse_iptables_save(fixture_text("ipv6_off_accept_rule.v6.save").replace(":OUTPUT DROP", ":OUTPUT ACCEPT"))
    assert [bypass.kind for bypass in find_bypasses(opened, "ipv6", "tcp", 5061)] == ["input_accept"]


def interface_rules(first, second):
    return minimal_rules("%s -p udp -m multiport --dports 5000:5100 -j DROP" % first,
                         "-i %s -p udp -m udp --dport 5061 -j ACCEPT" % second)


@pytest.mark.parametrize("first,second,let_in", [
    ("-i eth0", "eth0", False),           # the differential test's state: denied on eth0 before the allow on eth0
    ("-i eth0", "eth1", True),            # allowed on another interface
    ("-i eth0 -s 10.0.0.0/8", "eth0", True),  # the deny may miss for its source: the allow can decide
    ("", "eth0", False),                  # denied on every interface
])
def test_one_path_never_assumes_the_packet_arrived_on_two_interfaces(first, second, let_in):
    tables = parse_iptables_save(interface_rules(first, second))
    assert bool(find_bypasses(tables, "ipv4", "udp", 5061)) is let_in
    assert (verdict_for_port(tables, "ipv4", "udp", 5061).action != "drop") is let_in


DENY_ON_EACH_INTERFACE = minimal_rules("-i eth0 -p tcp -m tcp --dport 5061 -j DROP",
                                       "-i eth1 -p tcp -m tcp --dport 5061 -j DROP", policy="ACCEPT")


def test_denied_on_every_interface_the_host_has_lets_nothing_in():
    """The differential test's state: default allow, `deny in on eth0` and `deny in on eth1` for 5061
    on a host with just those two interfaces."""
    tables = parse_iptables_save(DENY_ON_EACH_INTERFACE)
    assert find_bypasses(tables, "ipv4", "tcp", 5061, interfaces=["eth0", "eth1"]) == []
    assert verdict_for_port(tables, "ipv4", "tcp", 5061, interfaces=["eth0", "eth1"]).action == "drop"
    assert find_bypasses(tables, "ipv4", "tcp", 5061, interfaces=["eth0", "eth1", "eth2"])  # eth2 gets in
    assert find_bypasses(tables, "ipv4", "tcp", 5061)  # interfaces unknown: conservative


def test_an_allow_that_a_redirect_always_bypasses_lets_nothing_in():
    """`allow 5061/tcp` with every 5061 connection redirected to 8080, which nothing allows."""
    text = redirect_to_8080("-A INPUT -p tcp -m tcp --dport 5061 -j ACCEPT", protocol="tcp")
    assert find_bypasses(parse_iptables_save(text), "ipv4", "tcp", 5061) == []
    conditional = text.replace("-A PREROUTING -p tcp", "-A PREROUTING -s 10.0.0.0/8 -p tcp")
    assert [bypass.kind for bypass in find_bypasses(parse_iptables_save(conditional), "ipv4", "tcp", 5061)] == [
        "input_accept"]  # senders outside 10/8 are not redirected: the accept lets them in


def test_the_firewall_verdict_is_drop_where_no_tcp_reply_can_leave():
    assert verdict_for_port(tables_of("ipv6_off_accept_rule.v6.save"), "ipv6", "tcp", 5061).action == "drop"
    assert verdict_for_port(tables_of("ipv6_off_accept_rule.v6.save"), "ipv6", "udp", 5061).action == "drop"


def source_rules(second):
    return minimal_rules("-s 10.89.21.248/31 -p tcp -m multiport --dports 5000:5100 -j REJECT --reject-with tcp-reset",
                         "-s %s -d 10.89.21.15/32 -p tcp -m tcp --dport 5061 -j ACCEPT" % second)


@pytest.mark.parametrize("second,let_in", [
    ("10.89.21.248/31", False),  # the differential test's state: rejected from there before the allow from there
    ("10.89.21.249/32", False),  # inside the rejected network
    ("10.89.21.0/24", True),     # the rest of the /24 is not rejected
])
def test_one_path_never_assumes_a_source_both_outside_and_inside_a_network(second, let_in):
    tables = parse_iptables_save(source_rules(second))
    local = ["10.89.20.15", "10.89.21.15"]
    assert bool(find_bypasses(tables, "ipv4", "tcp", 5061, local_addresses=local)) is let_in


def test_many_undecidable_rules_keep_the_walk_bounded():
    rules = ["-s 10.%d.%d.0/24 -i eth%d -p tcp -m tcp --dport 5061 -j ufw-user-input2"
             % (index // 200, index % 200, index % 7) for index in range(600)]
    text = minimal_rules(*rules, extra_chains=("ufw-user-input2",)).replace(
        "COMMIT", "-A ufw-user-input2 -j RETURN\nCOMMIT")
    assert find_bypasses(parse_iptables_save(text), "ipv4", "tcp", 5061) == []
