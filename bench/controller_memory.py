"""Controller memory and throughput of `ansible-playbook sipguard.firewall.audit` at N hosts.

Run with `make bench-memory` (or `.venv/bin/python bench/controller_memory.py [--containers 8]
[--sizes 10,40,160] [--forks 5,20,50] [--keep]` after `make setup`).

Starts a few SSH containers (the fleet hosts of bench/fleet.py) and points N inventory aliases at
them (the audit is read-only, so many inventory hosts may share one container; they then also
share its ssh master connection, so connection set-up is under-represented here: take per-host
connection cost from bench/settings.py). For every N (at 20 forks) and every forks value (at the
largest N), it runs the audit playbook once and polls /proc every 0.2 s for the process tree of
ansible-playbook: the main process, its forked workers (Python) and ssh clients. Prints the peak
RSS of the main process, the peak of the summed RSS and of the summed PSS (proportional set
size, which counts pages shared between forks once) of all Python processes, the peak number of
processes, the wall time per host and the controller CPU time per host (user+sys of the process
tree, from getrusage).

A figure printer, not a test. The containers are removed at the end (also on failure) unless --keep.
"""

import argparse
import os
import resource
import sys
import threading

import fleetlib

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def children_of(root):
    """Every descendant pid of root, read from /proc/*/stat (no psutil)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == pid]
        tree.update(kids)
        frontier.extend(kids)
    return tree


def memory_of(pid):
    """(command name, RSS KiB, PSS KiB) of one process, or None when it is gone."""
    try:
        with open("/proc/%d/comm" % pid, encoding="ascii", errors="replace") as handle:
            name = handle.read().strip()
        with open("/proc/%d/statm" % pid, encoding="ascii") as handle:
            rss = int(handle.read().split()[1]) * PAGE_KIB
        pss = rss
        with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
        return name, rss, pss
    except (OSError, ValueError, IndexError):
        return None


class Sampler:
    """Peaks of the ansible-playbook process tree while it runs."""

    def __init__(self, interval=0.2):
        self.interval = interval
        self.peak = {"main_rss": 0, "python_rss": 0, "python_pss": 0, "processes": 0, "ssh": 0}

    def __call__(self, process):
        done = threading.Event()
        thread = threading.Thread(target=self._poll, args=(process.pid, done), daemon=True)
        thread.start()
        try:
            process.wait()
        finally:
            done.set()
            thread.join()

    def _poll(self, root, done):
        while not done.is_set():
            root_rss, python_rss, python_pss, count, ssh = 0, 0, 0, 0, 0
            for pid in children_of(root):
                sample = memory_of(pid)
                if sample is None:
                    continue
                name, rss, pss = sample
                count += 1
                if pid == root:
                    root_rss = rss
                if name.startswith("ssh"):
                    ssh += 1
                elif name.startswith(("ansible", "python")):
                    python_rss += rss
                    python_pss += pss
            for key, value in (("main_rss", root_rss), ("python_rss", python_rss), ("python_pss", python_pss),
                               ("processes", count), ("ssh", ssh)):
                self.peak[key] = max(self.peak[key], value)
            done.wait(self.interval)


def measure(fleet, hosts, forks):
    per_container = max(1, -(-hosts // len(fleet.hosts)))
    inventory = fleet.write_inventory(os.path.join(fleetlib.WORK, "memory-%d.ini" % hosts), per_container)
    config = fleetlib.write_config(os.path.join(fleetlib.WORK, "memory.cfg"),
                                   dict(fleetlib.DEFAULT_SETTINGS, forks=forks))
    sampler = Sampler()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = ("-e", "sips_report_dir=" + os.path.join(fleetlib.WORK, "report-memory-%d-%d" % (hosts, forks)))
    result = fleetlib.playbook("sipguard.firewall.audit", inventory, config,
                               "memory-%d-forks%d" % (hosts, forks), report, watch=sampler)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    audited = len(result.recap())
    if result.returncode != 0 or result.bad_hosts():
        raise RuntimeError("audit of %d hosts failed; see %s" % (audited, result.log))
    return dict(sampler.peak, hosts=audited, forks=forks, seconds=result.seconds, cpu=cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--containers", type=int, default=8, help="containers behind the aliases (default 8)")
    parser.add_argument("--sizes", default="10,40,160", help="inventory sizes at 20 forks")
    parser.add_argument("--forks", default="5,20,50", help="forks values at the largest size")
    parser.add_argument("--keep", action="store_true", help="keep the containers (debugging)")
    args = parser.parse_args()
    sizes = [int(value) for value in args.sizes.split(",")]
    forks_values = [int(value) for value in args.forks.split(",")]

    measured = fleetlib.prepare()
    fleetlib.remove_leftovers()
    fleet, rows = None, []
    try:
        fleet = fleetlib.Fleet.start("memory", args.containers)
        plan = [(size, 20) for size in sizes] + [(max(sizes), forks) for forks in forks_values if forks != 20]
        for size, forks in plan:
            rows.append(measure(fleet, size, forks))
            print("audited %(hosts)d hosts at %(forks)d forks in %(seconds).1f s" % rows[-1], file=sys.stderr)
    finally:
        if fleet is not None:
            fleet.remove_unless(args.keep)

    print("Controller memory of `ansible-playbook sipguard.firewall.audit` (collection %s)" % measured)
    print("inventory hosts spread over %d SSH containers; %d CPUs; load average now %s" % (
        args.containers, os.cpu_count(), fleetlib.load_average()))
    print()
    print("%-6s %-6s %-13s %-19s %-19s %-16s %-8s %-11s %s" % (
        "hosts", "forks", "main RSS MiB", "Python RSS sum MiB", "Python PSS sum MiB", "processes (ssh)",
        "wall s", "wall/host", "controller CPU s/host"))
    for row in rows:
        print("%-6d %-6d %-13.0f %-19.0f %-19.0f %-16s %-8.1f %-11.3f %.3f" % (
            row["hosts"], row["forks"], row["main_rss"] / 1024, row["python_rss"] / 1024,
            row["python_pss"] / 1024, "%d (%d)" % (row["processes"], row["ssh"]), row["seconds"],
            row["seconds"] / row["hosts"], row["cpu"] / row["hosts"]))
    print()
    print("peaks over the run, polled every 0.2 s; PSS counts pages the forks share once (the real footprint);")
    print("controller CPU: user+sys of ansible-playbook and everything it waited for (workers, ssh clients;")
    print("not the ssh master connections, which detach).")


if __name__ == "__main__":
    main()
