# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Parse and write ufw 0.35/0.36 user rules files (``/etc/ufw/user.rules``, ``user6.rules``).

This module is private to the sipguard.firewall collection. It may change or
disappear in any release; do not use it from outside the collection.

It is pure: text in, data out. Reading, writing and reloading are the caller's job.

ufw keeps its own rules in these files as blocks of the form::

    (blank line)
    ### tuple ### deny tcp 5061 0.0.0.0/0 any 0.0.0.0/0 in comment=7369706775617264
    -A ufw-user-input -p tcp --dport 5061 -j DROP

between ``### RULES ###`` and ``### END RULES ###``. ufw itself only reads the
``### tuple ###`` lines back (see ``_read_rules`` in ufw's backend_iptables.py);
iptables-restore only reads the ``-A`` lines. Both therefore have to agree, which is
why existing blocks are kept verbatim and new blocks are rendered exactly the way
ufw renders them.
"""

from __future__ import annotations

import binascii
import re
import socket
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._request import check_port

RULES_MARKER = "### RULES ###"
END_RULES_MARKER = "### END RULES ###"
TUPLE_PREFIX = "### tuple ###"

_ACTIONS = ("allow", "deny", "reject", "limit")
# ufw 0.36's util.supported_protocols plus 'any'; ufw itself skips tuples with others.
_PROTOCOLS = ("any", "tcp", "udp", "ipv6", "esp", "ah", "igmp", "gre", "vrrp")
_LOG_TYPES = ("log", "log-all")
_NEW_RULE_PROTOCOLS = ("tcp", "udp")
_ANYWHERE_V4 = "0.0.0.0/0"
_ANYWHERE_V6 = "::/0"
_ANYWHERE = (_ANYWHERE_V4, _ANYWHERE_V6)
# Port fields as ufw writes them: 'any', or numbers, ranges and comma lists
# (ufw turns service names into numbers before saving).
_PORTS_RE = re.compile(r"^(any|\d+(:\d+)?(,\d+(:\d+)?)*)$")
_HEX_RE = re.compile(r"^([0-9a-fA-F]{2})*$")
# The actions make_rule() writes, and the iptables target ufw uses for each.
_IPTABLES_TARGETS = {"allow": "ACCEPT", "deny": "DROP", "reject": "REJECT"}


class UfwRulesError(Exception):
    """A rules file contains something this parser does not understand."""

    def __init__(self, reason: str, line_number: Optional[int] = None, line: Optional[str] = None):
        self.reason = reason
        self.line_number = line_number
        self.line = line
        if line_number is None:
            message = reason
        else:
            message = "line %d: %s: %r" % (line_number, reason, line)
        super().__init__(message)


@dataclass(frozen=True)
class Rule:
    """One ufw rule: the fields of its ``### tuple ###`` line plus its exact text.

    ``raw_lines`` is the block exactly as it stands in the file: the blank line(s)
    ufw puts before every tuple, the tuple line, and the iptables lines ufw
    generated for it. Rendering writes it back unchanged, so rules the collection
    does not own survive byte for byte.
    """

    action: str
    direction: str
    route: bool
    protocol: str
    dport: str
    dst: str
    sport: str
    src: str
    dapp: Optional[str]
    sapp: Optional[str]
    interface_in: Optional[str]
    interface_out: Optional[str]
    log: str
    comment: str
    raw_lines: Tuple[str, ...]

    @property
    def v6(self) -> bool:
        # ufw stores '::/0' rather than 'any' in user6.rules, so the destination
        # of a v6 rule is always an IPv6 address or network.
        return ":" in self.dst

    @property
    def iptables_lines(self) -> Tuple[str, ...]:
        tuple_index = next(i for i, line in enumerate(self.raw_lines) if line.startswith(TUPLE_PREFIX))
        return self.raw_lines[tuple_index + 1:]


@dataclass(frozen=True)
class RulesFile:
    """A parsed rules file, as lines without their newline characters.

    ``header`` ends with the ``### RULES ###`` line. ``trailer`` starts with the
    blank line before ``### END RULES ###`` (or, in ufw's shipped template, right
    after ``### RULES ###``) and runs to the end of the text; its last element is
    '' when the text ends with a newline.
    """

    header: Tuple[str, ...]
    rules: Tuple[Rule, ...]
    trailer: Tuple[str, ...]


def parse_rules_file(text: str) -> RulesFile:
    """Split a user.rules/user6.rules text into header, rules and trailer.

    Raises UfwRulesError on anything that is not ufw's layout, so that no line
    is ever silently dropped or misattributed.
    """
    lines = text.split("\n")
    try:
        rules_start = lines.index(RULES_MARKER) + 1
    except ValueError:
        raise UfwRulesError("no %r line: not a ufw user rules file" % RULES_MARKER)
    _reject_tuples_in(lines[:rules_start], first_line_number=1, where="before " + RULES_MARKER)

    if END_RULES_MARKER not in lines[rules_start:]:
        # The template ufw ships (and installs until ufw first rewrites the file)
        # has no END marker and no rules, only the rate limiting lines.
        _reject_tuples_in(lines[rules_start:], rules_start + 1, "in a file without " + END_RULES_MARKER)
        return RulesFile(header=tuple(lines[:rules_start]), rules=(), trailer=tuple(lines[rules_start:]))

    rules_end = lines.index(END_RULES_MARKER, rules_start)
    rules: List[Rule] = []
    block: List[str] = []  # the rule being read: its leading blank lines, tuple line, iptables lines
    block_fields: dict = {}
    blank_lines: List[str] = []  # blank lines waiting for the next tuple or the END marker
    for index in range(rules_start, rules_end):
        line = lines[index]
        if line.startswith(TUPLE_PREFIX):
            if block:
                rules.append(Rule(raw_lines=tuple(block), **block_fields))
            block_fields = _parse_tuple(line, index + 1)
            block = blank_lines + [line]
            blank_lines = []
        elif not line.strip():
            blank_lines.append(line)
        elif line.startswith("-A ") and block and not blank_lines:
            block.append(line)
        else:
            raise UfwRulesError("line in the rules section outside a '### tuple ###' block", index + 1, line)
    if block:
        rules.append(Rule(raw_lines=tuple(block), **block_fields))
    _reject_tuples_in(lines[rules_end:], rules_end + 1, "after " + END_RULES_MARKER)
    # Blank lines right before the END marker belong to it: ufw writes "\n### END RULES ###".
    trailer_start = rules_end - len(blank_lines)
    return RulesFile(header=tuple(lines[:rules_start]), rules=tuple(rules), trailer=tuple(lines[trailer_start:]))


def render_rules_file(rules_file: RulesFile) -> str:
    """Inverse of parse_rules_file: byte-identical for any parsed file left unchanged."""
    lines = list(rules_file.header)
    for rule in rules_file.rules:
        lines.extend(rule.raw_lines)
    if rules_file.rules and END_RULES_MARKER not in rules_file.trailer:
        # Rules added to ufw's shipped template: close the section the way ufw
        # does, so the file parses back and ufw's own layout is kept.
        lines.extend(("", END_RULES_MARKER))
    lines.extend(rules_file.trailer)
    return "\n".join(lines)


def make_rule(action: str, protocol: str, port: int, src: Optional[str] = None, comment: str = "",
              v6: bool = False) -> Rule:
    """Build an incoming rule for one port exactly as ufw 0.36 would write it.

    Equivalent to ``ufw [insert N] ACTION proto PROTOCOL [from SRC] to any port
    PORT [comment COMMENT]``, for the user.rules (``v6=False``) or user6.rules
    (``v6=True``) half of it. ``src`` is an address or CIDR network of the file's
    family, normalised the way ufw normalises it.
    """
    if action not in _IPTABLES_TARGETS:
        raise ValueError("action must be one of %s, not %r" % (", ".join(sorted(_IPTABLES_TARGETS)), action))
    if protocol not in _NEW_RULE_PROTOCOLS:
        raise ValueError("protocol must be one of %s, not %r" % (", ".join(_NEW_RULE_PROTOCOLS), protocol))
    if not isinstance(port, int):
        raise ValueError("port must be an integer from 1 to 65535, not %r" % (port,))
    check_port(port)
    if "'" in comment:
        # ufw's own command line refuses these (see ufw's parser.py); stay within what ufw can produce.
        raise ValueError("comment must not contain a single quote")
    anywhere = _ANYWHERE_V6 if v6 else _ANYWHERE_V4
    source = anywhere if src is None else _normalize_address(src, v6)
    comment_hex = binascii.hexlify(comment.encode("utf-8")).decode("ascii")

    tuple_line = "%s %s %s %s %s any %s in" % (TUPLE_PREFIX, action, protocol, port, anywhere, source)
    if comment_hex:
        tuple_line += " comment=" + comment_hex
    # Mirrors UFWRule.format_rule(): protocol, --dport, -s, then the target.
    chain = "ufw6-user-input" if v6 else "ufw-user-input"
    iptables_line = "-A %s -p %s --dport %d" % (chain, protocol, port)
    if source != anywhere:
        iptables_line += " -s " + source
    iptables_line += " -j " + _IPTABLES_TARGETS[action]
    if action == "reject" and protocol == "tcp":
        iptables_line += " --reject-with tcp-reset"

    return Rule(action=action, direction="in", route=False, protocol=protocol, dport=str(port), dst=anywhere,
                sport="any", src=source, dapp=None, sapp=None, interface_in=None, interface_out=None, log="",
                comment=comment, raw_lines=("", tuple_line, iptables_line))


def format_status_line(rule: Rule) -> str:
    """The rule as ``ufw status numbered`` lists it, without the ``[ N]`` prefix.

    Ported from ufw's get_status(); trailing padding is stripped. ufw prints an
    application rule once even when its profile produced several tuples.
    """
    to_column = _status_location(rule, rule.dst, rule.dport, rule.dapp)
    from_column = _status_location(rule, rule.src, rule.sport, rule.sapp)
    # Route rules report interfaces as packets flow (in under From, out under To);
    # other rules relative to this host (in under To, out under From).
    to_interface, from_interface = rule.interface_in, rule.interface_out
    if rule.route:
        to_interface, from_interface = from_interface, to_interface
    if to_interface:
        to_column += " on " + to_interface
    if from_interface:
        from_column += " on " + from_interface

    attributes = [rule.log] if rule.log else []
    if rule.direction == "out":
        attributes.append("out")
    attribute_text = " (%s)" % ", ".join(attributes) if attributes else ""
    action_text = "%s %s" % (rule.action.upper(), "FWD" if rule.route else rule.direction.upper())
    comment_text = " # " + rule.comment if rule.comment else ""
    line = "%-26s %-12s%-26s%s%s" % (to_column, action_text, from_column, attribute_text, comment_text)
    return line.rstrip()


def status_text(rule: Rule) -> str:
    """A rule as one `ufw status` line with the column padding squeezed out."""
    return " ".join(format_status_line(rule).split())


def port_in_spec(port: int, spec: str) -> bool:
    """Whether port is in a ufw port field: 'any', '5061', '5000:6000', '80,443,5000:6000'."""
    if spec == "any":
        return True
    for part in spec.split(","):
        low, _sep, high = part.partition(":")
        if int(low) <= port <= int(high or low):
            return True
    return False


def accepts_port(rule: Rule, port: int, protocols) -> bool:
    """Whether an incoming ufw rule lets the port through for one of the protocols."""
    return (rule.direction == "in" and not rule.route and rule.action in ("allow", "limit")
            and (rule.protocol == "any" or rule.protocol in protocols)
            and port_in_spec(port, rule.dport))


def _status_location(rule: Rule, address: str, port: str, app: Optional[str]) -> str:
    show_protocol = rule.dapp is None and rule.sapp is None and rule.protocol != "any"
    if app is not None:
        port = app + (" (v6)" if address == _ANYWHERE_V6 else "")
    location = "" if address in _ANYWHERE else address
    if port != "any":
        location = port if not location else location + " " + port
        if show_protocol:
            location += "/" + rule.protocol
        if rule.v6 and rule.src == _ANYWHERE_V6 and rule.dst == _ANYWHERE_V6 and " (v6)" not in location:
            # Keeps a port-only v6 rule from looking like a duplicate of its v4 twin.
            location += " (v6)"
    elif address in _ANYWHERE:
        location = "Anywhere"
        if show_protocol and rule.dst == rule.src and rule.dport == rule.sport:
            location += "/" + rule.protocol
        if address == _ANYWHERE_V6:
            location += " (v6)"
    elif show_protocol and rule.dport == rule.sport:
        location += "/" + rule.protocol
    return location


def _reject_tuples_in(lines: List[str], first_line_number: int, where: str) -> None:
    # ufw loads every tuple line wherever it stands; one outside the rules section
    # would be a rule this parser cannot place.
    for offset, line in enumerate(lines):
        if line.startswith(TUPLE_PREFIX):
            raise UfwRulesError("'### tuple ###' line " + where, first_line_number + offset, line)


def _parse_tuple(line: str, line_number: int) -> dict:
    def fail(reason):
        return UfwRulesError(reason, line_number, line)

    body, has_comment, comment_hex = line[len(TUPLE_PREFIX):].partition(" comment=")
    comment = ""
    if has_comment:
        comment_hex = comment_hex.strip()
        if not _HEX_RE.match(comment_hex):
            raise fail("comment is not hex-encoded")
        comment = binascii.unhexlify(comment_hex).decode("utf-8", "backslashreplace")

    tokens = body.split()
    # 7 or 9 fields (direction last); files from older ufw releases have 6 or 8, which ufw reads as 'in'.
    if len(tokens) not in (6, 7, 8, 9):
        raise fail("tuple has %d fields, expected 7 (port rule) or 9 (application rule)" % len(tokens))
    direction_field = tokens[-1] if len(tokens) in (7, 9) else "in"

    action_field = tokens[0]
    route = action_field.startswith("route:")
    if route:
        action_field = action_field[len("route:"):]
    action, _separator, log = action_field.partition("_")
    if action not in _ACTIONS or (log and log not in _LOG_TYPES):
        raise fail("unknown action %r" % tokens[0])

    protocol, dport, dst, sport, src = tokens[1:6]
    if protocol not in _PROTOCOLS:
        raise fail("unknown protocol %r" % protocol)
    for port in (dport, sport):
        if not _PORTS_RE.match(port):
            raise fail("bad port %r" % port)

    dapp = sapp = None
    if len(tokens) >= 8:
        dapp = None if tokens[6] == "-" else tokens[6].replace("%20", " ")
        sapp = None if tokens[7] == "-" else tokens[7].replace("%20", " ")

    direction, interface_in, interface_out = _parse_direction(direction_field, fail)
    return dict(action=action, direction=direction, route=route, protocol=protocol, dport=dport, dst=dst,
                sport=sport, src=src, dapp=dapp, sapp=sapp, interface_in=interface_in,
                interface_out=interface_out, log=log, comment=comment)


def _parse_direction(field: str, fail) -> Tuple[str, Optional[str], Optional[str]]:
    """'in', 'out', 'in_eth0', 'out_eth0' or 'in_eth0!out_eth1' (route rules with both)."""
    if field in ("in", "out"):
        return field, None, None
    if "!" in field:
        in_part, _separator, out_part = field.partition("!")
        if in_part.startswith("in_") and out_part.startswith("out_") and len(in_part) > 3 and len(out_part) > 4:
            return "in", in_part[len("in_"):], out_part[len("out_"):]
    else:
        direction, _separator, interface = field.partition("_")
        if direction in ("in", "out") and interface:
            # Interface names may contain '_' themselves; only the first one separates.
            if direction == "in":
                return "in", interface, None
            return "out", None, interface
    raise fail("bad direction/interface field %r" % field)


def _normalize_address(address: str, v6: bool) -> str:
    """ufw's util.normalize_address() for CIDR notation: host masks dropped,
    IPv4 host bits cleared, IPv6 written the way inet_ntop writes it (ufw keeps
    IPv6 host bits, e.g. '2001:db8::5/64')."""
    family, max_prefix = (socket.AF_INET6, 128) if v6 else (socket.AF_INET, 32)
    host, has_prefix, prefix_text = address.lower().partition("/")
    try:
        packed = socket.inet_pton(family, host)
    except (OSError, ValueError):
        raise ValueError("%r is not an IPv%s address or network" % (address, "6" if v6 else "4"))
    prefix = max_prefix
    if has_prefix:
        if not prefix_text.isdigit() or int(prefix_text) > max_prefix:
            raise ValueError("%r has a bad prefix length" % address)
        prefix = int(prefix_text)
    if not v6:
        mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        packed = (int.from_bytes(packed, "big") & mask).to_bytes(4, "big")
    normalized = socket.inet_ntop(family, packed)
    return normalized if prefix == max_prefix else "%s/%d" % (normalized, prefix)
