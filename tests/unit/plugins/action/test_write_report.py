# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""write_report: the report files on the controller - JSON, HTML, the previous JSON kept,
modes, check mode, and errors that name the path; never `changed`."""

from __future__ import annotations

import json
import os
import re
import stat
from unittest.mock import MagicMock

import pytest
import yaml

from ansible.errors import AnsibleActionFail

from ansible_collections.sipguard.firewall.plugins.action import write_report as action_plugin
from ansible_collections.sipguard.firewall.plugins.modules import write_report as module_doc

REPORT_1 = {"schema": "sipguard.firewall/report/v1", "mode": "close", "counts": {"closed": 2},
            "hosts": [{"host": "sbc1", "status": "closed", "reasons": ["ufw: deny 5061/tcp (nur für Tests)"]}]}
REPORT_2 = dict(REPORT_1, mode="audit", counts={"closed": 1, "exposed": 1})


def run(args, check_mode=False):
    task = MagicMock(args=args, async_val=0, check_mode=check_mode, action="sipguard.firewall.write_report")
    connection = MagicMock(transport="ssh")  # whatever the host: the files are the controller's
    connection._shell.tmpdir = None
    action = action_plugin.ActionModule(task, connection, MagicMock(check_mode=check_mode), None, None, None)
    action._execute_module = MagicMock(side_effect=AssertionError("a module was sent to a host"))
    return action.run(task_vars={})


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_run_creates_the_directory_and_writes_json_and_html(tmp_path):
    directory = tmp_path / "reports" / "sips"
    result = run(dict(dir=str(directory), report=REPORT_1, html="<html>one</html>"))
    assert result["changed"] is False and "failed" not in result
    assert (result["created_dir"], result["previous_kept"]) == (True, False)
    assert json.loads((directory / "sips-report.json").read_text(encoding="utf-8")) == REPORT_1
    assert "nur für Tests" in (directory / "sips-report.json").read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert (directory / "sips-report.html").read_text(encoding="utf-8") == "<html>one</html>"
    assert not (directory / "sips-report.previous.json").exists()
    assert result["written"] == [str(directory / "sips-report.json"), str(directory / "sips-report.html")]
    assert mode_of(directory) == 0o750
    assert mode_of(directory / "sips-report.json") == mode_of(directory / "sips-report.html") == 0o640
    assert sorted(os.listdir(directory)) == ["sips-report.html", "sips-report.json"]  # no temporary left


def test_second_run_keeps_the_first_json_as_the_previous_report(tmp_path):
    run(dict(dir=str(tmp_path), report=REPORT_1, html="<html>one</html>"))
    first_json = (tmp_path / "sips-report.json").read_bytes()
    result = run(dict(dir=str(tmp_path), report=REPORT_2, html="<html>two</html>"))
    assert (result["created_dir"], result["previous_kept"], result["changed"]) == (False, True, False)
    assert (tmp_path / "sips-report.previous.json").read_bytes() == first_json
    assert json.loads((tmp_path / "sips-report.json").read_text(encoding="utf-8")) == REPORT_2
    assert (tmp_path / "sips-report.html").read_text(encoding="utf-8") == "<html>two</html>"
    assert mode_of(tmp_path / "sips-report.previous.json") == 0o640


def test_check_mode_writes_nothing_and_says_what_it_would_do(tmp_path):
    run(dict(dir=str(tmp_path), report=REPORT_1, html="<html>one</html>"))
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    result = run(dict(dir=str(tmp_path), report=REPORT_2, html="<html>two</html>"), check_mode=True)
    assert (result["previous_kept"], result["written"], result["changed"]) == (True, [], False)
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before
    missing = tmp_path / "new"
    assert run(dict(dir=str(missing), report=REPORT_1, html=""), check_mode=True)["created_dir"] is True
    assert not missing.exists()


def test_a_directory_that_cannot_be_written_fails_naming_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(AnsibleActionFail, match=re.escape("cannot write the report: %s" % blocker)):
        run(dict(dir=str(blocker / "report"), report=REPORT_1, html="<html/>"))


@pytest.mark.parametrize("args, named", [
    (dict(report=REPORT_1, html=""), "dir"),
    (dict(dir="/tmp/x", html=""), "report"),
    (dict(dir="/tmp/x", report="not a report", html=""), "report"),
    (dict(dir="/tmp/x", report=REPORT_1, html="", colour="red"), "colour"),
])
def test_bad_arguments_fail_naming_the_option_and_write_nothing(tmp_path, monkeypatch, args, named):
    monkeypatch.setattr(action_plugin, "write_report_files", lambda *a, **k: pytest.fail("wrote despite bad input"))
    with pytest.raises(AnsibleActionFail, match=named):
        run(args)


def test_documentation_matches_the_plugin():
    documented = yaml.safe_load(module_doc.DOCUMENTATION)
    assert set(documented["options"]) == set(action_plugin.ARGUMENT_SPEC)
    for name, option in documented["options"].items():
        assert option["type"] == action_plugin.ARGUMENT_SPEC[name]["type"]
        assert option.get("required", False) == action_plugin.ARGUMENT_SPEC[name].get("required", False)
    returned = yaml.safe_load(module_doc.RETURN)
    result = action_plugin.write_report_files("/nonexistent/sipguard", REPORT_1, "", check_mode=True)
    assert set(result) - {"changed"} == {name for name, item in returned.items() if item["returned"] == "always"}
    run_result = action_plugin.write_run_report(dict(
        dir="/nonexistent/sipguard", hosts={}, run_id="r", mode="audit", port=5061, check_mode=False, probe=None,
        controller_addresses=None, alert=False), None, check_mode=True)
    assert set(run_result) - {"changed", "warnings"} == set(returned) - {"ansible_stats"}  # that one with stats


def test_the_role_form_merges_a_batch_into_the_run_and_renders_the_role_template(tmp_path):
    template = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))), "roles", "sips", "templates", "report.html.j2")
    entry = {"address": "192.0.2.7", "result": {"changed": True, "effective": True, "exposed": False, "reasons": [],
                                                "before": {"effective": False, "exposed": True,
                                                           "reasons": ["ipv4/tcp: allow 5061"]}}}
    args = dict(dir=str(tmp_path), run_id="r1", mode="close", hosts={"sbc1": entry}, html_template=template)
    first = run(args)
    second = run(dict(args, hosts={"sbc2": dict(entry, failed=True, msg="boom")}))
    assert (first["parts"], second["parts"]) == (1, 2)
    assert second["summary"]["counts"]["hosts"] == 2 and second["verdicts"] == {
        "sbc2": {"status": "failed", "reasons": []}}
    assert first["verdicts"]["sbc1"]["status"] == "closed"
    page = (tmp_path / "sips-report.html").read_text(encoding="utf-8")
    assert 'data-host="sbc1"' in page and 'data-host="sbc2"' in page
    assert json.loads((tmp_path / "sips-report.json").read_text())["run"]["id"] == "r1"


def test_stats_hand_the_run_so_far_to_awx_as_set_stats_would(tmp_path):
    """The role's one report step also gives AWX its artifacts: ansible-core takes ansible_stats
    from any task's result (set_stats data, not per host, not aggregated: the last batch wins)."""
    template = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))), "roles", "sips", "templates", "report.html.j2")
    exposed = {"address": "192.0.2.7", "result": {"changed": False, "effective": False, "exposed": True,
                                                  "reasons": ["ipv4/tcp: allow 5061"]}}
    args = dict(dir=str(tmp_path), run_id="r1", mode="close", hosts={"sbc1": exposed}, html_template=template)
    assert "ansible_stats" not in run(args)
    second = run(dict(args, hosts={"sbc2": dict(exposed, result=dict(exposed["result"], exposed=False, reasons=[]))},
                      stats=True))
    stats = second["ansible_stats"]
    assert (stats["per_host"], stats["aggregate"]) == (False, False)
    assert stats["data"] == {"sipguard_sips": {
        "port": 5061, "mode": "close", "run_id": "r1", "counts": second["summary"]["counts"],
        "exposed_hosts": ["sbc1"], "reopened_hosts": [], "report": str(tmp_path / "sips-report.json")}}
