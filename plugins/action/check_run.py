# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of sipguard.firewall.check_run: what must hold for the whole run, checked on the
controller before any host changes (see the module's documentation)."""

from __future__ import annotations

import json
import os

from ansible_collections.sipguard.firewall.plugins.plugin_utils import _report_store
from ansible_collections.sipguard.firewall.plugins.plugin_utils._action import ControllerAction

ARGUMENT_SPEC = {
    "settings": {"type": "dict", "required": True},
    "earlier": {"type": "dict", "default": {}},
    "run_id": {"type": "str", "default": ""},
    "earlier_run_id": {"type": "str", "default": ""},
    "mode": {"type": "str", "default": ""},
    "report_dir": {"type": "path", "required": True},
    "metrics_file": {"type": "path"},
}
HOSTS_NAMED = 5  # host names written out per value before "+N more"


def _shown(value):
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)


def _hosts(names):
    names = sorted(names)
    text = ", ".join(names[:HOSTS_NAMED])
    return text + (", +%d more" % (len(names) - HOSTS_NAMED) if len(names) > HOSTS_NAMED else "")


def disagreements(settings, earlier=None):
    """Messages for every run-wide setting whose value differs between hosts, or from earlier batches.

    settings: host -> {variable: value}; earlier: {variable: value} of the batches before.
    """
    earlier = earlier or {}
    problems = []
    names = sorted({name for values in settings.values() for name in values})
    for name in names:
        groups = {}
        for host, values in settings.items():
            if name in values:
                groups.setdefault(json.dumps(values[name], sort_keys=True), []).append(host)
        if len(groups) > 1:
            problems.append("%s must be one value for the whole run, but the hosts differ: %s - set it once for "
                            "every host (group_vars/all, or -e)" % (name, "; ".join(
                                "%s on %s" % (_shown(json.loads(key)), _hosts(hosts))
                                for key, hosts in sorted(groups.items(), key=lambda item: sorted(item[1])))))
        elif groups and name in earlier:
            key, hosts = next(iter(groups.items()))
            if json.loads(key) != earlier[name]:
                problems.append("%s is %s on %s but was %s in the earlier batches of this run - it must be one value "
                                "for the whole run" % (name, _shown(json.loads(key)), _hosts(hosts),
                                                       _shown(earlier[name])))
    return problems


def metrics_file_problem(path):
    """Why the metrics file cannot be written where node_exporter reads it, or None (nothing is written)."""
    if not path:
        return None
    if not path.endswith(".prom") or os.path.basename(path) == ".prom":
        return ("sips_metrics_file %s does not end in .prom: node_exporter's textfile collector reads only *.prom "
                "files" % path)
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return "sips_metrics_file %s: its directory %s does not exist" % (path, directory)
    if not os.access(directory, os.W_OK | os.X_OK):
        return "sips_metrics_file %s: its directory %s is not writable by this user (uid %d)" % (
            path, directory, os.getuid())
    if os.path.isdir(path):
        return "sips_metrics_file %s is a directory" % path
    return None


def check_run(params, new_id=_report_store.new_run_id):
    """The module result: the run's id and settings as facts, or failed with every problem named."""
    settings = params["settings"]
    problems = disagreements(settings, params["earlier"])
    dir_problem, warnings = _report_store.preflight(params["report_dir"])
    if dir_problem:
        problems.append(dir_problem)
    metrics_problem = metrics_file_problem(params.get("metrics_file"))
    if metrics_problem:
        problems.append(metrics_problem)
    if problems:
        return dict(failed=True, changed=False, msg="; ".join(problems), problems=problems)
    if params["earlier_run_id"]:
        warnings = []  # warned once per run: the first check (the playbooks' check over every host, or the first batch)
    run_id = params["run_id"]
    if run_id:
        run_id = "%s-%s" % (run_id, params["mode"]) if params["mode"] else run_id
        if "/" in run_id or run_id.startswith("."):
            return dict(failed=True, changed=False, msg="sips_run_id %r cannot name a directory" % params["run_id"])
    else:
        run_id = params["earlier_run_id"] or new_id()
    merged = dict(params["earlier"])
    for values in settings.values():
        merged.update(values)
    result = dict(changed=False, run_id=run_id, ansible_facts=dict(__sips_run=dict(id=run_id, settings=merged)))
    if warnings:
        result["warnings"] = warnings
    return result


class ActionModule(ControllerAction):
    """Runs on the controller; reads nothing from any host."""

    NAME = "check_run"
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def work(self, params, task_vars):
        return check_run(params)
