"""Fleet wall time: `ansible-playbook sipguard.firewall.close` vs a naive community.general.ufw playbook.

Run with `make bench-fleet` (or, after `make setup`, `.venv/bin/python bench/fleet.py [--hosts 12]
[--runs 2] [--keep] [--contenders collection,naive]`).

Each run starts three identical fresh fleets of N containers (image
localhost/sipguard-target:bookworm-ssh, managed over SSH as in production; UFW active with
default deny incoming, `allow 22/tcp`, `allow 5061/tcp`, `allow 5061/udp`; a listener on 5061
TCP+UDP and 5060 TCP), checks from this host that 5061/tcp answers on every host, then times,
with the same ansible.cfg (Ansible's defaults: forks 5, linear, no pipelining, ssh ControlPersist
60s; interpreter set in the inventory; every playbook starts with cold ssh connections), a first
run and then the idempotent rerun of:

  fleet A: the collection's close playbook with its defaults (probe: 2 s per attempt, 2 attempts);
  fleet B: the same with -e sips_probe_retries=0 (one 2 s attempt, as the naive wait_for);
  fleet C: bench/naive_close.yml (ufw allow 22, enable, deny 5061/tcp, deny 5061/udp,
           wait_for from the controller until 5061/tcp stops answering, connect_timeout 2 s).

Afterwards it checks from this host that 5061/tcp is filtered (IPv4 and IPv6) and that an SSH
login works on every host of every fleet, so all did the same job. Prints the times, the ratios
to the naive playbook (targets: first run <= 0.4x, rerun <= 0.3x) and a JSON line. Containers
are removed at the end, also on failure, unless --keep (kept from the last run).

A figure printer, not a test: the targets are printed next to the ratios, never asserted.
"""

import argparse
import json
import os
import sys

import fleetlib

NAIVE = os.path.join(fleetlib.ROOT, "bench", "naive_close.yml")
TARGETS = {"first": 0.4, "rerun": 0.3}


def check_state(fleets, expect, when):
    """Every host's 5061/tcp on both families is `expect`, from this host; SSH logins work after."""
    problems = []
    for fleet in fleets:
        for host, states in sorted(fleet.states().items()):
            if any(state not in (expect, "-") for state in states):
                problems.append("%s: 5061/tcp %s (ipv4/ipv6), expected %s" % (host, "/".join(states), expect))
        if when == "after":
            problems += ["%s: ssh login fails" % host for host, ok in sorted(fleet.logins().items()) if not ok]
    if problems:
        raise RuntimeError("%s the runs: %s" % (when, "; ".join(problems)))


def timed(ref, inventory, config, log_name, extra_args=()):
    result = fleetlib.playbook(ref, inventory, config, log_name, extra_args=extra_args)
    if result.returncode != 0 or result.bad_hosts():
        raise RuntimeError("%s failed (rc %d); see %s" % (log_name, result.returncode, result.log))
    return result


# (name, playbook, extra arguments): each contender gets its own fresh fleet.
CONTENDERS = (
    ("collection", "sipguard.firewall.close", ()),
    ("collection-r0", "sipguard.firewall.close", ("-e", "sips_probe_retries=0")),
    ("naive", NAIVE, ()),
)


def one_run(index, count, config, keep, contenders=CONTENDERS):
    """One fresh fleet per contender, first run then rerun of each, the checks; {key: figure}."""
    fleets = []
    try:
        for number, _contender in enumerate(contenders):
            fleets.append(fleetlib.Fleet.start("r%d%s" % (index, "abc"[number]), count))
        check_state(fleets, "open", "before")
        order = []
        for number, (name, ref, extra) in enumerate(contenders):
            inventory = fleets[number].write_inventory(os.path.join(fleetlib.WORK, "fleet-%s.ini" % name))
            if ref != NAIVE:
                extra = extra + ("-e", "sips_report_dir=" + os.path.join(fleetlib.WORK, "report-" + name))
            order.append((name, ref, inventory, extra))
        if index % 2 == 0:  # alternate who goes first, so a load spike does not always hit one side
            order.reverse()
        figures = {}
        for phase in ("first", "rerun"):
            for name, ref, inventory, extra in order:
                result = timed(ref, inventory, config, "fleet-r%d-%s-%s" % (index, name, phase), extra)
                figures["%s_%s" % (name, phase)] = result.seconds
                figures["%s_%s_changed" % (name, phase)] = result.changed_hosts()
        check_state(fleets, "filtered", "after")
        return figures
    finally:
        for fleet in fleets:
            fleet.remove_unless(keep)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=12, help="containers per fleet (default 12)")
    parser.add_argument("--runs", type=int, default=2, help="repetitions, each on two new fleets (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the containers (debugging)")
    parser.add_argument("--contenders", default=",".join(name for name, _r, _e in CONTENDERS),
                        help="which of %(default)s to run (naive is always run)")
    args = parser.parse_args()
    chosen = set(args.contenders.split(",")) | {"naive"}
    contenders = [contender for contender in CONTENDERS if contender[0] in chosen]

    measured = fleetlib.prepare()
    fleetlib.remove_leftovers()
    settings = dict(fleetlib.DEFAULT_SETTINGS)
    config = fleetlib.write_config(os.path.join(fleetlib.WORK, "fleet.cfg"), settings)
    runs = []
    for index in range(1, args.runs + 1):
        load = fleetlib.load_average()
        figures = one_run(index, args.hosts, config, args.keep and index == args.runs, contenders)
        figures["load_before"] = float(load)
        runs.append(figures)
        print("run %d (load %s): %s" % (index, load, ", ".join(
            "%s %.2f / %.2f s" % (name, figures[name + "_first"], figures[name + "_rerun"])
            for name, _ref, _extra in contenders)), file=sys.stderr)

    print("Fleet of %d hosts per contender (SSH containers), %d run(s) on fresh fleets; %d CPUs" % (
        args.hosts, args.runs, os.cpu_count()))
    print("collection: %s; ansible.cfg for all: %s (%s)" % (measured, config, fleetlib.describe(settings)))
    print()
    print("%-7s %-34s %-13s %-13s %-11s %-8s %s" % (
        "phase", "contender", "seconds", "ratio", "per run", "target", "changed hosts per run"))
    for phase in ("first", "rerun"):
        naive = [r["naive_" + phase] for r in runs]
        for name, _ref, extra in contenders:
            seconds = [r["%s_%s" % (name, phase)] for r in runs]
            ratios = [c / n for c, n in zip(seconds, naive)]
            label = name if name != "collection-r0" else "collection, " + " ".join(extra[1:])
            label = "naive (bench/naive_close.yml)" if name == "naive" else label
            print("%-7s %-34s %-13s %-13s %-11s %-8s %s" % (
                phase, label, fleetlib.spread(seconds),
                "-" if name == "naive" else "%.2fx" % (min(seconds) / min(naive)),
                "-" if name == "naive" else "%.2f-%.2fx" % (min(ratios), max(ratios)),
                "-" if name == "naive" else "<= %.1fx" % TARGETS[phase],
                ", ".join(str(r["%s_%s_changed" % (name, phase)]) for r in runs)))
    print()
    print("seconds: min over runs (+ spread to the max); ratio: min / min naive; per run: each run's"
          " collection / naive.")
    print("before the runs: 5061/tcp open on every host; after: filtered (IPv4 and IPv6), SSH logins"
          " working, on all %d hosts" % (len(contenders) * args.hosts))
    print(json.dumps({"hosts": args.hosts, "settings": settings, "runs": runs}))


if __name__ == "__main__":
    main()
