"""Fleet wall time at 4, 8 and 12 hosts: `ansible-playbook sipguard.firewall.close` vs a naive
community.general.ufw playbook vs the ad-hoc floor, and the close's controller CPU per host.

Run with `make bench-fleet` (or, after `make setup`, `.venv/bin/python bench/fleet.py
[--hosts 4,8,12] [--runs 2] [--keep] [--contenders collection,naive,floor[,collection-r0]]`).

For every host count N and every run, each contender gets its own identical fresh fleet of N
containers (image localhost/sipguard-target:bookworm-ssh, managed over SSH as root as in
production, so no become; UFW active with default deny incoming, `allow 22/tcp`,
`allow 5061/tcp`, `allow 5061/udp`; a listener on 5061 TCP+UDP and 5060 TCP). The bench checks
from this host that 5061/tcp answers on every host, then times, with the same ansible.cfg
(Ansible's defaults: forks 5, linear, no pipelining, ssh ControlPersist 60s; interpreter set in
the inventory; every run starts with cold ssh connections), a first run and then the rerun of:

  collection:    the collection's close playbook with its defaults (host-side verdict, controller
                 probe of TCP+UDP with the RTT-adaptive silence window, report);
  naive:         bench/naive_close.yml (ufw allow 22, enable, deny 5061/tcp, deny 5061/udp,
                 wait_for from the controller until 5061/tcp stops answering, connect_timeout 2 s);
  floor:         `ansible all -i INVENTORY -m ansible.builtin.command -a 'ufw deny 5061/tcp'`
                 (one module round trip per host, no verification; its rerun is the same command).
                 Not the issue's `ufw insert 1 deny 5061/tcp`: with the `allow 5061/tcp` rule in
                 place ufw 0.36.2 skips that insert as an "existing rule" and the port stays open;
                 `ufw deny` replaces the allow in place;
  collection-r0: (not run by default) the close with -e sips_probe_retries=0.

The order of the contenders alternates between runs, so that a load spike does not always hit
one side. Afterwards it checks from this host that 5061/tcp is filtered (IPv4 and IPv6) on every
host of every fleet and, except for the floor (which only denies 5061/tcp), that an SSH login
works. Prints per host count the median seconds over the runs, the ratios collection / naive
(targets at 8 hosts: first run <= 0.30x, rerun <= 0.25x) and collection / floor (target at
8 hosts <= 1.5x), the controller CPU seconds per host of each contender (CPU of the
ansible-playbook process tree: the RUSAGE_CHILDREN delta around the run, divided by N), the
load average and a JSON line. Containers are removed after each host count, also on failure,
unless --keep (then the last run's are kept).

A figure printer, not a test: the targets are printed next to the ratios, never asserted.
"""

import argparse
import json
import os
import statistics
import sys
import time

import fleetlib

NAIVE = os.path.join(fleetlib.ROOT, "bench", "naive_close.yml")
# The issue names `ufw insert 1 deny 5061/tcp`; on these fleets (an `allow 5061/tcp` rule exists)
# ufw 0.36.2 answers it with "Skipping inserting existing rule" and the port stays open. `ufw deny
# 5061/tcp` replaces the allow in place ("Rule updated"): the same one command, and it closes.
FLOOR_ARGS = ("-m", "ansible.builtin.command", "-a", "ufw deny 5061/tcp")
TARGET_HOSTS = 8
TARGETS_NAIVE = {"first": 0.30, "rerun": 0.25}
TARGET_FLOOR = 1.5

# (name, playbook or ad-hoc host pattern, extra arguments, ad-hoc module arguments or None)
CONTENDERS = (
    ("collection", "sipguard.firewall.close", (), None),
    ("naive", NAIVE, (), None),
    ("floor", "all", (), FLOOR_ARGS),
    ("collection-r0", "sipguard.firewall.close", ("-e", "sips_probe_retries=0"), None),
)
DEFAULT_CONTENDERS = "collection,naive,floor"
LABELS = {"collection": "collection (close, defaults)", "naive": "naive (bench/naive_close.yml)",
          "floor": "floor (ad-hoc ufw deny)", "collection-r0": "collection, sips_probe_retries=0"}


def check_state(fleets, names, expect, when):
    """Every host's 5061/tcp on both families is `expect`, from this host; SSH logins work after
    (not checked for the floor, which only denies 5061/tcp)."""
    problems = []
    for fleet, name in zip(fleets, names):
        for host, states in sorted(fleet.states().items()):
            if any(state not in (expect, "-") for state in states):
                problems.append("%s: 5061/tcp %s (ipv4/ipv6), expected %s" % (host, "/".join(states), expect))
        if when == "after" and name != "floor":
            problems += ["%s: ssh login fails" % host for host, ok in sorted(fleet.logins().items()) if not ok]
    if problems:
        raise RuntimeError("%s the runs: %s" % (when, "; ".join(problems)))


def timed(ref, inventory, config, log_name, extra_args=(), adhoc=None, hosts=0):
    result = fleetlib.playbook(ref, inventory, config, log_name, extra_args=extra_args, adhoc=adhoc)
    if result.returncode != 0 or result.bad_hosts():
        raise RuntimeError("%s failed (rc %d); see %s" % (log_name, result.returncode, result.log))
    if adhoc is not None and result.answered_hosts() != hosts:
        raise RuntimeError("%s: %d of %d hosts answered; see %s"
                           % (log_name, result.answered_hosts(), hosts, result.log))
    return result


def one_run(index, count, config, keep, contenders):
    """One fresh fleet of `count` hosts per contender, first run then rerun of each, the checks;
    {key: figure}."""
    fleets = []
    names = [name for name, _r, _e, _a in contenders]
    try:
        for number, _contender in enumerate(contenders):
            fleets.append(fleetlib.Fleet.start("h%dr%d%s" % (count, index, "abcd"[number]), count))
        check_state(fleets, names, "open", "before")
        order = []
        for number, (name, ref, extra, adhoc) in enumerate(contenders):
            inventory = fleets[number].write_inventory(os.path.join(fleetlib.WORK, "fleet-%s.ini" % name))
            if ref.startswith("sipguard."):
                extra = extra + ("-e", "sips_report_dir=" + os.path.join(fleetlib.WORK, "report-" + name))
            order.append((name, ref, inventory, extra, adhoc))
        if index % 2 == 0:  # alternate who goes first
            order.reverse()
        figures = {"load_before": float(fleetlib.load_average())}
        for phase in ("first", "rerun"):
            for name, ref, inventory, extra, adhoc in order:
                result = timed(ref, inventory, config, "fleet-h%d-r%d-%s-%s" % (count, index, name, phase),
                               extra, adhoc, count)
                figures["%s_%s" % (name, phase)] = result.seconds
                figures["%s_%s_cpu" % (name, phase)] = result.cpu
                figures["%s_%s_changed" % (name, phase)] = result.changed_hosts()
        figures["load_after"] = float(fleetlib.load_average())
        check_state(fleets, names, "filtered", "after")
        return figures
    finally:
        for fleet in fleets:
            fleet.remove_unless(keep)


def median(values):
    return statistics.median(values)


def report(count, runs, contenders):
    names = [name for name, _r, _e, _a in contenders]
    loads = ["%.1f-%.1f" % (r["load_before"], r["load_after"]) for r in runs]
    print("%d hosts per contender, %d run(s) on fresh fleets (load average before-after each run: %s)" % (
        count, len(runs), ", ".join(loads)))
    print("  %-6s %-34s %-15s %-24s %-22s %-10s %s" % (
        "phase", "contender", "seconds median", "per run", "ratio (median)", "CPU-s/host", "changed hosts"))
    for phase in ("first", "rerun"):
        medians = {name: median([r["%s_%s" % (name, phase)] for r in runs]) for name in names}
        for name in names:
            seconds = [r["%s_%s" % (name, phase)] for r in runs]
            cpu = median([r["%s_%s_cpu" % (name, phase)] for r in runs]) / count
            ratios = []
            if name.startswith("collection"):
                if "naive" in medians:
                    target = (" (target <= %.2fx at %d hosts)" % (TARGETS_NAIVE[phase], TARGET_HOSTS)
                              if count == TARGET_HOSTS else "")
                    ratios.append("%.2fx naive%s" % (medians[name] / medians["naive"], target))
                if "floor" in medians:
                    target = (" (target <= %.1fx at %d hosts)" % (TARGET_FLOOR, TARGET_HOSTS)
                              if count == TARGET_HOSTS else "")
                    ratios.append("%.2fx floor%s" % (medians[name] / medians["floor"], target))
            print("  %-6s %-34s %-15s %-24s %-22s %-10s %s" % (
                phase, LABELS[name], "%.2f" % medians[name], " / ".join("%.2f" % s for s in seconds),
                "; ".join(ratios) or "-", "%.3f" % cpu,
                ", ".join(str(r["%s_%s_changed" % (name, phase)]) for r in runs)))
        if len(runs) > 1 and "naive" in names:
            for name in names:
                if name.startswith("collection"):
                    per_run = [r["%s_%s" % (name, phase)] / r["naive_%s" % phase] for r in runs]
                    floor = ([r["%s_%s" % (name, phase)] / r["floor_%s" % phase] for r in runs]
                             if "floor" in names else [])
                    print("  %-6s %-34s per run: %s naive%s" % (
                        "", LABELS[name], " / ".join("%.2f" % x for x in per_run),
                        "; %s floor" % " / ".join("%.2f" % x for x in floor) if floor else ""))
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", default="4,8,12", help="containers per fleet, comma-separated (default 4,8,12)")
    parser.add_argument("--runs", type=int, default=2,
                        help="repetitions per host count, each on new fleets; the median is printed (default 2:"
                             " the whole bench then takes about 15 minutes on 2 cores)")
    parser.add_argument("--keep", action="store_true", help="keep the last run's containers (debugging)")
    parser.add_argument("--contenders", default=DEFAULT_CONTENDERS,
                        help="which of collection,naive,floor,collection-r0 to run (default %(default)s)")
    args = parser.parse_args()
    counts = [int(part) for part in args.hosts.split(",") if part.strip()]
    chosen = set(args.contenders.split(","))
    unknown = chosen - {name for name, _r, _e, _a in CONTENDERS}
    if unknown:
        parser.error("unknown contender(s): %s" % ", ".join(sorted(unknown)))
    contenders = [contender for contender in CONTENDERS if contender[0] in chosen]

    started = time.monotonic()
    measured = fleetlib.prepare()
    fleetlib.remove_leftovers()
    settings = dict(fleetlib.DEFAULT_SETTINGS)
    config = fleetlib.write_config(os.path.join(fleetlib.WORK, "fleet.cfg"), settings)
    results = {}
    for count in counts:
        runs = []
        for index in range(1, args.runs + 1):
            figures = one_run(index, count, config, args.keep and index == args.runs and count == counts[-1],
                              contenders)
            runs.append(figures)
            print("%d hosts, run %d (load %.1f): %s" % (count, index, figures["load_before"], ", ".join(
                "%s %.2f / %.2f s" % (name, figures[name + "_first"], figures[name + "_rerun"])
                for name, _r, _e, _a in contenders)), file=sys.stderr)
        results[count] = runs

    print("Fleet benchmark: %s hosts per contender (SSH containers), %d run(s) each on fresh fleets; %d CPUs;"
          " %.0f s in all" % (",".join(map(str, counts)), args.runs, os.cpu_count(), time.monotonic() - started))
    print("collection: %s; ansible.cfg for all: %s (%s)" % (measured, config, fleetlib.describe(settings)))
    print()
    for count in counts:
        report(count, results[count], contenders)
    print("seconds: median over the runs (each run's figure after it); ratio: median / median; CPU-s/host:"
          " the median CPU seconds (user+system) of the run's process tree on the controller / hosts.")
    print("before the runs: 5061/tcp open on every host; after: filtered (IPv4 and IPv6) on every host,"
          " SSH logins working on every host but the floor's")
    print(json.dumps({"settings": settings, "collection": measured,
                      "results": {str(count): runs for count, runs in results.items()}}))


if __name__ == "__main__":
    main()
