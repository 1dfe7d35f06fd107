# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Figures of the keep_closed rulebook and its port_state source (a benchmark, not a test).

  .venv/bin/python bench/keep_closed.py [--part latency|watcher|both] [--hosts 4] [--reopen 4]
                                        [--interval 5] [--targets 1000] [--watch-interval 10]
                                        [--seconds 60] [--protocols tcp,udp]

latency: HOSTS containers of the harness image (UFW active, listener on 5061), closed with the
  collection's close playbook; ansible-rulebook runs keep_closed on them at INTERVAL; then REOPEN
  of them are reopened at once with `ufw allow 5061/tcp` (side by side). Prints the heal events
  (one close run each: every host that reopened in a round is healed by one run) and, per host,
  the seconds from the reopen to the watcher's event (its log line) and to closed again as seen from this machine
  (tests/harness/probe.py every 0.2 s on IPv4 and IPv6, a thread per address: the
  start of the first probe that saw it filtered). Target: at most interval + one close run.
watcher: the port_state source alone (its __main__) over TARGETS loopback addresses
  (127.0.x.y, nothing listening: TCP and UDP closed) at WATCH_INTERVAL for SECONDS; prints its
  CPU time as a share of one core and its peak resident memory. Target: < 5 % and < 100 MB.
Only the benchmark's own containers (sge-bench-N) and loopback are probed; all are removed after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests", "faults"), os.path.join(ROOT, "tests", "eda")]
from fleet_harness import ENV, PLAYBOOK, closed_again_times, remove_targets, run, start_targets  # noqa: E402
from rulebook_harness import heal_hosts, log_time, rulebook_env, start_rulebook, stop_rulebook  # noqa: E402

SOURCE = os.path.join(ROOT, "extensions", "eda", "plugins", "event_source", "port_state.py")
SETUP = ("ufw default deny incoming && ufw allow 22/tcp && ufw --force enable "
         "&& (setsid python3 /listener.py 5061 > /dev/null 2>&1 &)")


def latency(hosts, interval, reopen):
    names = ["sge-bench-%d" % number for number in range(1, hosts + 1)]
    work = tempfile.mkdtemp(prefix="sge-bench-")
    process = None
    try:
        addresses = start_targets(names, SETUP)
        inventory = os.path.join(work, "hosts.yml")
        with open(inventory, "w") as out:
            json.dump({"all": {"vars": {"ansible_connection": "podman"},
                               "hosts": {name: {"sips_probe_targets": pair} for name, pair in addresses.items()}}}, out)
        started = time.monotonic()
        run([PLAYBOOK, "sipguard.firewall.close", "-i", inventory, "-e",
             json.dumps({"sips_report_dir": os.path.join(work, "first")})])
        one_close = time.monotonic() - started
        variables = os.path.join(work, "watch.yml")
        with open(variables, "w") as out:
            json.dump({"sips_watch_interval": interval,  # the inventory: ansible-rulebook's -i
                       "sips_watch_state_file": os.path.join(work, "state.json"),
                       "sips_watch_report_dir": os.path.join(work, "report")}, out)
        log = os.path.join(work, "rulebook.log")
        process = start_rulebook(["-r", "sipguard.firewall.keep_closed", "-i", inventory, "--vars", variables, "-v"],
                                 work, rulebook_env(ENV), log)
        time.sleep(interval + 1)
        reopened = {}
        names = names[:reopen]

        def reopen_one(name):
            reopened[name] = time.time()
            run(["podman", "exec", name, "ufw", "allow", "5061/tcp"])

        threads = [threading.Thread(target=reopen_one, args=(name,)) for name in names]
        for thread in threads:  # at once, as a change pushed to a fleet
            thread.start()
        for thread in threads:
            thread.join(60)
        closed = closed_again_times({name: addresses[name] for name in names}, time.monotonic() + 180)
        text = open(log).read()
        seen = {}
        for line in text.splitlines():
            match = re.search(r"port_state: 5061/tcp reopened on (sge-bench-\d+) ", line)
            if match and match.group(1) not in seen:
                seen[match.group(1)] = log_time(line)
        rows = []
        for name in names:
            rows.append((name, seen.get(name) and seen[name] - reopened[name],
                         closed.get(name) and closed[name] - reopened[name]))
        heal_events = heal_hosts(text)
        print("latency: %d of %d hosts reopened at once, interval %g s, one close playbook run on all of them before: %.1f s,"
              " load %s" % (len(names), hosts, interval, one_close, open("/proc/loadavg").read().split()[0]))
        print("heal events (one close run each): %d: %s" % (len(heal_events), "; ".join(
            ", ".join(hosts) for hosts in heal_events)))
        print("%-14s %18s %22s" % ("host", "reopen -> event s", "reopen -> closed s"))
        for name, event, healed in rows:
            print("%-14s %18s %22s" % (name, "%.1f" % event if event else "-", "%.1f" % healed if healed else "NOT"))
        events = [row[1] for row in rows if row[1]]
        heals = [row[2] for row in rows if row[2]]
        if events and heals:
            print("event: median %.1f s, max %.1f s; closed again: median %.1f s, max %.1f s (target <= %g s + one close)"
                  % (statistics.median(events), max(events), statistics.median(heals), max(heals), interval))
    finally:
        stop_rulebook(process)
        remove_targets(["sge-bench-%d" % number for number in range(1, hosts + 1)])


def _cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def watcher(targets, interval, seconds, protocols):
    addresses = ["127.0.%d.%d" % (1 + n // 250, 1 + n % 250) for n in range(targets)]
    work = tempfile.mkdtemp(prefix="sge-bench-watch-")
    args = {"targets": [{"host": "h%d" % n, "address": address} for n, address in enumerate(addresses)],
            "port": 5061, "families": ["ipv4"], "protocols": protocols, "interval": interval, "state_file": os.path.join(work, "state.json")}
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "build"))
    process = subprocess.Popen([sys.executable, SOURCE, json.dumps(args)], env=env, stdout=subprocess.DEVNULL)
    try:
        time.sleep(interval + 2)  # start-up and the first round, then a steady window
        cpu_start, wall_start = _cpu_seconds(process.pid), time.monotonic()
        time.sleep(seconds)
        cpu, wall = _cpu_seconds(process.pid) - cpu_start, time.monotonic() - wall_start
        peak = _peak_rss_mb(process.pid)
        state = json.load(open(os.path.join(work, "state.json")))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    print("watcher: %d loopback targets x %s, interval %g s, %.0f s measured: CPU %.2f s = %.1f %% of one core,"
          " peak RSS %.1f MB, %d endpoints in the state file (load %s)"
          % (targets, "+".join(protocols), interval, wall, cpu, 100.0 * cpu / wall, peak, len(state["endpoints"]),
             open("/proc/loadavg").read().split()[0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("latency", "watcher", "both"), default="both")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--reopen", type=int, default=4, help="how many of the hosts reopen at once")
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--watch-interval", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--protocols", default="tcp,udp")
    options = parser.parse_args()
    if options.part in ("watcher", "both"):
        watcher(options.targets, options.watch_interval, options.seconds, options.protocols.split(","))
    if options.part in ("latency", "both"):
        latency(options.hosts, options.interval, min(options.reopen, options.hosts))


if __name__ == "__main__":
    main()
