"""Where the time of `ansible-playbook sipguard.firewall.close` goes, per host and per batch, and
what Ansible settings change it.

Run with `make bench-settings` (or `.venv/bin/python bench/settings.py [--hosts 12] [--runs 2]
[--keep]` after `make setup`).

On one fresh fleet of N SSH containers (the same hosts as bench/fleet.py: UFW active, 5061 allowed
and served):

1. Per host: the close playbook's first run (a change) and a rerun (no-op) with ANSIBLE_DEBUG=1,
   whose timestamped lines give, for each host's ufw_port task, the first SSH command (with the
   connection set-up on a cold connection), the remote temporary directory, building the
   AnsiballZ payload (once per run, cached for the other hosts), its transfer (sftp), chmod,
   the module run on the host (Python start-up included), clean-up, and the rest of the worker's
   time - these two with `-e sips_pipelining=false`, since the role pipelines its module task by
   default - and the rerun as the role runs it (pipelined: one SSH command per host). A cold `ssh host true` and one
   through an open master connection are timed on their own. Per batch: every task's time from
   the ansible.posix.profile_tasks callback, grouped into validation, host step, controller
   probe, report, verdict, and the playbook's start-up (wall time minus the tasks).
2. Settings: the rerun of the close playbook, --runs times each, interleaved, with Ansible's
   defaults (forks 5, linear, no pipelining, ControlPersist 60s) and with one setting changed at
   a time (the role's sips_pipelining=false, pipelining on in ansible.cfg, forks N, strategy
   free, ControlPersist off), then pipelining and forks N together. Prints the wall times (min and spread) and whether every host ended closed.

ANSIBLE_DEBUG itself slows a run down; its figures show proportions, the matrix the wall times.
A figure printer, not a test. The containers are removed at the end (also on failure) unless --keep.
"""

import argparse
import collections
import os
import re
import statistics
import time

import fleetlib

TASK_LINE = re.compile(r"^TASK \[(?P<name>.*)\] \*+")
DEBUG_LINE = re.compile(r"^\s*(?P<pid>\d+) (?P<ts>\d+\.\d+)(?: \[[^\]]*\])?: (?P<msg>.*)$")
RECAP_LINE = re.compile(r"^(?P<name>.*?) -{2,} (?P<seconds>\d+\.\d+)s$")
HOST_TASK = "Close or restore the port with UFW"
PIPELINED = "pipelined: connect + payload on stdin + module run"
REST = "worker: the rest (templating, plugins, results)"
EXECUTING = "_low_level_execute_command(): executing: /bin/sh -c"
DONE = "_low_level_execute_command() done"
PHASES = [  # (label, start marker, end marker); markers are prefixes of ANSIBLE_DEBUG messages
    ("first SSH command (echo ~)", "_low_level_execute_command(): executing: /bin/sh -c 'echo ~",
     "_low_level_execute_command() done"),
    ("remote temporary directory", "_low_level_execute_command(): executing: /bin/sh -c '( umask 77",
     "_low_level_execute_command() done"),
    ("build AnsiballZ (controller)", "ANSIBALLZ: Creating module", "ANSIBALLZ: Done creating module"),
    ("transfer (sftp)", "transferring module to remote", "done transferring module to remote"),
    ("chmod", "_low_level_execute_command(): executing: /bin/sh -c 'chmod", "_low_level_execute_command() done"),
    ("module run on the host", "_low_level_execute_command(): executing: /bin/sh -c '/usr/bin/python3",
     "_low_level_execute_command() done"),
    ("clean-up (rm -rf)", "_low_level_execute_command(): executing: /bin/sh -c 'rm -f -r",
     "_low_level_execute_command() done"),
]
GROUPS = [  # per-batch grouping of the role's tasks (profile_tasks names), first match wins
    ("host step (ufw_port, all hosts)", ("Close or restore", "Audit the port", "Install ufw")),
    ("controller probe (port_probe, once)", ("Probe every host", "Learn the controller")),
    ("report (host records, merge into the run's report, JSON+HTML, summary, set_stats, alert)",
     ("Write the run's report", "Summary", "Hand the results", "Alert on exposure", "Keep the host's result")),
    ("verdict (fail what is still exposed)", ("Fail the host",)),
    ("validation (argument spec, trusted sources, run-wide checks)",
     ("Validating arguments", "Check the values", "Keep the values", "Check the run", "Check with the sips role")),
]


def host_phases(output):
    """[{phase: seconds}] for every host of the host task, from the ANSIBLE_DEBUG output of a run
    with forks 1 (workers log through the main process, so the hosts must not overlap)."""
    in_task, runs = False, []
    for line in output.splitlines():
        task = TASK_LINE.match(line)
        if task:
            in_task = HOST_TASK in task.group("name")
            continue
        match = DEBUG_LINE.match(line) if in_task else None
        if not match:
            continue
        if match.group("msg").startswith("in run() - task"):
            runs.append([])
        if runs:
            runs[-1].append((float(match.group("ts")), match.group("msg")))
    return [phases for phases in map(phases_of, runs) if phases]


def phases_of(events):
    """{phase: seconds} of one host's worker events [(timestamp, message)]; {} when it did not end."""
    phases, pending = collections.Counter(), None
    for stamp, msg in events:
        if pending is None:
            pending = next(((label, end, stamp) for label, start, end in PHASES if msg.startswith(start)), None)
            if msg.startswith(EXECUTING) and "python3" in msg and "transfer (sftp)" not in phases:
                pending = (PIPELINED, DONE, stamp)  # pipelined: one command opens, carries the payload, runs it
        elif msg.startswith(pending[1]):
            phases[pending[0]] += stamp - pending[2]
            pending = None
    ends = [ts for ts, msg in events if msg.startswith("_execute() done")]
    if not ends:
        return {}
    phases["worker total"] = ends[-1] - events[0][0]
    phases[REST] = phases["worker total"] - sum(v for k, v in phases.items() if k != "worker total")
    return phases


def task_times(output):
    """{task name: seconds} from the profile_tasks TASKS RECAP."""
    times, in_recap = {}, False
    for line in output.splitlines():
        if line.startswith("TASKS RECAP"):
            in_recap = True
        elif in_recap:
            match = RECAP_LINE.match(line.strip())
            if match:
                times[match.group("name")] = times.get(match.group("name"), 0) + float(match.group("seconds"))
    return times


def grouped(times, wall):
    sums = collections.OrderedDict((label, 0.0) for label, _names in GROUPS)
    sums["other tasks"] = 0.0
    for name, seconds in times.items():
        short = name.split(" : ", 1)[-1]
        label = next((label for label, names in GROUPS if short.startswith(names)), "other tasks")
        sums[label] += seconds
    sums["start-up and play set-up (wall minus tasks)"] = wall - sum(times.values())
    sums["wall time"] = wall
    return sums


def ssh_seconds(address, master):
    """Seconds for `ssh host true`: cold (new connection each time) or through one open master."""
    argv = ["ssh", "-i", fleetlib.KEY, *fleetlib.SSH_OPTIONS, "-o", "ConnectTimeout=5", "root@" + address, "true"]
    if not master:
        argv[1:1] = ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        started = time.monotonic()
        fleetlib.run(argv, timeout=30)
        return time.monotonic() - started
    path = os.path.join(fleetlib.WORK, "cp-probe-%s" % address)
    mux = ["-o", "ControlMaster=auto", "-o", "ControlPath=" + path, "-o", "ControlPersist=30"]
    argv[1:1] = mux
    fleetlib.run(argv, timeout=30)  # opens the master
    try:
        started = time.monotonic()
        fleetlib.run(argv, timeout=30)
        return time.monotonic() - started
    finally:
        fleetlib.run(["ssh", "-O", "exit", "-o", "ControlPath=" + path, "bench"], check=False, timeout=10)


def median_phases(hosts):
    labels = []
    for phases in hosts:
        labels += [label for label in phases if label not in labels]
    return {label: (statistics.median(p.get(label, 0.0) for p in hosts), max(p.get(label, 0.0) for p in hosts))
            for label in labels}


def profiled(inventory, settings, log, callbacks=(), extra_env=None, extra_args=()):
    report = ("-e", "sips_report_dir=" + os.path.join(fleetlib.WORK, "report-settings"), *extra_args)
    config = fleetlib.write_config(os.path.join(fleetlib.WORK, "settings-profile.cfg"), settings, callbacks)
    result = fleetlib.playbook("sipguard.firewall.close", inventory, config, log, report, extra_env=extra_env)
    if result.returncode != 0 or result.bad_hosts():
        raise RuntimeError("%s failed; see %s" % (log, result.log))
    return result


def breakdown(fleet, inventory, count):
    """Part 1: per-host phases (forks 1, ANSIBLE_DEBUG) and per-batch groups (profile_tasks)."""
    serial = dict(fleetlib.DEFAULT_SETTINGS, forks=1)
    debug = {"ANSIBLE_DEBUG": "1"}
    columns = []
    unpipelined = ("-e", "sips_pipelining=false")
    for label, settings, log, extra in (
            ("first run (change), unpipelined", serial, "settings-debug-first", unpipelined),
            ("rerun (no-op), unpipelined", serial, "settings-debug-rerun", unpipelined),
            ("rerun, pipelined (role default)", serial, "settings-debug-pipelining", ())):
        result = profiled(inventory, settings, log, extra_env=debug, extra_args=extra)
        columns.append((label, median_phases(host_phases(result.output))))

    print("Per host: the ufw_port task of the close playbook, %d hosts one after the other (forks 1),"
          " ANSIBLE_DEBUG=1" % count)
    print("(median over the hosts, max in brackets; seconds)")
    print()
    labels = []
    for _label, phases in columns:
        labels += [label for label in phases if label not in labels]
    order = [p[0] for p in PHASES] + [PIPELINED, REST, "worker total"]
    width = max(22, max(len(label) for label, _p in columns) + 2)
    print("%-50s" % "phase" + "".join(label.ljust(width) for label, _p in columns))
    for label in [label for label in order if label in labels]:
        print("%-50s" % label + "".join(
            ("%.3f (%.3f)" % phases[label] if label in phases else "-").ljust(width) for _l, phases in columns))
    host = fleet.hosts[0]
    cold = [ssh_seconds(host.ipv4, master=False) for _attempt in range(3)]
    warm = [ssh_seconds(host.ipv4, master=True) for _attempt in range(3)]
    print()
    print("ssh root@host true, alone: new connection %.3f s, through an open master %.3f s (min of 3)"
          % (min(cold), min(warm)))
    print()

    batches = []
    for label, settings in (("rerun, defaults", fleetlib.DEFAULT_SETTINGS),
                            ("rerun, pipelining + forks %d" % count,
                             dict(fleetlib.DEFAULT_SETTINGS, pipelining=True, forks=count))):
        result = profiled(inventory, settings, "settings-profile-%d" % len(batches),
                          callbacks=("ansible.posix.profile_tasks",))
        batches.append((label, grouped(task_times(result.output), result.seconds)))
    print("Per batch: the close playbook's tasks on %d hosts (profile_tasks; seconds)" % count)
    print()
    print("%-84s" % "group" + "".join("%-32s" % label for label, _g in batches))
    for group in batches[0][1]:
        print("%-84s" % group + "".join("%-32.2f" % groups.get(group, 0.0) for _l, groups in batches))
    print()


def matrix(fleet, inventory, count, runs):
    """Part 2: wall time of the no-op close with one setting changed at a time."""
    base = fleetlib.DEFAULT_SETTINGS
    variants = [
        ("defaults", dict(base)),
        ("sips_pipelining=false (role)", dict(base, extra=("-e", "sips_pipelining=false"))),
        ("pipelining on (ansible.cfg)", dict(base, pipelining=True)),
        ("forks %d (= hosts)" % count, dict(base, forks=count)),
        ("strategy free (ansible.cfg)", dict(base, strategy="free")),
        ("ControlPersist off", dict(base, control_persist=False)),
        ("pipelining + forks %d" % count, dict(base, pipelining=True, forks=count)),
    ]
    report = ("-e", "sips_report_dir=" + os.path.join(fleetlib.WORK, "report-matrix"))
    seconds, outcomes = collections.defaultdict(list), {}
    for repetition in range(runs):
        for number, (label, settings) in enumerate(variants):
            config = fleetlib.write_config(os.path.join(fleetlib.WORK, "settings-%d.cfg" % number), settings)
            result = fleetlib.playbook("sipguard.firewall.close", inventory, config,
                                       "settings-matrix-%d-%d" % (repetition, number),
                                       report + settings.get("extra", ()))
            seconds[label].append(result.seconds)
            states = fleet.states()
            closed = sum(1 for pair in states.values() if all(s in ("filtered", "-") for s in pair))
            outcomes[label] = "rc %d, %d/%d hosts ok, %d/%d closed" % (
                result.returncode, len(result.recap()) - result.bad_hosts(), count, closed, count)
    print("Settings: wall time of the close playbook's rerun (no-op) on %d hosts, %d run(s) each, interleaved"
          % (count, runs))
    print()
    default = min(seconds["defaults"])
    print("%-28s %-16s %-8s %s" % ("setting", "seconds", "vs default", "outcome (last run)"))
    for label, _settings in variants:
        print("%-28s %-16s %-10s %s" % (label, fleetlib.spread(seconds[label]),
                                        "%.2fx" % (min(seconds[label]) / default), outcomes[label]))
    print()
    print("defaults: %s; one change per row." % fleetlib.describe(base))
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=12, help="containers (default 12)")
    parser.add_argument("--runs", type=int, default=2, help="repetitions of each setting (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the containers (debugging)")
    parser.add_argument("--skip-breakdown", action="store_true", help="only the settings matrix")
    args = parser.parse_args()

    measured = fleetlib.prepare()
    fleetlib.remove_leftovers()
    fleet = None
    try:
        fleet = fleetlib.Fleet.start("settings", args.hosts)
        inventory = fleet.write_inventory(os.path.join(fleetlib.WORK, "settings.ini"))
        print("collection: %s; load average at the start: %s; %d CPUs" % (
            measured, fleetlib.load_average(), os.cpu_count()))
        print()
        if not args.skip_breakdown:
            breakdown(fleet, inventory, args.hosts)
        matrix(fleet, inventory, args.hosts, args.runs)
        print("load average at the end: %s" % fleetlib.load_average())
    finally:
        if fleet is not None:
            fleet.remove_unless(args.keep)


if __name__ == "__main__":
    main()
