# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad input through the close playbook, as an operator would give it, against two real hosts.

Two throwaway containers of the harness image: one with UFW active (deny incoming, allow 22/tcp,
allow 5061), one with UFW installed but inactive. For each bad value, `ansible-playbook
sipguard.firewall.close` runs against both with the value as an extra var (JSON, so types are
kept: a list stays a list), one value at a time. Each run must exit non-zero with a message that names the bad value,
and leave every host exactly as it was: the checksum of every file under /etc/ufw and of
/etc/default/ufw, and the live rule set (iptables-save and ip6tables-save) unchanged. No report
may be written either: a run that refused its input did not look at any host.

Run: .venv/bin/python -m pytest -q tests/faults/test_bad_input.py
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: not on the path
from fleet_harness import IMAGE, NETWORK, PLAYBOOK, host_state, run  # noqa: E402

HOSTS = {
    "sipguard-badinput-active": "ufw default deny incoming && ufw allow 22/tcp && ufw allow 5061 "
                                "&& ufw --force enable",
    "sipguard-badinput-inactive": "true",
}

# (what is wrong, the extra vars, the text the error must contain)
BAD_INPUT = [
    ("port 0", {"sips_port": 0}, "0"),
    ("port 65536", {"sips_port": 65536}, "65536"),
    ("port not a number", {"sips_port": "abc"}, "abc"),
    ("port given as a list", {"sips_port": [5061]}, "[5061]"),
    ("protocol icmp", {"sips_protocols": ["icmp"]}, "icmp"),
    ("no protocol", {"sips_protocols": []}, "sips_protocols"),
    ("family ipv5", {"sips_families": ["ipv5"]}, "ipv5"),
    ("CIDR with an octet of 300", {"sips_trusted_sources": ["10.0.0.300/24"]}, "10.0.0.300/24"),
    ("CIDR with host bits", {"sips_trusted_sources": ["10.0.0.1/24"]}, "10.0.0.1/24"),
    ("unknown conflicts policy", {"sips_conflicts": "overwrite"}, "overwrite"),
    # Only the scheme and host are named: the path of a webhook URL is often its secret.
    ("webhook that is not http(s)", {"sips_alert_webhook_url": "ftp://alerts.example/T0KEN"},
     "ftp://alerts.example/..."),
    ("unknown action", {"sips_action": "drop"}, "drop"),
    ("unknown inactive policy", {"sips_ufw_inactive": "maybe"}, "maybe"),
    ("unknown docker policy", {"sips_docker": "ignore"}, "ignore"),
    ("probe timeout of zero", {"sips_probe_timeout": 0}, "sips_probe_timeout 0"),
    ("negative probe retries", {"sips_probe_retries": -1}, "sips_probe_retries -1"),
    ("probe concurrency of zero", {"sips_probe_concurrency": 0}, "sips_probe_concurrency 0"),
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two hosts (UFW active / inactive), an inventory for them, and their state before."""
    try:
        for name, setup in HOSTS.items():
            run(["podman", "rm", "-f", "-t", "0", name], check=False)
            run(["podman", "run", "-d", "--name", name, "--network", NETWORK, "--cap-add", "NET_ADMIN",
                 "--cap-add", "NET_RAW", IMAGE])
            run(["podman", "exec", name, "sh", "-c", setup + " > /dev/null"])
        inventory = tmp_path_factory.mktemp("inventory") / "hosts.yml"
        hosts = {name: {"ansible_connection": "podman"} for name in HOSTS}
        inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
        yield {"inventory": str(inventory), "before": {name: host_state(name) for name in HOSTS}}
    finally:
        for name in HOSTS:
            run(["podman", "rm", "-f", "-t", "0", name], check=False)


@pytest.fixture(scope="module")
def close(fleet, tmp_path_factory):
    """Run the close playbook with some extra vars; returns the result and the report files written."""
    def _close(extra_vars):
        report_dir = tmp_path_factory.mktemp("report")
        extra = dict(extra_vars, sips_report_dir=str(report_dir))
        result = run([PLAYBOOK, "sipguard.firewall.close", "-i", fleet["inventory"], "-e", json.dumps(extra)],
                     check=False, timeout=300)
        return result, sorted(os.listdir(report_dir))
    return _close


@pytest.mark.parametrize("label,extra_vars,expected", BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_refused_naming_the_value(label, extra_vars, expected, close, fleet):
    result, report_files = close(extra_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0, "%s was accepted:\n%s" % (extra_vars, output)
    messages = "\n".join(re.findall(r"^fatal: .*$", output, re.MULTILINE)) or output
    assert expected in messages, "the error does not name %r:\n%s" % (expected, output)
    assert "T0KEN" not in output, "the webhook's secret path is in the output"
    # Every host refused it, before touching anything: no task ran a module on a host.
    assert re.search(r"^sipguard-badinput-active +: .*failed=1", output, re.MULTILINE), output
    assert re.search(r"^sipguard-badinput-inactive +: .*failed=1", output, re.MULTILINE), output
    assert report_files == [], "a report was written for input that was refused"
    for name, before in fleet["before"].items():
        assert host_state(name) == before, "%s changed after %s" % (name, label)
