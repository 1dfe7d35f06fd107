# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Realistic inventories against five real hosts: per-host and per-group values, `serial`
batches, --check, --limit, sips_max_fail_percentage, and bad run-wide input.

Five containers of the harness image (UFW active, deny incoming, allow 22/tcp, allow 5061; a
listener on 5060 and 5061, TCP and UDP, both families). The inventory is what users write:
- group `sbc` (sgi-1): host_vars trust the controller's own networks (the podman network the
  tests probe from), so 5061 stays open to the controller and that is the intended result;
- group `pbx` (sgi-4, sgi-5): group_vars close TCP only (`sips_protocols: [tcp]`);
- every host: `sips_probe_targets` with its own IPv4 and IPv6 address.
Each verdict is held against what the network sees from this machine (tests/harness/probe.py,
bounded), and every refused run must leave every host exactly as it was (checksums of /etc/ufw,
/etc/default/ufw and the live rule sets) with no report written.

Run: .venv/bin/python -m pytest -q tests/faults/test_inventories.py
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: not on the path
from fleet_harness import PLAYBOOK, host_state, probe, remove_targets, run, start_targets  # noqa: E402

TRUSTED = ["10.89.7.0/24", "fd00:5061::/64"]  # the test network: the controller's own addresses
NAMES = ["sgi-%d" % number for number in range(1, 6)]
SETUP = ("ufw default deny incoming && ufw allow 22/tcp && ufw allow 5061 && ufw --force enable "
         "&& (setsid python3 /listener.py 5060 5061 > /dev/null 2>&1 &)")


def states():
    return {name: host_state(name) for name in NAMES}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The five hosts, their addresses, and the inventory directory (hosts.yml, group_vars, host_vars)."""
    try:
        addresses = start_targets(NAMES, SETUP)
        inventory = tmp_path_factory.mktemp("inventory")
        hosts = {"all": {"vars": {"ansible_connection": "podman"},
                         "children": {"sbc": {"hosts": {"sgi-1": None}},
                                      "media": {"hosts": {"sgi-2": None, "sgi-3": None}},
                                      "pbx": {"hosts": {"sgi-4": None, "sgi-5": None}}}}}
        (inventory / "hosts.yml").write_text(json.dumps(hosts))
        for directory in ("host_vars", "group_vars"):
            (inventory / directory).mkdir()
        for name, pair in addresses.items():
            values = {"sips_probe_targets": pair}
            if name == "sgi-1":
                values["sips_trusted_sources"] = TRUSTED
            (inventory / "host_vars" / ("%s.yml" % name)).write_text(json.dumps(values))
        (inventory / "group_vars" / "pbx.yml").write_text(json.dumps({"sips_protocols": ["tcp"]}))
        for name in NAMES:  # the listener answers before anything is closed
            assert probe("tcp", addresses[name][0]) == "open"
        yield {"inventory": inventory, "addresses": addresses}
    finally:
        remove_targets(NAMES)


def playbook(fleet, name, *args, extra=None, check=False):
    argv = [PLAYBOOK, "sipguard.firewall.%s" % name, "-i", str(fleet["inventory"] / "hosts.yml")]
    argv += list(args)
    if extra:
        argv += ["-e", json.dumps(extra)]
    return run(argv, check=check)


def recap(output):
    return {name: dict((key, int(value)) for key, value in re.findall(r"(\w+)=(\d+)", line))
            for name, line in re.findall(r"^(sgi-\d) +: (.*)$", output, re.MULTILINE)}


def report(directory, name="sips-report.json"):
    return json.loads((directory / name).read_text(encoding="utf-8"))


def by_host(data):
    return {item["host"]: item for item in data["hosts"]}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("report")


def test_bad_run_wide_values_are_refused_before_any_host_changes(fleet, tmp_path):
    """One host's host_vars set another report dir, another its own probe timeout: refused, both
    named with hosts and values, in the check before the first batch; nothing changed anywhere."""
    before = states()
    extra_host_vars = fleet["inventory"] / "host_vars" / "sgi-3.yml"
    saved = extra_host_vars.read_text()
    values = dict(json.loads(saved), sips_report_dir=str(tmp_path / "elsewhere"), sips_probe_timeout=5)
    extra_host_vars.write_text(json.dumps(values))
    try:
        result = playbook(fleet, "close", extra={"sips_serial": 2})
    finally:
        extra_host_vars.write_text(saved)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "sips_report_dir must be one value for the whole run, but the hosts differ" in output
    assert "'%s' on sgi-3" % (tmp_path / "elsewhere") in output
    assert "sips_probe_timeout must be one value for the whole run" in output and "5.0 on sgi-3" in output
    assert "Close or restore the port" not in output  # no batch started
    assert states() == before
    assert not (tmp_path / "elsewhere").exists()


def test_a_report_dir_that_cannot_be_created_is_refused_naming_it(fleet, tmp_path):
    before = states()
    (tmp_path / "a-file").write_text("x")
    result = playbook(fleet, "close", extra={"sips_report_dir": str(tmp_path / "a-file" / "report")})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "sips_report_dir %s cannot be created: %s is not a directory" % (
        tmp_path / "a-file" / "report", tmp_path / "a-file") in output
    assert states() == before


def test_check_mode_changes_nothing_and_reports_what_would_change(fleet, tmp_path):
    before = states()
    result = playbook(fleet, "close", "--check", extra={"sips_report_dir": str(tmp_path)}, check=True)
    assert states() == before
    data = report(tmp_path)
    assert data["check_mode"] is True and data["counts"]["hosts"] == 5
    assert "would change: 5" in result.stdout


def test_serial_batches_close_every_host_with_its_own_values_and_write_one_report(fleet, report_dir):
    result = playbook(fleet, "close", extra={"sips_serial": 2, "sips_report_dir": str(report_dir)}, check=True)
    counts = recap(result.stdout)
    assert all(counts[name]["failed"] == 0 and counts[name]["changed"] == 1 for name in NAMES), counts
    data = report(report_dir)
    hosts = by_host(data)
    assert sorted(hosts) == NAMES and data["run"]["parts"] == 3  # batches of 2, 2, 1: one report
    assert data["counts"]["closed"] == 5 and data["counts"]["changed"] == 5
    # the SBC trusts the controller's network: open to it, and that is what was asked for
    assert (hosts["sgi-1"]["status"], hosts["sgi-1"]["verified"]) == ("closed", "trusted-source")
    assert hosts["sgi-1"]["controller_trusted"] is True and hosts["sgi-1"]["trusted_sources"] == TRUSTED
    assert probe("tcp", fleet["addresses"]["sgi-1"][0]) == "open"
    for name in NAMES[1:]:
        assert (hosts[name]["status"], hosts[name]["verified"], hosts[name]["controller_trusted"]) == (
            "closed", "network", False), name
        for address in fleet["addresses"][name]:
            assert probe("tcp", address) == "filtered", (name, address)
    # the pbx group closes TCP only: its UDP stays open, and it is judged on TCP alone
    for name in ("sgi-4", "sgi-5"):
        assert {record["protocol"] for record in hosts[name]["probe"]} == {"tcp"}
        assert probe("udp", fleet["addresses"][name][0]) == "open"
    for name in ("sgi-2", "sgi-3"):
        assert probe("udp", fleet["addresses"][name][0]) == "open|filtered"
    assert "5061: 0 exposed, 5 closed, 0 unreachable, 0 failed; changed: 5" in result.stdout
    # the check play checked the whole run; the three batches do not check it again
    assert result.stdout.count("TASK [sipguard.firewall.sips : Check the run as a whole") == 1


def test_a_play_of_your_own_with_serial_is_still_checked_batch_by_batch(fleet, tmp_path):
    """The role on its own (no check play before it) validates each batch itself: a later
    batch whose host sets another report dir is refused, naming it, before it changes."""
    play = tmp_path / "own.yml"
    play.write_text(json.dumps([{
        "name": "Our own close", "hosts": "all", "gather_facts": False, "serial": 3,
        "tasks": [{"name": "Close", "ansible.builtin.include_role": {"name": "sipguard.firewall.sips"},
                   "vars": {"sips_mode": "enforce", "sips_state": "closed"}}]}]))
    extra_host_vars = fleet["inventory"] / "host_vars" / "sgi-5.yml"
    group_all = fleet["inventory"] / "group_vars" / "all.yml"
    saved = extra_host_vars.read_text()
    extra_host_vars.write_text(json.dumps(dict(json.loads(saved), sips_report_dir=str(tmp_path / "elsewhere"))))
    group_all.write_text(json.dumps({"sips_report_dir": str(tmp_path / "report")}))
    before = states()
    try:
        result = run([PLAYBOOK, str(play), "-i", str(fleet["inventory"] / "hosts.yml"), "--check"], check=False)
    finally:
        extra_host_vars.write_text(saved)
        group_all.unlink()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "sips_report_dir must be one value for the whole run, but the hosts differ" in output
    assert "'%s' on sgi-5" % (tmp_path / "elsewhere") in output
    assert output.count("TASK [sipguard.firewall.sips : Close or restore the port") == 1  # the first batch only
    assert output.count("TASK [sipguard.firewall.sips : Check the run as a whole") == 2  # each batch
    assert states() == before  # --check, and the second batch refused before its step
    assert not (tmp_path / "elsewhere").exists()


def test_the_rerun_changes_nothing_and_the_audit_compares_with_the_whole_run(fleet, report_dir):
    result = playbook(fleet, "close", extra={"sips_serial": 3, "sips_report_dir": str(report_dir)}, check=True)
    assert all(item["changed"] == 0 for item in recap(result.stdout).values())
    assert len(report(report_dir, "sips-report.previous.json")["hosts"]) == 5  # the whole first run
    audit = playbook(fleet, "audit", extra={"sips_report_dir": str(report_dir)}, check=True)
    data = report(report_dir)
    assert data["mode"] == "audit" and data["counts"]["still_closed"] == 5, audit.stdout


def test_limit_and_max_fail_percentage(fleet, tmp_path):
    result = playbook(fleet, "close", "--limit", "pbx",
                      extra={"sips_max_fail_percentage": 0, "sips_report_dir": str(tmp_path)}, check=True)
    assert sorted(recap(result.stdout)) == ["sgi-4", "sgi-5"]
    assert sorted(by_host(report(tmp_path))) == ["sgi-4", "sgi-5"]


def test_a_truncated_previous_report_is_named_and_the_run_still_reports(fleet, tmp_path):
    playbook(fleet, "audit", extra={"sips_report_dir": str(tmp_path)}, check=True)
    text = (tmp_path / "sips-report.json").read_text()
    (tmp_path / "sips-report.json").write_text(text[:53])
    result = playbook(fleet, "close", extra={"sips_report_dir": str(tmp_path)}, check=True)
    output = result.stdout + result.stderr
    assert "%s is not valid JSON" % (tmp_path / "sips-report.json") in output
    assert report(tmp_path)["counts"]["hosts"] == 5
    assert (tmp_path / "sips-report.invalid.json").read_text() == text[:53]


def test_runs_named_with_sips_run_id_merge_into_one_report(fleet, tmp_path):
    """Two ansible-playbook runs over different hosts, one sips_run_id: one run, one report."""
    for group in ("media", "pbx"):
        playbook(fleet, "audit", "--limit", group, extra={"sips_run_id": "site-a", "sips_report_dir": str(tmp_path)},
                 check=True)
    data = report(tmp_path)
    assert sorted(by_host(data)) == ["sgi-2", "sgi-3", "sgi-4", "sgi-5"]
    assert (data["run"]["id"], data["run"]["parts"]) == ("site-a-audit", 2)
    assert not (tmp_path / "sips-report.previous.json").exists()
