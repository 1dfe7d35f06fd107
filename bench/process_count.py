"""Processes started on a host to close 5061: sipguard.firewall.ufw_port vs `ufw` vs community.general.ufw.

Run with `make bench-processes` (or `.venv/bin/python bench/process_count.py` after `make setup`).

Starts one throwaway container of the harness image (UFW active, `allow 5061`, `allow 22/tcp`),
prepares each contender's task, then runs it under `strace -f -e trace=execve` inside the
container, from the same starting rule files, once as a change and once as a no-op. Prints
the number of successful execve calls (every process, the tool's own interpreter included)
and how many of them the tool started as children. The container is removed at the end.

A figure printer, not a test: nothing here asserts a target.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "localhost/sipguard-target:" + os.environ.get("SIPGUARD_SUITE", "bookworm")
CONTAINER = "sipguard-bench-processes"
ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(ROOT, "tests/harness/containers.conf"),
           ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build"), ANSIBLE_KEEP_REMOTE_FILES="1",
           ANSIBLE_NOCOLOR="1")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def run(argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, env=ENV, capture_output=True, text=True, timeout=120, **kwargs)


def in_container(script, check=True):
    return run(["podman", "exec", CONTAINER, "sh", "-c", script], check=check)


def reset_rules():
    """Back to the starting rule files, loaded the way ufw loads them."""
    in_container("cp /root/start/user.rules /root/start/user6.rules /etc/ufw/ && ufw reload >/dev/null")


def keep_module_payload(module, module_args):
    """Run the task once through Ansible, keeping the AnsiballZ file it sent; return its path."""
    before = set(in_container("ls -d /root/.ansible/tmp/ansible-tmp-* 2>/dev/null || true").stdout.split())
    run([os.path.join(VENV_BIN, "ansible"), "all", "-i", CONTAINER + ",", "-c", "containers.podman.podman",
         "-e", "ansible_python_interpreter=/usr/bin/python3", "-m", module, "-a", module_args])
    after = set(in_container("ls -d /root/.ansible/tmp/ansible-tmp-*").stdout.split())
    (new_dir,) = after - before
    return in_container("ls %s/AnsiballZ_*.py" % new_dir).stdout.strip()


def count_execve(command):
    """(all processes, children of the tool) for one run of command inside the container."""
    in_container("strace -f -qq -e trace=execve -o /tmp/execve.log %s > /dev/null 2>&1; true" % command)
    lines = in_container("grep -c 'execve(.*= 0$' /tmp/execve.log || true").stdout.strip()
    total = int(lines or 0)
    return total, max(total - 1, 0)


def main():
    if not os.path.exists(os.path.join(VENV_BIN, "ansible")):
        sys.exit("run `make setup` first (needs .venv and the target image)")
    run(["podman", "rm", "-f", CONTAINER], check=False)
    run(["podman", "run", "-d", "--name", CONTAINER, "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", IMAGE])
    try:
        in_container("ufw default deny incoming && ufw allow 22/tcp && ufw allow 5061 && ufw --force enable"
                     " && mkdir -p /root/start && cp /etc/ufw/user.rules /etc/ufw/user6.rules /root/start/")
        contenders = [
            ("sipguard.firewall.ufw_port port=5061", keep_module_payload(
                "sipguard.firewall.ufw_port", "port=5061")),
            ("community.general.ufw rule=deny port=5061 (1 task)", keep_module_payload(
                "community.general.ufw", "rule=deny port=5061")),
        ]
        rows = []
        for label, payload in contenders:
            reset_rules()
            change = count_execve("python3 " + payload)
            noop = count_execve("python3 " + payload)
            rows.append((label, change, noop))
        reset_rules()
        rows.append(("ufw deny 5061 (CLI)", count_execve("ufw deny 5061"), count_execve("ufw deny 5061")))
        rows.append(("ufw insert 1 deny 5061/tcp + 5061/udp (CLI, 2 commands)",
                     tuple(map(sum, zip(*(count_execve("ufw insert 1 deny 5061/%s" % p) for p in ("tcp", "udp"))))),
                     (0, 0)))
        ufw_version = in_container("ufw version | head -1").stdout.strip()
        iptables_version = in_container("iptables -V").stdout.strip()
    finally:
        run(["podman", "rm", "-f", CONTAINER], check=False)

    print("Processes started on the host (execve, counted with strace -f inside one container;")
    print("%s, %s; from the same starting rule files each time)" % (ufw_version, iptables_version))
    print()
    print("%-58s %14s %14s" % ("task", "change", "no-op"))
    print("%-58s %14s %14s" % ("", "all/children", "all/children"))
    for label, change, noop in rows:
        print("%-58s %14s %14s" % (label, "%d/%d" % change, "%d/%d" % noop if noop != (0, 0) else "n/a"))
    print()
    print("'all' counts the tool's own interpreter; 'children' the processes it started.")
    print(json.dumps({label: {"change": change, "noop": noop} for label, change, noop in rows}))


if __name__ == "__main__":
    main()
