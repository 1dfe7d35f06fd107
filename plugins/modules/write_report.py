#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: write_report
short_description: Write the fleet report (JSON and HTML) on the controller - one report per run, the previous run kept
version_added: 0.1.0
description:
  - Writes C(sips-report.json) and C(sips-report.html) into O(dir) on the B(controller).
  - "Two forms. With O(report) and O(html), a report already built (for example with the
    P(sipguard.firewall.sips_report#filter) filter) is written as given, and the C(sips-report.json)
    already there is first renamed to C(sips-report.previous.json)."
  - "With O(hosts) (the sipguard.firewall.sips role's form), the entries of one batch or one AWX
    slice become host records and are merged with every other batch and slice of the same run
    (O(run_id)) into one report: each writer first writes its records as a part of the run
    (C(runs/RUN_ID/) in O(dir), a new file, never edited), then merges every part of the run under
    a lock (C(.sips-report.lock), fcntl) and writes the report. Writers running at the same time -
    slices on one execution node, or on several sharing O(dir) on a file system with POSIX locks -
    lose no host and never tear a file. The first writer of a new run makes the last run's report
    the previous one (which V(audit) compares with); a report that is not valid JSON is set aside
    as C(sips-report.invalid.json) with a warning that names it. Parts of runs older than the
    previous one are removed."
  - An action plugin - it runs in the controller's own process whatever host the task is for, and
    sends nothing to any host - so the report costs one task instead of four module runs (the
    directory, the previous report, the JSON, the HTML).
  - O(dir) is created (mode C(0750)) when missing; each file is written to a temporary file in
    O(dir) and renamed into place (mode C(0640)), so a reader never sees half a report.
  - Never reports C(changed) - the report is output about the hosts, not a change to them.
  - The sipguard.firewall.sips role uses it once per batch; it is public so that a play of your
    own can write a report built with the P(sipguard.firewall.sips_report#filter) filter.
author:
  - sipguard maintainers (@sipguard)
options:
  dir:
    description: The directory on the controller for the report files.
    type: path
    required: true
  report:
    description:
      - The report, as the P(sipguard.firewall.sips_report#filter) filter builds it
        (C(sipguard.firewall/report/v1), see C(docs/report-schema.md)). Written as JSON,
        indented, keys sorted.
      - Needs O(html); not with O(hosts).
    type: dict
  html:
    description:
      - The HTML page of O(report), already rendered (for example with
        C(lookup('ansible.builtin.template', ...))).
    type: str
  hosts:
    description:
      - This batch's host entries by inventory host name, as the P(sipguard.firewall.sips_report#filter)
        filter takes them (C(address), C(targets), C(result), C(failed), C(unreachable), C(msg), and
        the host's own C(trusted_sources), C(protocols), C(families)).
      - Needs O(run_id) and O(html_template); not with O(report).
    type: dict
  run_id:
    description: The run the O(hosts) belong to (the role takes it from C(sipguard.firewall.check_run)).
    type: str
  mode:
    description: With O(hosts) - V(audit), V(close) or V(restore), as for the filter.
    type: str
    choices: [audit, close, restore]
    default: audit
  port:
    description: With O(hosts) - the port reported on.
    type: int
    default: 5061
  check_mode:
    description: With O(hosts) - whether the hosts' task ran in check mode (pass C(ansible_check_mode)).
    type: bool
    default: false
  probe:
    description: With O(hosts) - the registered result of C(sipguard.firewall.port_probe) over this batch.
    type: dict
  controller_addresses:
    description:
      - With O(hosts) - the controller's own addresses; whether the controller is a trusted source is
        decided per host, against that host's C(trusted_sources).
      - The role passes the addresses its probe sent from (RV(sipguard.firewall.port_probe#module:probes[].source)),
        the addresses the hosts saw.
    type: list
    elements: str
  html_template:
    description:
      - With O(hosts) - the Jinja2 template of the HTML page (the role's C(report.html.j2)); it reads
        the merged report from the variable C(report).
    type: path
  alert:
    description:
      - With O(hosts) - whether an alert is sent for this run; the report then records which exposed
        hosts were named (C(run.alerted_hosts)) and which hosts closed again were
        (C(run.alerted_resolved_hosts)), and RV(alert_due) is true only when this write finds
        exposed hosts, or hosts closed again, that no earlier write of the run named.
      - "Hosts closed again: an audit's C(newly_closed) hosts, or a V(close) of a host that was
        exposed before it."
      - RV(alert.body) is what to post; with O(alert_url) the action posts it itself when it is due.
    type: bool
    default: false
  alert_url:
    description:
      - With O(hosts) - where to POST RV(alert.body) (as JSON, timeout 10 s) when RV(alert_due); the
        receiver's answer is in RV(alert.sent). Without it nothing is sent.
      - The URL often carries a token, so it is never shown - not in the result, not in a message;
        RV(alert.sent) says only the status or the kind of failure.
    type: str
  alert_format:
    description:
      - With O(hosts) - the receiver RV(alert.body) is built for, by one function each
        (C(plugins/plugin_utils/_alert.py)).
      - "V(generic) - the collection's own JSON object: C(source) (V(sipguard.firewall)),
        C(run_id), C(summary) (the report's C(summary_line)), C(counts), C(exposed_hosts),
        C(failed_exposed_hosts) (hosts whose run failed while their port is open: a close that
        could not close it), C(new_exposed_hosts) (not named by an earlier alert of the run), C(reopened_hosts),
        C(resolved_hosts) (closed again) and C(reasons) (each exposed host's reasons: why, in words a person can act on)."
      - "V(slack) - a Slack incoming-webhook message: C(text) (the notification's fallback: the
        title and the summary line) and C(blocks): a C(header), one C(mrkdwn) C(section) per exposed
        host (its trend and up to three reasons; 20 hosts, then +N more), a section naming the hosts
        closed again, and a C(context) with the summary line and the run. Within Slack's documented
        limits (50 blocks, 3000 characters a section, 150 a header); C(&), C(<), C(>) escaped."
      - "V(teams) - a Microsoft Teams Workflows webhook message: C(type: message) with one
        attachment of C(contentType) C(application/vnd.microsoft.card.adaptive) whose C(content) is
        an Adaptive Card 1.4: a title, the summary line, a C(FactSet) of the exposed hosts and their
        reasons, and the hosts closed again."
      - "V(alertmanager) - Alertmanager's API v2 C(POST /api/v2/alerts) list: for every exposed
        host of the run, one alert per exposed protocol and family with the labels C(alertname)
        (V(SipsPortExposed)), C(instance) (the inventory host name), C(port), C(protocol),
        C(family) (V(any) for both when no reason names them) and C(severity) (V(critical)), the
        annotations C(summary), C(reason) and C(trend), and C(startsAt) (the report's time); for
        every host closed again one alert per protocol and family (tcp, udp; ipv4, ipv6) with
        C(endsAt), so whatever fired for it resolves."
    type: str
    choices: [generic, slack, teams, alertmanager]
    default: generic
  metrics_file:
    description:
      - With O(hosts) - also write the run's report as a node_exporter textfile-collector file at this
        path (it should end in C(.prom) and be in the collector's C(--collector.textfile.directory)).
      - Written under the report's lock after the report, from a temporary file in the same directory
        whose name does not end in C(.prom) (so the collector never reads half of it), fsync,
        rename; mode C(0644), so that node_exporter's own user can read it.
      - "Series (prefix C(sipguard_sips_)): C(exposed{host,port,protocol,family}) 0/1,
        C(host_status{host,port,status}) 1 for the host's status and 0 for the other three,
        C(reopened{host,port}) 0/1, C(tls_not_after_timestamp_seconds{host,port}),
        C(hosts{port,status}), C(last_run_timestamp_seconds{mode}),
        C(last_success_timestamp_seconds{mode}) (a run that got a verdict for every host: none
        failed or unreachable) and C(run_info{run_id,mode,port,check_mode}) 1. The run times of the
        other modes already in the file are kept."
    type: path
  stats:
    description:
      - With O(hosts) - also hand the run's results so far to AWX, as C(ansible.builtin.set_stats)
        with C(aggregate=false) would - one task instead of two. The key is C(sipguard_sips), with
        C(port), C(mode), C(run_id), C(counts), C(exposed_hosts), C(reopened_hosts) and C(report)
        (the JSON report's path); each batch's write replaces the values of the one before.
      - AWX shows them in the job's artifacts; a workflow's later nodes get them as extra variables.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description:
      - In check mode nothing is written; the result says what would be.
      - The role sets C(check_mode=false) on this task, so that a check run still leaves its report.
  diff_mode:
    support: none
    description: The files are output about the hosts; no diff is shown.
  action:
    support: full
    description: All of the work is done by the action plugin on the controller.
  delegation:
    support: none
    description: Whatever the task's host or C(delegate_to), the files are written on the controller.
notes:
  - The controller user needs write access to O(dir); the error names the path it could not write.
seealso:
  - module: sipguard.firewall.port_probe
  - plugin: sipguard.firewall.sips_report
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Merge this batch's hosts into the run's report (what the sips role does)
  sipguard.firewall.write_report:
    dir: /var/lib/sipguard/report
    run_id: "{{ hostvars['localhost'].__sips_run.id }}"
    mode: audit
    hosts: "{{ my_host_entries }}"
    probe: "{{ my_probe }}"
    html_template: /path/to/report.html.j2
  run_once: true
  check_mode: false

- name: Write a report built from this play's results
  sipguard.firewall.write_report:
    dir: /var/lib/sipguard/report
    report: "{{ my_report }}"
    html: "{{ lookup('ansible.builtin.template', 'my-report.html.j2') }}"
  run_once: true
  check_mode: false
"""

RETURN = r"""
dir:
  description: The directory written to.
  returned: always
  type: str
  sample: /home/ops/.sipguard/report
json_path:
  description: Path of the JSON report.
  returned: always
  type: str
  sample: /home/ops/.sipguard/report/sips-report.json
html_path:
  description: Path of the HTML report.
  returned: always
  type: str
  sample: /home/ops/.sipguard/report/sips-report.html
previous_path:
  description: Path the JSON report found in O(dir) was renamed to.
  returned: always
  type: str
  sample: /home/ops/.sipguard/report/sips-report.previous.json
previous_kept:
  description: Whether there was a JSON report in O(dir) to keep as the previous one.
  returned: always
  type: bool
created_dir:
  description: Whether O(dir) did not exist (and was created, unless in check mode).
  returned: always
  type: bool
written:
  description: The files written; empty in check mode.
  returned: always
  type: list
  elements: str
run_id:
  description: The run written into.
  returned: with O(hosts)
  type: str
parts:
  description: How many batches and slices of the run the report merges.
  returned: with O(hosts)
  type: int
summary:
  description:
    - The run's report so far in brief - C(mode), C(port), C(counts), C(exposed_hosts),
      C(reopened_hosts), C(summary_line), C(generated); null in check mode.
  returned: with O(hosts)
  type: dict
verdicts:
  description: For each host of O(hosts), its C(status) and C(reasons) in the run's report.
  returned: with O(hosts)
  type: dict
new_exposed_hosts:
  description:
    - Exposed hosts of the run that no earlier write of the run named in an alert.
    - Exposed means status C(exposed), or a host whose run failed or was unreachable while its
      port is known to be open (C(exposed=true) in its record), so a failed close is alerted too.
  returned: with O(hosts)
  type: list
  elements: str
alert_due:
  description: O(alert), and RV(new_exposed_hosts) or RV(alert.resolved_hosts) is not empty.
  returned: with O(hosts)
  type: bool
alert:
  description: The alert of this write.
  returned: with O(hosts)
  type: dict
  contains:
    due:
      description: The same as RV(alert_due).
      type: bool
    format:
      description: O(alert_format).
      type: str
    new_exposed_hosts:
      description: The same as RV(new_exposed_hosts).
      type: list
      elements: str
    resolved_hosts:
      description: Hosts closed again that no earlier write of the run named in an alert.
      type: list
      elements: str
    body:
      description: What to post to the receiver (see O(alert_format)); null when the alert is not due.
      type: raw
    sent:
      description: What the receiver did with the POST to O(alert_url); null when nothing was sent.
      type: dict
      contains:
        taken:
          description: Whether the receiver answered 200, 201, 202 or 204.
          type: bool
        status:
          description: The HTTP status it answered; null when none came.
          type: int
        outcome:
          description: C(HTTP <status>), C(no answer within 10 s), C(connection refused) or C(no connection).
          type: str
ansible_stats:
  description:
    - With O(stats) - what Ansible records as the run's custom stats (see O(stats)).
  returned: with O(hosts) and O(stats)
  type: dict
  sample: {"data": {"sipguard_sips": {"port": 5061, "mode": "close", "run_id": "20261202T101500Z-4f2a",
           "counts": {"closed": 8}, "exposed_hosts": [], "reopened_hosts": [], "report": "/home/ops/.sipguard/report/sips-report.json"}},
           "per_host": false, "aggregate": false}
metrics_path:
  description: O(metrics_file), or null.
  returned: with O(hosts)
  type: str
"""
