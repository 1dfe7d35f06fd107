# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A non-root SSH user with sudo, as most fleets are managed, with a webhook set.

One SSH target of the harness's ssh image (user `ops`, sudo without a password; UFW active,
deny incoming, allow 22/tcp, allow 5061, a listener on 5061). The controller is the inventory's
`localhost` with a become program that always fails: a controller-side step that tried to
become would fail the run. A local HTTP receiver on 127.0.0.1 takes the alert.
- without -b the host step fails saying it needs root and how to get it; nothing changes;
- with -b the audit finds 5061 exposed and the alert arrives (no become on the controller);
- with -b the close closes it, verified from the network, SSH still works;
- with sips_become=true and no -b the rerun changes nothing.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: not on the path
from fleet_harness import ENV, LISTENER, PLAYBOOK, ROOT, host_state, probe, run as run_with  # noqa: E402

IMAGE = "localhost/sipguard-target:%s-ssh" % os.environ.get("SIPGUARD_SUITE", "bookworm")
NAME = "sipguard-become-target"
KEY = os.path.join(ROOT, "build", "ssh", "id_ed25519")
SSH_ENV = dict(ENV, ANSIBLE_HOST_KEY_CHECKING="False")
SSH_ENV.pop("ANSIBLE_PYTHON_INTERPRETER")  # set per host in the inventory: the controller's differs


def run(argv, check=True):
    return run_with(argv, check=check, env=SSH_ENV)


class Receiver(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):  # noqa: N802 (the http.server name)
        length = int(self.headers.get("Content-Length", "0"))
        Receiver.bodies.append((self.path, json.loads(self.rfile.read(length))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run(["podman", "rm", "-f", "-t", "0", NAME], check=False)
        run(["podman", "run", "-d", "--name", NAME, "--network", "sipguard-test", "--cap-add", "NET_ADMIN",
             "--cap-add", "NET_RAW", "-v", "%s.pub:/etc/sipguard/authorized_keys:ro" % KEY, IMAGE])
        run(["podman", "cp", LISTENER, "%s:/listener.py" % NAME])
        run(["podman", "exec", NAME, "sh", "-c", "ufw default deny incoming >/dev/null && ufw allow 22/tcp >/dev/null"
             " && ufw allow 5061 >/dev/null && ufw --force enable >/dev/null"
             " && (setsid python3 /listener.py 5061 > /dev/null 2>&1 &)"])
        address = run(["podman", "inspect", NAME, "-f",
                       "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"]).stdout.strip()
        for _attempt in range(40):  # sshd makes its host keys first
            if probe("tcp", address, 22) == "open":
                break
        inventory = tmp_path_factory.mktemp("inventory") / "hosts.yml"
        inventory.write_text(json.dumps({"all": {"hosts": {
            NAME: {"ansible_host": address, "ansible_user": "ops", "ansible_ssh_private_key_file": KEY,
                   "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                   "ansible_python_interpreter": "/usr/bin/python3"},
            # the controller: becoming there fails (to another user, so Ansible cannot skip it as
            # unneeded), so every controller-side step must not try
            "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                          "ansible_become_exe": "/bin/false", "ansible_become_user": "nobody"}}}}))
        yield dict(address=address, inventory=str(inventory),
                   webhook="http://127.0.0.1:%d/hooks/T0KEN" % server.server_address[1])
    finally:
        server.shutdown()
        run(["podman", "rm", "-f", "-t", "0", NAME], check=False)


def playbook(target, name, *args, extra=None, tmp):
    values = dict(sips_hosts=NAME, sips_report_dir=str(tmp), sips_alert_webhook_url=target["webhook"],
                  sips_probe_targets=[target["address"]], sips_families=["ipv4"])
    values.update(extra or {})
    return run([PLAYBOOK, "sipguard.firewall.%s" % name, "-i", target["inventory"], "-e", json.dumps(values)]
               + list(args), check=False)


def state():
    return host_state(NAME)


def test_without_become_the_host_step_says_it_needs_root_and_changes_nothing(target, tmp_path):
    before = state()
    result = playbook(target, "close", tmp=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "ufw_port needs root on the host" in output and "run it with become - ansible-playbook -b" in output
    assert "Permission denied" not in output
    assert "T0KEN" not in output
    assert state() == before


def test_with_become_the_audit_alerts_without_become_on_the_controller(target, tmp_path):
    Receiver.bodies.clear()
    result = playbook(target, "audit", "-b", tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "T0KEN" not in result.stdout + result.stderr
    assert [(path, body["exposed_hosts"]) for path, body in Receiver.bodies] == [("/hooks/T0KEN", [NAME])]


def test_with_become_the_close_closes_and_ssh_still_works(target, tmp_path):
    result = playbook(target, "close", "-b", tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert probe("tcp", target["address"], 5061) == "filtered"
    assert probe("tcp", target["address"], 22) == "open"
    rerun = playbook(target, "close", extra={"sips_become": True}, tmp=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "changed=0" in rerun.stdout and "failed=0" in rerun.stdout
