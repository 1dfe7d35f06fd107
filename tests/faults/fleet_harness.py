# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the playbook-level tests of tests/faults share: paths, the Ansible environment, a bounded
command runner, the state of a host that must not change, and a probe from this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "localhost/sipguard-target:" + os.environ.get("SIPGUARD_SUITE", "bookworm")
NETWORK = "sipguard-test"
ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(ROOT, "tests/harness/containers.conf"),
           ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build"), ANSIBLE_NOCOLOR="1",
           ANSIBLE_FORCE_COLOR="0", ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3")
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
PROBE = os.path.join(ROOT, "tests", "harness", "probe.py")
LISTENER = os.path.join(ROOT, "tests", "harness", "listener.py")
# The state of a host that matters: every UFW file and the live rule set of both families.
STATE = ("sha256sum /etc/default/ufw $(find /etc/ufw -type f | sort); "
         "iptables-save | grep -v '^#' | sha256sum; ip6tables-save | grep -v '^#' | sha256sum")


def run(argv, check=True, timeout=300, env=None):
    """Run argv, bounded; with check, fail with its output when it fails."""
    result = subprocess.run(argv, env=env or ENV, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError("%s failed (exit %d)\nstdout: %s\nstderr: %s"
                             % (" ".join(argv), result.returncode, result.stdout, result.stderr))
    return result


def host_state(name):
    return run(["podman", "exec", name, "sh", "-c", STATE]).stdout


def probe(protocol, address, port=5061):
    """open / closed / filtered (tcp) or open / closed / open|filtered (udp), from this machine."""
    out = run([sys.executable, PROBE, "--timeout", "1", "--retries", "1", protocol, address, str(port)]).stdout
    return json.loads(out)["state"]


def start_targets(names, setup):
    """Start a container of the harness image per name (removed first if it exists), copy the
    listener in, run the shell command setup in it; {name: [IPv4, IPv6]} on the test network."""
    addresses = {}
    for name in names:
        run(["podman", "rm", "-f", "-t", "0", name], check=False)
        run(["podman", "run", "-d", "--name", name, "--network", NETWORK, "--cap-add", "NET_ADMIN",
             "--cap-add", "NET_RAW", IMAGE])
        run(["podman", "cp", LISTENER, "%s:/listener.py" % name])
        run(["podman", "exec", name, "sh", "-c", setup + " > /dev/null"])
        network = json.loads(run(["podman", "inspect", name]).stdout)[0]["NetworkSettings"]["Networks"][NETWORK]
        addresses[name] = [network["IPAddress"], network["GlobalIPv6Address"]]
    return addresses


def remove_targets(names):
    for name in names:
        run(["podman", "rm", "-f", "-t", "0", name], check=False)


def closed_again_times(addresses, deadline, step=0.2):
    """{name: time} when every address of each host first probed filtered over TCP, watched side
    by side (a thread per address): the time a probe that saw filtered started, since the port
    was closed then. Hosts not closed by deadline (a time.monotonic) are missing."""
    seen = {}
    lock = threading.Lock()

    def watch(name, address):
        while time.monotonic() < deadline:
            started = time.time()
            if probe("tcp", address) == "filtered":
                with lock:
                    seen.setdefault(name, {})[address] = started
                return
            time.sleep(step)

    threads = [threading.Thread(target=watch, args=(name, address), daemon=True)
               for name, pair in addresses.items() for address in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 5)
    return {name: max(times.values()) for name, times in seen.items() if len(times) == len(addresses[name])}
