# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.sipguard.firewall.plugins.filter import sips_report as plugin
from ansible_collections.sipguard.firewall.plugins.filter.sips_report import FilterModule, sips_report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


# --- inputs shaped as the modules return them ------------------------------------------------

def listener(name="kamailio", address="0.0.0.0", family="ipv4", protocol="tcp", pid=812):
    return {"protocol": protocol, "family": family, "address": address, "port": 5061,
            "wildcard": address in ("0.0.0.0", "::"), "loopback_only": False, "dual_stack": False, "uid": 0,
            "processes": [{"pid": pid, "name": name, "cmdline": ["/usr/sbin/" + name]}]}


def audit(exposed, reasons=(), listeners=(), notes=None):
    summary = [{"family": family, "protocol": protocol, "listening": False, "exposed": False, "firewall": "drop",
                "deciding_rule": None, "ufw_verdict": {"action": "deny", "rule": None, "open_from": []},
                "reasons": [], "notes": list((notes or {}).get("%s/%s" % (family, protocol), []))}
               for family in ("ipv4", "ipv6") for protocol in ("tcp", "udp")]
    return {"changed": False, "exposed": exposed, "reasons": list(reasons), "summary": summary,
            "listeners": list(listeners),
            "ufw": {"installed": True, "version": "0.36.2", "enabled": True, "loaded": True, "active": True,
                    "backend": "nft", "ipv6": True, "default_policies": {"incoming": "deny"}, "rules": []}}


def close(effective, before_effective, reasons=(), before_reasons=(), changed=True, **extra):
    result = {"changed": changed, "effective": effective, "exposed": None if effective is None else not effective,
              "reasons": list(reasons),
              "rules_added": ["5061/tcp DENY IN Anywhere # sipguard"] if changed else [], "rules_removed": [],
              "conflicts": [], "drift": [], "actions": [],
              "ufw": {"version": "0.36.2", "enabled": True, "loaded": True, "active": True, "backend": "nft",
                      "ipv6": True, "default_policies": {"incoming": "deny", "outgoing": "allow"}},
              "before": {"effective": before_effective, "exposed": not before_effective,
                         "reasons": list(before_reasons)},
              "listeners": [listener()]}
    result.update(extra)
    return result


def host(address, result=None, unreachable=False, failed=False, msg=None):
    return {"address": address, "result": result if result is not None else {}, "unreachable": unreachable,
            "failed": failed, "msg": msg}


def record(target, protocol="tcp", state="filtered", family="ipv4", tls=None, sip=None, error=None, address=None):
    return {"target": target, "address": address or target.strip("[]"), "family": family, "protocol": protocol,
            "port": 5061, "state": state, "rtt_ms": 1.0 if state in ("open", "closed") else None, "attempts": 1,
            "tls": tls, "sip": sip, "error": error}


def tls(subject="CN=sip.example.net", days_left=40, version="TLSv1.3"):
    return {"version": version, "cipher": "TLS_AES_256_GCM_SHA384", "bits": 256, "server_name": None,
            "handshake_ms": 3.0, "subject": subject, "issuer": "CN=R11,O=Let's Encrypt,C=US", "san": [],
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-04-01T00:00:00Z", "days_left": days_left,
            "serial": "01", "self_issued": False, "sha256": "00", "decoder": "cryptography", "error": None}


def sip(server="kamailio (5.6.3 (x86_64/linux))", user_agent=None, status_code=200, reason="OK"):
    return {"status_code": status_code, "reason": reason, "server": server, "user_agent": user_agent,
            "allow": ["OPTIONS"], "transport": "TLS", "rtt_ms": 2.0}


def probe(*records):
    return {"probes": list(records), "counts": {}, "summary": {"message": "port 5061 is open on none of 2 probes"}}


def one(report, name):
    return next(item for item in report["hosts"] if item["host"] == name)


# --- status ------------------------------------------------------------------------------------

def test_status_from_the_flags_and_the_audit():
    report = sips_report({
        "a-exposed": host("192.0.2.1", audit(True, ["ipv4/tcp: kamailio listens on 0.0.0.0:5061"], [listener()])),
        "b-closed": host("192.0.2.2", audit(False)),
        "c-down": host("192.0.2.3", unreachable=True, msg="ssh: connect to host 192.0.2.3 port 22: No route to host"),
        "d-failed": host("192.0.2.4", {"msg": "Missing sudo password"}, failed=True),
    }, generated="2026-03-02T02:00:00Z")
    assert [(item["host"], item["status"]) for item in report["hosts"]] == [
        ("a-exposed", "exposed"), ("d-failed", "failed"), ("c-down", "unreachable"), ("b-closed", "closed")]
    assert one(report, "a-exposed")["reasons"] == ["ipv4/tcp: kamailio listens on 0.0.0.0:5061"]
    assert one(report, "a-exposed")["exposed"] is True
    assert one(report, "b-closed")["exposed"] is False and one(report, "b-closed")["reasons"] == []
    assert one(report, "c-down")["error"] == "ssh: connect to host 192.0.2.3 port 22: No route to host"
    assert one(report, "c-down")["exposed"] is None and one(report, "c-down")["verified"] is None
    assert one(report, "d-failed")["error"] == "Missing sudo password"  # msg from the result when not given
    assert one(report, "a-exposed")["verified"] == "host-only"
    assert report["counts"] == {"hosts": 4, "exposed": 1, "closed": 1, "unreachable": 1, "failed": 1, "changed": 0,
                                "reopened": 0, "still_exposed": 0, "newly_closed": 0, "still_closed": 0, "new": 2}
    assert report["summary_line"] == "5061: 1 exposed (a-exposed), 1 closed, 1 unreachable, 1 failed"
    assert report["exposed_hosts"] == ["a-exposed"]
    assert report["schema"] == "sipguard.firewall/report/v1"


def test_the_network_wins_over_a_host_that_says_closed():
    report = sips_report({"sbc": host("192.0.2.40", audit(False))},
                         probe=probe(record("192.0.2.40", state="open", tls=tls(), sip=sip()),
                                     record("192.0.2.40", "udp", "open|filtered", error="no answer within 2s")))
    item = one(report, "sbc")
    assert item["status"] == "exposed" and item["exposed"] is True
    assert item["verified"] == "network"
    assert item["reasons"] == [
        "ipv4/tcp: open from the controller on 192.0.2.40:5061 (TLSv1.3, SIP 200 OK) although the host-side check "
        "finds it closed: the network wins (a port forward, NAT or another machine answers there)"]
    assert item["after"] == {"exposed": False, "reasons": []}  # what the host said, kept
    assert report["exposed_hosts"] == ["sbc"]


def test_an_open_tcp_port_without_sip_counts_and_says_so():
    report = sips_report({"lb": host("192.0.2.9", audit(False))},
                         probe=probe(record("192.0.2.9", state="open", error="TLS: no handshake within 2s")))
    item = one(report, "lb")
    assert item["status"] == "exposed"
    assert item["reasons"][0].startswith("ipv4/tcp: open from the controller on 192.0.2.9:5061 (no SIP answer)")
    assert "ipv4/tcp: probe of 192.0.2.9:5061: TLS: no handshake within 2s" in item["notes"]


def test_a_trusted_controller_seeing_it_open_is_intended():
    results = {"edge": host("192.0.2.10", audit(False)),
               "lab": host("192.0.2.22", audit(True, ["ipv4/tcp: asterisk listens on [::]:5061"]))}
    opened = probe(record("192.0.2.10", state="open", sip=sip()), record("192.0.2.22", state="open", sip=sip()))
    report = sips_report(results, probe=opened, controller_trusted=True, trusted_sources=["192.0.2.0/24"])
    edge, lab = one(report, "edge"), one(report, "lab")
    assert edge["status"] == "closed" and edge["reasons"] == [] and edge["verified"] == "trusted-source"
    assert any("trusted source, so this is intended" in note for note in edge["notes"])
    assert lab["status"] == "exposed" and lab["reasons"] == ["ipv4/tcp: asterisk listens on [::]:5061"]
    assert report["controller_trusted"] is True and report["trusted_sources"] == ["192.0.2.0/24"]


def test_exposed_on_the_host_but_filtered_from_the_controller():
    report = sips_report({"h": host("192.0.2.5", audit(True, ["ipv4/tcp: x"]))},
                         probe=probe(record("192.0.2.5"), record("192.0.2.5", "udp", "open|filtered")))
    item = one(report, "h")
    assert item["status"] == "exposed" and item["verified"] == "network"
    assert any(note.startswith("not reachable from the controller (tcp filtered, udp open|filtered)")
               for note in item["notes"])


def test_unreachable_host_seen_open_from_the_network():
    report = sips_report({"old": host("192.0.2.55", unreachable=True, msg="timed out")},
                         probe=probe(record("192.0.2.55", state="open", sip=sip(server=None, user_agent="FPBX"))))
    item = one(report, "old")
    assert item["status"] == "unreachable"  # the flags decide the status
    assert item["exposed"] is True and item["verified"] == "network"
    assert item["reasons"][0].endswith("(SIP 200 OK) (no host-side verdict)")
    assert item["sip_server"] == "FPBX"  # User-Agent when there is no Server header
    assert report["exposed_hosts"] == []


def test_probe_errors_only_leave_the_host_verdict():
    report = sips_report({"h": host("h.example.net", audit(False))},
                         probe=probe(record("h.example.net", state="error", family=None,
                                            error="name does not resolve", address=None)))
    item = one(report, "h")
    assert item["status"] == "closed" and item["verified"] == "host-only"
    assert item["notes"] == ["?/tcp: probe of h.example.net:5061: name does not resolve"]


def test_no_probe_record_for_the_host():
    report = sips_report({"h": host("192.0.2.8", audit(False))}, probe=probe(record("192.0.2.99")))
    item = one(report, "h")
    assert item["verified"] == "host-only" and item["probe"] == []
    assert item["notes"] == ["no probe record for this host's address (192.0.2.8): verified on the host only"]
    assert report["unmatched_probes"] == ["192.0.2.99"]


def test_probe_records_match_by_target_ipv6_brackets_and_case():
    records = [record("[2001:DB8::10]", state="closed", family="ipv6"),
               record("2001:db8::10", "udp", "closed", family="ipv6")]
    report = sips_report({"v6": host("2001:db8::10", audit(False))}, probe=probe(*records))
    assert len(one(report, "v6")["probe"]) == 2 and report["unmatched_probes"] == []


def test_host_name_is_the_target_when_there_is_no_address():
    report = sips_report({"sip1.example.net": {"result": audit(False)}},
                         probe=probe(record("sip1.example.net", state="closed", address="192.0.2.7")))
    assert one(report, "sip1.example.net")["verified"] == "network"
    assert one(report, "sip1.example.net")["address"] is None


# --- details -------------------------------------------------------------------------------------

def test_tls_sip_server_and_processes():
    listeners = [listener("kamailio", pid=1), listener("kamailio", "::", "ipv6", pid=2),
                 {"protocol": "udp", "family": "ipv4", "address": "0.0.0.0", "port": 5061, "processes": [{"pid": 9}]}]
    records = [record("192.0.2.1", state="open", tls={"version": "TLSv1.2", "subject": None, "error": "bad DER"}),
               record("192.0.2.1", state="open", address="192.0.2.1", tls=tls("CN=edge", -3), sip=sip()),
               record("192.0.2.1", "udp", "open", sip=sip(server="other"))]
    item = one(sips_report({"e": host("192.0.2.1", audit(True, ["ipv4/tcp: x"], listeners))},
                           probe=probe(*records)), "e")
    assert item["processes"] == ["kamailio", "pid 9"]
    assert item["tls"] == {"subject": "CN=edge", "issuer": "CN=R11,O=Let's Encrypt,C=US",
                           "not_after": "2026-04-01T00:00:00Z", "days_left": -3, "version": "TLSv1.3",
                           "self_issued": False}
    assert item["sip_server"] == "kamailio (5.6.3 (x86_64/linux))"
    assert len(item["reasons"]) == 4  # the host's, then the three open records
    assert item["before"] == item["after"] == {"exposed": True, "reasons": ["ipv4/tcp: x"]}  # the audit alone
    assert item["before"]["reasons"] is not item["after"]["reasons"]
    assert item["listeners"] == listeners and item["listeners"] is not listeners
    assert item["ufw"] == {"installed": True, "active": True, "version": "0.36.2", "backend": "nft",
                           "default_incoming": "deny"}


def test_audit_notes_carry_the_family_and_protocol():
    result = audit(False, notes={"ipv6/udp": ["the firewall lets udp/5061 in, but nothing listens on it now"]})
    item = one(sips_report({"m": host("192.0.2.31", result)}), "m")
    assert item["notes"][0] == "ipv6/udp: the firewall lets udp/5061 in, but nothing listens on it now"
    assert item["before"] == item["after"] == {"exposed": False, "reasons": []}


# --- trend ----------------------------------------------------------------------------------------

def test_trend_against_the_previous_report():
    previous = {"schema": "sipguard.firewall/report/v1", "generated": "2026-03-01T02:00:00Z",
                "hosts": [{"host": "reopened", "status": "closed"}, {"host": "still-open", "status": "exposed"},
                          {"host": "fixed", "status": "exposed"}, {"host": "quiet", "status": "closed"},
                          {"host": "was-down", "status": "unreachable"}, {"host": "down", "status": "closed"}]}
    results = {"reopened": host("192.0.2.1", audit(True, ["ipv4/tcp: x"])),
               "still-open": host("192.0.2.2", audit(True, ["ipv4/tcp: x"])),
               "fixed": host("192.0.2.3", audit(False)), "quiet": host("192.0.2.4", audit(False)),
               "newcomer": host("192.0.2.5", audit(False)), "was-down": host("192.0.2.6", audit(False)),
               "down": host("192.0.2.7", unreachable=True)}
    report = sips_report(results, previous=previous, generated="2026-03-02T02:00:00Z")
    trends = {item["host"]: item["trend"] for item in report["hosts"]}
    assert trends == {"reopened": "reopened", "still-open": "still_exposed", "fixed": "newly_closed",
                      "quiet": "still_closed", "newcomer": "new", "was-down": None, "down": None}
    assert one(report, "was-down")["previous_status"] == "unreachable"
    assert report["reopened_hosts"] == ["reopened"]
    assert report["previous_generated"] == "2026-03-01T02:00:00Z"
    counts = report["counts"]
    assert (counts["reopened"], counts["still_exposed"], counts["newly_closed"], counts["still_closed"],
            counts["new"]) == (1, 1, 1, 1, 1)
    assert report["summary_line"] == ("5061: 2 exposed (reopened, still-open), 4 closed, 1 unreachable, 0 failed; "
                                      "reopened: reopened")


def test_first_run_every_host_is_new_and_trend_is_audit_only():
    report = sips_report({"a": host("192.0.2.1", audit(False))}, previous=None)
    assert one(report, "a")["trend"] == "new"
    closed = sips_report({"a": host("192.0.2.1", close(True, False))},
                         previous={"hosts": [{"host": "a", "status": "exposed"}]}, mode="close")
    assert one(closed, "a")["trend"] is None and one(closed, "a")["previous_status"] is None
    assert closed["counts"]["new"] == 0


def test_the_previous_report_can_be_read_back_from_json():
    first = sips_report({"a": host("192.0.2.1", audit(False))}, generated="2026-03-01T00:00:00Z")
    again = sips_report({"a": host("192.0.2.1", audit(True, ["ipv4/tcp: x"]))},
                        previous=json.loads(json.dumps(first)))
    assert one(again, "a")["trend"] == "reopened"


# --- close and restore ----------------------------------------------------------------------------

def test_close_before_and_after():
    report = sips_report({
        "edge": host("192.0.2.10", close(True, False, before_reasons=["ipv4/tcp: ufw's own ... accepts tcp port 5061"],
                                         conflicts=[{"rule": "5000:6000/tcp ALLOW IN Anywhere", "family": "ipv4",
                                                     "handling": "shadowed"}])),
        "done": host("192.0.2.11", close(True, True, changed=False)),
        "stuck": host("192.0.2.12", close(False, False, reasons=["ipv4/tcp: filter INPUT rule 1 accepts tcp port 5061"]),
                      failed=True, msg="port 5061 is still reachable: ipv4/tcp: filter INPUT rule 1 accepts ..."),
    }, probe=probe(record("192.0.2.10"), record("192.0.2.11"), record("192.0.2.12", state="open")), mode="close")
    edge, done, stuck = one(report, "edge"), one(report, "done"), one(report, "stuck")
    assert edge["status"] == "closed" and edge["changed"] is True and edge["verified"] == "network"
    assert edge["before"] == {"exposed": True, "reasons": ["ipv4/tcp: ufw's own ... accepts tcp port 5061"]}
    assert edge["after"] == {"exposed": False, "reasons": []}
    assert edge["rules_added"] == ["5061/tcp DENY IN Anywhere # sipguard"]
    assert edge["conflicts"][0]["handling"] == "shadowed"
    assert edge["processes"] == ["kamailio"]
    assert done["status"] == "closed" and done["changed"] is False
    assert stuck["status"] == "failed" and stuck["exposed"] is True
    assert stuck["reasons"][0] == "ipv4/tcp: filter INPUT rule 1 accepts tcp port 5061"
    assert stuck["error"].startswith("port 5061 is still reachable")
    assert report["counts"]["changed"] == 2
    assert report["summary_line"] == "5061: 0 exposed, 2 closed, 0 unreachable, 1 failed; changed: 2"


def test_close_in_check_mode_reports_the_state_now():
    report = sips_report({"edge": host("192.0.2.10", close(True, False, before_reasons=["ipv4/tcp: x"]))},
                         probe=probe(record("192.0.2.10", state="open", sip=sip())), mode="close", check_mode=True)
    item = one(report, "edge")
    assert item["status"] == "exposed" and item["verified"] == "not-verified-check-mode"
    assert item["reasons"][0] == "ipv4/tcp: x"
    assert item["after"] == {"exposed": False, "reasons": []}
    assert any(note.startswith("check mode: nothing was changed") for note in item["notes"])
    assert report["summary_line"] == "5061 (check mode): 1 exposed (edge), 0 closed, 0 unreachable, 0 failed; " \
                                     "would change: 1"


def test_restore_is_never_closed_without_evidence():
    restored = {"changed": True, "effective": None, "reasons": [], "rules_added": [],
                "rules_removed": ["5061/tcp DENY IN Anywhere # sipguard"], "conflicts": [], "drift": [],
                "actions": [], "ufw": {"active": True}}
    report = sips_report({"blind": host("192.0.2.1", restored), "seen": host("192.0.2.2", restored),
                          "open": host("192.0.2.3", restored)},
                         probe=probe(record("192.0.2.2"), record("192.0.2.3", state="open")), mode="restore")
    blind, seen, opened = one(report, "blind"), one(report, "seen"), one(report, "open")
    assert blind["status"] == "exposed" and blind["exposed"] is None and blind["verified"] == "host-only"
    assert "nothing shows port 5061 closed" in blind["reasons"][0]
    assert seen["status"] == "closed" and seen["verified"] == "network"
    assert opened["status"] == "exposed" and opened["exposed"] is True
    assert blind["before"] == {"exposed": None, "reasons": []} and blind["after"]["exposed"] is None
    assert blind["rules_removed"] == ["5061/tcp DENY IN Anywhere # sipguard"]


def test_ufw_inactive_and_skip_is_exposed():
    skipped = {"changed": False, "effective": False, "exposed": True, "skipped": True,
               "reasons": ["UFW is inactive and inactive=skip: nothing was changed"], "rules_added": [],
               "rules_removed": [], "conflicts": [], "drift": [], "actions": [], "ufw": {"active": False}}
    item = one(sips_report({"h": host("192.0.2.1", skipped)}, mode="close"), "h")
    assert item["status"] == "exposed" and item["reasons"] == ["UFW is inactive and inactive=skip: nothing was changed"]


# --- the report as a whole -------------------------------------------------------------------------

def test_order_is_severity_then_natural_name():
    names = ["sip10", "sip2", "Sip1", "a"]
    report = sips_report({name: host("192.0.2.%d" % index, audit(name != "a")) for index, name in enumerate(names)})
    assert [item["host"] for item in report["hosts"]] == ["Sip1", "sip2", "sip10", "a"]


def test_long_lists_of_names_are_cut_in_the_summary_line():
    report = sips_report({"h%02d" % n: host("192.0.2.%d" % n, audit(True, ["ipv4/tcp: x"])) for n in range(13)})
    assert report["summary_line"] == ("5061: 13 exposed (h00, h01, h02, h03, h04, h05, h06, h07, h08, h09, +3 more), "
                                      "0 closed, 0 unreachable, 0 failed")
    assert len(report["exposed_hosts"]) == 13


def test_empty_fleet_and_defaults():
    report = sips_report({})
    assert report["hosts"] == [] and report["counts"]["hosts"] == 0
    assert report["summary_line"] == "5061: 0 exposed, 0 closed, 0 unreachable, 0 failed"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", report["generated"])
    assert report["probe_summary"] is None and report["previous_generated"] is None
    assert report["mode"] == "audit" and report["port"] == 5061 and report["check_mode"] is False


def test_generated_as_a_datetime_and_port_as_a_string():
    when = datetime.datetime(2026, 3, 2, 2, 0, tzinfo=datetime.timezone.utc)
    report = sips_report({}, generated=when, port="5060")
    assert report["generated"] == "2026-03-02T02:00:00+00:00" and report["port"] == 5060
    assert report["summary_line"].startswith("5060: ")


def test_the_report_is_plain_json():
    records = [record("192.0.2.1", state="open", tls=tls(), sip=sip())]
    report = sips_report({"e": host("192.0.2.1", audit(True, ["ipv4/tcp: x"], [listener()]))},
                         probe=probe(*records), previous={}, generated="2026-03-02T02:00:00Z")
    assert json.loads(json.dumps(report)) == report
    records[0]["tls"]["subject"] = "changed later"
    assert one(report, "e")["tls"]["subject"] == "CN=sip.example.net"  # a copy, not the caller's data
    assert set(one(report, "e")) == {
        "host", "address", "status", "exposed", "changed", "reasons", "notes", "before", "after", "listeners",
        "processes", "probe", "tls", "sip_server", "verified", "trend", "previous_status", "error", "ufw",
        "rules_added", "rules_removed", "conflicts", "actions", "trusted_sources", "controller_trusted"}
    assert set(report) == {"schema", "generated", "mode", "port", "check_mode", "controller_trusted",
                           "trusted_sources", "counts", "hosts", "exposed_hosts", "reopened_hosts",
                           "unmatched_probes", "probe_summary", "previous_generated", "summary_line", "run"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(host_results=["a"]), "the input (host results by host name) must be a dictionary"),
    (dict(host_results={"a": "x"}), "the result of host a must be a dictionary"),
    (dict(host_results={}, mode="open"), "mode must be one of audit, close, restore"),
    (dict(host_results={}, port=0), "port must be an integer from 1 to 65535, not 0"),
    (dict(host_results={}, port="https"), "port must be an integer"),
    (dict(host_results={}, probe=[]), "probe must be a dictionary"),
    (dict(host_results={}, probe={"probes": "x"}), "probe.probes must be a list"),
    (dict(host_results={}, previous={"schema": "other/v1", "hosts": []}), "previous is not a sipguard.firewall report"),
])
def test_bad_input_is_an_error(kwargs, message):
    host_results = kwargs.pop("host_results")
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        sips_report(host_results, **kwargs)


# --- the plugin -------------------------------------------------------------------------------------

def test_filter_module_and_documentation_agree():
    assert FilterModule().filters() == {"sips_report": sips_report}
    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc["name"] == "sips_report"
    options = set(doc["options"]) - {"_input"}
    code = sips_report.__code__
    assert options == set(code.co_varnames[1:code.co_argcount])
    defaults = dict(zip(code.co_varnames[code.co_argcount - len(sips_report.__defaults__):code.co_argcount],
                        sips_report.__defaults__))
    for name, spec in doc["options"].items():
        if "default" in spec:
            assert (defaults[name] or []) == spec["default"] if spec["type"] == "list" else \
                defaults[name] == spec["default"], name
    assert doc["options"]["mode"]["choices"] == list(plugin.MODES)
    returned = yaml.safe_load(plugin.RETURN)["_value"]["contains"]
    assert set(returned) == set(sips_report({}))
    record = sips_report({"h": host("192.0.2.1", audit(False))})["hosts"][0]
    assert set(returned["hosts"]["contains"]) == set(record)
    assert isinstance(yaml.safe_load(plugin.EXAMPLES), list)


def test_through_ansible(tmp_path):
    """The filter as a playbook calls it: Ansible's own templating, lazy containers and all."""
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  vars:
    results:
      sbc: {address: 192.0.2.40, unreachable: false, failed: false, result: {exposed: false, reasons: []}}
      edge: {address: 192.0.2.10, unreachable: false, failed: false,
             result: {exposed: true, reasons: ["ipv4/tcp: kamailio listens on 0.0.0.0:5061"]}}
    probed:
      probes:
        - {target: 192.0.2.40, address: 192.0.2.40, family: ipv4, protocol: tcp, port: 5061, state: open,
           tls: null, sip: {status_code: 200, reason: OK, server: kamailio}, error: null}
  tasks:
    - ansible.builtin.set_fact:
        report: "{{ results | sipguard.firewall.sips_report(probe=probed, previous={}, mode='audit',
                    generated=now(utc=true), controller_trusted=false, trusted_sources=['198.51.100.0/24']) }}"
    - ansible.builtin.copy:
        content: "{{ report | to_nice_json }}"
        dest: "{{ playbook_dir }}/report.json"
        mode: "0644"
""")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=" + sys.executable, str(playbook)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary_line"] == "5061: 2 exposed (edge, sbc), 0 closed, 0 unreachable, 0 failed"
    assert [item["status"] for item in report["hosts"]] == ["exposed", "exposed"]
    assert one(report, "sbc")["sip_server"] == "kamailio"
    assert re.match(r"^\d{4}-\d\d-\d\dT", report["generated"])


# --- what the role passes --------------------------------------------------------------------------

def test_all_the_targets_of_a_host_are_its_probe_records():
    entry = host("192.0.2.10", audit(False))
    entry["targets"] = ["192.0.2.10", "2001:db8::10", "sip.example.net"]
    records = [record("192.0.2.10", state="closed"), record("2001:db8::10", state="open", family="ipv6", sip=sip()),
               record("sip.example.net", state="closed", address="192.0.2.10"), record("192.0.2.99")]
    report = sips_report({"dual": entry}, probe=probe(*records))
    item = one(report, "dual")
    assert [item_["target"] for item_ in item["probe"]] == ["192.0.2.10", "2001:db8::10", "sip.example.net"]
    assert item["status"] == "exposed"
    assert item["reasons"][0].startswith("ipv6/tcp: open from the controller on [2001:db8::10]:5061 (SIP 200 OK)")
    assert report["unmatched_probes"] == ["192.0.2.99"]


def test_flags_given_as_templated_strings():
    report = sips_report({"ok": {"address": "192.0.2.1", "result": audit(False), "failed": "False",
                                 "unreachable": "false", "msg": ""},
                          "bad": {"address": "192.0.2.2", "result": {}, "failed": "True", "msg": ""},
                          "gone": {"unreachable": True}},
                         controller_trusted="false", check_mode="False")
    assert one(report, "ok")["status"] == "closed" and one(report, "ok")["error"] is None
    assert one(report, "bad")["status"] == "failed" and one(report, "bad")["error"] == "the task failed"
    assert one(report, "gone")["status"] == "unreachable" and one(report, "gone")["error"] == "the host was unreachable"
    assert report["controller_trusted"] is False and report["check_mode"] is False
    with pytest.raises(AnsibleFilterError, match="failed of host x must be a boolean"):
        sips_report({"x": {"failed": "perhaps"}})


# --- per-host settings (group_vars / host_vars) -------------------------------------------------

def test_whether_the_controller_is_trusted_is_decided_per_host():
    """The SBC trusts the controller's network, the others trust nothing: the SBC's open port is
    intended (its host-side verdict decides), the same open port elsewhere is an exposure."""
    results = {"sbc": dict(host("192.0.2.40", audit(False)), trusted_sources=["192.0.2.0/24", "2001:db8::/64"]),
               "pbx": dict(host("198.51.100.7", audit(False)), trusted_sources=[])}
    opened = probe(record("192.0.2.40", state="open", sip=sip()), record("198.51.100.7", state="open", sip=sip()))
    report = sips_report(results, probe=opened, mode="audit", controller_addresses=["192.0.2.99", "fe80::1%eth0"])
    sbc, pbx = one(report, "sbc"), one(report, "pbx")
    assert (sbc["status"], sbc["verified"], sbc["controller_trusted"]) == ("closed", "trusted-source", True)
    assert sbc["trusted_sources"] == ["192.0.2.0/24", "2001:db8::/64"]
    assert (pbx["status"], pbx["verified"], pbx["controller_trusted"]) == ("exposed", "network", False)
    assert pbx["trusted_sources"] == []
    assert report["trusted_sources"] == ["192.0.2.0/24", "2001:db8::/64"]
    assert report["controller_trusted"] is True  # for at least one host


def test_a_host_entry_controller_trusted_wins_and_addresses_outside_are_not_trusted():
    results = {"a": dict(host("192.0.2.1", audit(False)), trusted_sources=["10.0.0.0/8"]),
               "b": dict(host("192.0.2.2", audit(False)), trusted_sources=["10.0.0.0/8"], controller_trusted=True)}
    opened = probe(record("192.0.2.1", state="open"), record("192.0.2.2", state="open"))
    report = sips_report(results, probe=opened, controller_addresses=["192.0.2.99"])
    assert one(report, "a")["status"] == "exposed" and one(report, "b")["status"] == "closed"


def test_each_host_is_judged_on_its_own_protocols_and_families():
    """One probe over the union of the batch's protocols and families: a host that asked for tcp on
    ipv4 only is not judged on the udp or ipv6 records of its address."""
    results = {"v4tcp": dict(host("192.0.2.5", audit(False)), protocols=["tcp"], families=["ipv4"]),
               "all": host("192.0.2.6", audit(False))}
    records = [record("192.0.2.5", "udp", "open"), record("192.0.2.5", "tcp", "open", family="ipv6",
                                                          address="2001:db8::5"),
               record("192.0.2.5", "tcp", "filtered"), record("192.0.2.6", "udp", "open")]
    report = sips_report(results, probe=probe(*records))
    assert one(report, "v4tcp")["status"] == "closed"
    assert [(item["protocol"], item["family"]) for item in one(report, "v4tcp")["probe"]] == [("tcp", "ipv4")]
    assert one(report, "all")["status"] == "exposed"


def test_a_bad_trusted_source_in_an_entry_is_named():
    with pytest.raises(AnsibleFilterError, match="'10.0.0.300/8'"):
        sips_report({"a": dict(host("192.0.2.1", audit(False)), trusted_sources=["10.0.0.300/8"])},
                    controller_addresses=["192.0.2.9"])
