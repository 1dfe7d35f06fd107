# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One host's record of the report: its status, reasons and notes from its module result, its own
settings and the probe records of its addresses. Pure: it reads only its arguments; the one
exposure meaning of the modules (``exposed``) is what it reads from every result.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.sipguard.firewall.plugins.module_utils._networks import inside
from ansible_collections.sipguard.firewall.plugins.plugin_utils._report_values import (
    ReportError,
    _flag,
    _mapping,
    _norm_address,
    _plain,
    _strings,
)


def _endpoint(record):
    address = record.get("address") or record.get("target") or "?"
    if ":" in str(address):
        address = "[%s]" % address
    return "%s:%s" % (address, record.get("port"))


def _prefix(record):
    return "%s/%s" % (record.get("family") or "?", record.get("protocol") or "?")


def _answer(record):
    """What answered on an open record, for a sentence: TLS version and SIP status (the server has its own field)."""
    parts = []
    tls = record.get("tls")
    if isinstance(tls, Mapping) and tls.get("version"):
        parts.append(str(tls["version"]))
    sip = record.get("sip")
    if isinstance(sip, Mapping) and sip.get("status_code") is not None:
        parts.append(("SIP %s %s" % (sip.get("status_code"), sip.get("reason") or "")).rstrip())
    elif record.get("protocol") == "tcp":
        parts.append("no SIP answer")
    return ", ".join(parts)


def _probe_index(probe):
    """target (normalized) -> probe records, in the probe's order."""
    index = {}
    records = probe.get("probes") or []
    if not isinstance(records, (list, tuple)):
        raise ReportError("sips_report: probe.probes must be a list")
    for record in records:
        if isinstance(record, Mapping):
            index.setdefault(_norm_address(record.get("target")), []).append(_plain(record))
    return index


def _state(part):
    """exposed and reasons of a module result (or its ``before``), in the exposure model's one meaning:
    exposed = the firewall lets an untrusted sender reach the port; None where the module did not
    judge it (a restore)."""
    exposed = part.get("exposed") if isinstance(part, Mapping) else None
    return dict(exposed=None if exposed is None else bool(exposed),
                reasons=_strings(part.get("reasons")) if isinstance(part, Mapping) else [])


def _verdicts(result, mode, check_mode):
    """(host_exposed, reasons, before, after, notes) from the module result; exposed None when unknown."""
    notes = []
    if mode == "audit":
        for item in result.get("summary") or []:
            if isinstance(item, Mapping):
                prefix = "%s/%s: " % (item.get("family") or "?", item.get("protocol") or "?")
                notes.extend(prefix + note for note in _strings(item.get("notes")))
        # Nothing changes in an audit: before and after are the audit (copies - reasons grows below).
        before, after = _state(result), _state(result)
        return before["exposed"], list(before["reasons"]), before, after, notes

    before, after = _state(result.get("before")), _state(result)
    if result.get("skipped"):
        notes.append("UFW is inactive and inactive=skip: nothing was changed")
    if check_mode:
        notes.append("check mode: nothing was changed; the status is the state before, 'after' is what the %s would give"
                     % mode)
        return before["exposed"], list(before["reasons"]), before, after, notes
    return after["exposed"], list(after["reasons"]), before, after, notes


def _ufw_facts(ufw):
    if not isinstance(ufw, Mapping) or not ufw:
        return None
    policies = ufw.get("default_policies")
    return dict(installed=ufw.get("installed", True), active=ufw.get("active"), version=ufw.get("version"),
                backend=ufw.get("backend"),
                default_incoming=policies.get("incoming") if isinstance(policies, Mapping) else None)


def _first_tls(records):
    seen = [record["tls"] for record in records if isinstance(record.get("tls"), Mapping)]
    if not seen:
        return None
    tls = next((item for item in seen if item.get("subject")), seen[0])
    return dict(subject=tls.get("subject"), issuer=tls.get("issuer"), not_after=tls.get("not_after"),
                days_left=tls.get("days_left"), version=tls.get("version"), self_issued=tls.get("self_issued"))


def _first_sip_server(records):
    for record in records:
        sip = record.get("sip")
        if isinstance(sip, Mapping) and (sip.get("server") or sip.get("user_agent")):
            return str(sip.get("server") or sip.get("user_agent"))
    return None


def _processes(listeners):
    names = []
    for listener in listeners:
        if not isinstance(listener, Mapping):
            continue
        for process in listener.get("processes") or []:
            if isinstance(process, Mapping):
                name = process.get("name") or ("pid %s" % process.get("pid"))
                if name not in names:
                    names.append(name)
    return names


def _targets(name, entry):
    """The normalized probe targets of a host: its address, its targets, or its name."""
    targets = entry.get("targets")
    if targets is None or isinstance(targets, str):
        targets = [] if targets is None else [targets]
    keys = [_norm_address(item) for item in [entry.get("address")] + list(targets) if item is not None]
    return list(dict.fromkeys(keys)) or [_norm_address(name)]


def is_trusted(addresses, trusted_sources):
    """Whether any of addresses (the controller's own) lies inside trusted_sources."""
    try:
        return bool(inside(_strings(addresses), _strings(trusted_sources)))
    except ValueError as exc:
        raise ReportError("sips_report: trusted_sources: %s" % exc)


def _host_settings(name, entry, defaults):
    """The host's own trusted sources, controller_trusted, protocols and families (entry over defaults)."""
    trusted = entry.get("trusted_sources")
    trusted = defaults["trusted_sources"] if trusted is None else _strings(trusted)
    controller_trusted = entry.get("controller_trusted")
    if controller_trusted is not None:
        controller_trusted = _flag(controller_trusted, "controller_trusted of host %s" % name)
    elif defaults["controller_addresses"] is not None:
        controller_trusted = is_trusted(defaults["controller_addresses"], trusted)
    else:
        controller_trusted = defaults["controller_trusted"]
    return dict(trusted_sources=trusted, controller_trusted=controller_trusted,
                protocols=_strings(entry.get("protocols")) or None, families=_strings(entry.get("families")) or None)


def _host_record(name, entry, mode, port, records, settings, check_mode):
    result = _mapping(entry.get("result"), "the module result of host %s" % name)
    address = entry.get("address")
    unreachable = _flag(entry.get("unreachable"), "unreachable of host %s" % name)
    failed = _flag(entry.get("failed"), "failed of host %s" % name)
    message = entry.get("msg") or result.get("msg") or (
        "the host was unreachable" if unreachable else "the task failed" if failed else None)
    controller_trusted = settings["controller_trusted"]
    # The probe covers every protocol and family of the batch; this host is judged on its own.
    records = [record for record in records
               if (settings["protocols"] is None or record.get("protocol") in settings["protocols"])
               and (settings["families"] is None or record.get("family") in settings["families"]
                    or record.get("family") is None)]

    host_exposed, reasons, before, after, notes = _verdicts(result, mode, check_mode)
    usable = [record for record in records if record.get("state") not in (None, "error")]
    opened = [record for record in records if record.get("state") == "open"]
    for record in records:
        if record.get("error") and record.get("state") in ("open", "error"):
            notes.append("%s: probe of %s: %s" % (_prefix(record), _endpoint(record), record["error"]))

    network_open = bool(opened) and not controller_trusted
    if opened and controller_trusted:
        notes.extend("%s: open from the controller on %s (%s) - the controller is a trusted source, so this is "
                     "intended; the host-side verdict decides" % (_prefix(record), _endpoint(record), _answer(record))
                     for record in opened)
    if network_open:
        if host_exposed is False:
            side = " although the host-side check finds it closed: the network wins (a port forward, NAT or " \
                   "another machine answers there)"
        elif host_exposed is None:
            side = " (no host-side verdict)"
        else:
            side = ""
        reasons.extend("%s: open from the controller on %s (%s)%s" % (_prefix(record), _endpoint(record),
                                                                      _answer(record), side)
                       for record in opened)
    elif host_exposed and usable and not controller_trusted and not (unreachable or failed):
        notes.append("not reachable from the controller (%s); the host-side check still finds it exposed - it is "
                     "reachable from elsewhere, or the path from the controller is filtered"
                     % ", ".join("%s %s" % (record.get("protocol"), record.get("state")) for record in usable))

    if unreachable or failed:
        status = "unreachable" if unreachable else "failed"
        exposed = True if (network_open or host_exposed) else None
    elif host_exposed or network_open:
        status, exposed = "exposed", True
    elif host_exposed is False or (usable and not controller_trusted):
        status, exposed = "closed", False
    else:
        status, exposed = "exposed", None
        reasons.append("no host-side verdict (mode %s) and no probe from an untrusted vantage point: nothing shows "
                       "port %d closed - run an audit" % (mode, port))
    if status == "closed":
        reasons = []

    if status in ("unreachable", "failed"):
        # Nothing verified the host; only an open port seen from the network says something.
        verified = "network" if network_open else None
    elif check_mode and mode != "audit":
        verified = "not-verified-check-mode"
    elif usable:
        verified = "trusted-source" if controller_trusted else "network"
    else:
        verified = "host-only"
        if not records:
            notes.append("no probe record for this host's address (%s): verified on the host only" % (address,))

    listeners = _plain(result.get("listeners") or [])
    return dict(
        host=name, address=None if address is None else str(address), status=status, exposed=exposed,
        changed=bool(result.get("changed")), reasons=reasons, notes=notes, before=before, after=after,
        listeners=listeners, processes=_processes(listeners), probe=records, tls=_first_tls(records),
        sip_server=_first_sip_server(records), verified=verified, trend=None, previous_status=None,
        error=str(message) if (unreachable or failed) and message else None, ufw=_ufw_facts(result.get("ufw")),
        rules_added=_strings(result.get("rules_added")), rules_removed=_strings(result.get("rules_removed")),
        conflicts=_plain(result.get("conflicts") or []), actions=_strings(result.get("actions")),
        trusted_sources=list(settings["trusted_sources"]), controller_trusted=controller_trusted)
