"""Print the demo's before/after table from two fleet reports (sipguard.firewall/report/v1)."""
import json
import sys


def load(path):
    with open(path, encoding="utf-8") as handle:
        return {record["host"]: record for record in json.load(handle)["hosts"]}


def main(before_path, after_path):
    before, after = load(before_path), load(after_path)
    print("%-24s %-9s %-9s %-10s %s" % ("host", "before", "after", "listener", "why it was exposed"))
    for host in sorted(set(before) | set(after)):
        was, now = before.get(host, {}), after.get(host, {})
        # The first reason that is about the firewall (the listener has its own column).
        reasons = [reason for reason in was.get("reasons") or [] if " listens on " not in reason] or ["-"]
        print("%-24s %-9s %-9s %-10s %s" % (host, was.get("status", "-"), now.get("status", "-"),
                                            ",".join(was.get("processes") or ["-"]), reasons[0][:100]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
