# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Everything that can still let a new connection reach the port past UFW's deny.

Rules ahead of UFW, before.rules accepts, NAT that sends the port elsewhere, the other
backend's tables and nft tables UFW does not own; judged for a sender outside the trusted sources.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import re
from typing import Dict, Iterator, List, Optional, Sequence

from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import (
    ACCEPT,
    BYPASS_BEFORE_RULES,
    BYPASS_INPUT_ACCEPT,
    BYPASS_LEGACY_RULES,
    BYPASS_NAT,
    BYPASS_NFT_TABLE,
    BYPASS_UFW_ALLOWS,
    BYPASS_UNCERTAIN,
    Bypass,
    DROP,
    IptRule,
    NftTable,
    REJECT,
    Table,
    UNCERTAIN,
    _NFT_FAMILIES_SEEN_BY,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import (
    unmanaged_nft_tables,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.walk import (
    _Outcome,
    _Packet,
    _outcomes,
    _packet,
    forwarded_packet,
    replies_never_leave,
)

_NFT_DPORT = re.compile(r'\b(tcp|udp|th|sctp|dccp|udplite) dport (?:!= )?(\{[^}]*\}|\S+)')


def find_bypasses(tables: Dict[str, Table], family: str, protocol: str, port: int,
                  legacy_tables: Optional[Dict[str, Table]] = None,
                  nft_tables: Optional[Sequence[NftTable]] = None,
                  other_tables: Optional[Dict[str, Table]] = None, backend: str = 'nft',
                  ufw_absent_reason: Optional[str] = None, trusted: Sequence[str] = (),
                  local_addresses: Optional[Sequence[str]] = None,
                  interfaces: Optional[Sequence[str]] = None) -> List[Bypass]:
    """Everything that can still let a new connection reach the port past ufw's deny - from a
    sender outside the trusted networks (an accept that matches only trusted sources is none).

    tables: the rule set of the backend ufw runs on (backend, nft or legacy); other_tables:
    the other backend's (legacy_tables is the older name for them on an nft host), a second
    rule set the kernel applies that ufw neither shows nor manages; nft_tables:
    parse_nft_ruleset() of `nft list ruleset`. ufw_absent_reason says why ufw has no chains
    in tables (default: "ufw is not active"); local_addresses: the host's own addresses of the
    family (a rule for another destination address then matches nothing sent to this host)."""
    packet = _packet(family, protocol, port, outside=trusted, local=local_addresses, interfaces=interfaces)
    if protocol == 'tcp' and replies_never_leave(tables):
        return []  # a SYN may get in, but no SYN-ACK gets out: no connection is ever made
    tool = 'iptables' if family == 'ipv4' else 'ip6tables'
    bypasses = [] if _always_redirected(tables, packet) else list(
        _filter_bypasses(tables, packet, family, tool, ufw_absent_reason or 'ufw is not active'))
    bypasses.extend(_nat_bypasses(tables, packet, family, ''))
    other_tables = other_tables if other_tables is not None else legacy_tables
    if other_tables:
        bypasses.extend(_other_backend_bypasses(other_tables, packet, tool, backend))
    if nft_tables:
        bypasses.extend(_nft_bypasses(nft_tables, family, packet))
    return bypasses


def _unique(outcomes: List[_Outcome]) -> Iterator[_Outcome]:
    reported = set()
    for outcome in outcomes:
        key = (outcome.action, outcome.rule.line_number if outcome.rule else None)
        if key not in reported:
            reported.add(key)
            yield outcome


def _is_ufw_chain(chain: str) -> bool:
    return re.match(r'ufw6?-', chain) is not None


def _plural(count: int, noun: str) -> str:
    return '%d %s%s' % (count, noun, '' if count == 1 else 's')


def _where(rule: IptRule) -> str:
    return '%s %s rule %d' % (rule.table, rule.chain, rule.index)


def _evidence(outcome: _Outcome) -> str:
    """The rule, the path to it, and what it depends on, for a person to check."""
    text = ' (path %s)' % ' > '.join(outcome.path)
    if outcome.rule is not None:
        text = ' `%s`%s' % (outcome.rule.raw, text)
    fork = outcome.fork
    if fork is not None and fork.rule is outcome.rule:
        text += ', if the packet also satisfies %s, which the rule set cannot tell' % ' '.join(fork.undecided)
    elif fork is not None:
        text += ', if %s matches (%s, which the rule set cannot tell)' % (_where(fork.rule), ' '.join(fork.undecided))
    return text


def _filter_bypasses(tables: Dict[str, Table], packet: _Packet, family: str, tool: str,
                     ufw_absent_reason: str) -> Iterator[Bypass]:
    port = '%s port %d' % (packet.protocol, packet.port)
    table = tables.get('filter')
    ufw_present = table is not None and any(_is_ufw_chain(chain) for chain in table.chains)
    for outcome in _unique(_outcomes(table, 'INPUT', packet)):
        rule, evidence = outcome.rule, _evidence(outcome)
        ufw_passed = any(_is_ufw_chain(chain) for chain in outcome.path)
        if outcome.action == UNCERTAIN:
            yield Bypass(BYPASS_UNCERTAIN, '%s hands %s to %s, whose decision is not in the rule set%s; '
                         'check what it does' % (_where(rule), port, rule.target, evidence), rule)
        elif outcome.action != ACCEPT:
            continue
        elif rule is None and ufw_present and not ufw_passed:
            yield Bypass(BYPASS_INPUT_ACCEPT, 'the filter INPUT policy ACCEPT lets %s in without it ever reaching '
                         'ufw\'s chains%s; a goto (-g) or RETURN on that path skips them' % (port, evidence))
        elif rule is None:
            yield Bypass(BYPASS_UFW_ALLOWS, 'no rule decides %s, so the filter INPUT policy ACCEPT lets it in%s; %s'
                         % (port, evidence, 'ufw is disabled or has no deny for the port' if ufw_passed
                            else ufw_absent_reason))
        elif re.match(r'ufw6?-before-', rule.chain):
            yield Bypass(BYPASS_BEFORE_RULES, '%s accepts %s before ufw\'s user rules are consulted%s; remove it '
                         'from /etc/ufw/%s and run `ufw reload`' % (
                             _where(rule), port, evidence, 'before.rules' if family == 'ipv4' else 'before6.rules'),
                         rule)
        elif _is_ufw_chain(rule.chain):
            yield Bypass(BYPASS_UFW_ALLOWS, 'ufw\'s own %s accepts %s%s; see `ufw status numbered`'
                         % (_where(rule), port, evidence), rule)
        else:
            yield Bypass(BYPASS_INPUT_ACCEPT, '%s accepts %s %s%s; delete it with `%s -D %s %d` and '
                         'from whatever restores it at boot' % (
                             _where(rule), port,
                             ('after' if ufw_passed else 'ahead of') + ' ufw\'s chains' if ufw_present
                             else 'and ufw has no chains here to deny it (%s)' % ufw_absent_reason,
                             evidence, tool, rule.chain, rule.index), rule)


_NAT_OWNERS = (
    ('DOCKER', 'a Docker container publishes the port (docker run -p): ufw_port with docker=close drops it in '
               'DOCKER-USER; or unpublish it, or bind it to 127.0.0.1'),
    ('KUBE-', 'a Kubernetes Service (NodePort or external IP) exposes the port'),
    ('CNI-', 'a Kubernetes pod exposes the port as a hostPort (CNI portmap)'),
)
# docker=close keeps IPv4's DOCKER-USER only: Docker 20.10 has none for IPv6 (its ip6tables mode is experimental).
_DOCKER_IPV6_OWNER = ('a Docker container publishes the port over IPv6 (dockerd with ip6tables enabled): '
                      'ufw_port with docker=close closes the IPv4 path only; turn ip6tables off in dockerd '
                      '(its userland proxy then listens, and ufw\'s rule for the port applies), or unpublish it, '
                      'or bind it to an IPv4 address')


def _dnat_port(destination: Optional[str]) -> Optional[str]:
    """The port (or range) of a DNAT --to-destination: `a.b.c.d:P`, `[v6]:P`; None without one."""
    if not destination:
        return None
    if destination.startswith('['):
        _address, _bracket, rest = destination.partition(']')
        return rest[1:] if rest.startswith(':') else None
    if destination.count(':') == 1:
        return destination.split(':', 1)[1]
    return None


def _dnat_address(destination: Optional[str]) -> Optional[str]:
    """The address of a DNAT --to-destination (`a.b.c.d[:P]`, `[v6]:P`, `v6`); None without one
    or for a range of addresses."""
    if not destination:
        return None
    if destination.startswith('['):
        return destination[1:].partition(']')[0]
    address = destination.split(':', 1)[0] if destination.count(':') == 1 else destination
    return None if '-' in address else address


def _forward_outcomes(tables: Dict[str, Table], packet: _Packet, family: str,
                      destination: Optional[str]) -> Optional[List[_Outcome]]:
    """What filter FORWARD does with the connection DNAT sends on to destination; None when it
    is not forwarded (to this host's own address, or to a range the rule set cannot follow)."""
    new_port = _dnat_port(destination)
    if new_port is not None and not new_port.isdigit():
        return None
    forwarded = forwarded_packet(packet, family, _dnat_address(destination),
                                 int(new_port) if new_port else packet.port)
    return None if forwarded is None else _outcomes(tables.get('filter'), 'FORWARD', forwarded)


def _always_redirected(tables: Dict[str, Table], packet: _Packet) -> bool:
    """Whether nat PREROUTING redirects every new connection to the port to another local port:
    filter INPUT then never sees the port itself (its REDIRECT is judged as a NAT bypass)."""
    if tables.get('nat') is None:
        return False
    outcomes = _outcomes(tables['nat'], 'PREROUTING', packet)
    return all(outcome.action == 'redirect' and outcome.rule.target_options.get('--to-ports', str(packet.port))
               != str(packet.port) for outcome in outcomes)


def _filter_drops_port(tables: Dict[str, Table], packet: _Packet, to_ports: str) -> bool:
    """Whether filter INPUT surely drops or rejects a new connection to the local port to_ports
    (one port; a range is never judged dropped)."""
    if not to_ports.isdigit() or not 0 < int(to_ports) <= 65535 or tables.get('filter') is None:
        return False
    outcomes = _outcomes(tables['filter'], 'INPUT', packet._replace(port=int(to_ports)))
    return all(outcome.action in (DROP, REJECT) for outcome in outcomes)


def _nat_bypasses(tables: Dict[str, Table], packet: _Packet, family: str, backend: str) -> Iterator[Bypass]:
    port = '%s port %d' % (packet.protocol, packet.port)
    for outcome in _unique(_outcomes(tables.get('nat'), 'PREROUTING', packet)):
        rule = outcome.rule
        if outcome.action == 'dnat':
            destination = rule.target_options.get('--to-destination')
            new_port = _dnat_port(destination)
            forward = _forward_outcomes(tables, packet, family, destination)
            if forward is not None and all(item.action in (DROP, REJECT) for item in forward):
                continue  # filter FORWARD drops it for every sender outside the trusted ones
            # The way through that assumes least: the main path, else the fewest undecided conditions.
            letting = min((item for item in forward or () if item.action not in (DROP, REJECT)), default=None,
                          key=lambda item: (item.fork is not None, len(item.fork.undecided) if item.fork else 0))
            effect = 'sends %s on to %s%s; that traffic is forwarded through FORWARD, not INPUT, so ufw\'s ' \
                     'deny does not apply%s%s' % (
                         port, destination, _evidence(outcome),
                         '' if letting is None else ', and filter FORWARD lets it through (%s%s)' % (
                             'the policy ACCEPT' if letting.rule is None else _where(letting.rule),
                             _evidence(letting)),
                         '; if that address is this host\'s own, it arrives as port %s, which ufw\'s rule for '
                         'port %d does not cover' % (new_port, packet.port)
                         if new_port and new_port != str(packet.port) and forward is None else '')
        elif outcome.action == 'redirect' and rule.target_options.get('--to-ports', str(packet.port)) != str(
                packet.port):
            if _filter_drops_port(tables, packet, rule.target_options['--to-ports']):
                continue  # redirected to a port the filter drops for every sender: nothing gets in
            effect = 'redirects %s to local port %s%s; ufw\'s rule for port %d does not cover that port' % (
                port, rule.target_options['--to-ports'], _evidence(outcome), packet.port)
        else:
            continue
        owner = next((owner for chain in reversed(outcome.path) for prefix, owner in _NAT_OWNERS
                      if chain.startswith(prefix)), None)
        if owner and family == 'ipv6' and any(chain.startswith('DOCKER') for chain in outcome.path):
            owner = _DOCKER_IPV6_OWNER
        elif owner and outcome.action == 'dnat' and 'DOCKER' in outcome.path and not _consults_docker_user(tables):
            owner += ('; filter FORWARD never jumps to DOCKER-USER (a Docker older than 17.06, or the jump was '
                      'deleted), so nothing there is consulted: restart dockerd, which puts the jump first again')
        yield Bypass(BYPASS_NAT, '%s%s %s%s' % (backend, _where(rule), effect, '; ' + owner if owner else ''), rule)


def _consults_docker_user(tables: Dict[str, Table]) -> bool:
    forward = (tables.get('filter') or Table('filter')).chains.get('FORWARD')
    return forward is not None and any(rule.target == 'DOCKER-USER' for rule in forward.rules)


def _other_backend_bypasses(other_tables: Dict[str, Table], packet: _Packet, tool: str,
                            backend: str) -> Iterator[Bypass]:
    other = 'nft' if backend == 'legacy' else 'legacy'
    with_rules = sorted(name for name, table in other_tables.items()
                        if any(chain.rules for chain in table.chains.values()))
    if not with_rules:
        return
    count = sum(len(chain.rules) for name in with_rules for chain in other_tables[name].chains.values())
    yield Bypass(BYPASS_LEGACY_RULES, '%s-%s holds %s (tables %s) that ufw on the %s backend neither shows '
                 'nor manages; the kernel applies both rule sets, so NAT there takes traffic past ufw; review them '
                 'with `%s-%s-save`' % (tool, other, _plural(count, 'rule'), ', '.join(with_rules), backend,
                                        tool, other))
    yield from _nat_bypasses(other_tables, packet, 'ipv4' if tool == 'iptables' else 'ipv6', '%s-%s: ' % (tool, other))


def _nft_bypasses(nft_tables: Sequence[NftTable], family: str, packet: _Packet) -> Iterator[Bypass]:
    port = '%s port %d' % (packet.protocol, packet.port)
    for table in unmanaged_nft_tables(nft_tables):
        if table.family not in _NFT_FAMILIES_SEEN_BY[family] or not table.rule_count:
            continue
        naming = ['`%s` in chain %s%s' % (rule, chain.name, ' (hook %s)' % chain.hook if chain.hook else '')
                  for chain in table.chains.values() for rule in chain.rules if _nft_rule_names_port(rule, packet)]
        yield Bypass(BYPASS_NFT_TABLE, 'unmanaged nft table %s %s with %s is not one of iptables-nft\'s, so ufw '
                     'neither shows nor manages it, yet the kernel applies it too; %s; review it with '
                     '`nft list table %s %s`' % (
                         table.family, table.name, _plural(table.rule_count, 'rule'),
                         'its rules naming %s: %s' % (port, ', '.join(naming)) if naming
                         else 'none of its rules names %s' % port,
                         table.family, table.name))


def _nft_rule_names_port(rule: str, packet: _Packet) -> bool:
    for protocol, value in _NFT_DPORT.findall(rule):
        if protocol not in ('th', packet.protocol):
            continue
        if value.startswith('@'):
            return True  # a named set: its elements may include the port
        for item in value.strip('{} ').split(','):
            low, _sep, high = item.strip().partition('-')
            if low.isdigit() and int(low) <= packet.port <= int(high if high.isdigit() else low):
                return True
    return False
