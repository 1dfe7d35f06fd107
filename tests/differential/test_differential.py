# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The differential test: random UFW states, the modules' verdicts against the network's.

For every state of the grammar (grammar.py, seeded: the seed is printed), a target container
is reset and put in that state; sipguard.firewall.port_audit runs on it; a prober container
probes 5061 (TCP and UDP, IPv4 and IPv6) and other ports from fourteen addresses per family
(topology.py); sipguard.firewall.ufw_port closes 5061; the prober probes again. oracle.py
compares the verdicts with what was reached. Any disagreement fails the test and prints the
state as a shell script (a fixture in the making), the verdicts and what the network saw.

The modules run as Ansible runs them: an AnsiballZ payload built once per session through
Ansible (ANSIBLE_KEEP_REMOTE_FILES, as tests/faults does), then run in the container with
AnsiballZ's ``execute`` and each state's arguments - no Ansible start-up per state. A few
targets work in parallel, each reused from state to state (reset by loading empty rule sets
and copying back the image's /etc/ufw, much faster than ``ufw --force reset``). Containers and
networks are the test's own and are removed by name at the end; nothing here touches this
machine's firewall, and the networks are internal (no gateway, no NAT).

Run: make differential [SIPGUARD_DIFF_SEED=N SIPGUARD_DIFF_COUNT=N SIPGUARD_DIFF_ONLY=i,j]
     make differential SIPGUARD_DIFF_STATES=states.json   (hand-written states, e.g. a fixture)
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from ansible_collections.sipguard.firewall.tests.differential import grammar, oracle, topology

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "harness"
HERE = Path(__file__).resolve().parent
IMAGE = "localhost/sipguard-target:" + os.environ.get("SIPGUARD_SUITE", "bookworm")
PROBER = "sipguard-diff-prober"
TARGET = "sipguard-diff-target-%d"
OPT = "/opt/sgdiff"
REPORT_DIR = ROOT / "build" / "differential"
ENV = dict(os.environ, CONTAINERS_CONF=str(HARNESS / "containers.conf"),
           ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
           ANSIBLE_HOST_KEY_CHECKING="0")
VENV_BIN = ROOT / ".venv" / "bin"
PROBE_TIMEOUT = 0.5  # s per attempt: a local bridge answers in well under a millisecond
PROBE_RETRIES = 1    # one more attempt for silence only
BLANK_RULES = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
               "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
               ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n")
LISTENER_LOG = "/run/sgdiff-listener.log"
# Before each probe phase: UFW's limit list forgets the last phase's probes, the listener's
# log starts empty.
BEFORE_PROBES = "[ ! -e /proc/net/xt_recent/DEFAULT ] || echo / > /proc/net/xt_recent/DEFAULT; : > " + LISTENER_LOG
READ_LOG = "cat %s; : > %s" % (LISTENER_LOG, LISTENER_LOG)
# Source ports of the prober: each worker its own range, the topology check another.
PORTS_FIRST, PORTS_LAST = 20000, 60000
# Back to the image's UFW: nothing loaded (empty tables, policies ACCEPT), the packaged files.
RESET = """set -e
iptables-restore < {opt}/blank.rules
ip6tables-restore < {opt}/blank.rules
rm -rf /etc/ufw
cp -a /root/pristine/ufw /etc/ufw
cp /root/pristine/default-ufw /etc/default/ufw
""".format(opt=OPT)
MODULES = {"audit": "port_audit", "close": "ufw_port"}


# ----------------------------------------------------------------------------------
# Containers and their agents
# ----------------------------------------------------------------------------------

def run(argv, check=True, timeout=120, **kwargs):
    result = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise oracle.HarnessError("%s failed (exit %d)\nstdout: %s\nstderr: %s"
                                  % (" ".join(map(str, argv)), result.returncode, result.stdout, result.stderr))
    return result


def podman(*args, check=True, timeout=120):
    return run(["podman", *args], check=check, timeout=timeout)


def network_options(slot_host):
    options = []
    for side in topology.SIDES:
        network = topology.NETWORKS[side]
        options += ["--network", "%s:ip=%s,ip=%s,interface_name=%s" % (
            network["name"], topology.host_address(side, "ipv4", slot_host),
            topology.host_address(side, "ipv6", slot_host), network["interface"])]
    return options


class Agent:
    """agent.py in one container, over one `podman exec -i`; one request at a time."""

    def __init__(self, container, *args):
        self.container = container
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with  # closed in close()
            ["podman", "exec", "-i", container, "python3", OPT + "/agent.py", *map(str, args)],
            env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buffer = b""

    def call(self, request, timeout):
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise oracle.HarnessError("%s: no answer within %s s to %s" % (
                        self.container, timeout, str(request)[:200]))
                chunk = os.read(self.process.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise oracle.HarnessError("%s: the agent exited" % self.container)
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def sh(self, script, timeout=60, check=True):
        result = self.call({"op": "sh", "script": script, "timeout": timeout}, timeout + 10)
        if check and result["rc"] != 0:
            raise oracle.HarnessError("%s: script failed (exit %s)\n%s\nstdout: %s\nstderr: %s" % (
                self.container, result["rc"], script, result["stdout"], result["stderr"]))
        return result

    def close(self):
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=10)


def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") or line.startswith("["):
            return json.loads(line)
    raise oracle.HarnessError("no JSON in the output:\n%s" % text[-2000:])


# ----------------------------------------------------------------------------------
# The rig: networks, prober, targets, payloads
# ----------------------------------------------------------------------------------

class Rig:
    def __init__(self, workers):
        self.workers = workers
        self.targets = [TARGET % slot for slot in range(workers)]
        self.created_networks = []
        self.args_template = {}  # kind -> the ANSIBLE_MODULE_ARGS internals from the payload
        self.setup_seconds = 0.0

    def containers(self):
        return [PROBER] + self.targets

    def start(self):
        started = time.monotonic()
        for name in self.containers():
            podman("rm", "-f", "-t", "0", name, check=False)
        for side in topology.SIDES:
            network = topology.NETWORKS[side]
            if podman("network", "exists", network["name"], check=False).returncode != 0:
                podman("network", "create", "--internal", "--ipv6", "--subnet", network["ipv4"],
                       "--subnet", network["ipv6"], network["name"])
                self.created_networks.append(network["name"])
        hosts = [(PROBER, topology.PROBER_HOSTS[0])] + [
            (name, topology.TARGET_HOST_BASE + slot) for slot, name in enumerate(self.targets)]
        for name, host in hosts:
            podman("run", "-d", "--name", name, *network_options(host), "--cap-add", "NET_ADMIN",
                   "--cap-add", "NET_RAW", IMAGE)
        files = tempfile.mkdtemp(prefix="sipguard-diff-")
        try:
            for source in (HERE / "agent.py", HERE / "ufw_batch.py", HARNESS / "probe.py", HARNESS / "listener.py"):
                shutil.copy(source, files)
            Path(files, "blank.rules").write_text(BLANK_RULES)
            for name in self.containers():
                podman("cp", files, "%s:%s" % (name, OPT))
        finally:
            shutil.rmtree(files, ignore_errors=True)
        macs = {}
        for slot, name in enumerate(self.targets):
            podman("exec", "-d", name, "python3", OPT + "/listener.py", "--log", LISTENER_LOG,
                   *map(str, topology.LISTEN_PORTS))
            podman("exec", name, "sh", "-c", topology.target_setup_script())
            podman("exec", name, "sh", "-c", "mkdir -p /root/pristine && cp -a /etc/ufw /root/pristine/ufw "
                   "&& cp /etc/default/ufw /root/pristine/default-ufw")
            macs[slot] = {interface: podman("exec", name, "cat", "/sys/class/net/%s/address" % interface).stdout.strip()
                          for interface in ("eth0", "eth1")}
        podman("exec", PROBER, "sh", "-c", topology.prober_setup_script(macs))
        self.build_payloads()
        self.setup_seconds = time.monotonic() - started

    def build_payloads(self):
        """One AnsiballZ payload per module, through Ansible, kept and exploded in every target."""
        inventory = ",".join(self.targets) + ","
        base = [str(VENV_BIN / "ansible"), "all", "-i", inventory, "-c", "containers.podman.podman",
                "-e", "ansible_python_interpreter=/usr/bin/python3", "-f", str(len(self.targets))]
        env = dict(ENV, ANSIBLE_KEEP_REMOTE_FILES="1")
        # ufw_port in check mode: the payload is what matters, not the change (the args are rewritten).
        processes = {kind: subprocess.Popen(  # pylint: disable=consider-using-with  # waited for below
            base + ["-m", "sipguard.firewall." + module, "-a", "port=5061"] + (["--check"] if kind == "close" else []),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for kind, module in MODULES.items()}
        for kind, process in processes.items():
            output, _errors = process.communicate(timeout=300)
            if process.returncode not in (0, 2):  # 2: a host failed the task; the payload is there all the same
                raise oracle.HarnessError("building the %s payload failed:\n%s" % (kind, output))
        for name in self.targets:
            for kind, module in MODULES.items():
                found = podman("exec", name, "sh", "-c", "ls -d /root/.ansible/tmp/ansible-tmp-*/AnsiballZ_%s.py"
                               % module).stdout.split()
                if len(found) != 1:
                    raise oracle.HarnessError("%s: expected one %s payload, found %s" % (name, module, found))
                directory = os.path.dirname(found[0])
                podman("exec", name, "python3", found[0], "explode")
                args = json.loads(podman("exec", name, "cat", directory + "/debug_dir/args").stdout)
                internals = {key: value for key, value in args["ANSIBLE_MODULE_ARGS"].items() if key.startswith("_")}
                internals["_ansible_check_mode"] = False
                internals["_ansible_tmpdir"] = OPT + "/tmp/"  # the kept directory moves below
                self.args_template[kind] = internals
                # Every target's payload at one fixed path, so a state's script does not depend on the slot.
                podman("exec", name, "sh", "-c", "mkdir -p %s/tmp && rm -rf %s/%s && mv %s %s/%s"
                       % (OPT, OPT, kind, directory, OPT, kind))

    def remove(self):
        for name in self.containers():
            podman("rm", "-f", "-t", "0", name, check=False, timeout=60)
        for network in self.created_networks:
            podman("network", "rm", "-f", network, check=False, timeout=60)


# ----------------------------------------------------------------------------------
# One state on one target
# ----------------------------------------------------------------------------------

def apply_script(state, placeholders):
    lines = [RESET]
    for kind, body in grammar.steps(state, placeholders):
        if kind == "ufw":
            lines.append("python3 %s/ufw_batch.py > /run/sgdiff-ufw.json <<'EOF'\n%s\nEOF"
                         % (OPT, "\n".join(json.dumps(argv) for argv in body)))
        else:
            lines.append("{ %s\n} >&2" % body)
    lines.append(BEFORE_PROBES)
    lines.append("cat /run/sgdiff-ufw.json 2>/dev/null || echo '[]'; rm -f /run/sgdiff-ufw.json")
    return "\n".join(lines) + "\n"


def module_script(kind, args, template):
    payload = dict(template, **args)
    return ("set -e\ncat > {opt}/{kind}/debug_dir/args <<'EOF'\n{args}\nEOF\n"
            "cd {opt}/{kind} && python3 AnsiballZ_{module}.py execute || true\n{clear}\n").format(
        opt=OPT, kind=kind, module=MODULES[kind], args=json.dumps({"ANSIBLE_MODULE_ARGS": payload}),
        clear=BEFORE_PROBES)


def probe_request(slot, plan):
    return {"op": "probe", "timeout": PROBE_TIMEOUT, "retries": PROBE_RETRIES,
            "probes": [[probe.key, probe.protocol, probe.vantage.address,
                        topology.target_address(slot, probe.destination, probe.family), probe.port]
                       for probe in plan]}


def port_range(slot, workers):
    """Source ports for one worker (slot), or for the topology check (slot None): disjoint."""
    size = (PORTS_LAST - PORTS_FIRST) // (workers + 1)
    return PORTS_FIRST + (workers if slot is None else slot) * size, size


class Worker:
    def __init__(self, rig, slot, ports=None):
        self.rig, self.slot = rig, slot
        self.target = Agent(rig.targets[slot])
        # Disjoint source-port ranges: two workers never bind the same prober address and port,
        # and no probe of the run reuses another's addresses and ports.
        self.prober = Agent(PROBER, *(ports or port_range(slot, rig.workers)))
        self.placeholders = topology.target_placeholders(slot)
        self.plan = oracle.plan_probes()
        self.seconds = Counter()

    def timed(self, phase, function, *args):
        started = time.monotonic()
        try:
            return function(*args)
        finally:
            self.seconds[phase] += time.monotonic() - started

    def probe(self):
        results = self.prober.call(probe_request(self.slot, self.plan), 60)["results"]
        # A datagram the listener got counts even when no echo came back (the host's output
        # dropped, or the echo came late): the server received it.
        received = set(tuple(line.split()) for line in self.target.sh(READ_LOG)["stdout"].splitlines())
        for probe in self.plan:
            if probe.protocol == "udp" and results[probe.key] != "open" and (
                    "udp", probe.vantage.address,
                    topology.target_address(self.slot, probe.destination, probe.family), str(probe.port)) in received:
                results[probe.key] = oracle.DELIVERED
        return results

    def module(self, kind, args):
        output = self.target.sh(module_script(kind, args, self.rig.args_template[kind]), timeout=120)
        return last_json(output["stdout"])

    def run_state(self, state):
        applied = self.timed("apply", self.target.sh, apply_script(state, self.placeholders))
        ufw_results = last_json(applied["stdout"])
        audit = self.timed("audit", self.module, "audit", {"port": 5061, "trusted_sources": list(state.trusted_sources)})
        before = self.timed("probe", self.probe)
        close = self.timed("close", self.module, "close", {
            "port": 5061, "state": "closed", "trusted_sources": list(state.trusted_sources),
            "action": state.close_action, "conflicts": state.close_conflicts, "inactive": state.close_inactive,
            "lock_timeout": 10})
        after = self.timed("probe", self.probe)
        disagreements, comparisons = oracle.judge(state, audit, before, close, after)
        return dict(state=state, slot=self.slot, ufw_results=ufw_results, audit=audit, close=close,
                    before=before, after=after, disagreements=disagreements, comparisons=comparisons)

    def close(self):
        self.target.close()
        self.prober.close()


# ----------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------

def describe(outcome):
    state, audit, close = outcome["state"], outcome["audit"], outcome["close"]
    placeholders = topology.target_placeholders(outcome["slot"])
    lines = ["=" * 100,
             "state %d of seed %d: %d disagreement(s)" % (state.index, state.seed, len(outcome["disagreements"]))]
    lines += ["  - %s" % item for item in outcome["disagreements"]]
    lines += ["reproducer (a fresh container of %s, eth0 on %s, eth1 on %s):" % (
        IMAGE, topology.NETWORKS["a"]["ipv4"], topology.NETWORKS["b"]["ipv4"])]
    lines += ["    " + line for line in grammar.reproducer(state, placeholders).splitlines()]
    failed_commands = [result for result in outcome["ufw_results"] if result[1] != "ok"]
    if failed_commands:
        lines.append("ufw refused: %s" % "; ".join(
            "ufw %s: %s" % (" ".join(argv), message) for argv, _status, message in failed_commands))
    lines.append("audit: exposed=%s ufw=%s" % (audit.get("exposed"), {key: audit.get("ufw", {}).get(key) for key in (
        "enabled", "loaded", "ipv6", "backend", "default_policies")}))
    for item in audit.get("summary", []):
        lines.append("  %s/%s exposed=%s firewall=%s deciding=%s reasons=%s" % (
            item["family"], item["protocol"], item["exposed"], item["firewall"], item["deciding_rule"],
            item["reasons"]))
    lines.append("close: effective=%s changed=%s failed=%s skipped=%s msg=%s" % (
        close.get("effective"), close.get("changed"), close.get("failed", False), close.get("skipped", False),
        close.get("msg", "")))
    lines += ["  reason: %s" % reason for reason in close.get("reasons", [])]
    lines += ["  added: %s" % rule for rule in close.get("rules_added", [])]
    lines.append("network before the close:")
    lines += ["  " + line for line in oracle.network_summary(oracle.plan_probes(), outcome["before"])]
    lines.append("network after the close:")
    lines += ["  " + line for line in oracle.network_summary(oracle.plan_probes(), outcome["after"])]
    lines.append("repeat: make differential SIPGUARD_DIFF_SEED=%d SIPGUARD_DIFF_ONLY=%d; as data: %s" % (
        state.seed, state.index, json.dumps(state.as_dict())))
    return "\n".join(lines)


def write_report(settings, outcomes, errors, wall, rig, seconds):
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    disagreeing = [outcome for outcome in outcomes if outcome["disagreements"]]
    comparisons = sum((outcome["comparisons"] for outcome in outcomes), Counter())
    record = {
        "seed": settings["seed"], "states": len(outcomes), "workers": rig.workers, "wall_seconds": round(wall, 1),
        "setup_seconds": round(rig.setup_seconds, 1),
        "phase_seconds": {phase: round(value, 1) for phase, value in sorted(seconds.items())},
        "comparisons": dict(sorted(comparisons.items())),
        "disagreements": [{"index": outcome["state"].index, "state": outcome["state"].as_dict(),
                           "reproducer": grammar.reproducer(outcome["state"],
                                                            topology.target_placeholders(outcome["slot"])),
                           "findings": [str(item) for item in outcome["disagreements"]]}
                          for outcome in disagreeing],
        "errors": errors,
    }
    (REPORT_DIR / "last-run.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    text = "\n".join(describe(outcome) for outcome in disagreeing)
    (REPORT_DIR / "last-run.txt").write_text(text + "\n")
    return record, text


# ----------------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------------

def planned_states(settings):
    if settings["states"]:
        with open(settings["states"], encoding="utf-8") as handle:
            return [grammar.State.from_dict(dict(item, index=item.get("index", number)))
                    for number, item in enumerate(json.load(handle))]
    return grammar.states(settings["seed"], settings["count"], settings["only"])


@pytest.fixture(scope="module")
def rig(request):
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: the differential test needs it (it never skips)")
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail("image %s is missing: build it with the harness (make setup)" % IMAGE)
    if not (VENV_BIN / "ansible").exists():
        pytest.fail("no %s/ansible: run `make setup` first" % VENV_BIN)
    settings = request.config.differential
    workers = max(1, min(settings["workers"], len(planned_states(settings))))
    made = Rig(workers)
    request.addfinalizer(made.remove)
    made.start()
    return made


def expected_topology(probe):
    """What the self-test state lets in: TCP arriving on eth1; UDP from the a-pair network."""
    if probe.port != topology.PORT:
        return False
    if probe.protocol == "tcp":
        return probe.vantage.arrives_on(probe.destination) == "eth1"
    return topology.in_networks(probe.vantage.address, topology.NAMED_NETWORKS["a-pair"].values())


def test_topology_is_what_the_oracle_assumes(rig):
    """Before trusting the network as the oracle: sources arrive unchanged, on the expected interface."""
    worker = Worker(rig, 0, port_range(None, rig.workers))
    try:
        state = grammar.State(seed=0, index=-1, ipv6="yes", default_incoming="deny", app_ports=None, ufw=(
            ("allow", "in", "on", "eth1", "to", "any", "port", "5061", "proto", "tcp"),
            ("allow", "from", topology.NAMED_NETWORKS["a-pair"]["ipv4"], "to", "any", "port", "5061", "proto", "udp"),
            ("allow", "from", topology.NAMED_NETWORKS["a-pair"]["ipv6"], "to", "any", "port", "5061", "proto", "udp"),
        ), before_rules=(), outside=(), activation="active")
        worker.target.sh(apply_script(state, worker.placeholders))
        results = worker.probe()
    finally:
        worker.close()
    wrong = ["%s: %s, expected %s" % (probe.key, results[probe.key], "open" if expected_topology(probe) else "not open")
             for probe in worker.plan if (results[probe.key] == "open") != expected_topology(probe)]
    assert not wrong, "the probe topology is not what the oracle assumes:\n" + "\n".join(wrong)


def test_modules_agree_with_the_network(rig, request):
    settings = request.config.differential
    todo = planned_states(settings)
    pending = queue.Queue()
    for state in todo:
        pending.put(state)
    outcomes, errors, seconds = [], [], Counter()
    lock = threading.Lock()

    def work(slot):
        worker = Worker(rig, slot)
        try:
            while True:
                try:
                    state = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcome = worker.run_state(state)
                except Exception as exc:  # pylint: disable=broad-exception-caught  # reported, the run fails
                    with lock:
                        errors.append("state %d (target %d): %s: %s" % (state.index, slot, type(exc).__name__, exc))
                    continue
                with lock:
                    outcomes.append(outcome)
        finally:
            with lock:
                seconds.update(worker.seconds)
            worker.close()

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(slot,), name="differential-%d" % slot)
               for slot in range(rig.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    outcomes.sort(key=lambda outcome: outcome["state"].index)
    record, text = write_report(settings, outcomes, errors, wall, rig, seconds)
    disagreeing = record["disagreements"]
    settings["summary"].append(
        "differential: seed %d, %d states in %.0f s (+%.0f s set-up, %d workers), %d comparisons, "
        "%d state(s) with disagreements, %d harness error(s); details in %s" % (
            settings["seed"], len(outcomes), wall, rig.setup_seconds, rig.workers,
            sum(record["comparisons"].values()), len(disagreeing), len(errors), REPORT_DIR / "last-run.txt"))
    assert not errors, "the harness failed on %d state(s):\n%s" % (len(errors), "\n".join(errors))
    assert len(outcomes) == len(todo)
    assert not disagreeing, "%d of %d states disagree (seed %d):\n%s" % (
        len(disagreeing), len(outcomes), settings["seed"], text)
