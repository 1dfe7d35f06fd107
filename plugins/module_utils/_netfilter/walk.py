# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What filter INPUT (or FORWARD) does with a new connection to a port: the first-match walk.

The packet is a NEW TCP or UDP connection from a remote host to one of this host's own
unicast addresses; or, walked through FORWARD, the same connection once nat PREROUTING's DNAT
sent it on to another address (a Docker container's), with the port it had before. A condition that the rule set alone cannot settle for such a packet (the
sender's port or interface, ``-m recent``, ``-m set``, ...) is followed both ways; when the two
ways disagree on whether the port is open, the answer is "uncertain" rather than a guess.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import ipaddress
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import (
    ACCEPT,
    Address,
    Criterion,
    DROP,
    IptRule,
    ModuleOption,
    NetfilterParseError,
    Network,
    REJECT,
    Table,
    UNCERTAIN,
    Verdict,
    _HEADER_MODULES_ABSENT,
    _NFT_FAMILIES_SEEN_BY,
    _PORT_OPTIONS,
    _PROTOCOL_NAMES,
    _render,
)

_TERMINAL_ACTIONS = {
    'ACCEPT': ACCEPT, 'DROP': DROP, 'REJECT': REJECT,
    'DNAT': 'dnat', 'NETMAP': 'dnat', 'REDIRECT': 'redirect',
}

# Targets that act on the packet (log it, mark it, ...) and let it go on to the next rule.
_CONTINUING_TARGETS = frozenset((
    'LOG', 'NFLOG', 'ULOG', 'AUDIT', 'TRACE', 'MARK', 'CONNMARK', 'SECMARK', 'CONNSECMARK',
    'SET', 'CT', 'NOTRACK', 'TCPMSS', 'CLASSIFY', 'DSCP', 'TOS', 'TTL', 'HL', 'CHECKSUM',
))

_DECIDABLE_CT_STATES = frozenset(('NEW', 'ESTABLISHED', 'RELATED', 'INVALID'))

_TCP_FLAGS_ALL = frozenset(('FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'))

# A connection opens with a SYN, carrying ECE and CWR too when the sender asks for ECN.
_OPENING_TCP_FLAGS = (frozenset(('SYN',)), frozenset(('SYN', 'ECE', 'CWR')))


class _Packet(NamedTuple):
    protocol: str
    port: int
    source: Optional[Address]
    # Networks the (unknown) source is known to be outside of: the verdict is for a sender that is
    # not a trusted source, so a rule matching only trusted sources does not match it.
    outside: Tuple[Network, ...] = ()
    # This host's own addresses, when known: a rule's -d matches the packet only through them.
    local: Tuple[Address, ...] = ()
    # What a path through the rules has assumed of the (unknown) input interface: the one it
    # arrived on, or the ones it did not - so that one path never assumes both.
    iface: Optional[str] = None
    not_ifaces: frozenset = frozenset()
    # The host's interfaces other than lo, when known: excluding all but one decides the interface.
    interfaces: frozenset = frozenset()
    # Networks a path has assumed the source to be inside (it took a rule only that decided).
    inside: Tuple[Network, ...] = ()
    # Walked through FORWARD: the destination port before DNAT (port is the one after it); the
    # output interface is then unknown, and the connection's conntrack states are NEW and DNAT.
    original_port: Optional[int] = None


class _Fork(NamedTuple):
    rule: IptRule
    path: Tuple[str, ...]
    undecided: Tuple[str, ...]


class _Outcome(NamedTuple):
    action: str
    rule: Optional[IptRule]
    path: Tuple[str, ...]
    fork: Optional[_Fork]  # the first undecidable rule assumed to match on the way; None on the main path


def _negate(result: Optional[bool], negated: bool) -> Optional[bool]:
    return result if result is None or not negated else not result


def _address_matches(network: Network, address: Optional[Address],
                     outside: Tuple[Network, ...] = (), inside: Tuple[Network, ...] = ()) -> Optional[bool]:
    if address is not None:
        return address in network
    mine = [other for other in inside if other.version == network.version]
    if any(other.subnet_of(network) for other in mine):
        return True  # the sender is inside a network within this one
    if any(not other.overlaps(network) for other in mine):
        return False
    if any(network.version == other.version and network.subnet_of(other) for other in outside):
        return False  # the sender is outside every one of these networks
    # Unknown, but a remote sender and a local unicast destination are never loopback or multicast.
    return False if network.is_loopback or network.is_multicast else None


def _destination_matches(network: Network, local: Tuple[Address, ...]) -> Optional[bool]:
    """-d for a packet to one of this host's addresses: True when all of them are in the network,
    False when none is, undecidable otherwise (or when the host's addresses are not known)."""
    mine = [address in network for address in local if address.version == network.version]
    if not mine:
        return _address_matches(network, None)
    return True if all(mine) else False if not any(mine) else None


def _interface_matches(name: str, packet: _Packet) -> Optional[bool]:
    if name == 'lo':
        return False  # a remote packet never arrives on lo
    if name.endswith('+'):
        return packet.iface.startswith(name[:-1]) if packet.iface else None
    if packet.iface:
        return packet.iface == name
    return False if name in packet.not_ifaces else None


def _assumed(rule: IptRule, packet: _Packet, matched: bool, undecided: Tuple[str, ...]) -> _Packet:
    """The packet as the path that takes (matched) or skips this undecided rule knows it."""
    packet = _assumed_source(rule, packet, matched, undecided)
    interface = rule.criterion('-i')
    if interface is None or interface.negated or str(interface.value).endswith('+') or str(interface.value) == 'lo':
        return packet
    name = str(interface.value)
    if matched:
        return packet._replace(iface=name)
    if undecided == ('-i %s' % name,) and packet.iface is None:
        excluded = packet.not_ifaces | {name}  # only the interface kept it from matching
        remaining = packet.interfaces - excluded
        if packet.interfaces and len(remaining) == 1:
            return packet._replace(iface=next(iter(remaining)), not_ifaces=excluded)
        return packet._replace(not_ifaces=excluded)
    return packet


def _assumed_source(rule: IptRule, packet: _Packet, matched: bool, undecided: Tuple[str, ...]) -> _Packet:
    """What a path knows of the unknown source after taking or skipping a rule with -s NETWORK."""
    source = rule.criterion('-s')
    if source is None or source.negated or packet.source is not None:
        return packet
    if matched:
        return packet._replace(inside=packet.inside + (source.value,))
    if undecided == _render((source,)):
        return packet._replace(outside=packet.outside + (source.value,))  # only the source kept it out
    return packet


def _evaluate_criterion(criterion: Criterion, packet: _Packet) -> Optional[bool]:
    flag, value = criterion.flag, criterion.value
    if flag == '-p':
        result = value in ('all', '0') or _PROTOCOL_NAMES.get(value, value) == packet.protocol
    elif flag == '-s':
        result = _address_matches(value, packet.source, packet.outside, packet.inside)
    elif flag == '-d':
        result = _destination_matches(value, packet.local)
    elif flag == '-i':
        result = _interface_matches(str(value), packet)
    elif flag == '-o':
        # INPUT and PREROUTING have no output interface yet; FORWARD's is a container bridge.
        result = None if packet.original_port is not None else False
    elif flag == '-f':
        result = False  # the packet opening a connection is never a second or later fragment
    else:
        result = None
    return _negate(result, criterion.negated)


def _destination_port(option: ModuleOption, packet: _Packet) -> Optional[bool]:
    direction = _PORT_OPTIONS[(option.module, option.name)]
    if direction == 'source':
        return None  # the sender picks its port
    if direction == 'either':
        return True if option.ports.contains(packet.port) else None
    if direction == 'original':
        return option.ports.contains(packet.port if packet.original_port is None else packet.original_port)
    return option.ports.contains(packet.port)


def _opening_tcp_flags_match(option: ModuleOption, packet: _Packet) -> Optional[bool]:
    mask, expected = ({'ALL': _TCP_FLAGS_ALL, 'NONE': frozenset()}.get(arg, frozenset(arg.split(',')))
                      for arg in (option.args + ('', ''))[:2])
    results = {mask & flags == expected for flags in _OPENING_TCP_FLAGS}
    return results.pop() if len(results) == 1 else None


def _new_state_matches(option: ModuleOption, packet: _Packet) -> Optional[bool]:
    states = frozenset(option.args[0].split(',')) if option.args else frozenset()
    if packet.original_port is not None:
        # Forwarded after DNAT: the connection is NEW and DNAT; SNAT comes later (POSTROUTING).
        if states & frozenset(('NEW', 'DNAT')):
            return True
        return False if states <= _DECIDABLE_CT_STATES | frozenset(('UNTRACKED',)) else None
    # UNTRACKED, SNAT, DNAT depend on raw/nat rules and on the connection, not on this rule set.
    return 'NEW' in states if states <= _DECIDABLE_CT_STATES else None


_OPTION_EVALUATORS = {
    ('tcp', '--syn'): lambda option, packet: True,  # a NEW TCP connection starts with a SYN
    ('tcp', '--tcp-flags'): _opening_tcp_flags_match,
    ('conntrack', '--ctstate'): _new_state_matches,
    ('state', '--state'): _new_state_matches,
    # The packet walked opens the connection: it goes the original direction.
    ('conntrack', '--ctdir'): lambda option, packet: bool(option.args) and option.args[0] == 'ORIGINAL',
    ('comment', '--comment'): lambda option, packet: True,
    # The destination is one of this host's addresses (route type LOCAL), or once forwarded after
    # DNAT a container's (UNICAST); the sender is remote.
    ('addrtype', '--dst-type'): lambda option, packet: (
        'LOCAL' if packet.original_port is None else 'UNICAST') in option.args[0].split(','),
    ('addrtype', '--src-type'): lambda option, packet: 'UNICAST' in option.args[0].split(','),
}


_OPTION_EVALUATORS.update((key, _destination_port) for key in _PORT_OPTIONS)


def _evaluate_option(option: ModuleOption, packet: _Packet) -> Optional[bool]:
    if option.module in _HEADER_MODULES_ABSENT:
        return False
    evaluate = _OPTION_EVALUATORS.get((option.module, option.name))
    return None if evaluate is None else _negate(evaluate(option, packet), option.negated)


def _match(rule: IptRule, packet: _Packet) -> Tuple[Optional[bool], Tuple[str, ...]]:
    """True, False, or None with the conditions that could not be decided."""
    undecided = []
    for condition in rule.criteria + rule.options:
        if isinstance(condition, Criterion):
            result = _evaluate_criterion(condition, packet)
        else:
            result = _evaluate_option(condition, packet)
        if result is False:
            return False, ()
        if result is None:
            undecided.append(condition)
    return (None if undecided else True), _render(undecided)


_MAX_ASSUMING_FORKS = 256  # bounds the walk on rule sets with many undecidable rules (conservative past it)


def _outcomes(table: Optional[Table], base_chain: str, packet: _Packet) -> List[_Outcome]:
    """Every way the packet can leave base_chain. Undecidable rules are followed both ways;
    exactly one outcome (the main path, where none of them matches) has no fork."""
    chains = table.chains if table is not None else {}
    policy = (chains[base_chain].policy if base_chain in chains else None) or 'ACCEPT'
    outcomes = []
    seen = set()
    # A state is the call stack of (chain, next rule position); the same state always ends the same way.
    pending = [(((base_chain, 0),), (base_chain,), None, packet)]
    forks = 0  # assumptions kept per path make paths distinct: past this many forks, no new ones
    while pending:
        stack, path, fork, packet = pending.pop()
        while (stack, packet.iface, packet.not_ifaces, packet.inside, packet.outside) not in seen:
            seen.add((stack, packet.iface, packet.not_ifaces, packet.inside, packet.outside))
            if not stack:
                outcomes.append(_Outcome(policy.lower(), None, path, fork))
                break
            chain, position = stack[-1]
            rules = chains[chain].rules if chain in chains else []
            if position == len(rules):
                stack = stack[:-1]
                continue
            rule = rules[position]
            next_rule = stack[:-1] + ((chain, position + 1),)
            matched, undecided = _match(rule, packet)
            if matched is False or rule.target is None or rule.target in _CONTINUING_TARGETS:
                stack = next_rule
                continue
            taken_fork = fork if matched or fork else _Fork(rule, path, undecided)
            assume = matched is None and forks < _MAX_ASSUMING_FORKS
            forks += matched is None
            taken_packet = _assumed(rule, packet, True, undecided) if assume else packet
            if rule.target in chains:
                if any(frame[0] == rule.target for frame in stack):
                    raise NetfilterParseError(rule.line_number, rule.raw, 'jump loops back into %s' % rule.target)
                taken = ((stack[:-1] if rule.goto else next_rule) + ((rule.target, 0),), path + (rule.target,))
            elif rule.target == 'RETURN':
                taken = (stack[:-1], path)
            else:
                outcomes.append(_Outcome(_TERMINAL_ACTIONS.get(rule.target, UNCERTAIN), rule, path, taken_fork))
                taken = None
            if matched is None:
                if taken is not None:
                    pending.append(taken + (taken_fork, taken_packet))
                stack = next_rule
                packet = _assumed(rule, packet, False, undecided) if assume else packet
            elif taken is None:
                break
            else:
                stack, path = taken
    return outcomes


def _packet(family: str, protocol: str, port: int, source: Optional[str] = None,
            outside: Sequence[str] = (), local: Optional[Sequence[str]] = None,
            interfaces: Optional[Sequence[str]] = None) -> _Packet:
    if family not in _NFT_FAMILIES_SEEN_BY:
        raise ValueError('family must be ipv4 or ipv6, not %r' % (family,))
    if protocol not in ('tcp', 'udp'):
        raise ValueError('protocol must be tcp or udp, not %r' % (protocol,))
    if not 0 < port <= 65535:
        raise ValueError('port out of range: %r' % (port,))
    address = None if source is None else ipaddress.ip_address(source)
    if address is not None and address.version != (4 if family == 'ipv4' else 6):
        raise ValueError('source %s is not an %s address' % (source, family))
    version = 4 if family == 'ipv4' else 6
    networks = tuple(network for network in (ipaddress.ip_network(item, strict=False) for item in outside)
                     if network.version == version)
    mine = tuple(item for item in (ipaddress.ip_address(value) for value in local or ()) if item.version == version)
    return _Packet(protocol, port, address, networks, mine,
                   interfaces=frozenset(name for name in interfaces or () if name != 'lo'))


def forwarded_packet(packet: _Packet, family: str, address: Optional[str], port: int) -> Optional[_Packet]:
    """The packet as filter FORWARD sees it once DNAT sent it on to address:port, the input
    interface as the nat path assumed it; None when the address is not of the family, is this
    host's own (INPUT judges it then) or the host's own addresses are not known."""
    try:
        destination = ipaddress.ip_address(address or '')
    except ValueError:
        return None
    if destination.version != (4 if family == 'ipv4' else 6) or not packet.local or destination in packet.local:
        return None
    return packet._replace(port=port, local=(destination,), original_port=packet.port)


def verdict_for_port(tables: Dict[str, Table], family: str, protocol: str, port: int,
                     source: Optional[str] = None, local: Optional[Sequence[str]] = None,
                     interfaces: Optional[Sequence[str]] = None) -> Verdict:
    """What filter INPUT does with a new connection to the port, first match wins.

    With source None the sender is unknown, so source-restricted rules are undecidable."""
    if protocol == 'tcp' and replies_never_leave(tables):
        return Verdict(DROP, None, ('OUTPUT',))  # the SYN-ACK never leaves: no connection is made
    outcomes = _outcomes(tables.get('filter'), 'INPUT',
                         _packet(family, protocol, port, source, local=local, interfaces=interfaces))
    main = next(outcome for outcome in outcomes if outcome.fork is None)
    for outcome in outcomes:
        if outcome.action == UNCERTAIN or (outcome.action == ACCEPT) != (main.action == ACCEPT):
            deciding = outcome.fork or _Fork(outcome.rule, outcome.path, ('-j ' + outcome.rule.target,))
            return Verdict(UNCERTAIN, deciding.rule, deciding.path, deciding.undecided)
    return Verdict(main.action, main.rule, main.path)


def replies_never_leave(tables: Dict[str, Table]) -> bool:
    """Whether filter OUTPUT drops everything but loopback (UFW's ip6tables with IPV6=no): its
    policy drops or rejects and each of its rules matches only `-o lo`."""
    chain = (tables.get('filter') or Table('filter')).chains.get('OUTPUT')
    if chain is None or chain.policy not in ('DROP', 'REJECT'):
        return False
    for rule in chain.rules:
        out = rule.criterion('-o')
        if out is None or out.negated or str(out.value) != 'lo':
            return False
    return True


def has_ufw_chains(tables: Optional[Dict[str, Table]], family: str) -> bool:
    """Whether ufw's own chains for the family are loaded in this rule set."""
    table = (tables or {}).get('filter')
    return table is not None and ('ufw-user-input' if family == 'ipv4' else 'ufw6-user-input') in table.chains
