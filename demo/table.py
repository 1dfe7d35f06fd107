"""Print the demo's before/after table from two fleet reports (sipguard.firewall/report/v1)."""
import json
import sys


def load(path):
    with open(path, encoding="utf-8") as handle:
        return {record["host"]: record for record in json.load(handle)["hosts"]}


def main(before_path, after_path):
    before, after = load(before_path), load(after_path)
    print("%-24s %-10s %-10s %s" % ("host", "before", "after", "why (before)"))
    for host in sorted(set(before) | set(after)):
        was, now = before.get(host, {}), after.get(host, {})
        reason = (was.get("reasons") or ["-"])[0]
        print("%-24s %-10s %-10s %s" % (host, was.get("status", "-"), now.get("status", "-"), reason[:90]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
