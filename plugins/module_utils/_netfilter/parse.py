# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Text in, data out: ``iptables-save`` / ``ip6tables-save`` and ``nft list ruleset`` parsed into the model.

The callers run the tools (the host snapshot) and hand their output here.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import (
    Chain,
    Criterion,
    IptRule,
    ModuleOption,
    NetfilterParseError,
    Network,
    NftChain,
    NftTable,
    PortSpec,
    Table,
    _HEADER_MODULES_ABSENT,
    _PORT_OPTIONS,
    _PROTOCOL_NAMES,
    _render,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.walk import (
    _OPTION_EVALUATORS,
)

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
