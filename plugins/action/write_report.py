# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of sipguard.firewall.write_report: the fleet report's files, on the controller.

Everything happens in the controller's own process - no module is sent anywhere. Two forms:
a ready report (``report`` + ``html``, written as given), or one batch's host entries
(``hosts``), which become records (plugin_utils/_report) and are merged with every other batch
and slice of the same run into the run's report (plugin_utils/_report_store).
``write_report_files`` and ``write_run_report`` are the whole job and are what the unit tests call.
"""

from __future__ import annotations

import datetime
import json
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.parsing.ajson import AnsibleJSONEncoder

from ansible_collections.sipguard.firewall.plugins.module_utils._atomic import write_atomic
from ansible_collections.sipguard.firewall.plugins.plugin_utils import _alert, _metrics, _report, _report_store, _webhook
from ansible_collections.sipguard.firewall.plugins.plugin_utils._action import ControllerAction

ARGUMENT_SPEC = {
    "dir": {"type": "path", "required": True},
    "report": {"type": "dict"},
    "html": {"type": "str"},
    "hosts": {"type": "dict"},
    "run_id": {"type": "str"},
    "mode": {"type": "str", "choices": list(_report.MODES), "default": "audit"},
    "port": {"type": "int", "default": 5061},
    "check_mode": {"type": "bool", "default": False},
    "probe": {"type": "dict"},
    "controller_addresses": {"type": "list", "elements": "str"},
    "html_template": {"type": "path"},
    "alert": {"type": "bool", "default": False},
    "alert_format": {"type": "str", "choices": list(_alert.FORMATS), "default": "generic"},
    "metrics_file": {"type": "path"},
    "stats": {"type": "bool", "default": False},
    "alert_url": {"type": "str", "no_log": True},
}
METRICS_MODE = 0o644  # node_exporter (its own user) reads it
MUTUALLY_EXCLUSIVE = [["report", "hosts"], ["html", "hosts"], ["report", "html_template"]]
REQUIRED_TOGETHER = [["report", "html"], ["hosts", "run_id", "html_template"]]
REQUIRED_ONE_OF = [["report", "hosts"]]
REQUIRED_BY = {"metrics_file": ["hosts"], "alert_url": ["hosts"]}
STATS_KEY = "sipguard_sips"  # the key of the run's results in AWX's artifacts (set_stats data)


def write_report_files(directory, report, html, check_mode=False):
    """Write JSON + HTML into directory, the JSON there before becoming the previous report.

    Returns the module result (paths, whether a previous report was kept, whether the
    directory was created). Raises OSError with the path it could not write.
    """
    paths = _report_store.paths(directory)
    result = dict(changed=False, dir=directory, created_dir=not os.path.isdir(directory),
                  previous_kept=os.path.isfile(paths["json"]), written=[],
                  **{"%s_path" % name: paths[name] for name in ("json", "html", "previous")})
    text = json.dumps(report, cls=AnsibleJSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if check_mode:
        return result
    if result["created_dir"]:
        os.makedirs(directory, mode=_report_store.DIR_MODE, exist_ok=True)
    if result["previous_kept"]:
        # a rename, so the previous report is exactly the last one written, never half of one
        os.replace(paths["json"], paths["previous"])
    write_atomic(paths["json"], text, mode=_report_store.FILE_MODE)
    write_atomic(paths["html"], html, mode=_report_store.FILE_MODE)
    result["written"] = [paths["json"], paths["html"]]
    return result


def html_renderer(template_path):
    """A function report -> HTML page, from the role's Jinja2 template (variable ``report``), as
    the template module renders it (trim_blocks, strict undefined)."""
    import jinja2  # pylint: disable=import-outside-toplevel

    try:
        with open(template_path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        raise AnsibleActionFail("cannot read the report template %s: %s" % (template_path, exc.strerror or exc))
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=False, keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined, autoescape=False)
    template = environment.from_string(text)
    return lambda report: template.render(report=report)


def metrics_writer(path):
    """A function report -> None that replaces the textfile-collector file at path (atomically, from a
    temporary name that does not end in .prom), keeping the other modes' run times it held."""
    def write(report):
        try:
            with open(path, encoding="utf-8") as stream:
                previous = stream.read()
        except (FileNotFoundError, UnicodeDecodeError):
            previous = ""
        write_atomic(path, _metrics.render(report, previous), mode=METRICS_MODE)
    return write


def alert_result(params, report, details):
    """What the role's alert task posts, and whether it is due (new exposures or hosts closed again)."""
    due = bool(params["alert"] and (details["new_exposed_hosts"] or details["new_resolved_hosts"]))
    return dict(due=due, format=params.get("alert_format", "generic"), new_exposed_hosts=details["new_exposed_hosts"],
                resolved_hosts=details["new_resolved_hosts"],
                body=_alert.alert_body(params.get("alert_format", "generic"), report, details["new_exposed_hosts"],
                                       details["new_resolved_hosts"]) if due else None)


def write_run_report(params, render_html, check_mode=False, generated=None, post=_webhook.post):
    """One batch's (or slice's) hosts merged into the run's report; the module result."""
    directory = params["dir"]
    paths = _report_store.paths(directory)
    alert_format, metrics_file = params.get("alert_format", "generic"), params.get("metrics_file")
    records, unmatched = _report.host_records(
        params["hosts"], probe=params["probe"], mode=params["mode"], port=params["port"],
        check_mode=params["check_mode"],
        controller_addresses=params["controller_addresses"] if params["controller_addresses"] is not None else [])
    generated = generated or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = dict(changed=False, dir=directory, written=[], run_id=params["run_id"],
                  **{"%s_path" % name: paths[name] for name in ("json", "html", "previous")})
    if check_mode:
        result.update(created_dir=not os.path.isdir(directory), previous_kept=False, parts=0, warnings=[],
                      alert_due=False, new_exposed_hosts=[], summary=None, verdicts={},
                      alert=dict(due=False, format=alert_format, new_exposed_hosts=[], resolved_hosts=[], body=None,
                                 sent=None),
                      metrics_path=metrics_file)
        return result
    report, details = _report_store.write_run(
        directory, params["run_id"], records, params["mode"], params["port"], params["check_mode"], generated,
        render_html, unmatched_probes=unmatched, probe_summary=_report.probe_summary_text(params["probe"]),
        alert=params["alert"], on_written=metrics_writer(metrics_file) if metrics_file else None)
    alert = alert_result(params, report, details)
    alert["sent"] = post(params["alert_url"], alert["body"]) if alert["due"] and params.get("alert_url") else None
    batch = set(str(name) for name in params["hosts"])
    result.update(
        created_dir=details["created_dir"], previous_kept=details["previous_kept"], parts=details["parts"],
        written=[paths["json"], paths["html"]] + ([metrics_file] if metrics_file else []),
        new_exposed_hosts=details["new_exposed_hosts"],
        alert_due=alert["due"], alert=alert, metrics_path=metrics_file,
        summary=dict((key, report[key]) for key in ("mode", "port", "counts", "exposed_hosts", "reopened_hosts",
                                                    "summary_line", "generated")),
        verdicts=dict((record["host"], dict(status=record["status"], reasons=record["reasons"]))
                      for record in report["hosts"] if record["host"] in batch))
    if details["warnings"]:
        result["warnings"] = details["warnings"]
    if params.get("stats"):
        result["ansible_stats"] = run_stats(result)
    return result


def run_stats(result):
    """The run so far for AWX, as set_stats hands it over (one key, the last batch's values win):
    ansible-core's strategy takes ``ansible_stats`` from any task's result."""
    summary = result["summary"]
    data = {STATS_KEY: dict(port=summary["port"], mode=summary["mode"], run_id=result["run_id"],
                            counts=summary["counts"], exposed_hosts=summary["exposed_hosts"],
                            reopened_hosts=summary["reopened_hosts"], report=result["json_path"])}
    return dict(data=data, per_host=False, aggregate=False)


class ActionModule(ControllerAction):
    """Runs on the controller whatever the task's host; never reports changed (see the docs)."""

    NAME = "write_report"
    ARGUMENT_SPEC = ARGUMENT_SPEC
    CONSTRAINTS = dict(mutually_exclusive=MUTUALLY_EXCLUSIVE, required_together=REQUIRED_TOGETHER,
                       required_one_of=REQUIRED_ONE_OF, required_by=REQUIRED_BY)

    def work(self, params, task_vars):
        check_mode = bool(self._task.check_mode)
        try:
            if params["hosts"] is not None:
                return write_run_report(params, html_renderer(params["html_template"]), check_mode=check_mode)
            return write_report_files(params["dir"], params["report"], params["html"], check_mode=check_mode)
        except (_report.ReportError, _alert.AlertError) as exc:
            raise AnsibleActionFail("write_report: %s" % exc)
        except _report_store.StoreError as exc:
            raise AnsibleActionFail("cannot write the report: %s" % exc)
        except OSError as exc:
            raise AnsibleActionFail("cannot write the report: %s: %s"
                                    % (to_text(exc.filename or params["dir"]), to_text(exc.strerror or exc)))
