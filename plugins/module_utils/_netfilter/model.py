# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The netfilter rule set as data: tables, chains, rules and their conditions, verdicts, bypasses.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union


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


_PROTOCOL_NAMES = {'6': 'tcp', '17': 'udp'}


# Matches on headers that a plain TCP or UDP packet does not carry: they never match it.
_HEADER_MODULES_ABSENT = frozenset(('icmp', 'icmp6', 'rt'))


_NFT_FAMILIES_SEEN_BY = {'ipv4': ('ip', 'inet'), 'ipv6': ('ip6', 'inet')}


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


_PORT_OPTIONS = {
    ('tcp', '--dport'): 'destination', ('udp', '--dport'): 'destination',
    ('multiport', '--dports'): 'destination',
    ('tcp', '--sport'): 'source', ('udp', '--sport'): 'source', ('multiport', '--sports'): 'source',
    ('multiport', '--ports'): 'either',
    # The destination port the connection had before DNAT (Docker's documented DOCKER-USER match).
    ('conntrack', '--ctorigdstport'): 'original',
}
