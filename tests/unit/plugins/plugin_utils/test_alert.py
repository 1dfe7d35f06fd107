# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The alert bodies (plugin_utils/_alert): one function per receiver over the run's report, each
checked against what its receiver documents (tests/monitoring/structure.py); which hosts are
closed again; the resolved notice is sent once per run, like the exposure alert."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.sipguard.firewall.plugins.plugin_utils import _alert, _report, _report_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
sys.path.insert(0, os.path.join(ROOT, "tests", "monitoring"))
from structure import PROBLEMS  # noqa: E402  (a test helper beside the receiver tests)

GENERATED = "2026-12-02T02:00:00Z"


def audit(exposed, reasons=()):
    return {"changed": False, "exposed": exposed, "reasons": list(reasons), "summary": [], "listeners": []}


def close(effective, before_effective, reasons=()):
    return {"changed": True, "effective": effective, "exposed": not effective, "reasons": list(reasons),
            "before": {"effective": before_effective, "exposed": not before_effective,
                       "reasons": [] if before_effective else ["ipv4/tcp: allow"]}}


def report_of(results, mode="audit", previous=None, check_mode=False, run_id="run-1"):
    entries = {name: {"address": "192.0.2.%d" % (index + 1), "result": result}
               for index, (name, result) in enumerate(results.items())}
    records, _unmatched = _report.host_records(entries, mode=mode, check_mode=check_mode)
    return _report.assemble(records, previous=previous, mode=mode, generated=GENERATED, check_mode=check_mode,
                            run=dict(id=run_id, parts=1, alerted_hosts=[]))


def previous_of(statuses):
    return {"schema": _report.SCHEMA, "generated": "2026-12-01T02:00:00Z",
            "hosts": [{"host": name, "status": status} for name, status in statuses.items()]}


@pytest.fixture(name="fleet")
def fixture_fleet():
    """An audit: sbc1 reopened (two families), pbx2 still exposed, edge3 closed again, lab4 still closed."""
    return report_of({
        "sbc1": audit(True, ["ipv4/tcp: kamailio listens on 0.0.0.0:5061 <and> R&D's rule",
                             "ipv6/tcp: kamailio listens on [::]:5061"]),
        "pbx2": audit(True, ["ipv4/udp: ufw's own filter ufw-user-input rule 1 accepts udp port 5061"]),
        "edge3": audit(False), "lab4": audit(False)},
        previous=previous_of({"sbc1": "closed", "pbx2": "exposed", "edge3": "exposed", "lab4": "closed"}))


def test_resolved_hosts_are_the_audits_newly_closed_and_the_closes_of_exposed_hosts(fleet):
    assert _alert.resolved_hosts(fleet) == ["edge3"]
    closed = report_of({"was-open": close(True, False), "was-closed": close(True, True),
                        "still-open": close(False, False, ["ipv4/tcp: INPUT rule 1 accepts"])}, mode="close")
    assert _alert.resolved_hosts(closed) == ["was-open"]
    # a check-mode close changed nothing: the host is still exposed, nothing is resolved
    checked = report_of({"was-open": close(True, False)}, mode="close", check_mode=True)
    assert _alert.resolved_hosts(checked) == []


def test_generic_keeps_the_documented_keys(fleet):
    body = _alert.alert_body("generic", fleet, ["sbc1"], ["edge3"])
    assert body == {"source": "sipguard.firewall", "run_id": "run-1", "summary": fleet["summary_line"],
                    "counts": fleet["counts"], "exposed_hosts": ["pbx2", "sbc1"], "failed_exposed_hosts": [],
                    "new_exposed_hosts": ["sbc1"],
                    "reopened_hosts": ["sbc1"], "resolved_hosts": ["edge3"],
                    "reasons": {record["host"]: record["reasons"] for record in fleet["hosts"]
                                if record["status"] == "exposed"}}
    assert body["reasons"]["sbc1"] and all(body["reasons"][host] for host in body["exposed_hosts"])


BYPASS = ("ipv4/tcp: filter INPUT rule 1 accepts tcp port 5061 ahead of ufw's chains (-A INPUT -p tcp "
          "--dport 5061 -j ACCEPT): delete it with iptables -D INPUT 1")


def failed_close_report(tmp_path):
    """A close where ufw_port failed on one host because a rule outside UFW still lets 5061 in
    (what the module returns then: failed, effective false, the reasons), and healed another."""
    failed = dict(close(False, False, [BYPASS]), failed=True, msg="port 5061 is still reachable: " + BYPASS)
    entries = {"pbx-input": {"address": "192.0.2.7", "result": failed, "failed": True, "msg": failed["msg"]},
               "pbx-allow": {"address": "192.0.2.8", "result": close(True, False)}}
    records, _unmatched = _report.host_records(entries, mode="close")
    return _report_store.write_run(str(tmp_path), "heal-1", records, "close", 5061, False, GENERATED,
                                   lambda report: "", alert=True)


def test_a_close_that_failed_with_the_port_open_is_alerted_with_its_reason(tmp_path):
    report, details = failed_close_report(tmp_path)
    record = [r for r in report["hosts"] if r["host"] == "pbx-input"][0]
    assert (record["status"], record["exposed"]) == ("failed", True)
    assert details["new_exposed_hosts"] == ["pbx-input"]  # the alert is due for it
    assert details["new_resolved_hosts"] == ["pbx-allow"]
    generic = _alert.alert_body("generic", report, details["new_exposed_hosts"], details["new_resolved_hosts"])
    assert generic["failed_exposed_hosts"] == ["pbx-input"] and generic["exposed_hosts"] == []
    assert any("ahead of ufw" in reason for reason in generic["reasons"]["pbx-input"])
    manager = _alert.alert_body("alertmanager", report, details["new_exposed_hosts"], details["new_resolved_hosts"])
    firing = [alert for alert in manager if "endsAt" not in alert]
    assert [(a["labels"]["instance"], a["labels"]["family"], a["labels"]["protocol"]) for a in firing] == [
        ("pbx-input", "ipv4", "tcp")]
    assert "ahead of ufw" in firing[0]["annotations"]["reason"]
    assert "failed" in firing[0]["annotations"]["summary"]
    slack = str(_alert.alert_body("slack", report, details["new_exposed_hosts"], []))
    teams = str(_alert.alert_body("teams", report, details["new_exposed_hosts"], []))
    assert "pbx-input" in slack and "ahead of ufw" in slack and "pbx-input" in teams and "ahead of ufw" in teams


def test_a_host_whose_close_failed_and_is_closed_now_is_closed_again(tmp_path):
    """The watch's audit after a failed heal, in the same directory: the resolved notice is due."""
    failed_close_report(tmp_path)
    records, _unmatched = _report.host_records({"pbx-input": {"address": "192.0.2.7", "result": audit(False)}},
                                               mode="audit")
    report, details = _report_store.write_run(str(tmp_path), "audit-1", records, "audit", 5061, False, GENERATED,
                                              lambda report: "", alert=True)
    assert report["hosts"][0]["trend"] == "newly_closed"
    assert details["new_resolved_hosts"] == ["pbx-input"]


def test_a_failed_host_without_reasons_is_alerted_with_the_error_and_an_unknown_state_is_not():
    failed = {"address": "192.0.2.9", "failed": True, "msg": "ufw: command not found",
              "result": {"failed": True, "msg": "ufw: command not found", "exposed": True}}
    unknown = {"address": "192.0.2.10", "failed": True, "msg": "Timeout waiting for privilege escalation",
               "result": {"failed": True, "msg": "Timeout waiting for privilege escalation"}}
    records, _unmatched = _report.host_records({"a": failed, "b": unknown}, mode="close")
    report = _report.assemble(records, mode="close", generated=GENERATED, run=dict(id="r", parts=1, alerted_hosts=[]))
    assert _alert.exposed_hosts(report) == ["a"]  # b: nothing says its port is open
    assert _alert.alert_body("generic", report, ["a"])["reasons"]["a"] == [
        "the run failed on the host: ufw: command not found"]


def test_slack_is_text_plus_blocks_escaped_within_slacks_limits(fleet):
    body = _alert.alert_body("slack", fleet, ["sbc1", "pbx2"], ["edge3"])
    assert PROBLEMS["slack"](body) == []
    assert body["text"].startswith("SIPS port 5061 exposed on 2 hosts: 5061: 2 exposed (pbx2, sbc1)")
    assert body["blocks"][0] == {"type": "header", "text": {"type": "plain_text",
                                                            "text": "SIPS port 5061 exposed on 2 hosts"}}
    assert body["blocks"][1]["text"]["text"].startswith("*pbx2* \u2014 still exposed (new since the last alert)")
    sbc1 = body["blocks"][2]["text"]["text"]
    assert sbc1.startswith("*sbc1* \u2014 reopened (new since the last alert)\n\u2022 ipv4/tcp: kamailio")
    assert "0.0.0.0:5061 &lt;and&gt; R&amp;D's rule" in sbc1  # Slack's three escapes
    assert body["blocks"][3]["text"]["text"] == ":white_check_mark: *closed again:* edge3"
    assert body["blocks"][-1]["type"] == "context"


def test_slack_and_teams_stay_within_limits_for_a_large_fleet():
    many = report_of({"host%02d" % number: audit(True, ["ipv4/tcp: reason %d " % number + "x" * 4000] * 5)
                      for number in range(60)})
    slack = _alert.alert_body("slack", many, [], [])
    assert PROBLEMS["slack"](slack) == []
    assert len(slack["blocks"]) == 1 + 20 + 1 + 1
    assert slack["blocks"][21]["text"]["text"] == "+40 more exposed hosts (see the report)"
    assert len(slack["blocks"][1]["text"]["text"]) == 3000 and slack["blocks"][1]["text"]["text"].endswith("\u2026")
    teams = _alert.alert_body("teams", many, [], [])
    assert PROBLEMS["teams"](teams) == []
    facts = teams["attachments"][0]["content"]["body"][2]["facts"]
    assert len(facts) == 20 and all(len(fact["value"]) <= 600 for fact in facts)
    assert teams["attachments"][0]["content"]["body"][3]["text"] == "+40 more exposed hosts (see the report)"


def test_teams_is_a_message_with_one_adaptive_card(fleet):
    body = _alert.alert_body("teams", fleet, ["sbc1"], ["edge3"])
    assert PROBLEMS["teams"](body) == []
    card = body["attachments"][0]["content"]
    assert card["body"][0]["text"] == "SIPS port 5061 exposed on 2 hosts"
    facts = next(element for element in card["body"] if element["type"] == "FactSet")["facts"]
    assert [fact["title"] for fact in facts] == ["pbx2 (still exposed)", "sbc1 (reopened, new)"]
    assert facts[0]["value"] == "ipv4/udp: ufw's own filter ufw-user-input rule 1 accepts udp port 5061"
    assert card["body"][-2]["text"] == "Closed again: edge3"


def test_a_message_about_hosts_closed_again_only(fleet):
    resolved = report_of({"edge3": audit(False)}, previous=previous_of({"edge3": "exposed"}))
    slack = _alert.alert_body("slack", resolved, [], ["edge3"])
    assert slack["blocks"][0]["text"]["text"] == "SIPS port 5061 closed again on 1 host"
    teams = _alert.alert_body("teams", resolved, [], ["edge3"])
    assert teams["attachments"][0]["content"]["body"][0]["color"] == "Good"
    assert PROBLEMS["slack"](slack) == [] and PROBLEMS["teams"](teams) == []


def test_alertmanager_one_alert_per_exposed_host_protocol_family_and_endsat_for_closed_again(fleet):
    body = _alert.alert_body("alertmanager", fleet, ["sbc1"], ["edge3"])
    assert PROBLEMS["alertmanager"](body) == []
    firing = [alert for alert in body if "endsAt" not in alert]
    assert [alert["labels"] for alert in firing] == [
        {"alertname": "SipsPortExposed", "instance": "pbx2", "port": "5061", "protocol": "udp", "family": "ipv4",
         "severity": "critical"},
        {"alertname": "SipsPortExposed", "instance": "sbc1", "port": "5061", "protocol": "tcp", "family": "ipv4",
         "severity": "critical"},
        {"alertname": "SipsPortExposed", "instance": "sbc1", "port": "5061", "protocol": "tcp", "family": "ipv6",
         "severity": "critical"}]
    assert firing[1]["annotations"] == {
        "summary": "ipv4/tcp port 5061 is exposed on sbc1 (reopened)", "trend": "reopened",
        "reason": "ipv4/tcp: kamailio listens on 0.0.0.0:5061 <and> R&D's rule"}
    assert all(alert["startsAt"] == GENERATED for alert in body)
    resolved = [alert for alert in body if "endsAt" in alert]
    assert sorted((alert["labels"]["family"], alert["labels"]["protocol"]) for alert in resolved) == [
        ("ipv4", "tcp"), ("ipv4", "udp"), ("ipv6", "tcp"), ("ipv6", "udp")]
    assert {alert["labels"]["instance"] for alert in resolved} == {"edge3"}
    assert all(alert["endsAt"] == GENERATED for alert in resolved)


def test_alertmanager_an_exposure_no_reason_places_is_labelled_any():
    report = report_of({"r": {"changed": True, "effective": None, "reasons": []}}, mode="restore")
    body = _alert.alert_body("alertmanager", report, ["r"], [])
    assert [(alert["labels"]["protocol"], alert["labels"]["family"]) for alert in body] == [("any", "any")]
    assert body[0]["annotations"]["reason"].startswith("no host-side verdict (mode restore)")


def test_an_unknown_format_is_named():
    with pytest.raises(_alert.AlertError, match="sips_alert_format must be one of generic, slack, teams, "
                                                "alertmanager, not 'pagerduty'"):
        _alert.alert_body("pagerduty", report_of({"a": audit(False)}))


def test_the_resolved_notice_is_due_once_per_run(tmp_path):
    def write(run_id, results, previous_statuses=None, alert=True):
        entries = {name: {"address": "192.0.2.1", "result": result} for name, result in results.items()}
        records, _unmatched = _report.host_records(entries, mode="audit")
        return _report_store.write_run(str(tmp_path), run_id, records, "audit", 5061, False, GENERATED,
                                       lambda report: "", alert=alert)[1]

    assert write("run-1", {"edge3": audit(True, ["ipv4/tcp: allow"])})["new_exposed_hosts"] == ["edge3"]
    first = write("run-2", {"edge3": audit(False)})
    assert (first["new_exposed_hosts"], first["new_resolved_hosts"]) == ([], ["edge3"])
    again = write("run-2", {"other": audit(False)})  # a later batch of the same run
    assert again["new_resolved_hosts"] == []
