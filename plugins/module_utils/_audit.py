# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a host says about one port: who listens, what UFW decides, what goes around UFW.

Private to the sipguard.firewall collection: no stability guarantees for other users.

Read-only. It shares the rule-file parser, the snapshot and the exposure verdict with
ufw_port (``_ufw_port``), so the audit and the close cannot disagree about a rule set.
"""

from __future__ import annotations

from ansible_collections.sipguard.firewall.plugins.module_utils._listeners import (
    ProcNetError,
    find_listeners,
    listener_record,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import (
    BYPASS_NAT,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import (
    parse_nft_ruleset,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.walk import (
    verdict_for_port,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw_port import (
    UfwPortError,
    _status,
    accepts_port,
    exposure_findings,
    family_notes,
    port_in_spec,
    read_snapshot,
    ufw_ipv6_unmanaged,
)

ANYWHERE = ("0.0.0.0/0", "::/0")


def ufw_rule_verdict(rules, port, protocol, default_policy):
    """First match of a new incoming connection to port/protocol over UFW's own rule list.

    Rules limited to some sources or interfaces do not decide for everyone: they are
    collected (``open_from`` for allows) and the walk goes on, as a packet from elsewhere
    would. Returns dict(action, rule, open_from).
    """
    open_from = []
    for rule in rules:
        if rule.direction != "in" or rule.route or not port_in_spec(port, rule.dport):
            continue
        if rule.protocol not in ("any", protocol):
            continue
        limited_to = [part for part in (
            None if rule.src in ANYWHERE else rule.src,
            "on " + rule.interface_in if rule.interface_in else None) if part]
        if limited_to:
            if accepts_port(rule, port, (protocol,)):
                open_from.append("%s (%s)" % (" ".join(limited_to), _status(rule)))
            continue
        return dict(action=rule.action, rule=_status(rule), open_from=open_from)
    return dict(action="default " + default_policy, rule=None, open_from=open_from)


def _serves(listener, family):
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


def run_audit(host, request):
    """The audit result for request.port over request.protocols x request.families."""
    try:
        listeners, owners = find_listeners(host, request.port, request.protocols)
    except ProcNetError as exc:
        raise UfwPortError("cannot read the socket tables: %s" % exc)
    snapshot = read_snapshot(host, request.families, require_ufw=False)
    nft = host.find_executable("nft")
    nft_tables = parse_nft_ruleset(host.run([nft, "list", "ruleset"])) if nft else None
    policies = snapshot.policies()

    summary, all_reasons = [], []
    for family in request.families:
        for protocol in request.protocols:
            serving = [listener for listener in listeners
                       if listener.protocol == protocol and _serves(listener, family)
                       and not listener.loopback_only]
            live = snapshot.live.get(family, {})
            bypasses, notes = exposure_findings(request, snapshot, live, family, protocol, nft_tables)
            notes = family_notes(snapshot, live, family) + notes
            forwarded = any(bypass.kind == BYPASS_NAT for bypass in bypasses)
            # Reachable and something answers there: locally, or behind a DNAT/REDIRECT.
            exposed = bool(bypasses) and (bool(serving) or forwarded)
            reasons = [bypass.reason for bypass in bypasses] if exposed else []
            if exposed and serving:
                reasons.insert(0, _who_listens(serving, owners))
            elif bypasses and not exposed:
                notes.append("the firewall lets %s/%d in, but nothing listens on it now" % (protocol, request.port))
            firewall = verdict_for_port(live, family, protocol, request.port, local=snapshot.local.get(family),
                                        interfaces=snapshot.interfaces)
            # UFW's rule list decides nothing for a family whose rules it does not load (IPV6=no).
            verdict = (ufw_rule_verdict(snapshot.rules[family].rules, request.port, protocol,
                                        policies.get("incoming", "?"))
                       if family in snapshot.rules and not ufw_ipv6_unmanaged(snapshot, live, family) else None)
            summary.append(dict(
                family=family, protocol=protocol, listening=bool(serving), exposed=exposed,
                firewall=firewall.action, deciding_rule=firewall.rule.raw if firewall.rule else None,
                ufw_verdict=verdict, reasons=reasons, notes=notes))
            all_reasons.extend("%s/%s: %s" % (family, protocol, reason) for reason in reasons)

    loaded = any(snapshot.loaded(family) for family in request.families)
    return dict(
        changed=False, port=request.port, exposed=any(item["exposed"] for item in summary),
        reasons=all_reasons, summary=summary,
        listeners=[listener_record(listener, owners) for listener in listeners],
        ufw=dict(installed=snapshot.installed, version=snapshot.version, enabled=snapshot.enabled,
                 loaded=loaded, active=snapshot.enabled and loaded, backend=snapshot.backend,
                 ipv6=snapshot.ipv6, default_policies=policies if snapshot.installed else {},
                 rules=["[%2d] %s" % (index, _status(rule)) for index, rule in enumerate(
                     [rule for family in request.families if family in snapshot.rules
                      for rule in snapshot.rules[family].rules], 1)]))
