# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Compare what the modules say about a state with what the network saw. Pure: no I/O.

Reached means a TCP connect succeeded, or a UDP datagram got its echo back or reached the
listener (its log says so; the host may drop all its output, as UFW with IPV6=no). The verdicts are
about sources outside ``trusted_sources``, so a probe from a trusted address never counts as
exposure; it counts for "a trusted source keeps its access" instead.

Checks, per family and protocol of 5061 unless named otherwise:

- audit exposed: ``summary[].exposed`` is true exactly when an untrusted probe reached it;
- audit firewall: ``accept`` means every probe reached it, ``drop``/``reject`` that none did
  (``uncertain`` promises nothing; skipped when a nat REDIRECT moves the port before INPUT);
- audit vs close: the close's ``before`` reasons name the family/protocol exactly when the
  audit calls it exposed (the two modules share one verdict);
- close reasons / effective: after the close, ``reasons`` name the family/protocol exactly when
  an untrusted probe still reaches it, and ``effective`` is true exactly when none does;
- close refused or skipped: when the close failed or skipped (``inactive=skip``), every probe
  of 5061 reaches it after exactly when it did before;
- other ports: every probe of 5060, 22 and 8080 reaches it after the close exactly when it did
  before (closed and filtered are not told apart: the kernel rate-limits ICMP errors);
- trusted access: a trusted probe that reached 5061 before the close still does after it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, List

from ansible_collections.sipguard.firewall.tests.differential import topology

OPEN = "open"
DELIVERED = "delivered"  # a UDP datagram the listener received, though no echo came back
REACHED = (OPEN, DELIVERED)


class HarnessError(AssertionError):
    """The test's own set-up is broken (a listener died, a module printed no result)."""


@dataclass(frozen=True)
class Disagreement:
    check: str
    where: str
    module: str
    network: str

    def __str__(self):
        return "%s [%s]: the module says %s; the network: %s" % (self.check, self.where, self.module, self.network)


@dataclass(frozen=True)
class Probe:
    key: str
    family: str
    protocol: str
    port: int
    vantage: topology.Vantage
    destination: str  # the target's side whose address was probed

    @property
    def label(self):
        return "%s>%s" % (self.vantage.name, self.destination)


def plan_probes():
    return [Probe(key, vantage.family, protocol, port, vantage, destination)
            for key, protocol, vantage, destination, port in topology.probe_plan()]


def trusted(probe: Probe, trusted_sources) -> bool:
    return topology.in_networks(probe.vantage.address, trusted_sources)


def _port_probes(probes, family, protocol, port=topology.PORT):
    return [probe for probe in probes if (probe.family, probe.protocol, probe.port) == (family, protocol, port)]


def _reached(probes, results):
    return [probe for probe in probes if results.get(probe.key) in REACHED]


def _listing(probes, total=None):
    if not probes:
        return "reached by no probe"
    labels = " ".join(probe.label for probe in probes[:8]) + (" ..." if len(probes) > 8 else "")
    return "reached from %s (%d%s probes)" % (labels, len(probes), " of %d" % total if total else "")


def _has_reason(reasons, where):
    return any(reason.startswith(where + ": ") for reason in reasons or [])


def _changed(probe, before, after):
    """Reached before and not after, or the reverse. Closed and filtered are not told apart:
    the kernel rate-limits ICMP errors, so a REJECT may look like a DROP to the next probe."""
    return (before.get(probe.key) in REACHED) != (after.get(probe.key) in REACHED)


def network_summary(probes, results) -> List[str]:
    """One line per family/protocol/port: which probes reached it."""
    lines = []
    for family in topology.FAMILIES:
        for port, protocol in ((topology.PORT, "tcp"), (topology.PORT, "udp")) + topology.OTHER_PORTS:
            group = _port_probes(probes, family, protocol, port)
            reached = _reached(group, results)
            others = Counter(results.get(probe.key) for probe in group if probe not in reached)
            rest = ", ".join("%s %d" % item for item in sorted(others.items())) or "-"
            lines.append("%s/%s/%d: %s; %s" % (family, protocol, port, _listing(reached, len(group)), rest))
    return lines


def judge(state, audit: Dict, before: Dict[str, str], close: Dict, after: Dict[str, str]):
    """Returns (disagreements, comparisons): a list, and a Counter of checks made."""
    probes = plan_probes()
    found, made = [], Counter()
    untrusted = [probe for probe in probes if not trusted(probe, state.trusted_sources)]
    summary = {(item["family"], item["protocol"]): item for item in audit.get("summary", [])}
    if set(summary) != {(family, protocol) for family in topology.FAMILIES for protocol in topology.PROTOCOLS}:
        raise HarnessError("the audit returned no full summary: %s" % audit.get("msg", audit))
    closed = close.get("effective") in (True, False) and not close.get("skipped")
    for family in topology.FAMILIES:
        for protocol in topology.PROTOCOLS:
            where = "%s/%s" % (family, protocol)
            item = summary[(family, protocol)]
            if not item["listening"]:
                raise HarnessError("%s: the audit finds no listener on 5061: the test listener died" % where)
            group = _port_probes(probes, family, protocol)
            exposed_now = _reached([probe for probe in group if probe in untrusted], before)
            made["audit exposed"] += 1
            if item["exposed"] != bool(exposed_now):
                found.append(Disagreement("audit exposed", where, "exposed=%s (%s)" % (
                    item["exposed"], "; ".join(item["reasons"]) or "no reason"), _listing(exposed_now, len(group))))
            reached_now = _reached(group, before)
            if not state.has_redirect:
                made["audit firewall"] += 1
                wrong = ((item["firewall"] == "accept" and len(reached_now) != len(group))
                         or (item["firewall"] in ("drop", "reject") and reached_now))
                if wrong:
                    found.append(Disagreement("audit firewall", where, "firewall=%s (deciding rule %s)" % (
                        item["firewall"], item["deciding_rule"]), _listing(reached_now, len(group))))
            if "before" in close:
                made["audit vs close before"] += 1
                if _has_reason(close["before"]["reasons"], where) != item["exposed"]:
                    found.append(Disagreement("audit vs close before", where, "audit exposed=%s, close before: %s" % (
                        item["exposed"], [r for r in close["before"]["reasons"] if r.startswith(where)] or "closed"),
                        _listing(exposed_now, len(group))))
            if closed:
                still = _reached([probe for probe in group if probe in untrusted], after)
                made["close reasons"] += 1
                if _has_reason(close["reasons"], where) != bool(still):
                    found.append(Disagreement("close reasons", where, "reasons: %s" % (
                        [r for r in close["reasons"] if r.startswith(where)] or "none (closed)"),
                        _listing(still, len(group))))
                for probe in group:
                    if probe not in untrusted and before.get(probe.key) in REACHED:
                        made["trusted access"] += 1
                        if after.get(probe.key) not in REACHED:
                            found.append(Disagreement("trusted access", probe.key, "trusted_sources %s keep access"
                                                      % list(state.trusted_sources),
                                                      "%s after the close" % after.get(probe.key)))
    if closed:
        still = _reached([probe for probe in untrusted if probe.port == topology.PORT], after)
        made["close effective"] += 1
        if close["effective"] != (not still):
            found.append(Disagreement("close effective", "5061", "effective=%s" % close["effective"],
                                      _listing(still)))
    else:
        outcome = "skipped (%s)" % "; ".join(close.get("reasons", [])) if close.get("skipped") else \
            "failed: %s" % close.get("msg", "no message")
        for probe in probes:
            if probe.port == topology.PORT:
                made["close refused: nothing changed"] += 1
                if _changed(probe, before, after):
                    found.append(Disagreement("close refused: nothing changed", probe.key, outcome,
                                              "%s before, %s after" % (before.get(probe.key), after.get(probe.key))))
    for probe in probes:
        if probe.port != topology.PORT:
            made["other ports unchanged"] += 1
            if _changed(probe, before, after):
                found.append(Disagreement("other ports unchanged", probe.key, "only %d is closed" % topology.PORT,
                                          "%s before, %s after" % (before.get(probe.key), after.get(probe.key))))
    return found, made
