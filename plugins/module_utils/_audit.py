# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a host says about one port: who listens, what UFW decides, what goes around UFW.

Private to the sipguard.firewall collection: no stability guarantees for other users.

Read-only (it gets a ``ReadOnlyHost``). The same snapshot as the close's and the same exposure
model (``_exposure.assess``), so the audit and the close cannot disagree about a host.
"""

from __future__ import annotations

from ansible_collections.sipguard.firewall.plugins.module_utils._exposure import assess, ufw_ipv6_unmanaged
from ansible_collections.sipguard.firewall.plugins.module_utils._host import ReadOnlyHost
from ansible_collections.sipguard.firewall.plugins.module_utils._listeners import listener_record
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.rules import (
    accepts_port,
    port_in_spec,
    status_text,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import UfwPortError, read_snapshot

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
                open_from.append("%s (%s)" % (" ".join(limited_to), status_text(rule)))
            continue
        return dict(action=rule.action, rule=status_text(rule), open_from=open_from)
    return dict(action="default " + default_policy, rule=None, open_from=open_from)


def run_audit(host, request):
    """The audit result for request.port over request.protocols x request.families."""
    snapshot = read_snapshot(ReadOnlyHost(host), request, require_ufw=False)
    if snapshot.listeners_problem:
        raise UfwPortError(snapshot.listeners_problem)
    policies = snapshot.policies()
    exposure = assess(request, snapshot, snapshot.live)

    summary = []
    for path in exposure.paths:
        item = path.as_dict()
        live = snapshot.live.get(path.family, {})
        # UFW's rule list decides nothing for a family whose rules it does not load (IPV6=no).
        item["ufw_verdict"] = (
            ufw_rule_verdict(snapshot.rules[path.family].rules, request.port, path.protocol,
                             policies.get("incoming", "?"))
            if path.family in snapshot.rules and not ufw_ipv6_unmanaged(snapshot, live, path.family) else None)
        summary.append(item)

    loaded = any(snapshot.loaded(family) for family in request.families)
    return dict(
        changed=False, port=request.port, exposed=exposure.exposed, reasons=exposure.reasons_with_listeners, summary=summary,
        listeners=[listener_record(listener, snapshot.owners) for listener in snapshot.listeners],
        ufw=dict(installed=snapshot.installed, version=snapshot.version, enabled=snapshot.enabled,
                 loaded=loaded, active=snapshot.enabled and loaded, backend=snapshot.backend,
                 ipv6=snapshot.ipv6, default_policies=policies if snapshot.installed else {},
                 rules=["[%2d] %s" % (index, status_text(rule)) for index, rule in enumerate(
                     [rule for family in request.families if family in snapshot.rules
                      for rule in snapshot.rules[family].rules], 1)]))
