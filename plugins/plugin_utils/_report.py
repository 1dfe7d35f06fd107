# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet report model: per-host records from module results and the probe, and the run's report.

Pure Python on the controller: it reads only its arguments. ``sips_report`` builds a whole
report from one batch (the ``sipguard.firewall.sips_report`` filter is a thin wrapper);
``host_records`` and ``assemble`` are its two halves, so that the ``write_report`` action can
merge the records of every batch and slice of a run (``_report_store``) before assembling.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.sipguard.firewall.plugins.module_utils._networks import inside
from ansible_collections.sipguard.firewall.plugins.module_utils._request import check_port


class ReportError(ValueError):
    """Input the report cannot be built from; the message names the value."""


SCHEMA = "sipguard.firewall/report/v1"
SCHEMA_FAMILY = "sipguard.firewall/report/"
MODES = ("audit", "close", "restore")
STATUSES = ("exposed", "failed", "unreachable", "closed")  # by severity, most severe first
SEVERITY = {status: rank for rank, status in enumerate(STATUSES)}
TRENDS = ("reopened", "still_exposed", "newly_closed", "still_closed", "new")
SUMMARY_NAMES = 10  # host names written out in the summary line before "+N more"


def _plain(value):
    """A plain copy (dict, list, scalars) of module output, detached from the caller's containers."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ReportError("sips_report: %s must be a dictionary, not %s" % (what, type(value).__name__))
    return value


def _flag(value, what):
    """A boolean given as a boolean or as a templated string ("False" is false)."""
    try:
        return boolean(value, strict=True) if value is not None else False
    except TypeError:
        raise ReportError("sips_report: %s must be a boolean, not %r" % (what, value))


def _strings(value):
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def _natural_key(name):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", name) if part]


def _norm_address(value):
    if value is None:
        return None
    text = str(value).strip().lower()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    return text


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


def _generated(value):
    if value is None or value == "":
        return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def _port(value):
    try:
        return check_port(value)
    except ValueError as exc:
        raise ReportError("sips_report: %s" % exc)


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


def _previous_statuses(previous):
    if not previous:
        return {}, None
    schema = previous.get("schema")
    if schema is not None and not str(schema).startswith(SCHEMA_FAMILY):
        raise ReportError("sips_report: previous is not a sipguard.firewall report (schema %r)" % (schema,))
    statuses = {}
    for record in previous.get("hosts") or []:
        if isinstance(record, Mapping) and record.get("host") is not None:
            statuses[str(record["host"])] = record.get("status")
    generated = previous.get("generated")
    return statuses, None if generated is None else str(generated)


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


def _trend(status, previous_status, known):
    if status not in ("exposed", "closed"):
        return None
    if not known:
        return "new"
    if previous_status == "closed":
        return "reopened" if status == "exposed" else "still_closed"
    if previous_status == "exposed":
        return "still_exposed" if status == "exposed" else "newly_closed"
    return None


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


def _names(names):
    shown = ", ".join(names[:SUMMARY_NAMES])
    if len(names) > SUMMARY_NAMES:
        shown += ", +%d more" % (len(names) - SUMMARY_NAMES)
    return shown


def _summary_line(port, counts, exposed_hosts, reopened_hosts, mode, check_mode):
    line = "%d%s: %d exposed%s, %d closed, %d unreachable, %d failed" % (
        port, " (check mode)" if check_mode and mode != "audit" else "", counts["exposed"],
        " (%s)" % _names(exposed_hosts) if exposed_hosts else "", counts["closed"], counts["unreachable"],
        counts["failed"])
    if mode != "audit":
        line += "; %s: %d" % ("would change" if check_mode else "changed", counts["changed"])
    if reopened_hosts:
        line += "; reopened: %s" % _names(reopened_hosts)
    return line


def host_records(host_results, probe=None, mode="audit", port=5061, controller_trusted=False,
                 trusted_sources=None, check_mode=False, controller_addresses=None):
    """(records, unmatched probe targets) of one batch: a record per host, not yet sorted, no trend.

    Each host is judged with its own settings where its entry has them (trusted_sources,
    controller_trusted, protocols, families); controller_trusted is then computed from
    controller_addresses against the host's own trusted sources, when those addresses are given.
    """
    host_results = _mapping(host_results, "the input (host results by host name)")
    probe = _mapping(probe, "probe")
    if mode not in MODES:
        raise ReportError("sips_report: mode must be one of %s, not %r" % (", ".join(MODES), mode))
    port = _port(port)
    defaults = dict(trusted_sources=_strings(trusted_sources),
                    controller_trusted=_flag(controller_trusted, "controller_trusted"),
                    controller_addresses=None if controller_addresses is None else _strings(controller_addresses))
    check_mode = _flag(check_mode, "check_mode")
    index = _probe_index(probe)
    matched = set()
    records = []
    for name, entry in host_results.items():
        name = str(name)
        entry = _mapping(entry, "the result of host %s" % name)
        keys = _targets(name, entry)
        matched.update(keys)
        probes = [record for key in keys for record in index.get(key, [])]
        records.append(_host_record(name, entry, mode, port, probes, _host_settings(name, entry, defaults),
                                    check_mode))
    unmatched = sorted({str(found[0].get("target")) for key, found in index.items() if key not in matched})
    return records, unmatched


def assemble(records, previous=None, mode="audit", port=5061, generated=None, check_mode=False,
             unmatched_probes=None, probe_summary=None, run=None):
    """The report over host records (from one batch or merged over a run): trends, counts, summary."""
    previous = _mapping(previous, "previous")
    port = _port(port)
    check_mode = _flag(check_mode, "check_mode")
    previous_statuses, previous_generated = _previous_statuses(previous)
    hosts = []
    for record in records:
        record = dict(record)
        if mode == "audit":
            record["previous_status"] = previous_statuses.get(record["host"])
            record["trend"] = _trend(record["status"], record["previous_status"], record["host"] in previous_statuses)
        else:
            record["previous_status"], record["trend"] = None, None
        hosts.append(record)
    hosts.sort(key=lambda record: (SEVERITY[record["status"]], _natural_key(record["host"])))

    counts = dict(hosts=len(hosts))
    counts.update((status, sum(1 for record in hosts if record["status"] == status))
                  for status in ("exposed", "closed", "unreachable", "failed"))
    counts["changed"] = sum(1 for record in hosts if record["changed"])
    counts.update((trend, sum(1 for record in hosts if record["trend"] == trend)) for trend in TRENDS)
    exposed_hosts = [record["host"] for record in hosts if record["status"] == "exposed"]
    reopened_hosts = [record["host"] for record in hosts if record["trend"] == "reopened"]
    trusted = []
    for record in hosts:
        trusted.extend(item for item in record.get("trusted_sources") or [] if item not in trusted)
    report = dict(
        schema=SCHEMA, generated=_generated(generated), mode=mode, port=port, check_mode=check_mode,
        controller_trusted=any(record.get("controller_trusted") for record in hosts),
        trusted_sources=trusted, counts=counts, hosts=hosts, exposed_hosts=exposed_hosts,
        reopened_hosts=reopened_hosts, unmatched_probes=sorted(set(_strings(unmatched_probes))),
        probe_summary=probe_summary, previous_generated=previous_generated,
        summary_line=_summary_line(port, counts, exposed_hosts, reopened_hosts, mode, check_mode),
        run=None if run is None else _plain(run))
    return report


def probe_summary_text(probe):
    """The probe's one-sentence summary, or None."""
    summary = _mapping(probe, "probe").get("summary")
    return str(summary["message"]) if isinstance(summary, Mapping) and summary.get("message") else None


def sips_report(host_results, probe=None, previous=None, mode="audit", port=5061, generated=None,
                controller_trusted=False, trusted_sources=None, check_mode=False, controller_addresses=None):
    """The report (schema sipguard.firewall/report/v1) of one batch; see the filter's DOCUMENTATION."""
    records, unmatched = host_records(host_results, probe=probe, mode=mode, port=port,
                                      controller_trusted=controller_trusted, trusted_sources=trusted_sources,
                                      check_mode=check_mode, controller_addresses=controller_addresses)
    report = assemble(records, previous=previous, mode=mode, port=port, generated=generated, check_mode=check_mode,
                      unmatched_probes=unmatched, probe_summary=probe_summary_text(probe))
    if not records:  # no host: the settings given still describe the batch
        report.update(trusted_sources=_strings(trusted_sources),
                      controller_trusted=_flag(controller_trusted, "controller_trusted"))
    return report
