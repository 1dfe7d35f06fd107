# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one exposure model: whether the port is exposed on a host, and why.

Private to the sipguard.firewall collection: no compatibility promise outside it.

Pure: a snapshot (``_ufw.snapshot``) and a rule set in, an ``Exposure`` out. The audit judges
the rule set loaded now; the close judges it before and after its change; the report, the
run's statistics and the watch read the same fields, with one meaning:

- a path (family and protocol) is ``exposed`` when the firewall lets a new connection from a
  sender outside the trusted sources reach the port, for the ``reasons`` given (each names the
  rule, chain or table) - whether or not something listens there now: a service started
  later, or one restarting, is reachable at once;
- ``listening`` says whether something takes the connection now (named first in the reasons);
- a host is ``closed`` when no path is exposed: the firewall alone keeps every untrusted
  sender out (the close's ``effective``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.bypasses import find_bypasses
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import BYPASS_LEGACY_RULES
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.walk import (
    has_ufw_chains,
    verdict_for_port,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import FAMILY_FILES, UFW_DEFAULTS


@dataclass(frozen=True)
class Path:
    """One family and protocol of the port."""

    family: str
    protocol: str
    port: int
    reasons: Tuple[str, ...]  # what lets an untrusted sender in; empty when the firewall keeps it out
    listening: bool  # a socket outside loopback takes connections of this family and protocol
    who: Optional[str]  # who listens, as a sentence
    notes: Tuple[str, ...]  # what to know that does not decide the verdict
    firewall: str  # what filter INPUT alone does with the packet: accept, drop, reject, uncertain
    deciding_rule: Optional[str]

    @property
    def exposed(self):
        return bool(self.reasons)

    @property
    def prefix(self):
        return "%s/%s" % (self.family, self.protocol)

    def as_dict(self):
        """The path as the modules return it (port_audit's ``summary`` items)."""
        reasons, notes = list(self.reasons), list(self.notes)
        if self.exposed and self.listening:
            reasons.insert(0, self.who)
        elif self.exposed:
            notes.append("the firewall lets %s/%d in, but nothing listens on it now" % (self.protocol, self.port))
        return dict(family=self.family, protocol=self.protocol, listening=self.listening, exposed=self.exposed,
                    firewall=self.firewall, deciding_rule=self.deciding_rule,
                    reasons=reasons, notes=notes)


@dataclass(frozen=True)
class Exposure:
    """Every requested family and protocol of one host's port, and the warnings found on the way."""

    paths: Tuple[Path, ...]
    warnings: Tuple[str, ...] = ()

    @property
    def exposed(self):
        return any(path.exposed for path in self.paths)

    @property
    def closed(self):
        return not self.exposed

    @property
    def reasons(self):
        """Why the port is exposed, each with its family/protocol (the close's ``reasons``)."""
        return list(dict.fromkeys("%s: %s" % (path.prefix, reason) for path in self.paths for reason in path.reasons))

    @property
    def reasons_with_listeners(self):
        """Why the port is exposed, who listens first, each with its family/protocol (the audit's ``reasons``)."""
        return ["%s: %s" % (path.prefix, reason) for path in self.paths for reason in path.as_dict()["reasons"]]


def ufw_ipv6_unmanaged(snapshot, tables, family):
    """Why UFW has no chains in the family's loaded rules when that is IPV6=no; else None."""
    if family != "ipv6" or not snapshot.installed or snapshot.ipv6 or has_ufw_chains(tables, family):
        return None
    return "UFW does not manage IPv6 on this host (IPV6=no in %s)" % UFW_DEFAULTS


def family_notes(snapshot, tables, family, closing=False):
    """What a reader should know about the family that does not decide the verdict."""
    notes = list(snapshot.notes.get(family, ()))
    unmanaged = ufw_ipv6_unmanaged(snapshot, tables, family)
    if unmanaged:
        notes.append("%s: it loads no IPv6 rule (and drops any from %s when it next writes its rules), so IPv6 is "
                     "judged from the ip6tables rules loaded now (with IPV6=no, UFW sets them to drop everything "
                     "but loopback when it starts)%s"
                     % (unmanaged, FAMILY_FILES[family].rules_path, "; no IPv6 rule was written" if closing else ""))
    return notes


def serves(listener, family):
    """Whether a listening socket takes connections of this family (:: may take IPv4 too)."""
    return listener.family == family or (
        family == "ipv4" and listener.family == "ipv6" and listener.wildcard and listener.dual_stack is not False)


def _who_listens(serving, owners):
    names = sorted({owner.name or "pid %d" % owner.pid for listener in serving
                    for owner in owners.get(listener.inode, [])})
    endpoints = sorted({("[%s]:%d" if ":" in listener.address else "%s:%d") % (listener.address, listener.port)
                        for listener in serving})
    return "%s listens on %s" % (
        ", ".join(names) or "a process this audit could not name (it needs root with CAP_SYS_PTRACE)",
        ", ".join(endpoints))


def _path(request, snapshot, tables, family, protocol, closing):
    """(the Path, its warnings) of one family and protocol over the given rule set."""
    bypasses, warnings = [], []
    for bypass in find_bypasses(tables, family, protocol, request.port, nft_tables=snapshot.nft,
                                other_tables=snapshot.other.get(family),
                                backend=snapshot.backends.get(family, "nft"),
                                ufw_absent_reason=ufw_ipv6_unmanaged(snapshot, tables, family),
                                trusted=request.sources_for(family),
                                local_addresses=snapshot.local.get(family),
                                interfaces=snapshot.interfaces):
        # Rules in the other backend's tables matter through their NAT, a bypass of its own.
        (warnings if bypass.kind == BYPASS_LEGACY_RULES else bypasses).append(bypass)
    serving = [listener for listener in snapshot.listeners
               if listener.protocol == protocol and serves(listener, family) and not listener.loopback_only]
    firewall = verdict_for_port(tables, family, protocol, request.port, local=snapshot.local.get(family),
                                interfaces=snapshot.interfaces)
    path = Path(family=family, protocol=protocol, port=request.port, reasons=tuple(dict.fromkeys(bypass.reason for bypass in bypasses)),
                listening=bool(serving), who=_who_listens(serving, snapshot.owners) if serving else None,
                notes=tuple(family_notes(snapshot, tables, family, closing) + [bypass.reason for bypass in warnings]),
                firewall=firewall.action, deciding_rule=firewall.rule.raw if firewall.rule else None)
    return path, ["%s/%s: %s" % (family, protocol, bypass.reason) for bypass in warnings]


def assess(request, snapshot, tables_by_family, closing=False):
    """The Exposure of request.port over request.families x request.protocols, judged from
    tables_by_family (the rule set loaded now, or the one the close leaves) and the snapshot's
    listeners, nft tables and addresses. closing: the notes say no IPv6 rule was written."""
    paths, warnings = [], []
    for family in request.families:
        tables = tables_by_family.get(family) or {}
        warnings.extend("%s: %s" % (family, note) for note in family_notes(snapshot, tables, family, closing))
        for protocol in request.protocols:
            path, found = _path(request, snapshot, tables, family, protocol, closing)
            paths.append(path)
            warnings.extend(found)
    return Exposure(tuple(paths), tuple(dict.fromkeys(warnings)))
