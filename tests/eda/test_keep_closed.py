# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The keep_closed rulebook end to end: real ansible-rulebook, real UFW in containers, the network.

Three containers of the harness image (UFW active, deny incoming, allow 22/tcp, a listener on
5060 and 5061, TCP and UDP, both families). The collection's close playbook closes 5061 on all
three; then ansible-rulebook runs `sipguard.firewall.keep_closed` exactly as a user starts it
(`-r sipguard.firewall.keep_closed -i INVENTORY --vars FILE`) and each host is reopened another way:

- sge-allow:   `ufw allow 5061/tcp` (replaces the collection's deny in place);
- sge-disable: `ufw disable`;
- sge-input:   `iptables -I INPUT 1 -p tcp --dport 5061 -j ACCEPT` (outside UFW).

All three are reopened at once. The first two must be closed again and verified from this
machine (tests/harness/probe.py, bounded); the third must stay open, be alerted with its reason
by its failed close (captured by a receiver on 127.0.0.1) and not be healed again and again. The
watch asks for one close run per round over every host that reopened in it, and no audit. Every probe here targets only the containers'
addresses on the test network; the watcher probes only those too (the inventory's
sips_probe_targets).

Run: .venv/bin/python -m pytest -q tests/eda/test_keep_closed.py
"""

from __future__ import annotations

import http.server
import json
import os
import re
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# --import-mode=importlib: the shared harnesses are not on the path
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "faults")]
from fleet_harness import ENV, PLAYBOOK, closed_again_times, probe, remove_targets, run, start_targets  # noqa: E402
from rulebook_harness import (heal_hosts, log_time, rulebook_env, serving, start_rulebook,  # noqa: E402
                              stop_rulebook, wait_for)

NAMES = ("sge-allow", "sge-disable", "sge-input")
REOPEN = {
    "sge-allow": "ufw allow 5061/tcp",
    "sge-disable": "ufw disable",
    "sge-input": "iptables -I INPUT 1 -p tcp --dport 5061 -j ACCEPT",
}
SETUP = ("ufw default deny incoming && ufw allow 22/tcp && ufw --force enable "
         "&& (setsid python3 /listener.py 5060 5061 > /dev/null 2>&1 &)")
INTERVAL = 2
HEAL_DEADLINE = 120  # seconds from the reopen until both healable hosts must be closed again


class Receiver(http.server.BaseHTTPRequestHandler):
    """Keeps every POSTed JSON body, with the time it arrived."""
    bodies = []

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        try:
            body = json.loads(data)
        except ValueError:
            body = {"unparsed": data.decode("utf-8", "replace")}
        Receiver.bodies.append({"at": time.time(), "path": self.path, "body": body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def receiver():
    Receiver.bodies = []
    with serving(Receiver) as url:
        yield url + "/hook"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The three hosts, closed by the collection, and their inventory."""
    try:
        addresses = start_targets(NAMES, SETUP)
        inventory = tmp_path_factory.mktemp("inventory") / "hosts.yml"
        hosts = {name: {"sips_probe_targets": pair} for name, pair in addresses.items()}
        inventory.write_text(json.dumps({"all": {"vars": {"ansible_connection": "podman"}, "hosts": hosts}}))
        run([PLAYBOOK, "sipguard.firewall.close", "-i", str(inventory),
             "-e", json.dumps({"sips_report_dir": str(tmp_path_factory.mktemp("first-close"))})])
        for name in NAMES:
            assert probe("tcp", addresses[name][0]) == "filtered", name
        yield {"inventory": inventory, "addresses": addresses}
    finally:
        remove_targets(NAMES)


def alerts_for(host, firing):
    """Alertmanager alerts the receiver got for host: firing (no endsAt) or resolved."""
    found = []
    for entry in Receiver.bodies:
        body = entry["body"] if isinstance(entry["body"], list) else []
        for alert in body:
            if alert.get("labels", {}).get("instance") == host and (("endsAt" in alert) != firing):
                found.append(dict(alert, received=entry["at"]))
    return found


@pytest.fixture(scope="module")
def rulebook(fleet, receiver, tmp_path_factory):
    """ansible-rulebook running keep_closed as a user starts it; yields its log path."""
    work = tmp_path_factory.mktemp("watch")
    variables = work / "watch.yml"
    variables.write_text(json.dumps({
        # no sips_watch_inventory: the source watches ansible-rulebook's own -i
        "sips_watch_interval": INTERVAL,
        "sips_watch_state_file": str(work / "state.json"),
        "sips_watch_report_dir": str(work / "report"),
        "sips_probe_timeout": 1,
        "sips_alert_webhook_url": receiver,
        "sips_alert_format": "alertmanager",
    }))
    log = work / "rulebook.log"
    process = start_rulebook(["-r", "sipguard.firewall.keep_closed", "-i", str(fleet["inventory"]),
                              "--vars", str(variables), "-v"], work, rulebook_env(ENV), log)
    try:
        time.sleep(2 * INTERVAL + 1)  # two rounds over closed hosts
        yield {"log": log, "process": process, "state": work / "state.json"}
    finally:
        stop_rulebook(process)


def test_closed_hosts_send_no_event(rulebook):
    """Rounds over closed hosts change nothing: no event, no playbook run, no alert."""
    text = rulebook["log"].read_text()
    assert "port_state: 5061/" not in text, text[-3000:]
    assert Receiver.bodies == []
    state = json.loads(rulebook["state"].read_text())
    assert {entry["state"] for entry in state["endpoints"].values()} <= {"filtered", "open|filtered"}


def test_reopened_three_ways_two_healed_the_third_alerted_with_its_reason(fleet, rulebook):
    addresses = fleet["addresses"]
    reopened_at = {}

    reopen_done = {}

    def reopen(name):  # the time before the command: the figures below are upper bounds
        reopened_at[name] = time.time()
        run(["podman", "exec", name, "sh", "-c", REOPEN[name] + " > /dev/null"])
        reopen_done[name] = time.time()  # `ufw disable` alone takes seconds on a loaded machine

    # All three at once, as a change pushed to a fleet does: the watch heals them with one run.
    threads = [threading.Thread(target=reopen, args=(name,)) for name in NAMES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for name in NAMES:  # the network sees each one open (the listener answers)
        assert probe("tcp", addresses[name][0]) == "open", name

    log = rulebook["log"]
    healable = {name: addresses[name] for name in ("sge-allow", "sge-disable")}
    healed = closed_again_times(healable, time.monotonic() + HEAL_DEADLINE)
    assert sorted(healed) == sorted(healable), (
        "not closed again within %d s: %s\n%s" % (HEAL_DEADLINE, sorted(set(healable) - set(healed)),
                                                  log.read_text()[-6000:]))
    # Closed again for real: UFW active with the collection's deny first, on both families.
    for name in ("sge-allow", "sge-disable"):
        status = run(["podman", "exec", name, "ufw", "status", "numbered"]).stdout
        assert "Status: active" in status, status
        first = [line for line in status.splitlines() if line.startswith("[ 1]")][0]
        assert "5061" in first and "DENY" in first, status
        assert probe("udp", addresses[name][0]) == "open|filtered"

    # The one outside UFW: its close failed, and that close's alert names it with the rule that
    # lets it in; it is left as it is.
    firing = wait_for(lambda: alerts_for("sge-input", firing=True), 60)
    assert firing, "no alert for sge-input:\n%s\n%s" % (Receiver.bodies, log.read_text()[-6000:])
    reasons = " ".join(alert["annotations"]["reason"] for alert in firing)
    assert "INPUT" in reasons and "ahead of ufw" in reasons, reasons
    assert all("the run failed on it" in alert["annotations"]["summary"] for alert in firing), firing
    assert probe("tcp", addresses["sge-input"][0]) == "open"
    # The healed ones were said to be closed again (the resolved notice their close sends last).
    for name in ("sge-allow", "sge-disable"):
        assert wait_for(lambda: alerts_for(name, firing=False), 60), (name, Receiver.bodies)

    # No heal loop: a few more rounds, and the host outside UFW is not closed (alerted) again.
    time.sleep(4 * INTERVAL)
    text = log.read_text()
    assert len(alerts_for("sge-input", firing=True)) == len(firing), Receiver.bodies
    assert len(re.findall(r"5061/tcp reopened on sge-input", text)) == 1, text[-6000:]
    # One heal event per round with reopened hosts, each host in exactly one, one close run per
    # heal event and no audit: the close's own alert said everything.
    heals = heal_hosts(text)
    assert sorted(host for hosts in heals for host in hosts) == sorted(NAMES), heals
    # (ansible-rulebook logs a failed run's output a second time, in its ERROR line)
    close_runs = text.count("PLAY [Close SIP over TLS]") - text.count("ansible_rulebook.action.run_playbook - ERROR")
    assert close_runs == len(heals), text[-6000:]
    assert "PLAY [Audit SIP over TLS exposure]" not in text, text[-6000:]

    # Seconds from the reopen to the watcher's event and to closed again (printed for bench/README).
    seen = {}
    for line in text.splitlines():
        match = re.search(r"port_state: 5061/tcp reopened on (sge-[a-z]+) ", line)
        if match and match.group(1) not in seen and log_time(line):
            seen[match.group(1)] = log_time(line)
    for name in NAMES:
        assert name in seen, (name, text[-6000:])
    figures = {name: {"event_s": round(seen[name] - reopened_at[name], 1)} for name in NAMES}
    for name, at in healed.items():
        figures[name]["closed_again_s"] = round(at - reopened_at[name], 1)
    print("\nkeep_closed figures (interval %d s, %d heal run(s) %s): %s" % (
        INTERVAL, len(heals), heals, json.dumps(figures, sort_keys=True)))
    for name in NAMES:  # seen within a round (and its probe window) of the port opening
        assert seen[name] - reopen_done[name] <= INTERVAL + 4, (name, figures)
