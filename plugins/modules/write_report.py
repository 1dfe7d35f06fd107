#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: write_report
short_description: Write the fleet report (JSON and HTML) on the controller, keeping the previous one
version_added: 0.1.0
description:
  - Writes C(sips-report.json) and C(sips-report.html) into O(dir) on the B(controller), and first
    renames the C(sips-report.json) already there to C(sips-report.previous.json), which the next
    audit compares with to name the hosts that reopened.
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
    type: dict
    required: true
  html:
    description:
      - The HTML page, already rendered - the role renders its C(report.html.j2) template with
        C(lookup('ansible.builtin.template', ...)).
    type: str
    required: true
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
"""
