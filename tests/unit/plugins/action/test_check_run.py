# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""check_run: run-wide values that differ between hosts or from earlier batches are named with
their hosts; the report directory and the previous report are checked; the run gets its id."""

from __future__ import annotations

import yaml

from ansible_collections.sipguard.firewall.plugins.action import check_run as action_plugin
from ansible_collections.sipguard.firewall.plugins.modules import check_run as module_doc


def params(settings, **extra):
    base = dict(settings=settings, earlier={}, run_id="", earlier_run_id="", mode="close", report_dir="/tmp")
    base.update(extra)
    return base


def test_hosts_that_disagree_are_named_with_their_values(tmp_path):
    settings = {"sbc1": {"sips_report_dir": "/srv/a", "sips_port": 5061},
                "sbc2": {"sips_report_dir": "/srv/b", "sips_port": 5061},
                "pbx": {"sips_report_dir": "/srv/a", "sips_port": 5061}}
    result = action_plugin.check_run(params(settings, report_dir=str(tmp_path)))
    assert result["failed"] is True
    assert result["problems"] == [
        "sips_report_dir must be one value for the whole run, but the hosts differ: '/srv/a' on pbx, sbc1; "
        "'/srv/b' on sbc2 - set it once for every host (group_vars/all, or -e)"]


def test_a_later_batch_that_differs_from_the_earlier_ones_is_named(tmp_path):
    result = action_plugin.check_run(params({"h9": {"sips_port": 5062}}, earlier={"sips_port": 5061},
                                            earlier_run_id="r1", report_dir=str(tmp_path)))
    assert result["msg"] == ("sips_port is 5062 on h9 but was 5061 in the earlier batches of this run - it must be "
                             "one value for the whole run")


def test_the_run_id_is_given_kept_or_new(tmp_path):
    settings = {"h1": {"sips_port": 5061}}
    given = action_plugin.check_run(params(settings, run_id="4242", report_dir=str(tmp_path)))
    assert given["run_id"] == "4242-close"
    assert given["ansible_facts"]["__sips_run"] == {"id": "4242-close", "settings": {"sips_port": 5061}}
    kept = action_plugin.check_run(params(settings, earlier_run_id="r1", report_dir=str(tmp_path)))
    assert kept["run_id"] == "r1"
    new = action_plugin.check_run(params(settings, report_dir=str(tmp_path)), new_id=lambda: "fresh")
    assert new["run_id"] == "fresh"
    assert action_plugin.check_run(params(settings, run_id="../x", report_dir=str(tmp_path)))["failed"] is True


def test_a_report_dir_that_cannot_be_created_fails_and_a_bad_previous_report_warns(tmp_path):
    (tmp_path / "file").write_text("x")
    result = action_plugin.check_run(params({"h1": {}}, report_dir=str(tmp_path / "file" / "r")))
    assert result["failed"] is True and str(tmp_path / "file") in result["msg"]
    (tmp_path / "sips-report.previous.json").write_text('{"schema": "sipguard.firewall/report/v1", "ho')
    result = action_plugin.check_run(params({"h1": {}}, report_dir=str(tmp_path)))
    assert "failed" not in result
    assert len(result["warnings"]) == 1 and "sips-report.previous.json is not valid JSON" in result["warnings"][0]
    # warned once per run: a later batch's check says nothing more
    assert "warnings" not in action_plugin.check_run(params({"h1": {}}, earlier_run_id="r",
                                                            report_dir=str(tmp_path)))


def test_documentation_matches_the_plugin():
    doc = yaml.safe_load(module_doc.DOCUMENTATION)
    assert set(doc["options"]) == set(action_plugin.ARGUMENT_SPEC)
    for name, spec in doc["options"].items():
        assert spec["type"] == action_plugin.ARGUMENT_SPEC[name]["type"], name
        assert spec.get("required", False) == action_plugin.ARGUMENT_SPEC[name].get("required", False), name
        assert spec.get("default") == action_plugin.ARGUMENT_SPEC[name].get("default"), name
    assert isinstance(yaml.safe_load(module_doc.EXAMPLES), list)


def test_the_action_refuses_bad_arguments_naming_them():
    from unittest.mock import MagicMock

    import pytest
    from ansible.errors import AnsibleActionFail

    task = MagicMock(args={"settings": "not a dict", "report_dir": "/tmp"}, async_val=0, check_mode=False)
    connection = MagicMock(transport="ssh")
    connection._shell.tmpdir = None
    action = action_plugin.ActionModule(task, connection, MagicMock(check_mode=False), None, None, None)
    with pytest.raises(AnsibleActionFail, match="check_run: .*settings"):
        action.run(task_vars={})
