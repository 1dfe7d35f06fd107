# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: sips_report
short_description: Build the fleet report for port 5061 from per-host results and a network probe
version_added: 0.1.0
author:
  - sipguard maintainers (@sipguard)
description:
  - Turns what the C(sipguard.firewall.sips) role gathered - one C(sipguard.firewall.port_audit) or
    C(sipguard.firewall.ufw_port) result per host and one C(sipguard.firewall.port_probe) result for
    the batch - into one report, schema C(sipguard.firewall/report/v1) (see C(docs/report-schema.md)).
  - "Each host gets a status - V(exposed), V(closed), V(unreachable) or V(failed). V(unreachable) and
    V(failed) come from the task's flags. Otherwise a host is V(exposed) when the host-side verdict
    says so, or when the probe finds the port V(open) from the controller and the controller is not a
    trusted source; V(closed) otherwise. A host that says closed while the network finds the port
    open is V(exposed), with a reason naming the contradiction - the network wins."
  - With O(controller_trusted=true) the controller is inside the trusted sources, so an open port
    seen from it is the intended result; the host-side verdict then decides.
  - The status is never V(closed) without evidence - a host with no host-side verdict (O(mode=restore))
    and nothing showing the port closed is reported V(exposed) with RV(_value.hosts[].exposed=null).
  - With O(mode=audit) and a O(previous) report, each host gets a trend (V(reopened), V(still_exposed),
    V(newly_closed), V(still_closed), V(new)).
  - Pure Python on the controller; it reads only its arguments.
options:
  _input:
    description:
      - The per-host results, by inventory host name. Each value is a dictionary with C(address) (the
        address the probe used for this host), optionally C(targets) (all the probe targets of the host,
        when there are several), C(result) (the registered module result), C(unreachable) and C(failed)
        (the task's flags) and C(msg) (the failure message).
      - Probe records belong to a host when their C(target) is the host's C(address) or one of its
        C(targets) (IPv6 brackets and letter case ignored); the host name stands in when both are missing.
    type: dict
    required: true
  probe:
    description:
      - The registered result of C(sipguard.firewall.port_probe) over the hosts' addresses. Its records
        are matched to a host by C(target) (see O(_input)).
      - Empty or V(null) when no probe ran; hosts are then verified V(host-only).
    type: dict
  previous:
    description:
      - The previous run's report (this filter's output, for example read back from the JSON file).
        Empty or V(null) on the first run, when every host's trend is V(new).
      - Used only with O(mode=audit).
    type: dict
  mode:
    description:
      - What the hosts' results are - V(audit) for C(port_audit), V(close) for C(ufw_port) with
        C(state=closed), V(restore) for C(ufw_port) with C(state=absent).
    type: str
    choices: [audit, close, restore]
    default: audit
  port:
    description: The port reported on.
    type: int
    default: 5061
  generated:
    description:
      - When the report was made - a string as given (for example C(ansible_date_time.iso8601)), or a
        date and time (the result of Jinja2's C(now)), written in ISO 8601.
      - By default the current UTC time, as C(YYYY-MM-DDTHH:MM:SSZ).
    type: raw
  controller_trusted:
    description:
      - Whether the controller's own address is inside the trusted sources, so that a probe finding
        the port open from it is expected and the host-side verdict decides.
    type: bool
    default: false
  trusted_sources:
    description: The trusted sources, copied into the report so that a reader sees them.
    type: list
    elements: str
    default: []
  check_mode:
    description:
      - Whether the hosts' task ran in check mode (pass C(ansible_check_mode)). With O(mode=close) or
        O(mode=restore) nothing was changed, so the status is the state before, RV(_value.hosts[].after)
        is what the change would give, and C(verified) is V(not-verified-check-mode).
    type: bool
    default: false
notes:
  - The report is plain data (dictionaries, lists, strings, numbers, booleans, null), ready for
    C(ansible.builtin.to_nice_json) and for the role's HTML template C(report.html.j2).
seealso:
  - module: sipguard.firewall.port_audit
  - module: sipguard.firewall.ufw_port
  - module: sipguard.firewall.port_probe
"""

EXAMPLES = r"""
- name: Build the fleet report once, on the controller
  ansible.builtin.set_fact:
    sips_report: >-
      {{ sips_host_results | sipguard.firewall.sips_report(
           probe=sips_probe, previous=sips_previous_report | default({}), mode='audit',
           port=5061, generated=now(utc=true),
           controller_trusted=false, trusted_sources=['192.0.2.0/24']) }}
  run_once: true

- name: One line for the log
  ansible.builtin.debug:
    msg: "{{ sips_report.summary_line }}"
  run_once: true
  # 5061: 2 exposed (sip-edge-01, pbx-lab-02), 5 closed, 1 unreachable, 0 failed; reopened: pbx-lab-02

- name: Fail when a host is exposed
  ansible.builtin.assert:
    that: sips_report.counts.exposed == 0
    fail_msg: "{{ sips_report.summary_line }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The report, schema C(sipguard.firewall/report/v1); C(docs/report-schema.md) describes every field.
  type: dict
  contains:
    schema:
      description: V(sipguard.firewall/report/v1).
      type: str
    generated:
      description: When the report was made (O(generated)).
      type: str
    mode:
      description: V(audit), V(close) or V(restore).
      type: str
    port:
      description: The port.
      type: int
    check_mode:
      description: Whether the hosts' task ran in check mode.
      type: bool
    controller_trusted:
      description: Whether the controller is a trusted source.
      type: bool
    trusted_sources:
      description: The trusted sources.
      type: list
      elements: str
    counts:
      description:
        - How many hosts (V(hosts)) are in each status (V(exposed), V(closed), V(unreachable), V(failed)),
          how many changed (V(changed)), and how many have each trend (V(reopened), V(still_exposed),
          V(newly_closed), V(still_closed), V(new)).
      type: dict
      sample: {"hosts": 7, "exposed": 3, "closed": 2, "unreachable": 1, "failed": 1, "changed": 0,
               "reopened": 1, "still_exposed": 1, "newly_closed": 0, "still_closed": 2, "new": 1}
    hosts:
      description:
        - One record per host, by status (V(exposed), V(failed), V(unreachable), V(closed)), then by
          host name (numbers in names compared as numbers).
      type: list
      elements: dict
      contains:
        host:
          description: The inventory host name.
          type: str
        address:
          description: The address probed for the host.
          type: str
        status:
          description: V(exposed), V(closed), V(unreachable) or V(failed).
          type: str
        exposed:
          description: Whether the port is exposed; null when nothing showed either way.
          type: bool
        changed:
          description: Whether the host's task changed something.
          type: bool
        reasons:
          description: Why the host is exposed (or failed), prefixed with family/protocol as the modules give them.
          type: list
          elements: str
        notes:
          description: What does not decide the status but a reader should know.
          type: list
          elements: str
        before:
          description: C(exposed) and C(reasons) before the change (in V(audit) mode, the audit itself).
          type: dict
        after:
          description: C(exposed) and C(reasons) after the change (in check mode, what it would give).
          type: dict
        listeners:
          description: The sockets listening on the port, as the module returned them.
          type: list
          elements: dict
        processes:
          description: The names of the processes listening, each once.
          type: list
          elements: str
        probe:
          description: The probe records for the host.
          type: list
          elements: dict
        tls:
          description: The first TLS certificate seen (C(subject), C(issuer), C(not_after), C(days_left), C(version), C(self_issued)); null when none.
          type: dict
        sip_server:
          description: The first SIP C(Server) (or C(User-Agent)) header seen; null when none.
          type: str
        verified:
          description:
            - V(network), V(trusted-source), V(host-only) or V(not-verified-check-mode).
            - For an unreachable or failed host, V(network) when the probe finds the port open, null otherwise.
          type: str
        trend:
          description: V(reopened), V(still_exposed), V(newly_closed), V(still_closed), V(new); null when not comparable or not O(mode=audit).
          type: str
        previous_status:
          description: The host's status in O(previous); null when absent.
          type: str
        error:
          description: The failure message of an unreachable or failed host; null otherwise.
          type: str
        ufw:
          description: UFW's state on the host (C(installed), C(active), C(version), C(backend), C(default_incoming)); null when not known.
          type: dict
        rules_added:
          description: The UFW rules added (V(close)/V(restore)).
          type: list
          elements: str
        rules_removed:
          description: The UFW rules removed (V(close)/V(restore)).
          type: list
          elements: str
        conflicts:
          description: Existing rules that accepted the port and what was done with each (V(close)).
          type: list
          elements: dict
        actions:
          description: What was done besides the rule list (V(close)).
          type: list
          elements: str
    exposed_hosts:
      description: The names of the hosts with status V(exposed), in report order.
      type: list
      elements: str
    reopened_hosts:
      description: The names of the hosts with trend V(reopened), in report order.
      type: list
      elements: str
    unmatched_probes:
      description: Probe targets that matched no host's address (a hint at an address mix-up).
      type: list
      elements: str
    probe_summary:
      description: The probe's one-sentence summary; null when no probe ran.
      type: str
    previous_generated:
      description: The O(previous) report's C(generated); null when none.
      type: str
    summary_line:
      description: One line for a person.
      type: str
      sample: "5061: 2 exposed (sip-edge-01, pbx-lab-02), 5 closed, 1 unreachable, 0 failed; reopened: pbx-lab-02"
"""

import datetime
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

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
        raise AnsibleFilterError("sips_report: %s must be a dictionary, not %s" % (what, type(value).__name__))
    return value


def _flag(value, what):
    """A boolean given as a boolean or as a templated string ("False" is false)."""
    try:
        return boolean(value, strict=True) if value is not None else False
    except TypeError:
        raise AnsibleFilterError("sips_report: %s must be a boolean, not %r" % (what, value))


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
        port = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError("sips_report: port must be an integer, not %r" % (value,))
    if not 1 <= port <= 65535:
        raise AnsibleFilterError("sips_report: port must be 1-65535, not %d" % port)
    return port


def _probe_index(probe):
    """target (normalized) -> probe records, in the probe's order."""
    index = {}
    records = probe.get("probes") or []
    if not isinstance(records, (list, tuple)):
        raise AnsibleFilterError("sips_report: probe.probes must be a list")
    for record in records:
        if isinstance(record, Mapping):
            index.setdefault(_norm_address(record.get("target")), []).append(_plain(record))
    return index


def _previous_statuses(previous):
    if not previous:
        return {}, None
    schema = previous.get("schema")
    if schema is not None and not str(schema).startswith(SCHEMA_FAMILY):
        raise AnsibleFilterError("sips_report: previous is not a sipguard.firewall report (schema %r)" % (schema,))
    statuses = {}
    for record in previous.get("hosts") or []:
        if isinstance(record, Mapping) and record.get("host") is not None:
            statuses[str(record["host"])] = record.get("status")
    generated = previous.get("generated")
    return statuses, None if generated is None else str(generated)


def _verdicts(result, mode, check_mode):
    """(host_exposed, reasons, before, after, notes) from the module result; exposed None when unknown."""
    notes = []
    if mode == "audit":
        exposed = result.get("exposed")
        exposed = None if exposed is None else bool(exposed)
        reasons = _strings(result.get("reasons"))
        for item in result.get("summary") or []:
            if isinstance(item, Mapping):
                prefix = "%s/%s: " % (item.get("family") or "?", item.get("protocol") or "?")
                notes.extend(prefix + note for note in _strings(item.get("notes")))
        # Nothing changes in an audit: before and after are the audit (copies - reasons grows below).
        return (exposed, list(reasons), dict(exposed=exposed, reasons=list(reasons)),
                dict(exposed=exposed, reasons=list(reasons)), notes)

    before_raw = result.get("before")
    if isinstance(before_raw, Mapping) and before_raw.get("effective") is not None:
        before = dict(exposed=not before_raw.get("effective"), reasons=_strings(before_raw.get("reasons")))
    else:
        before = dict(exposed=None, reasons=_strings(before_raw.get("reasons")) if isinstance(before_raw, Mapping) else [])
    effective = result.get("effective")
    after = dict(exposed=None if effective is None else not effective, reasons=_strings(result.get("reasons")))
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


def _host_record(name, entry, mode, port, records, controller_trusted, check_mode):
    result = _mapping(entry.get("result"), "the module result of host %s" % name)
    address = entry.get("address")
    unreachable = _flag(entry.get("unreachable"), "unreachable of host %s" % name)
    failed = _flag(entry.get("failed"), "failed of host %s" % name)
    message = entry.get("msg") or result.get("msg") or (
        "the host was unreachable" if unreachable else "the task failed" if failed else None)

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
        conflicts=_plain(result.get("conflicts") or []), actions=_strings(result.get("actions")))


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


def sips_report(host_results, probe=None, previous=None, mode="audit", port=5061, generated=None,
                controller_trusted=False, trusted_sources=None, check_mode=False):
    """The fleet report (schema sipguard.firewall/report/v1) for port; see DOCUMENTATION."""
    host_results = _mapping(host_results, "the input (host results by host name)")
    probe = _mapping(probe, "probe")
    previous = _mapping(previous, "previous")
    if mode not in MODES:
        raise AnsibleFilterError("sips_report: mode must be one of %s, not %r" % (", ".join(MODES), mode))
    port = _port(port)
    controller_trusted = _flag(controller_trusted, "controller_trusted")
    check_mode = _flag(check_mode, "check_mode")

    index = _probe_index(probe)
    previous_statuses, previous_generated = _previous_statuses(previous)
    matched = set()
    hosts = []
    for name, entry in host_results.items():
        name = str(name)
        entry = _mapping(entry, "the result of host %s" % name)
        keys = _targets(name, entry)
        matched.update(keys)
        records = [record for key in keys for record in index.get(key, [])]
        record = _host_record(name, entry, mode, port, records, controller_trusted, check_mode)
        if mode == "audit":
            record["previous_status"] = previous_statuses.get(name)
            record["trend"] = _trend(record["status"], record["previous_status"], name in previous_statuses)
        hosts.append(record)
    hosts.sort(key=lambda record: (SEVERITY[record["status"]], _natural_key(record["host"])))

    counts = dict(hosts=len(hosts))
    counts.update((status, sum(1 for record in hosts if record["status"] == status))
                  for status in ("exposed", "closed", "unreachable", "failed"))
    counts["changed"] = sum(1 for record in hosts if record["changed"])
    counts.update((trend, sum(1 for record in hosts if record["trend"] == trend)) for trend in TRENDS)
    exposed_hosts = [record["host"] for record in hosts if record["status"] == "exposed"]
    reopened_hosts = [record["host"] for record in hosts if record["trend"] == "reopened"]
    summary = probe.get("summary")

    return dict(
        schema=SCHEMA, generated=_generated(generated), mode=mode, port=port, check_mode=check_mode,
        controller_trusted=controller_trusted, trusted_sources=_strings(trusted_sources),
        counts=counts, hosts=hosts, exposed_hosts=exposed_hosts, reopened_hosts=reopened_hosts,
        unmatched_probes=sorted({str(records[0].get("target")) for key, records in index.items()
                                 if key not in matched}),
        probe_summary=str(summary["message"]) if isinstance(summary, Mapping) and summary.get("message") else None,
        previous_generated=previous_generated,
        summary_line=_summary_line(port, counts, exposed_hosts, reopened_hosts, mode, check_mode))


class FilterModule:
    """sipguard.firewall filters."""

    def filters(self):
        return {"sips_report": sips_report}
