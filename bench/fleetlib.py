"""Shared by the fleet benchmarks (fleet.py, settings.py, controller_memory.py): container fleets
reached over SSH, their inventories, timed ansible-playbook runs and checks from the host.

Test-only, like everything under bench/: never part of the collection build.

Every container is named sipguard-bench-*, started from the harness image
localhost/sipguard-target:bookworm-ssh on the podman network sipguard-test, gets the address
podman assigns (read back with podman inspect), and is removed by Fleet.remove(). Every UFW
change happens inside those containers; every probe goes to them with a bounded timeout.
"""

import concurrent.futures
import importlib.util
import ipaddress
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
BUILD = os.path.join(ROOT, "build")
WORK = os.path.join(BUILD, "bench")
KEY = os.path.join(BUILD, "ssh", "id_ed25519")
IMAGE = "localhost/sipguard-target:bookworm-ssh"
NETWORK = os.environ.get("SIPGUARD_NETWORK", "sipguard-test")
LISTENER = os.path.join(ROOT, "tests", "harness", "listener.py")
# The other engineer's molecule scenarios use these static addresses; never hold one.
RESERVED_V4 = (ipaddress.ip_address("10.89.7.200"), ipaddress.ip_address("10.89.7.254"))
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
PROBE_TIMEOUT = 2.0

SNAPSHOT = os.path.join(WORK, "snapshot")
COLLECTION_PARTS = ("galaxy.yml", "meta", "plugins", "roles", "playbooks")
ENV = dict(os.environ,
           CONTAINERS_CONF=os.path.join(ROOT, "tests", "harness", "containers.conf"),
           ANSIBLE_COLLECTIONS_PATH=SNAPSHOT,
           ANSIBLE_NOCOLOR="1",
           ANSIBLE_FORCE_COLOR="0",
           ANSIBLE_LOCAL_TEMP=os.path.join(WORK, "ansible-local"),
           ANSIBLE_HOME=os.path.join(WORK, "ansible-home"))

# Ansible's own defaults for what the matrix varies (forks 5, linear, no pipelining, the ssh
# plugin's ControlPersist=60s); both contenders of the fleet comparison run with exactly these.
DEFAULT_SETTINGS = {"forks": 5, "strategy": "linear", "pipelining": False, "control_persist": True}


def run(argv, check=True, timeout=300, **kwargs):
    """Run a command with the benchmark environment; output captured as text."""
    return subprocess.run(argv, check=check, env=kwargs.pop("env", ENV), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def podman(*args, check=True, timeout=120):
    return run(["podman", *args], check=check, timeout=timeout)


def prepare():
    """What a fresh machine lacks after `make setup`: the key pair, the ssh image, the network,
    the scratch directory; then a snapshot of the collection. Returns what is measured."""
    if not os.path.exists(os.path.join(VENV_BIN, "ansible-playbook")):
        sys.exit("run `make setup` first (needs .venv)")
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(ENV["ANSIBLE_LOCAL_TEMP"], exist_ok=True)
    if not os.path.exists(KEY):
        os.makedirs(os.path.dirname(KEY), exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sipguard-bench", "-f", KEY])
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        subprocess.run([os.path.join(ROOT, "tests", "harness", "build-image.sh"), "bookworm", "ssh"],
                       check=True, env=ENV, timeout=900)
    subprocess.run([os.path.join(ROOT, "tests", "harness", "network.sh"), "create"], check=True, env=ENV,
                   timeout=60)
    return snapshot_collection()


def snapshot_collection():
    """Copy the collection as it is now to build/bench/snapshot, so that every run of a benchmark
    measures the same code even while the working tree is being edited; return its description."""
    target = os.path.join(SNAPSHOT, "ansible_collections", "sipguard", "firewall")
    shutil.rmtree(SNAPSHOT, ignore_errors=True)
    os.makedirs(target)
    for part in COLLECTION_PARTS:
        source = os.path.join(ROOT, part)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(target, part), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return collection_version()


def collection_version():
    """The commit measured, with '+changes' when the collection's files differ from it."""
    head = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False).stdout.strip() or "no git"
    dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--", *COLLECTION_PARTS], check=False).stdout.strip()
    return head + (" +uncommitted changes" if dirty else "")


def _harness_probe():
    """tests/harness/probe.py, the harness's probe from this host (open / closed / filtered)."""
    spec = importlib.util.spec_from_file_location("sipguard_harness_probe",
                                                  os.path.join(ROOT, "tests", "harness", "probe.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_PROBE = _harness_probe()


def tcp_state(address, port, timeout=PROBE_TIMEOUT):
    """'open', 'closed' (refused) or 'filtered' (no answer within timeout), from this host."""
    return _PROBE.probe_tcp(address, port, timeout)


def ssh_banner(address, timeout=PROBE_TIMEOUT):
    """True when sshd answers with its banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def ssh_login(address, timeout=10):
    """True when a fresh SSH login as root (no shared master) runs a command."""
    argv = ["ssh", "-i", KEY, *SSH_OPTIONS, "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-o", "ConnectTimeout=5", "root@" + address, "true"]
    try:
        return run(argv, check=False, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


class Host:
    """One container: its name and the addresses podman gave it."""

    def __init__(self, name, ipv4, ipv6):
        self.name, self.ipv4, self.ipv6 = name, ipv4, ipv6

    def exec(self, script, check=True, timeout=120):
        return podman("exec", self.name, "sh", "-c", script, check=check, timeout=timeout)


def _addresses(name):
    out = podman("inspect", name, "--format",
                 "{{(index .NetworkSettings.Networks \"%s\").IPAddress}} "
                 "{{(index .NetworkSettings.Networks \"%s\").GlobalIPv6Address}}" % (NETWORK, NETWORK)).stdout
    ipv4, ipv6 = (out.split() + ["", ""])[:2]
    return ipv4, ipv6


def _reserved(ipv4):
    return ipv4 and RESERVED_V4[0] <= ipaddress.ip_address(ipv4) <= RESERVED_V4[1]


def start_container(name, ufw_script):
    """Start one target: sshd with the bench key, the listener on 5061 and 5060 (TCP+UDP), then
    ufw_script inside. An address in the reserved range is given back and another one taken."""
    for _attempt in range(80):
        podman("rm", "-f", name, check=False)
        podman("run", "-d", "--name", name, "--label", "sipguard-bench=1",
               "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--network", NETWORK,
               "-v", KEY + ".pub:/etc/sipguard/authorized_keys:ro", IMAGE)
        ipv4, ipv6 = _addresses(name)
        if not _reserved(ipv4):
            break
    else:
        raise RuntimeError("%s: podman keeps assigning reserved addresses" % name)
    host = Host(name, ipv4, ipv6)
    podman("cp", LISTENER, name + ":/usr/local/bin/sipguard-listener.py")
    podman("exec", "-d", name, "python3", "/usr/local/bin/sipguard-listener.py", "5061", "5060")
    if ufw_script:
        host.exec(ufw_script)
    deadline = time.monotonic() + 60
    while not ssh_banner(ipv4):
        if time.monotonic() > deadline:
            raise RuntimeError("%s: sshd did not answer within 60 s" % name)
        time.sleep(0.3)
    return host


# The starting state of every fleet host: UFW active, default deny incoming, SSH allowed, 5061
# exposed by per-protocol allow rules (the naive playbook's `deny 5061/tcp` then replaces the
# allow in place, so it really closes the port and the comparison is between two closes).
EXPOSED_UFW = ("ufw default deny incoming >/dev/null && ufw allow 22/tcp >/dev/null"
               " && ufw allow 5061/tcp >/dev/null && ufw allow 5061/udp >/dev/null"
               " && ufw --force enable >/dev/null")


class Fleet:
    """N identical containers, named sipguard-bench-<label>-<i>."""

    def __init__(self, label, hosts):
        self.label, self.hosts = label, hosts

    @classmethod
    def start(cls, label, count, ufw_script=EXPOSED_UFW, workers=4):
        names = ["sipguard-bench-%s-%02d" % (label, i) for i in range(1, count + 1)]
        fleet = cls(label, [])
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(start_container, name, ufw_script) for name in names]
            errors = []
            for future in futures:
                try:
                    fleet.hosts.append(future.result())
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    errors.append(exc)
        if errors:
            fleet.remove(extra=names)
            raise RuntimeError("fleet %s: %s" % (label, errors[0]))
        return fleet

    def remove(self, extra=()):
        names = sorted({host.name for host in self.hosts} | set(extra))
        if names:
            podman("rm", "-f", "-t", "0", *names, check=False, timeout=300)

    def remove_unless(self, keep):
        if keep:
            print("kept: " + " ".join(host.name for host in self.hosts), file=sys.stderr)
        else:
            self.remove()

    def write_inventory(self, path, aliases_per_host=1):
        """An SSH inventory; with aliases_per_host > 1 several inventory hosts share a container."""
        lines = ["[fleet]"]
        for alias in range(aliases_per_host):  # round robin, so that the forks spread over the containers
            for host in self.hosts:
                name = host.name if aliases_per_host == 1 else "%s-a%03d" % (host.name, alias)
                lines.append("%s ansible_host=%s" % (name, host.ipv4))
        lines += ["", "[fleet:vars]", "ansible_user=root", "ansible_ssh_private_key_file=" + KEY,
                  "ansible_python_interpreter=/usr/bin/python3", ""]
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines))
        return path

    def states(self, port=5061):
        """{host: (ipv4 state, ipv6 state)} of a TCP port, probed from this host in parallel."""
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            v4 = {h.name: pool.submit(tcp_state, h.ipv4, port) for h in self.hosts}
            v6 = {h.name: pool.submit(tcp_state, h.ipv6, port) for h in self.hosts if h.ipv6}
            return {name: (v4[name].result(), v6[name].result() if name in v6 else "-") for name in v4}

    def logins(self):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return dict(zip([h.name for h in self.hosts], pool.map(ssh_login, [h.ipv4 for h in self.hosts])))


def remove_leftovers():
    """Containers of an earlier, interrupted benchmark run (label sipguard-bench=1)."""
    names = podman("ps", "-a", "--filter", "label=sipguard-bench=1", "--format", "{{.Names}}",
                   check=False).stdout.split()
    names = [name for name in names if name.startswith("sipguard-bench-")]
    if names:
        podman("rm", "-f", "-t", "0", *names, check=False, timeout=300)


def write_config(path, settings, callbacks=()):
    """An ansible.cfg for the given settings; everything else stays at Ansible's defaults."""
    if settings["control_persist"]:
        ssh_args = "-C -o ControlMaster=auto -o ControlPersist=60s"
    else:
        ssh_args = "-C -o ControlMaster=no -o ControlPersist=no"
    ssh_args += " " + " ".join(SSH_OPTIONS)
    lines = ["[defaults]",
             "forks = %d" % settings["forks"],
             "strategy = %s" % settings["strategy"],
             "host_key_checking = False",
             "retry_files_enabled = False",
             *(["callbacks_enabled = " + ",".join(callbacks)] if callbacks else []),
             "",
             "[ssh_connection]",
             "ssh_args = %s" % ssh_args,
             "pipelining = %s" % settings["pipelining"],
             ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    return path


def describe(settings):
    return "forks=%d strategy=%s pipelining=%s ControlPersist=%s" % (
        settings["forks"], settings["strategy"], "on" if settings["pipelining"] else "off",
        "60s" if settings["control_persist"] else "off")


class PlaybookRun:
    """The outcome of one timed ansible-playbook (or ad-hoc `ansible`) run; cpu: the CPU seconds
    (user + system) of its process tree on the controller (RUSAGE_CHILDREN delta: every process
    it waited for; ssh's ControlPersist masters detach and are not counted)."""

    def __init__(self, seconds, returncode, output, log, cpu=None):
        self.seconds, self.returncode, self.output, self.log = seconds, returncode, output, log
        self.cpu = cpu

    def recap(self):
        """{host: {'ok': n, 'changed': n, 'failed': n, 'unreachable': n}} from PLAY RECAP."""
        result, in_recap = {}, False
        for line in self.output.splitlines():
            if line.startswith("PLAY RECAP"):
                in_recap = True
                continue
            if in_recap and ":" in line and "=" in line:
                host, counters = line.split(":", 1)
                fields = dict(item.split("=") for item in counters.split())
                result[host.strip()] = {key: int(fields.get(key, 0))
                                        for key in ("ok", "changed", "failed", "unreachable")}
        return result

    def changed_hosts(self):
        return sum(1 for counts in self.recap().values() if counts["changed"])

    def bad_hosts(self):
        return sum(1 for counts in self.recap().values() if counts["failed"] or counts["unreachable"])


class AdhocRun(PlaybookRun):
    """An ad-hoc `ansible` run: no recap, one `host | STATE | ...` line per host."""

    def _states(self):
        states = {}
        for line in self.output.splitlines():
            parts = [part.strip() for part in line.split(" | ")]
            if len(parts) >= 2 and parts[1].split()[0] in ("CHANGED", "SUCCESS", "FAILED!", "FAILED", "UNREACHABLE!"):
                states[parts[0]] = parts[1].split()[0].rstrip("!")
        return states

    def changed_hosts(self):
        return sum(1 for state in self._states().values() if state == "CHANGED")

    def bad_hosts(self):
        return sum(1 for state in self._states().values() if state in ("FAILED", "UNREACHABLE"))

    def answered_hosts(self):
        return len(self._states())


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def playbook(playbook_ref, inventory, config, log_name, extra_args=(), extra_env=None, timeout=1800,
             watch=None, adhoc=None):
    """Run ansible-playbook with a private ssh ControlPath directory (every run starts with cold
    connections, like a new job), time it, keep its output under build/bench/logs.
    watch(process) runs while the playbook does (memory sampling). adhoc: instead of a playbook,
    the arguments of an ad-hoc `ansible` command (same config, same cold connections); then
    playbook_ref is the host pattern. Nothing else of this process may start children meanwhile
    (the CPU figure is the RUSAGE_CHILDREN delta)."""
    logs = os.path.join(WORK, "logs")
    os.makedirs(logs, exist_ok=True)
    control_dir = tempfile.mkdtemp(prefix="cp-", dir=WORK)
    env = dict(ENV, ANSIBLE_CONFIG=config, ANSIBLE_SSH_CONTROL_PATH_DIR=control_dir, **(extra_env or {}))
    if adhoc is None:
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook_ref, *extra_args]
    else:
        argv = [os.path.join(VENV_BIN, "ansible"), playbook_ref, "-i", inventory, *adhoc, *extra_args]
    log = os.path.join(logs, log_name + ".log")
    try:
        with open(log, "w", encoding="utf-8") as handle:
            cpu_before = _children_cpu()
            started = time.monotonic()
            with subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=WORK) as process:
                try:
                    if watch is not None:
                        watch(process)
                    process.wait(timeout=timeout)
                except BaseException:
                    process.kill()
                    process.wait()
                    raise
                seconds = time.monotonic() - started
                cpu = _children_cpu() - cpu_before
    finally:
        close_masters(control_dir)
    with open(log, encoding="utf-8", errors="replace") as handle:
        output = handle.read()
    return (PlaybookRun if adhoc is None else AdhocRun)(seconds, process.returncode, output, log, cpu)


def close_masters(control_dir):
    """Stop the ssh master connections this run left behind (each by its own socket)."""
    for entry in os.listdir(control_dir):
        run(["ssh", "-O", "exit", "-o", "ControlPath=" + os.path.join(control_dir, entry), "bench"],
            check=False, timeout=10)
    shutil.rmtree(control_dir, ignore_errors=True)


def spread(values):
    """'min (spread +x.xx)' of a list of seconds."""
    return "%.2f (+%.2f)" % (min(values), max(values) - min(values))


def load_average():
    with open("/proc/loadavg", encoding="ascii") as handle:
        return handle.read().split()[0]
