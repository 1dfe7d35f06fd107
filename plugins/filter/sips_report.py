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
      - Optionally the host's own settings, which win over the filter's options for that host -
        C(trusted_sources) (list), C(controller_trusted) (bool), C(protocols) and C(families)
        (lists; the host's probe records of other protocols and families are left out, so that one
        probe over the union of a batch's settings judges each host on its own).
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
        the port open from it is expected and the host-side verdict decides - for hosts whose entry
        has no C(controller_trusted) of its own, when O(controller_addresses) is not given.
    type: bool
    default: false
  trusted_sources:
    description:
      - The trusted sources of the hosts whose entry has no C(trusted_sources) of its own.
      - The report's C(trusted_sources) is the union of every host's; each host record has its own.
    type: list
    elements: str
    default: []
  controller_addresses:
    description:
      - The controller's own addresses. When given, whether the controller is a trusted source is
        decided per host, against that host's own trusted sources (an entry's C(controller_trusted)
        still wins); O(controller_trusted) is then not used.
    type: list
    elements: str
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
      description: Whether the controller is a trusted source of at least one host (each host record says for itself).
      type: bool
    trusted_sources:
      description: The trusted sources of every host, each once (each host record has its own).
      type: list
      elements: str
    run:
      description:
        - The run the report belongs to, when written by C(sipguard.firewall.write_report) - C(id), C(parts)
          (batches and slices merged so far) and C(alerted_hosts); null in the filter's own output.
      type: dict
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
        trusted_sources:
          description: This host's trusted sources.
          type: list
          elements: str
        controller_trusted:
          description: Whether the controller is one of this host's trusted sources.
          type: bool
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

from ansible.errors import AnsibleFilterError

from ansible_collections.sipguard.firewall.plugins.plugin_utils import _report


def sips_report(host_results, probe=None, previous=None, mode="audit", port=5061, generated=None,
                controller_trusted=False, trusted_sources=None, check_mode=False, controller_addresses=None):
    """The fleet report of one batch (the model is plugin_utils/_report.py); see DOCUMENTATION."""
    try:
        return _report.sips_report(host_results, probe=probe, previous=previous, mode=mode, port=port,
                                   generated=generated, controller_trusted=controller_trusted,
                                   trusted_sources=trusted_sources, check_mode=check_mode,
                                   controller_addresses=controller_addresses)
    except _report.ReportError as exc:
        raise AnsibleFilterError(str(exc))


MODES = _report.MODES  # the documented choices of the mode option


class FilterModule:
    """sipguard.firewall filters."""

    def filters(self):
        return {"sips_report": sips_report}
