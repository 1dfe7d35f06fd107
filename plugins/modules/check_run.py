#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check_run
short_description: Check on the controller, before any host changes, what must hold for a whole run
version_added: 0.2.0
description:
  - The sipguard.firewall.sips role runs it once per batch, before any host-side step, and the
    playbooks once more over every host before the first batch (so that a C(serial) run is checked
    whole before its first batch changes anything).
  - Fails, naming the variable, the hosts and their values, when a setting that is one value per
    run (O(settings)) differs between hosts, or from what the earlier batches of the run used
    (O(earlier)); fails, naming the path, when O(report_dir) can neither be written nor created, or
    when O(metrics_file) does not end in C(.prom) or its directory is missing or not writable.
  - Warns, naming the file, when the report in O(report_dir) or the previous report there is not
    a readable sipguard.firewall report (a truncated file of an interrupted run) - the run goes on,
    the bad file is set aside when the report is written and not compared with.
  - Names the run - O(run_id) with O(mode) appended, else the id the earlier batches used, else a
    new one - and returns it with the run's settings as the fact C(__sips_run) (set it on
    C(localhost) with C(delegate_facts)), which the role's later batches and its report use.
  - An action plugin - it runs in the controller's own process and sends nothing to any host.
author:
  - sipguard maintainers (@sipguard)
options:
  settings:
    description:
      - By inventory host name, the values of the variables that must be the same for every host
        of a run (the role passes C(sips_mode), C(sips_state), C(sips_port), C(sips_report_dir),
        C(sips_run_id), the probe's timeout, retries and concurrency, the alert's format and
        C(sips_alert_fail_on_error), C(sips_metrics_file), and the webhook in a redacted form - its
        scheme, host and a hash, never its path, query or credentials).
    type: dict
    required: true
  earlier:
    description: The values the earlier batches of this run used (C(__sips_run.settings)); empty for the first.
    type: dict
    default: {}
  run_id:
    description:
      - The run's id as the user or AWX gives it (the role's C(sips_run_id)); empty for a new id per
        C(ansible-playbook) run.
    type: str
    default: ""
  earlier_run_id:
    description: The id the earlier batches of this run got (C(__sips_run.id)); used when O(run_id) is empty.
    type: str
    default: ""
  mode:
    description:
      - Appended to a given O(run_id) (V(awx-42) becomes V(awx-42-close)), so that the audit and the
        close of one AWX workflow are two runs.
    type: str
    default: ""
  report_dir:
    description: The report directory on the controller.
    type: path
    required: true
  metrics_file:
    description:
      - The node_exporter textfile-collector file the run will write (the role's C(sips_metrics_file));
        empty or omitted for none. Its directory is not created.
    type: path
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Nothing to show.
  action:
    support: full
    description: All of the work is done by the action plugin on the controller.
  delegation:
    support: none
    description: Whatever the task's host, it reads the controller's file system only.
seealso:
  - module: sipguard.firewall.write_report
"""

EXAMPLES = r"""
- name: Every host of the run agrees on the report directory and the port
  sipguard.firewall.check_run:
    settings: "{{ dict(ansible_play_batch | zip(ansible_play_batch | map('extract', hostvars, 'my_settings'))) }}"
    report_dir: /var/lib/sipguard/report
  delegate_to: localhost
  delegate_facts: true
  run_once: true
"""

RETURN = r"""
run_id:
  description: The run's id.
  returned: success
  type: str
  sample: 20261201T210455Z-9f3a61c2
problems:
  description: Every problem found, each naming the variable, hosts and values, or the path.
  returned: failure
  type: list
  elements: str
ansible_facts:
  description: C(__sips_run) - C(id) and C(settings) (the run-wide values, for the later batches).
  returned: success
  type: dict
"""
