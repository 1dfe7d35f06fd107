# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A port published by Docker containers, closed with UFW still in charge (sips_docker=close).

A privileged container of the harness's docker image (Debian's docker.io 20.10, ufw active with
default deny and allow 22/tcp) runs dockerd (storage driver vfs); its inner image is imported
from the container's own root file system, since no registry is reachable. Inner containers
publish 5061 and 8080. Every step is judged from the network: a second container on the test
network probes the Docker host (filtered = dropped, open = answered), and the playbooks' own
probe from this machine. dockerd never runs on this machine itself.

Run: .venv/bin/python -m pytest -q tests/faults/test_docker.py
"""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: not on the path
from fleet_harness import IMAGE, PLAYBOOK, PROBE, run  # noqa: E402
from docker_harness import (  # noqa: E402
    DOCKER_IMAGE, IMPORT, START_DOCKERD, STOP_DOCKERD, UFW_SETUP, image_missing, sh, start)

HOST, CLIENT = "sipguard-docker", "sipguard-docker-client"
FILES = "sha256sum /etc/ufw/after.rules /etc/ufw/after.init; stat -c %a /etc/ufw/after.init"


def publish(name, ports, listen):
    """An inner container serving HTTP on listen, published as ports (`-p` values), restarted with dockerd."""
    args = " ".join("-p %s" % port for port in ports)
    sh(HOST, "docker run -d --restart always --name %s %s sipguard-inner python3 -m http.server %d >/dev/null"
       % (name, args, listen))
    sh(HOST, "for i in $(seq 50); do docker exec %s python3 -c 'import socket; socket.create_connection"
             "((\"127.0.0.1\", %d), 1)' 2>/dev/null && exit 0; sleep 0.2; done; exit 1" % (name, listen))


def seen(address, port):
    """What the client container on the test network sees of address:port over TCP."""
    out = run(["podman", "exec", CLIENT, "python3", "/probe.py", "--timeout", "1", "--retries", "1", "tcp",
               address, str(port)]).stdout
    return json.loads(out)["state"]


def jumps():
    return sh(HOST, "iptables-save -t filter | grep -c -- '-A DOCKER-USER -j sips-docker-5061' || true").stdout.strip()


@pytest.fixture(scope="module")
def client():
    if image_missing():
        pytest.fail("image %s is missing: build it with the harness (make setup)" % DOCKER_IMAGE)
    try:
        start(CLIENT, IMAGE)
        run(["podman", "cp", PROBE, "%s:/probe.py" % CLIENT])
        yield CLIENT
    finally:
        run(["podman", "rm", "-f", "-t", "0", CLIENT], check=False)


@pytest.fixture
def docker_host(client, tmp_path):
    """The Docker host (dockerd not started yet), its inventory and a report directory."""
    try:
        v4, v6 = start(HOST, DOCKER_IMAGE, privileged=True)
        sh(HOST, UFW_SETUP)
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(json.dumps({"all": {"hosts": {HOST: {
            "ansible_connection": "containers.podman.podman", "ansible_python_interpreter": "/usr/bin/python3",
            "sips_probe_targets": [v4, v6]}}}}))
        yield dict(v4=v4, v6=v6, inventory=str(inventory), reports=str(tmp_path / "reports"))
    finally:
        run(["podman", "rm", "-f", "-t", "0", HOST], check=False)


def playbook(host, name, **extra):
    values = dict(sips_hosts=HOST, sips_report_dir=host["reports"])
    values.update(extra)
    return run([PLAYBOOK, "sipguard.firewall.%s" % name, "-i", host["inventory"], "-e", json.dumps(values)],
               check=False, timeout=300)


def report(host):
    with open(os.path.join(host["reports"], "sips-report.json"), encoding="utf-8") as handle:
        return handle.read()


def recap(output):
    line = next(line for line in output.splitlines() if line.startswith(HOST) and "ok=" in line)
    return {key: int(value) for key, value in (item.split("=") for item in line.split(":", 1)[1].split())}


def test_published_5061_is_closed_kept_closed_and_restored(docker_host):
    host, address = docker_host, docker_host["v4"]
    sh(HOST, START_DOCKERD)
    sh(HOST, IMPORT, timeout=300)
    publish("sips", ["5061:5061"], 5061)
    publish("web", ["8080:8080"], 8080)
    sh(HOST, "iptables -I DOCKER-USER 1 -s 203.0.113.9/32 -j DROP")  # a rule of the user's own
    files_before = sh(HOST, FILES).stdout
    assert (seen(address, 5061), seen(address, 8080)) == ("open", "open")  # Docker's DNAT passes UFW by

    # The audit says so, naming Docker's path.
    audit = playbook(host, "audit")
    assert "5061: 1 exposed (sipguard-docker)" in audit.stdout, audit.stdout[-3000:]
    assert "sends tcp port 5061 on to 172.17.0.2:5061" in report(host)

    # sips_docker=report leaves Docker's path alone: UFW's deny goes in, but the host fails, naming Docker's rule.
    reported = playbook(host, "close", sips_docker="report")
    assert reported.returncode != 0, reported.stdout[-3000:]
    assert "sends tcp port 5061 on to 172.17.0.2:5061" in report(host)
    assert seen(address, 5061) == "open"
    assert "sips-docker" not in sh(HOST, "iptables-save -t filter; cat /etc/ufw/after.rules").stdout
    assert sh(HOST, FILES).stdout == files_before

    # The close: 5061 filtered from the network, 8080 still answers; IPv6 goes to docker-proxy, a local listener.
    close = playbook(host, "close")
    assert close.returncode == 0, close.stdout[-4000:]
    assert (seen(address, 5061), seen(address, 8080)) == ("filtered", "open")
    assert seen(host["v6"], 5061) == "filtered"
    assert "docker-proxy" in sh(HOST, "ss -ltnp '( sport = :5061 )'").stdout
    user_rules = sh(HOST, "iptables-save -t filter | grep -- '-A DOCKER-USER'").stdout.splitlines()
    assert user_rules == ["-A DOCKER-USER -j sips-docker-5061", "-A DOCKER-USER -s 203.0.113.9/32 -j DROP",
                          "-A DOCKER-USER -j RETURN"]
    again = playbook(host, "close")
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]

    # A restart of dockerd (which rewrites its chains and restarts the containers), then of UFW.
    sh(HOST, STOP_DOCKERD)
    sh(HOST, START_DOCKERD)
    sh(HOST, "for i in $(seq 50); do docker exec web true 2>/dev/null && docker exec sips true 2>/dev/null "
             "&& exit 0; sleep 0.2; done; exit 1")
    assert (seen(address, 5061), seen(address, 8080), jumps()) == ("filtered", "open", "1")
    sh(HOST, "ufw reload >/dev/null && ufw reload >/dev/null")
    assert (seen(address, 5061), seen(address, 8080), jumps()) == ("filtered", "open", "1")
    sh(HOST, "ufw disable >/dev/null")  # after.init's stop unlinks the chain; enable links it again, once
    assert jumps() == "0"
    sh(HOST, "ufw --force enable >/dev/null")
    assert (seen(address, 5061), seen(address, 8080), jumps()) == ("filtered", "open", "1")

    # Containers started later: 5061 on the host is closed whatever the container's port; 15062 -> 5061 is not 5061.
    sh(HOST, "docker rm -f sips >/dev/null")
    publish("later", ["5061:15061"], 15061)
    publish("other", ["15062:5061"], 5061)
    assert (seen(address, 5061), seen(address, 15062)) == ("filtered", "open")
    # The containers' own connections out to a remote 5061 still work.
    client = run(["podman", "inspect", CLIENT, "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"])
    sh(CLIENT, "(setsid python3 -m http.server 5061 >/dev/null 2>&1 &); sleep 0.5")
    sh(HOST, "docker exec web python3 -c 'import socket; socket.create_connection((\"%s\", 5061), 3)'"
       % client.stdout.strip())
    audit = playbook(host, "audit")
    assert "5061: 0 exposed, 1 closed" in audit.stdout, audit.stdout[-3000:]

    # Restore: exactly what the close added is gone; the user's rule stays; 5061 answers again.
    restore = playbook(host, "restore")
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert sh(HOST, FILES).stdout == files_before
    assert sh(HOST, "iptables-save -t filter | grep -c sips-docker || true").stdout.strip() == "0"
    assert "-A DOCKER-USER -s 203.0.113.9/32 -j DROP" in sh(HOST, "iptables-save -t filter").stdout
    assert seen(address, 5061) == "open"


def test_closed_before_dockerd_starts_stays_closed_when_it_does(docker_host):
    """UFW starts before dockerd at boot: the close on a host whose dockerd is not running, then a
    reload of UFW (as at boot), then dockerd and a container publishing 5061."""
    host, address = docker_host, docker_host["v4"]
    close = playbook(host, "close")
    assert close.returncode == 0, close.stdout[-3000:]
    assert "dockerd is not running (no DOCKER chain): the block is in place for when it starts" in report(host)
    sh(HOST, "ufw reload >/dev/null")
    sh(HOST, START_DOCKERD)
    sh(HOST, IMPORT, timeout=300)
    publish("sips", ["5061:5061"], 5061)
    publish("web", ["8080:8080"], 8080)
    assert (seen(address, 5061), seen(address, 8080), jumps()) == ("filtered", "open", "1")


# iptables-restore as the module finds it first on PATH: an input that loads the close's Docker chain
# fails the way a kernel without xt_conntrack does; every other input goes to the real one.
FAILING_RESTORE = r"""#!/bin/sh
input=$(cat)
case "$input" in *sips-docker-5061*)
    echo "iptables-restore v1.8.9 (nf_tables): Couldn't load match \`conntrack':No such file or directory" >&2
    exit 1;;
esac
printf '%s\n' "$input" | exec /usr/sbin/$(basename "$0") "$@"
"""
STATE = ("sha256sum /etc/ufw/user.rules /etc/ufw/user6.rules /etc/ufw/after.rules /etc/ufw/after.init; "
         "stat -c %a /etc/ufw/after.init; iptables-save -t filter | grep -v '^[#:]'; "
         "ip6tables-save -t filter | grep -v '^[#:]'")


def test_a_failed_load_of_docker_s_chain_puts_everything_back(docker_host):
    """The Docker part is loaded last in the transaction: its failure takes back UFW's rule files and
    chains written before it, both blocks and after.init's mode; the host is reported as it is."""
    host = docker_host
    for name in ("iptables-restore", "iptables-nft-restore"):
        sh(HOST, "cat > /usr/local/sbin/%s <<'EOF'\n%sEOF\nchmod 755 /usr/local/sbin/%s"
           % (name, FAILING_RESTORE, name))
    before = sh(HOST, STATE).stdout
    close = playbook(host, "close")
    assert close.returncode != 0, close.stdout[-3000:]
    assert "Couldn't load match `conntrack'" in close.stdout, close.stdout[-3000:]
    assert "the previous rule files and chains were put back" in close.stdout, close.stdout[-3000:]
    assert "PUTTING BACK FAILED" not in close.stdout
    assert sh(HOST, STATE).stdout == before
    # UFW itself still loads its files (ufw runs /usr/sbin's tools, not the failing ones).
    sh(HOST, "ufw reload >/dev/null")
    assert sh(HOST, STATE).stdout == before
