# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Parse the live netfilter rule set and decide what happens to a new connection to a port.

Private to the sipguard.firewall collection: no compatibility promise outside it.

Text in, data out: the callers run ``iptables-save`` / ``ip6tables-save`` (and, where present,
the other backend's ``iptables-legacy-save`` or ``iptables-nft-save`` and ``nft list ruleset``)
and hand the output here.

The packet the decisions are about is a NEW TCP or UDP connection from a remote host to one
of this host's own unicast addresses. A condition that the rule set alone cannot settle for
such a packet (the sender's port or interface, ``-m recent``, ``-m set``, ...) is followed
both ways; when the two ways disagree on whether the port is open, the answer is
"uncertain" rather than a guess.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

ACCEPT = 'accept'
DROP = 'drop'
REJECT = 'reject'
UNCERTAIN = 'uncertain'

BYPASS_INPUT_ACCEPT = 'input_accept'
BYPASS_BEFORE_RULES = 'before_rules'
BYPASS_UFW_ALLOWS = 'ufw_allows'
BYPASS_UNCERTAIN = 'uncertain'
BYPASS_NAT = 'nat'
BYPASS_LEGACY_RULES = 'legacy_rules'
BYPASS_NFT_TABLE = 'nft_table'

_TERMINAL_ACTIONS = {
    'ACCEPT': ACCEPT, 'DROP': DROP, 'REJECT': REJECT,
    'DNAT': 'dnat', 'NETMAP': 'dnat', 'REDIRECT': 'redirect',
}
# Targets that act on the packet (log it, mark it, ...) and let it go on to the next rule.
_CONTINUING_TARGETS = frozenset((
    'LOG', 'NFLOG', 'ULOG', 'AUDIT', 'TRACE', 'MARK', 'CONNMARK', 'SECMARK', 'CONNSECMARK',
    'SET', 'CT', 'NOTRACK', 'TCPMSS', 'CLASSIFY', 'DSCP', 'TOS', 'TTL', 'HL', 'CHECKSUM',
))
_PROTOCOL_NAMES = {'6': 'tcp', '17': 'udp'}
_DECIDABLE_CT_STATES = frozenset(('NEW', 'ESTABLISHED', 'RELATED', 'INVALID'))
_TCP_FLAGS_ALL = frozenset(('FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'))
# A connection opens with a SYN, carrying ECE and CWR too when the sender asks for ECN.
_OPENING_TCP_FLAGS = (frozenset(('SYN',)), frozenset(('SYN', 'ECE', 'CWR')))
# Matches on headers that a plain TCP or UDP packet does not carry: they never match it.
_HEADER_MODULES_ABSENT = frozenset(('icmp', 'icmp6', 'rt'))
# Flags whose value may look like an option (a comment or log prefix starting with "-").
_SINGLE_ARGUMENT_FLAGS = frozenset(('-p', '-s', '-d', '-i', '-o', '-m', '-j', '-g', '--comment', '--log-prefix'))
_ADDRESS_FLAGS = ('-s', '-d')
_KNOWN_CRITERIA = ('-p', '-s', '-d', '-i', '-o', '-f')
_COUNTERS = re.compile(r'^\[\d+:\d+\]\s+')

# iptables-nft's own tables; anything else in `nft list ruleset` was made by someone else.
_IPTABLES_NFT_TABLES = frozenset(
    [(family, name) for family in ('ip', 'ip6') for name in ('filter', 'nat', 'mangle', 'raw', 'security')]
    + [('arp', 'filter'), ('bridge', 'filter'), ('bridge', 'nat'), ('bridge', 'broute')]
)
_NFT_FAMILIES_SEEN_BY = {'ipv4': ('ip', 'inet'), 'ipv6': ('ip6', 'inet')}
_NFT_DPORT = re.compile(r'\b(tcp|udp|th|sctp|dccp|udplite) dport (?:!= )?(\{[^}]*\}|\S+)')

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class NetfilterParseError(ValueError):
    """The rule set text is structurally broken; names the offending line."""

    def __init__(self, line_number: int, line: str, problem: str):
        super().__init__('line %d: %s: %r' % (line_number, problem, line))
        self.line_number = line_number
        self.line = line


@dataclass(frozen=True)
class PortSpec:
    """Ports as listed (`a` or `a:b` ranges); negated: the rule wants a port outside them."""

    ranges: Tuple[Tuple[int, int], ...]
    negated: bool = False

    def contains(self, port: int) -> bool:
        return any(low <= port <= high for low, high in self.ranges)


@dataclass(frozen=True)
class Criterion:
    """A built-in match: -p, -s, -d, -i or -o (addresses hold an ip_network)."""

    flag: str
    value: Union[str, Network]
    negated: bool = False

    def __str__(self) -> str:
        return ('%s%s %s' % ('! ' if self.negated else '', self.flag, self.value)).rstrip()


@dataclass(frozen=True)
class ModuleOption:
    """One option of a match module, e.g. `-m conntrack --ctstate NEW`."""

    module: str
    name: str
    args: Tuple[str, ...]
    negated: bool = False
    ports: Optional[PortSpec] = None

    def __str__(self) -> str:
        return '-m %s %s' % (self.module, self.option_text())

    def option_text(self) -> str:
        return ' '.join((['!'] if self.negated else []) + [self.name] + list(self.args))


def _render(conditions: Sequence[Union[Criterion, ModuleOption]]) -> Tuple[str, ...]:
    """Conditions as iptables writes them, consecutive options of one module under one -m."""
    rendered = []  # type: List[str]
    previous = None
    for condition in conditions:
        if isinstance(condition, ModuleOption) and isinstance(previous, ModuleOption) \
                and previous.module == condition.module:
            rendered[-1] += ' ' + condition.option_text()
        else:
            rendered.append(str(condition))
        previous = condition
    return tuple(rendered)


@dataclass(frozen=True)
class IptRule:
    table: str
    chain: str
    index: int  # 1-based, as `iptables -L --line-numbers` and `iptables -D CHAIN N` count
    line_number: int
    raw: str
    criteria: Tuple[Criterion, ...] = ()
    options: Tuple[ModuleOption, ...] = ()
    modules: Tuple[str, ...] = ()
    target: Optional[str] = None
    goto: bool = False
    target_options: Dict[str, str] = field(default_factory=dict)
    unknown_matches: Tuple[str, ...] = ()

    def criterion(self, flag: str) -> Optional[Criterion]:
        return next((criterion for criterion in self.criteria if criterion.flag == flag), None)

    def option(self, name: str) -> Optional[ModuleOption]:
        return next((option for option in self.options if option.name == name), None)

    @property
    def protocol(self) -> Optional[Criterion]:
        return self.criterion('-p')

    @property
    def source(self) -> Optional[Criterion]:
        return self.criterion('-s')

    @property
    def destination(self) -> Optional[Criterion]:
        return self.criterion('-d')

    @property
    def in_interface(self) -> Optional[Criterion]:
        return self.criterion('-i')

    @property
    def out_interface(self) -> Optional[Criterion]:
        return self.criterion('-o')

    @property
    def dports(self) -> Optional[PortSpec]:
        return self._ports(('destination', 'either'))

    @property
    def sports(self) -> Optional[PortSpec]:
        return self._ports(('source',))

    def _ports(self, directions: Tuple[str, ...]) -> Optional[PortSpec]:
        return next((option.ports for option in self.options
                     if _PORT_OPTIONS.get((option.module, option.name)) in directions), None)


@dataclass
class Chain:
    name: str
    policy: Optional[str]  # None for user-defined chains
    rules: List[IptRule] = field(default_factory=list)


@dataclass
class Table:
    name: str
    chains: Dict[str, Chain] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    action: str  # accept, drop, reject or uncertain
    rule: Optional[IptRule]  # None when the chain policy decided
    path: Tuple[str, ...]  # chains entered on the way to the deciding rule
    undecided: Tuple[str, ...] = ()  # the conditions that made the verdict uncertain


@dataclass(frozen=True)
class Bypass:
    kind: str
    reason: str
    rule: Optional[IptRule] = None


@dataclass
class NftChain:
    name: str
    hook: Optional[str] = None  # None for a regular chain, reached only by jump or goto
    rules: List[str] = field(default_factory=list)


@dataclass
class NftTable:
    family: str
    name: str
    chains: Dict[str, NftChain] = field(default_factory=dict)

    @property
    def rule_count(self) -> int:
        return sum(len(chain.rules) for chain in self.chains.values())


# --------------------------------------------------------------------------- parsing


def parse_iptables_save(text: str) -> Dict[str, Table]:
    """Tables of an iptables-save / ip6tables-save dump, by name ('filter', 'nat', ...)."""
    tables = {}  # type: Dict[str, Table]
    table = None  # type: Optional[Table]
    line_number = 0
    for line_number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('*'):
            if table is not None:
                raise NetfilterParseError(line_number, line, 'table %s is not closed by COMMIT' % table.name)
            if not line[1:] or line[1:] in tables:
                raise NetfilterParseError(line_number, line, 'missing or repeated table name')
            table = tables[line[1:]] = Table(line[1:])
        elif table is None:
            raise NetfilterParseError(line_number, line, 'outside any *table section')
        elif line == 'COMMIT':
            table = None
        elif line.startswith(':'):
            parts = line[1:].split()
            if len(parts) < 2:
                raise NetfilterParseError(line_number, line, 'chain declaration without a policy')
            table.chains[parts[0]] = Chain(parts[0], None if parts[1] == '-' else parts[1])
        else:
            rule = _parse_rule(table, _COUNTERS.sub('', line), line_number)
            table.chains[rule.chain].rules.append(rule)
    if table is not None:
        raise NetfilterParseError(line_number, line, 'table %s is not closed by COMMIT' % table.name)
    return tables


def _parse_rule(table: Table, line: str, line_number: int) -> IptRule:
    def fail(problem: str) -> NetfilterParseError:
        return NetfilterParseError(line_number, line, problem)

    try:
        tokens = shlex.split(line)
    except ValueError as error:
        raise fail(str(error))
    if len(tokens) < 2 or tokens[0] != '-A':
        raise fail('expected "-A CHAIN ..."')
    chain = tokens[1]
    if chain not in table.chains:
        raise fail('chain %s is not declared in table %s' % (chain, table.name))

    criteria, options, modules, unknown = [], [], [], []
    module = target = None
    # `-p tcp --dport N` without `-m tcp` (as ufw's rule files write it) loads the
    # protocol's match implicitly; iptables-save prints it as `-m tcp`.
    implicit_module = None
    goto, negated = False, False
    target_options = {}
    position = 2
    while position < len(tokens):
        flag = tokens[position]
        if flag == '!':
            negated, position = True, position + 1
            continue
        if not flag.startswith('-'):
            raise fail('unexpected %r' % flag)
        args, position = _arguments(tokens, position + 1, flag in _SINGLE_ARGUMENT_FLAGS)
        if flag in _SINGLE_ARGUMENT_FLAGS and not args:
            raise fail('%s needs a value' % flag)
        if flag == '-m':
            module = args[0]
            modules.append(module)
        elif flag in ('-j', '-g'):
            target, goto, module = args[0], flag == '-g', None
        elif target is not None and module is None:
            # Options right after the target are the target's; a `-m` after the
            # target (ufw writes `-j ACCEPT -m comment --comment ...`) starts a match again.
            target_options[flag] = ' '.join(args)
        elif flag in _KNOWN_CRITERIA or (module is None and (implicit_module, flag) not in _PORT_OPTIONS):
            # Built-in matches; unknown ones (-f, ...) are kept and never decided.
            value = _network(args[0], fail) if flag in _ADDRESS_FLAGS else ' '.join(args)
            criteria.append(Criterion(flag, value, negated))
            if flag == '-p' and not negated:
                implicit_module = _PROTOCOL_NAMES.get(value, value)
            if flag not in _KNOWN_CRITERIA:
                unknown.append(criteria[-1])
        else:
            option_module = module or implicit_module
            ports = _port_spec(args, negated, fail) if (option_module, flag) in _PORT_OPTIONS else None
            option = ModuleOption(option_module, flag, tuple(args), negated, ports)
            options.append(option)
            if (option_module, flag) not in _OPTION_EVALUATORS and option_module not in _HEADER_MODULES_ABSENT:
                unknown.append(option)
        negated = False
    if negated:
        raise fail('"!" negates nothing')
    return IptRule(
        table=table.name, chain=chain, index=len(table.chains[chain].rules) + 1, line_number=line_number,
        raw=line, criteria=tuple(criteria), options=tuple(options), modules=tuple(modules),
        target=target, goto=goto, target_options=target_options, unknown_matches=_render(unknown),
    )


def parse_chain_lines(table_name: str, chain: str, lines: Sequence[str]) -> List[IptRule]:
    """The rules of `-A CHAIN ...` lines (e.g. from ufw's rule files) as parsed rules."""
    table = Table(table_name, {chain: Chain(chain, None)})
    for line_number, line in enumerate(lines, 1):
        table.chains[chain].rules.append(_parse_rule(table, line, line_number))
    return table.chains[chain].rules


def replace_chain_rules(tables: Dict[str, Table], table_name: str, chain: str,
                        lines: Sequence[str]) -> Dict[str, Table]:
    """A copy of tables in which one chain holds exactly the given `-A` lines.

    This is the rule set as it is once `iptables-restore -n` has loaded that chain."""
    table = tables[table_name]
    chains = dict(table.chains)
    chains[chain] = Chain(chain, table.chains[chain].policy if chain in table.chains else None,
                          parse_chain_lines(table_name, chain, lines))
    result = dict(tables)
    result[table_name] = Table(table_name, chains)
    return result


# Options iptables-save prints with their default values although the rule never gave them.
_SAVE_DEFAULT_OPTIONS = frozenset((('recent', '--name'), ('recent', '--mask'), ('recent', '--rsource')))


def rule_signature(rule: IptRule) -> tuple:
    """What a rule matches and does, without the spelling iptables-save adds.

    iptables-save writes `-m tcp`, `/32`, default `--reject-with`, `3/min` for
    `3/minute` and `-m recent` defaults that the rule files omit; option values
    other than ports are left out so those spellings never look like a change."""
    return (
        rule.target, rule.goto,
        tuple(sorted(str(criterion) for criterion in rule.criteria)),
        tuple(sorted(((option.module, option.name, option.negated, option.ports) for option in rule.options
                      if (option.module, option.name) not in _SAVE_DEFAULT_OPTIONS), key=repr)),
    )


def same_rules(expected: Sequence[IptRule], live: Sequence[IptRule]) -> bool:
    """Whether a running chain holds the expected rules, in order (see rule_signature)."""
    return [rule_signature(rule) for rule in expected] == [rule_signature(rule) for rule in live]


def _arguments(tokens: List[str], start: int, single: bool) -> Tuple[List[str], int]:
    if single:
        return tokens[start:start + 1], start + 1
    end = start
    while end < len(tokens) and tokens[end] != '!' and not (tokens[end].startswith('-') and len(tokens[end]) > 1):
        end += 1
    return tokens[start:end], end


def _network(text: str, fail) -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise fail('%r is not an address or network' % text)


def _port_spec(args: List[str], negated: bool, fail) -> PortSpec:
    ranges = []
    try:
        if len(args) != 1:
            raise ValueError
        for item in args[0].split(','):
            low, _sep, high = item.partition(':')
            bounds = (int(low) if low else 0, int(high) if high else 65535) if _sep else (int(low), int(low))
            if not 0 <= bounds[0] <= bounds[1] <= 65535:
                raise ValueError
            ranges.append(bounds)
    except ValueError:
        raise fail('bad port list %r' % ' '.join(args))
    return PortSpec(tuple(ranges), negated)


def parse_nft_ruleset(text: str) -> List[NftTable]:
    """Tables, chains and rule lines of `nft list ruleset`; sets, maps and other table
    objects are skipped."""
    tables = []  # type: List[NftTable]
    table = chain = None
    skipped_depth = 0
    line_number = 0
    for line_number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if table is None:
            match = re.match(r'table (\S+) (\S+) \{$', line)
            if not match:
                raise NetfilterParseError(line_number, line, 'expected "table FAMILY NAME {"')
            table = NftTable(match.group(1), match.group(2))
            tables.append(table)
        elif skipped_depth:
            skipped_depth += line.count('{') - line.count('}')
        elif chain is None:
            match = re.match(r'chain (\S+) \{$', line)
            if match:
                chain = table.chains[match.group(1)] = NftChain(match.group(1))
            elif line == '}':
                table = None
            else:
                skipped_depth = line.count('{') - line.count('}')
        elif line == '}':
            chain = None
        elif line.startswith('type ') and ' hook ' in line:
            chain.hook = re.search(r' hook (\S+)', line).group(1)
        elif not line.startswith('comment '):
            chain.rules.append(line)
        if skipped_depth < 0:
            raise NetfilterParseError(line_number, line, 'unbalanced "}"')
    if table is not None:
        raise NetfilterParseError(line_number, line, 'table %s %s is not closed' % (table.family, table.name))
    return tables


def unmanaged_nft_tables(nft_tables: Sequence[NftTable]) -> List[NftTable]:
    """nft tables that are not iptables-nft's own, so ufw neither shows nor manages them."""
    return [table for table in nft_tables if (table.family, table.name) not in _IPTABLES_NFT_TABLES]


# --------------------------------------------------------------------------- evaluating


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
        result = False  # INPUT and PREROUTING have no output interface yet
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
    return option.ports.contains(packet.port)


def _opening_tcp_flags_match(option: ModuleOption, packet: _Packet) -> Optional[bool]:
    mask, expected = ({'ALL': _TCP_FLAGS_ALL, 'NONE': frozenset()}.get(arg, frozenset(arg.split(',')))
                      for arg in (option.args + ('', ''))[:2])
    results = {mask & flags == expected for flags in _OPENING_TCP_FLAGS}
    return results.pop() if len(results) == 1 else None


def _new_state_matches(option: ModuleOption, packet: _Packet) -> Optional[bool]:
    states = frozenset(option.args[0].split(',')) if option.args else frozenset()
    # UNTRACKED, SNAT, DNAT depend on raw/nat rules and on the connection, not on this rule set.
    return 'NEW' in states if states <= _DECIDABLE_CT_STATES else None


_PORT_OPTIONS = {
    ('tcp', '--dport'): 'destination', ('udp', '--dport'): 'destination',
    ('multiport', '--dports'): 'destination',
    ('tcp', '--sport'): 'source', ('udp', '--sport'): 'source', ('multiport', '--sports'): 'source',
    ('multiport', '--ports'): 'either',
}
_OPTION_EVALUATORS = {
    ('tcp', '--syn'): lambda option, packet: True,  # a NEW TCP connection starts with a SYN
    ('tcp', '--tcp-flags'): _opening_tcp_flags_match,
    ('conntrack', '--ctstate'): _new_state_matches,
    ('state', '--state'): _new_state_matches,
    ('comment', '--comment'): lambda option, packet: True,
    # The destination is one of this host's addresses (route type LOCAL); the sender is remote.
    ('addrtype', '--dst-type'): lambda option, packet: 'LOCAL' in option.args[0].split(','),
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


# --------------------------------------------------------------------------- bypasses


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
    bypasses.extend(_nat_bypasses(tables, packet, ''))
    other_tables = other_tables if other_tables is not None else legacy_tables
    if other_tables:
        bypasses.extend(_other_backend_bypasses(other_tables, packet, tool, backend))
    if nft_tables:
        bypasses.extend(_nft_bypasses(nft_tables, family, packet))
    return bypasses


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
    ('DOCKER', 'a Docker container publishes the port (docker run -p): unpublish it, bind it to 127.0.0.1, '
               'or filter it in DOCKER-USER'),
    ('KUBE-', 'a Kubernetes Service (NodePort or external IP) exposes the port'),
    ('CNI-', 'a Kubernetes pod exposes the port as a hostPort (CNI portmap)'),
)


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


def _nat_bypasses(tables: Dict[str, Table], packet: _Packet, backend: str) -> Iterator[Bypass]:
    port = '%s port %d' % (packet.protocol, packet.port)
    for outcome in _unique(_outcomes(tables.get('nat'), 'PREROUTING', packet)):
        rule = outcome.rule
        if outcome.action == 'dnat':
            destination = rule.target_options.get('--to-destination')
            new_port = _dnat_port(destination)
            effect = 'sends %s on to %s%s; that traffic is forwarded through FORWARD, not INPUT, so ufw\'s ' \
                     'deny does not apply%s' % (
                         port, destination, _evidence(outcome),
                         '; if that address is this host\'s own, it arrives as port %s, which ufw\'s rule for '
                         'port %d does not cover' % (new_port, packet.port)
                         if new_port and new_port != str(packet.port) else '')
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
        yield Bypass(BYPASS_NAT, '%s%s %s%s' % (backend, _where(rule), effect, '; ' + owner if owner else ''), rule)


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
    yield from _nat_bypasses(other_tables, packet, '%s-%s: ' % (tool, other))


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
