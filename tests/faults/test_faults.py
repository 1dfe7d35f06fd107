# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fault injection for sipguard.firewall.ufw_port against real UFW in throwaway containers.

Each test starts its own container of the harness image (UFW active: deny incoming, allow 22/tcp,
allow 5061) and removes it by name at the end. The module runs inside the container as Ansible runs
it: an AnsiballZ payload, built once per session through Ansible with ANSIBLE_KEEP_REMOTE_FILES=1
(the approach of bench/process_count.py), then executed with `podman exec ... python3 PAYLOAD`.
Results are judged inside the container (sha256 of the rule files, `ufw status`, iptables-save)
and by TCP probes of 5061 from this machine (refused = let in, nothing listens; timeout = dropped).
Nothing here touches this machine's own firewall.

Run: .venv/bin/python -m pytest -q tests/faults
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # --import-mode=importlib: not on the path
from fleet_harness import IMAGE, NETWORK, ROOT  # noqa: E402

ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(ROOT, "tests/harness/containers.conf"),
           ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build"), ANSIBLE_KEEP_REMOTE_FILES="1",
           ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
RULE_FILES = ("/etc/ufw/user.rules", "/etc/ufw/user6.rules")
OUR_TAG = "comment=7369706775617264"  # "sipguard" as ufw stores comments (hex)
FAULT_PATH = "/opt/fault:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SETUP = "ufw default deny incoming && ufw allow 22/tcp && ufw allow 5061 && ufw --force enable"


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------

def run(argv, check=True, timeout=120, **kwargs):
    # The exit code is checked here, with the output in the message (check=False on purpose).
    result = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError("%s failed (exit %d)\nstdout: %s\nstderr: %s"
                             % (" ".join(argv), result.returncode, result.stdout, result.stderr))
    return result


def sh(name, script, check=True, timeout=60, env_path=None):
    argv = ["podman", "exec"]
    if env_path:
        argv += ["-e", "PATH=" + env_path]
    return run(argv + [name, "sh", "-c", script], check=check, timeout=timeout)


def start_container(name):
    run(["podman", "rm", "-f", name], check=False)
    run(["podman", "run", "-d", "--name", name, "--network", NETWORK, "--cap-add", "NET_ADMIN",
         "--cap-add", "NET_RAW", IMAGE])
    sh(name, SETUP + " >/dev/null")


def remove_container(name):
    run(["podman", "rm", "-f", "-t", "0", name], check=False)


def module_result(proc):
    """The JSON result the module printed (the last JSON line of stdout)."""
    for line in reversed(proc.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError("no JSON result (exit %d)\nstdout: %s\nstderr: %s"
                         % (proc.returncode, proc.stdout, proc.stderr))


def run_module(name, payload, env_path=None, timeout=90):
    proc = sh(name, "python3 " + payload, check=False, timeout=timeout, env_path=env_path)
    return proc, module_result(proc)


def sha256s(name):
    out = sh(name, "sha256sum " + " ".join(RULE_FILES)).stdout.split()
    return {out[1]: out[0], out[3]: out[2]}


def user_chains(name):
    """The ufw user input chain rules of both families, as iptables-save prints them."""
    v4 = sh(name, "iptables-save -t filter").stdout.splitlines()
    v6 = sh(name, "ip6tables-save -t filter").stdout.splitlines()
    return ([line for line in v4 if line.startswith("-A ufw-user-input ")],
            [line for line in v6 if line.startswith("-A ufw6-user-input ")])


def ufw_status(name):
    proc = sh(name, "ufw status numbered", check=False)
    assert proc.returncode == 0, "ufw cannot read its files: %s %s" % (proc.stdout, proc.stderr)
    return proc.stdout


def write_wrapper(name, command, body):
    """An executable shell script /opt/fault/<command>, found first with FAULT_PATH."""
    sh(name, "mkdir -p /opt/fault && cat > /opt/fault/%s <<'EOF'\n#!/bin/sh\n%s\nEOF\nchmod 755 /opt/fault/%s"
       % (command, body, command))


def snapshot_start(name):
    sh(name, "mkdir -p /root/start && cp %s /root/start/" % " ".join(RULE_FILES))


def reset_rules(name):
    sh(name, "cp /root/start/user.rules /root/start/user6.rules /etc/ufw/ && ufw reload >/dev/null")


def pids_of(name, pattern):
    # "[A]nsiballZ" matches the process but not the `sh -c` that runs pgrep.
    out = sh(name, "pgrep -f '[%s]%s' || true" % (pattern[0], pattern[1:])).stdout.split()
    return [pid for pid in out if pid.isdigit()]


def container_ip(name):
    return run(["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                name]).stdout.strip()


def tcp_probe(name, port=5061, timeout=1.5):
    """From this machine: 'refused' (UFW lets it in; nothing listens), 'timeout' (dropped) or 'open'."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((container_ip(name), port))
            return "open"
        except ConnectionRefusedError:
            return "refused"
        except socket.timeout:
            return "timeout"


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))


# ----------------------------------------------------------------------------------
# Payloads (built once per session, as bench/process_count.py does)
# ----------------------------------------------------------------------------------

PAYLOAD_CONTAINER = "sipguard-fault-payloads"


def keep_module_payload(container, module_args):
    """Run the task once through Ansible (not in check mode), keeping the AnsiballZ file; return its path."""
    before = set(sh(container, "ls -d /root/.ansible/tmp/ansible-tmp-* 2>/dev/null || true").stdout.split())
    run([os.path.join(VENV_BIN, "ansible"), "all", "-i", container + ",", "-c", "containers.podman.podman",
         "-e", "ansible_python_interpreter=/usr/bin/python3", "-m", "sipguard.firewall.ufw_port",
         "-a", module_args], timeout=120)
    after = set(sh(container, "ls -d /root/.ansible/tmp/ansible-tmp-*").stdout.split())
    (new_dir,) = after - before
    return sh(container, "ls %s/AnsiballZ_ufw_port.py" % new_dir).stdout.strip()


@pytest.fixture(scope="session")
def payloads():
    """{'default': path, 'lock2': path}: payload files on the host, placed at the same path in each container."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: the fault tests need it (they never skip)")
    if run(["podman", "image", "exists", IMAGE], check=False).returncode != 0:
        pytest.fail("image %s is missing: build it with the harness (make setup)" % IMAGE)
    if run(["podman", "network", "exists", NETWORK], check=False).returncode != 0:
        pytest.fail("podman network %s is missing: create it with the harness (make setup)" % NETWORK)
    if not os.path.exists(os.path.join(VENV_BIN, "ansible")):
        pytest.fail("no %s/ansible: run `make setup` first" % VENV_BIN)
    link = os.path.join(ROOT, "build", "ansible_collections", "sipguard", "firewall")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("../../..", link)
    local = tempfile.mkdtemp(prefix="sipguard-faults-")
    start_container(PAYLOAD_CONTAINER)
    try:
        found = {}
        for key, args in (("default", "port=5061"), ("lock2", "port=5061 lock_timeout=2")):
            remote = keep_module_payload(PAYLOAD_CONTAINER, args)
            host_copy = os.path.join(local, key + ".py")
            run(["podman", "cp", "%s:%s" % (PAYLOAD_CONTAINER, remote), host_copy])
            found[key] = (host_copy, remote)
    finally:
        remove_container(PAYLOAD_CONTAINER)
    yield found
    shutil.rmtree(local, ignore_errors=True)


@pytest.fixture
def target(request, payloads):
    """A fresh container with the starting state; yields (name, {'default': path, 'lock2': path})."""
    name = "sipguard-fault-" + request.node.name.replace("test_", "").replace("_", "-")[:40]
    request.addfinalizer(lambda: remove_container(name))
    start_container(name)
    placed = {}
    for key, (host_copy, remote) in payloads.items():
        sh(name, "mkdir -p %s" % os.path.dirname(remote))
        run(["podman", "cp", host_copy, "%s:%s" % (name, remote)])
        placed[key] = remote
    snapshot_start(name)
    return name, placed


# ----------------------------------------------------------------------------------
# 1. ip6tables-restore fails after iptables-restore succeeded
# ----------------------------------------------------------------------------------

def test_restore_fails_for_second_family(target):
    name, payload = target
    files_before = sha256s(name)
    chains_before = user_chains(name)
    assert tcp_probe(name) == "refused"  # allowed by `ufw allow 5061`
    write_wrapper(name, "ip6tables-restore", "cat >/dev/null\necho 'injected fault' >&2\nexit 1")
    assert sh(name, "command -v ip6tables-restore", env_path=FAULT_PATH).stdout.strip() == \
        "/opt/fault/ip6tables-restore"

    proc, result = run_module(name, payload["default"], env_path=FAULT_PATH)

    assert proc.returncode != 0 and result.get("failed"), result
    assert "put back" in result["msg"], result["msg"]
    assert "PUTTING BACK FAILED" not in result["msg"], result["msg"]
    assert "ip6tables-restore" in result["msg"] and "injected fault" in result["msg"], result["msg"]
    assert sha256s(name) == files_before
    assert user_chains(name) == chains_before
    assert "5061" in ufw_status(name)
    assert tcp_probe(name) == "refused"  # the ipv4 load was undone: still reachable, as before
    # No temporary files left behind in /etc/ufw.
    assert sh(name, "ls -a /etc/ufw | grep -c '^\\.sipguard-' || true").stdout.strip() == "0"


# ----------------------------------------------------------------------------------
# 2. SIGKILL during the transaction
# ----------------------------------------------------------------------------------

# iptables-save: slow, then the real one. The restores: slow, then the load never happens
# (the state of a crash after the files were written and before the kernel committed the load);
# a wrapper orphaned by the kill exits without touching the rule set.
WRAPPERS = {
    "iptables-save": "sleep 5\nexec /usr/sbin/iptables-save \"$@\"",
    "iptables-restore": "cat >/dev/null\nsleep 5\nexit 1",
    "ip6tables-restore": "cat >/dev/null\nsleep 5\nexit 1",
}


def test_sigkill_leaves_old_or_new_files(target):
    name, payload = target
    old = sha256s(name)
    old_chains = user_chains(name)
    # "new": the same payload run uninterrupted from the same starting state, then put back.
    proc, result = run_module(name, payload["default"])
    assert proc.returncode == 0 and result["changed"], result
    new = sha256s(name)
    new_chains = user_chains(name)
    assert all(new[path] != old[path] for path in RULE_FILES), "the module changed nothing to compare with"
    assert new_chains != old_chains
    reset_rules(name)
    assert sha256s(name) == old and user_chains(name) == old_chains

    # Kill while each of these is running: before anything is written (iptables-save),
    # after the files are written (iptables-restore), between the two loads (ip6tables-restore).
    outcomes = {}
    for command, body in WRAPPERS.items():
        write_wrapper(name, command, body)
        sh(name, "rm -f /tmp/module.out; nohup python3 %s >/tmp/module.out 2>&1 &" % payload["default"],
           env_path=FAULT_PATH)
        wait_for(lambda: pids_of(name, "/opt/fault/" + command), 20, "the %s wrapper to run" % command)
        modules = pids_of(name, "AnsiballZ_ufw_port")
        assert modules, "module process not found"
        sh(name, "kill -9 %s" % " ".join(modules))
        wait_for(lambda: not pids_of(name, "AnsiballZ_ufw_port"), 10, "the module to die")
        now = sha256s(name)
        outcomes[command] = {path: ("old" if now[path] == old[path] else "new" if now[path] == new[path]
                                    else "MIX/OTHER") for path in RULE_FILES}
        for path in RULE_FILES:
            assert now[path] in (old[path], new[path]), (command, path, outcomes)
        ufw_status(name)  # ufw itself still parses both files
        assert sh(name, "ls -a /etc/ufw | grep -c '^\\.sipguard-' || true").stdout.strip() == "0", \
            "a temporary rule file was left behind after SIGKILL during %s" % command
        sh(name, "rm -f /opt/fault/%s" % command)
        wait_for(lambda: not pids_of(name, "/opt/fault/"), 15, "the orphaned wrapper to finish")
        # The killed run's lock died with it, and a re-run repairs whatever it left half done
        # (files written, chains not loaded: drift) to exactly the uninterrupted result.
        proc, result = run_module(name, payload["default"], timeout=30)
        assert proc.returncode == 0 and not result.get("failed"), (command, result)
        assert sha256s(name) == new, (command, outcomes)
        assert user_chains(name) == new_chains, (command, result)
        reset_rules(name)
    # Killed while reading: nothing written. Killed while loading: both files already new.
    assert outcomes == {
        "iptables-save": {path: "old" for path in RULE_FILES},
        "iptables-restore": {path: "new" for path in RULE_FILES},
        "ip6tables-restore": {path: "new" for path in RULE_FILES},
    }, outcomes


# ----------------------------------------------------------------------------------
# 3. Four concurrent runs on one host
# ----------------------------------------------------------------------------------

def test_four_concurrent_runs(target):
    name, payload = target
    # $(jobs -p) runs in a subshell under dash: collect the pids with $! instead.
    script = ("cd /tmp && pids=; for i in 1 2 3 4; do python3 %s >/tmp/run$i.out 2>&1 & pids=\"$pids $!\"; done; "
              "fails=0; for pid in $pids; do wait $pid || fails=$((fails+1)); done; echo fails=$fails"
              % payload["default"])
    proc = sh(name, script, timeout=120)
    outputs = [sh(name, "cat /tmp/run%d.out" % i).stdout for i in range(1, 5)]
    results = [module_result(subprocess.CompletedProcess([], 0, out, "")) for out in outputs]
    assert "fails=0" in proc.stdout, outputs
    assert all(not r.get("failed") for r in results), results
    assert sum(1 for r in results if r["changed"]) == 1, [r["changed"] for r in results]
    for path in RULE_FILES:
        ours = sh(name, "grep -c '%s' %s || true" % (OUR_TAG, path)).stdout.strip()
        assert ours == "2", (path, sh(name, "cat " + path).stdout)
    status = ufw_status(name)
    ours_in_status = [line for line in status.splitlines() if "5061" in line and "DENY" in line]
    assert len(ours_in_status) == 4, status  # tcp+udp, v4+v6
    assert len(set(line.split("]", 1)[1] for line in ours_in_status)) == 4, status
    v4, v6 = user_chains(name)
    for chain in (v4, v6):
        assert len(chain) == len(set(chain)), chain
        assert sum(1 for line in chain if "5061" in line and "DROP" in line) == 2, chain
    assert tcp_probe(name) == "timeout"  # dropped now


# ----------------------------------------------------------------------------------
# 4. UFW's lock held by another process
# ----------------------------------------------------------------------------------

HOLDER = ("import fcntl, os, time\n"
          "f = open('/run/ufw.lock', 'w')\n"
          "fcntl.lockf(f, fcntl.LOCK_EX)\n"
          "open('/tmp/holder.pid', 'w').write(str(os.getpid()))\n"
          "time.sleep(30)\n")


def test_lock_held_by_another_process(target):
    name, payload = target
    files_before = sha256s(name)
    sh(name, "cat > /tmp/holder.py <<'EOF'\n%sEOF" % HOLDER)
    run(["podman", "exec", "-d", name, "python3", "/tmp/holder.py"])

    def holder_pid():
        return sh(name, "cat /tmp/holder.pid 2>/dev/null || true").stdout.strip()

    holder = wait_for(holder_pid, 10, "the holder to take the lock")

    started = time.monotonic()
    proc, result = run_module(name, payload["lock2"], timeout=30)
    elapsed = time.monotonic() - started

    assert proc.returncode != 0 and result.get("failed"), result
    assert "/run/ufw.lock" in result["msg"] and "2 s" in result["msg"], result["msg"]
    assert 2 <= elapsed <= 6, elapsed
    assert sha256s(name) == files_before
    assert tcp_probe(name) == "refused"

    sh(name, "kill %s" % holder)
    wait_for(lambda: not sh(name, "kill -0 %s 2>/dev/null && echo alive || true" % holder).stdout.strip(),
             10, "the holder to exit")
    proc, result = run_module(name, payload["lock2"])
    assert proc.returncode == 0 and result["changed"], result
    assert sha256s(name) != files_before
    assert tcp_probe(name) == "timeout"
