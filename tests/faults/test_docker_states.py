# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Random states of a Docker host, the modules' verdicts against what the network reaches.

One Docker host (docker_harness: dockerd in a privileged container) with a pool of inner
containers created once, each publishing one mapping: ``-p 5061:5061``, ``-p 5061:15061``,
``-p ADDRESS:5061:5061`` (the host's own IPv4 address), ``-p 15061:5061``, ``-p 8080:8080``
and ``-p 5061:5061/udp`` (a UDP echo). A state (drawn from a seeded grammar) starts some of them,
puts a rule of UFW's for 5061 and rules of the user's own first in ``DOCKER-USER``, and picks
the close's ``docker`` and ``trusted_sources``. Then, judged by probes from this machine over
both families (TCP: open or refused is reached; UDP: an echo or a port unreachable is reached):

- port_audit: each family/protocol of 5061 is ``exposed`` exactly when it was reached;
- ufw_port: after the close, port_audit again, the same; ``effective`` exactly when nothing of
  5061 is reached; 8080 and 15061 reached after exactly when before;
- when the probes' own network is among ``trusted_sources``, every path of 5061 reached before the
  close is still reached after it (a trusted sender keeps its access, replies included), and the
  verdicts, which are about the others, are not held against these probes;
- the close with ``docker=report`` leaves Docker's path as it was.

The seed is printed; SIPGUARD_DOCKER_SEED and SIPGUARD_DOCKER_COUNT repeat or widen a run
(the suite runs a fixed seed). A disagreement fails with the state, the verdicts and what the
network saw: a fixture in the making.

Run: .venv/bin/python -m pytest -q tests/faults/test_docker_states.py
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: not on the path
from fleet_harness import ENV, PROBE, ROOT, run  # noqa: E402
from docker_harness import DOCKER_IMAGE, IMPORT, START_DOCKERD, UFW_SETUP, image_missing, sh, start  # noqa: E402

HOST = "sipguard-docker-states"
SEED = int(os.environ.get("SIPGUARD_DOCKER_SEED", "20261207"))
COUNT = int(os.environ.get("SIPGUARD_DOCKER_COUNT", "10"))
ANSIBLE = os.path.join(ROOT, ".venv", "bin", "ansible")
UDP_ECHO = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5061)); "
            "exec('while True: s.sendto(*s.recvfrom(512))')")
# name: (the -p value, the inner container's port); ADDRESS is the Docker host's IPv4 address. Each
# serves HTTP on its port, or a UDP echo when published for UDP.
POOL = {
    "same": ("5061:5061", 5061),
    "remapped": ("5061:15061", 15061),
    "bound": ("ADDRESS:5061:5061", 5061),
    "to-5061": ("15061:5061", 5061),
    "web": ("8080:8080", 8080),
    "udp": ("5061:5061/udp", 5061),
}


def server(mapping, port):
    return "python3 -c \"%s\"" % UDP_ECHO if mapping.endswith("/udp") else "python3 -m http.server %d" % port


# One vantage point (this machine, on the test network): a rule for other senders than it would make a
# verdict of "exposed" that no probe can confirm, so the source-bound rules name its network or not it.
UFW_RULES = [None, "deny 5061", "allow 5061", "allow from 10.89.7.0/24 to any port 5061",
             "allow 5000:5100/tcp", "deny 5061/udp"]
USER_RULES = ["-s 203.0.113.0/24 -j DROP", "-p tcp -m tcp --dport 5061 -j DROP", "-j RETURN",
              "-i eth0 -p tcp -j ACCEPT", "-p udp -j DROP"]
# The last: the test network, so this machine's probes come from a trusted sender.
PROBER_NETWORKS = ["10.89.7.0/24", "fd00:5061::/64"]
TRUSTED = [[], ["192.0.2.0/24"], ["203.0.113.7", "2001:db8::/32"], PROBER_NETWORKS]
PORTS = (("tcp", 5061), ("udp", 5061), ("tcp", 8080), ("tcp", 15061))
REACHED = {"tcp": ("open", "closed"), "udp": ("open", "closed")}
# Back to the start: no container running, the image's UFW files loaded, Docker's own DOCKER-USER.
RESET = """set -e
docker stop -t 0 $(docker ps -q) >/dev/null 2>&1 || true
rm -rf /etc/ufw && cp -a /root/pristine-ufw /etc/ufw && ufw reload >/dev/null
while iptables -D DOCKER-USER -j sips-docker-5061 2>/dev/null; do :; done
iptables -F sips-docker-5061 2>/dev/null && iptables -X sips-docker-5061 || true
iptables -F DOCKER-USER && iptables -A DOCKER-USER -j RETURN
"""


def draw(index):
    """State index of the run's seed: what runs, UFW's rule, the user's DOCKER-USER rules, the close."""
    rng = random.Random("%d/%d" % (SEED, index))
    containers = [name for name in (rng.choice([None, "same", "remapped", "bound"]),) if name]
    containers += [name for name in ("to-5061", "web", "udp") if rng.random() < 0.5]
    return dict(index=index, containers=containers, ufw=rng.choice(UFW_RULES),
                user_rules=rng.sample(USER_RULES, rng.choice([0, 0, 1, 2])),
                docker=rng.choice(["close", "close", "report"]), trusted=rng.choice(TRUSTED))


def apply_script(state):
    lines = [RESET]
    lines += ["docker start %s >/dev/null" % name for name in state["containers"]]
    if state["ufw"]:
        lines.append("ufw %s >/dev/null" % state["ufw"])
    # Listed first to last: inserted last to first, each at the top.
    lines += ["iptables -I DOCKER-USER 1 %s" % rule for rule in reversed(state["user_rules"])]
    for name in state["containers"]:  # every server answers before the probes start
        mapping, port = POOL[name]
        if not mapping.endswith("/udp"):
            lines.append("for i in $(seq 50); do docker exec %s python3 -c 'import socket; socket.create_connection"
                         "((\"127.0.0.1\", %d), 1)' 2>/dev/null && break; sleep 0.2; done" % (name, port))
    return "\n".join(lines)


def module(name, args):
    """Run a module of the collection on the Docker host as Ansible runs it; its result."""
    env = dict(ENV, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    out = run([ANSIBLE, HOST, "-i", HOST + ",", "-c", "containers.podman.podman", "-m", "sipguard.firewall." + name,
               "-a", json.dumps(args)], check=False, env=env, timeout=180).stdout
    return json.loads(out[out.index("{"):])["plays"][0]["tasks"][0]["hosts"][HOST]


def probes(addresses):
    """{(family, protocol, port): reached} from this machine, all at once."""
    keys = [(family, protocol, port) for family in ("ipv4", "ipv6") for protocol, port in PORTS]

    def one(key):
        family, protocol, port = key
        out = run([sys.executable, PROBE, "--timeout", "0.7", "--retries", "1", protocol,
                   addresses[family], str(port)]).stdout
        return json.loads(out)["state"] in REACHED[protocol]

    with concurrent.futures.ThreadPoolExecutor(len(keys)) as pool:
        return dict(zip(keys, pool.map(one, keys)))


def disagreements(label, audit, reached):
    return ["%s %s/%s: the module says %s, the network %s (reasons: %s)" % (
        label, path["family"], path["protocol"], "exposed" if path["exposed"] else "closed",
        "did not" if path["exposed"] else "reached it", path["reasons"])
        for path in audit["summary"] if path["exposed"] != reached[(path["family"], path["protocol"], 5061)]]


@pytest.fixture(scope="module")
def docker_host():
    if image_missing():
        pytest.fail("image %s is missing: build it with the harness (make setup)" % DOCKER_IMAGE)
    try:
        v4, v6 = start(HOST, DOCKER_IMAGE, privileged=True)
        sh(HOST, UFW_SETUP + " && cp -a /etc/ufw /root/pristine-ufw")
        sh(HOST, START_DOCKERD)
        sh(HOST, IMPORT, timeout=300)
        for name, (mapping, port) in POOL.items():
            sh(HOST, "docker create --name %s -p %s sipguard-inner %s >/dev/null"
               % (name, mapping.replace("ADDRESS", v4), server(mapping, port)))
        yield {"ipv4": v4, "ipv6": v6}
    finally:
        run(["podman", "rm", "-f", "-t", "0", HOST], check=False)


@pytest.mark.parametrize("index", range(COUNT))
def test_verdicts_agree_with_the_network(docker_host, index):
    state = draw(index)
    described = "seed %d state %d: %s" % (SEED, index, json.dumps(state, sort_keys=True))
    sh(HOST, apply_script(state), timeout=180)
    before = probes(docker_host)
    args = {"port": 5061, "trusted_sources": state["trusted"]}
    audit = module("port_audit", args)
    assert "summary" in audit, "%s\nport_audit failed: %s" % (described, audit)
    trusted = state["trusted"] == PROBER_NETWORKS
    found = [] if trusted else disagreements("audit", audit, before)

    close = module("ufw_port", dict(args, docker=state["docker"]))
    after = probes(docker_host)
    audit_after = module("port_audit", args)
    assert "summary" in audit_after, "%s\nport_audit failed: %s" % (described, audit_after)
    reached_after = any(after[(family, protocol, 5061)] for family in ("ipv4", "ipv6") for protocol in ("tcp", "udp"))
    if trusted:
        found += ["%s/%s: a trusted sender reached 5061 before the close, not after it" % key[:2]
                  for key in before if key[2] == 5061 and before[key] and not after[key]]
    else:
        found += disagreements("after the close", audit_after, after)
    if not trusted and close.get("effective") is not (not reached_after):
        found.append("the close says effective=%s, the network %s 5061 after it (%s)" % (
            close.get("effective"), "reached" if reached_after else "did not reach", close.get("msg", "")))
    for key in [key for key in before if key[2] != 5061]:
        if before[key] != after[key]:
            found.append("%s/%s port %d: %s before the close, %s after" % (
                key[0], key[1], key[2], *("reached" if seen else "not reached" for seen in (before[key], after[key]))))
    if state["docker"] == "report":
        rules = sh(HOST, "iptables-save -t filter; cat /etc/ufw/after.rules").stdout
        if "sips-docker" in rules:
            found.append("docker=report put the Docker chain in place")
    assert not found, "%s\nbefore: %s\nafter: %s\n%s" % (described, before, after, "\n".join(found))
