# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Sweeps of 1,000 and 10,000 loopback targets: sipguard.firewall.port_probe vs `nmap -sT`.

Run with `make bench-probe-sweep` or `.venv/bin/python bench/probe_sweep.py [--targets 1000,10000]`
(after `make setup`; as root it installs Debian's nmap with apt-get when it is missing). A figure
printer, not a test: nothing here asserts a target, and nothing it does leaves loopback.

For each target count N (default 1,000 then 10,000), what it sets up, in a child process it
starts and stops itself (only on 127.0.0.0/8, which the kernel routes to `lo` without any
address configuration; the child raises its RLIMIT_NOFILE soft limit for the sockets it holds):

  * "open"     40 % of N, addresses 127.1.x.y: a TLS SIP server on TCP (answers OPTIONS with
               200 OK) and a SIP responder on UDP, both on the port;
  * "closed"   40 %, 127.2.x.y: nothing bound (TCP reset, ICMP port unreachable);
  * "silent"   20 %, 127.3.x.y: TCP listeners with a backlog of 0 whose accept queue one
               connection of ours fills and nobody drains, so the kernel drops every further
               SYN without an answer; UDP sockets bound and never read.
  Nothing listens on PORT+1 on any of these addresses: a connect there gets a reset, also on
  the silent ones (port_probe's rtt_ports below).

That "silent" is an emulation: no firewall rule is added on this machine (none may be).
A real DROP rule behaves the same on the wire (SYNs are never answered), but the silence
comes from the listener here, not from a packet filter - targets filtered by a firewall
are in the container fleet benchmarks.

Then it probes the N addresses, each run in a fresh process (so that its wall time, CPU time
and peak RSS, from wait4(), are its own), port_probe with concurrency 256, timeout 1 s and
1 retry:

  1.  port_probe, TCP only, no TLS, no SIP - what `nmap -sT` does; no rtt_ports, so a silent
      target has no round trip to learn from and its 2 attempts share the 1 s window;
  1b. (1,000 only) the same with timeout 2 s - the total wait on silence of nmap's fixed row;
  2.  (1,000 only) `nmap -sT -Pn -n -p PORT --max-retries 1 --max-rtt-timeout 1000ms ...`, its
      RTT timeout fixed at 1 s, and the same with its adaptive timeout capped at 1 s;
  3.  nmap -sT as users run it: nmap's own timing (adaptive RTT timeout, its default retries and
      host timeout) with only what a fair comparison needs: -Pn -n -p PORT and port_probe's
      concurrency as nmap's parallelism (--min-parallelism 256 --max-parallelism 256); once with
      every target in one host group (--min-hostgroup N, as port_probe takes every target into
      one pool: the anchor of the ratio) and once in nmap's own host groups;
  4.  port_probe, TCP only, no TLS, no SIP, rtt_ports [PORT+1] and adapt_timeout true: every
      address's reset on PORT+1 teaches its round trip, so silence is concluded after the
      adapted window (never below 0.1 s, never above timeout);
  5.  (1,000 only) port_probe with its defaults (TCP and UDP, TLS handshake, SIP OPTIONS).

Prints per row the wall time, CPU time, peak RSS, wrong states and the state counts, for
port_probe the silence windows it used, and at the end the ratio port_probe (4) / nmap (3) at
every N (target <= 1.0x with 0 wrong states; printed, never asserted). Every child has a hard
time limit; every count is fixed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import resource
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from xml.etree import ElementTree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build"))

SHARES = {"open": 0.4, "closed": 0.4, "silent": 0.2}
COUNTS = {"open": 400, "closed": 400, "silent": 200}  # set by set_size()
NETS = {"open": 1, "closed": 2, "silent": 3}
CONCURRENCY, TIMEOUT, RETRIES = 256, 1.0, 1
CHILD_LIMIT = 180  # seconds any one child may run


def set_size(total):
    """The 40/40/20 % mix of `total` targets (every child is told the same total)."""
    for kind, share in SHARES.items():
        COUNTS[kind] = int(round(total * share))
    if sum(COUNTS.values()) != total or max(COUNTS.values()) > 250 * 255:
        sys.exit("--targets %d: no 40/40/20 split into at most 63,750 addresses per kind" % total)


def addresses(kind):
    net = NETS[kind]
    return ["127.%d.%d.%d" % (net, n // 250, n % 250 + 1) for n in range(COUNTS[kind])]


def layout():
    """The targets, mixed in a fixed order, and the kind of each."""
    kinds = {address: kind for kind in COUNTS for address in addresses(kind)}
    targets = sorted(kinds)
    random.Random(5061).shuffle(targets)
    return targets, kinds


def pick_port():
    """5061 unless something on this machine uses it (then the bench would measure that)."""
    for port in (5061, 15061, 25061):
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as sock:
                    sock.bind(("0.0.0.0", port))
        except OSError:
            continue
        return port
    sys.exit("ports 5061, 15061 and 25061 are all in use on this machine")


# --------------------------------------------------------------------------------------------
# The servers (child process: --serve)
# --------------------------------------------------------------------------------------------

def make_server_context(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.sip.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=60))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.sip.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def sip_answer(request):
    headers = {}
    for line in request.split("\r\n")[1:]:
        name, _sep, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return ("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=b\r\nCall-ID: %s\r\nCSeq: %s\r\n"
            "Server: bench-sbc\r\nAllow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\nContent-Length: 0\r\n\r\n"
            % (headers.get("via"), headers.get("from"), headers.get("to"), headers.get("call-id"),
               headers.get("cseq"))).encode()


async def serve(port):
    loop = asyncio.get_running_loop()
    directory = tempfile.mkdtemp(prefix="sipguard-bench-")
    context = make_server_context(directory)
    shutil.rmtree(directory)

    async def handle(reader, writer):
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(sip_answer(request.decode("utf-8", "replace")))
            await writer.drain()
            await asyncio.wait_for(reader.read(1), 5)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.transport.abort()

    class Udp(asyncio.DatagramProtocol):
        transport = None

        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(sip_answer(data.decode("utf-8", "replace")), addr)

    keep = []
    for address in addresses("open"):
        keep.append(await asyncio.start_server(handle, address, port, ssl=context, backlog=512))
        keep.append(await loop.create_datagram_endpoint(Udp, local_addr=(address, port)))
    fillers = []
    for address in addresses("silent"):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((address, port))
        listener.listen(0)
        filler = socket.create_connection((address, port), timeout=2)  # fills the accept queue
        quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        quiet.bind((address, port))
        fillers.extend((listener, filler, quiet))
    # prove the emulation before anyone measures it: one more SYN gets no answer
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.3)
    try:
        probe.connect((addresses("silent")[0], port))
        print("not-silent", flush=True)
    except (socket.timeout, TimeoutError):
        print("ready", flush=True)
    finally:
        probe.close()
    await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes our stdin
    for sock in fillers:
        sock.close()


# --------------------------------------------------------------------------------------------
# One sweep (child process: --sweep)
# --------------------------------------------------------------------------------------------

def sweep(port, full, targets_file, timeout=None, rtt_port=None):
    from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import run_probe
    from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ProbeRequest

    with open(targets_file) as handle:
        targets = handle.read().split()
    request = ProbeRequest.from_params(dict(
        targets=targets, port=port, timeout=timeout or TIMEOUT, retries=RETRIES, concurrency=CONCURRENCY,
        protocols=["tcp", "udp"] if full else ["tcp"], tls=full, sip=full,
        rtt_ports=[rtt_port] if rtt_port else [], adapt_timeout=True))
    started = time.monotonic()
    result = run_probe(request)
    wall = time.monotonic() - started
    states, windows = {}, []
    for record in result["probes"]:
        key = "%s/%s" % (record["address"], record["protocol"])
        states[key] = (record["state"], bool(record["sip"]), bool(record["tls"]))
        if record.get("window_ms") is not None:
            windows.append(int(round(record["window_ms"])))
    json.dump({"wall": wall, "counts": result["counts"], "states": states, "windows": sorted(windows)}, sys.stdout)


def measured(argv, stdin_text=None):
    """(stdout, stderr, wall seconds, peak RSS MiB, exit code) of a child with a hard time limit;
    its CPU seconds (user + system) in measured.cpu.

    wait4() gives the child's own ru_maxrss (RUSAGE_CHILDREN would be the largest so far).
    """
    started = time.monotonic()
    captured = (tempfile.TemporaryFile(), tempfile.TemporaryFile())
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
                             stdout=captured[0], stderr=captured[1])
    if stdin_text is not None:
        child.stdin.write(stdin_text)
        child.stdin.close()
    deadline = started + CHILD_LIMIT
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            child.kill()
            pid, status, usage = os.wait4(child.pid, 0)
            break
        time.sleep(0.005)
    wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    outputs = []
    for stream in captured:
        stream.seek(0)
        outputs.append(stream.read().decode("utf-8", "replace"))
        stream.close()
    measured.cpu = usage.ru_utime + usage.ru_stime
    return outputs[0], outputs[1], wall, usage.ru_maxrss / 1024.0, child.returncode


# --------------------------------------------------------------------------------------------
# nmap
# --------------------------------------------------------------------------------------------

def ensure_nmap():
    path = shutil.which("nmap")
    if path:
        return path, None
    if os.geteuid() != 0:
        return None, "nmap is not installed and this is not root (apt-get install -y nmap)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "nmap"]
    done = subprocess.run(install, env=env, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(install, env=env, capture_output=True, timeout=600, check=False)
    path = shutil.which("nmap")
    return path, None if path else "apt-get install nmap failed: %s" % done.stderr.decode()[-300:]


def nmap_adaptive_argv(nmap, port, targets_file, one_group=True):
    """nmap -sT as users run it: its own timing (adaptive RTT timeout, its default retries and
    host timeout), plus only what a fair comparison needs: -Pn (no host discovery: port_probe
    does none), -n (no DNS), -p PORT, and port_probe's concurrency as nmap's parallelism
    (--min/--max-parallelism 256). one_group: all targets in one host group
    (--min-hostgroup = the target count), as port_probe takes them into one pool; nmap's
    default group starts at a few hosts, which with one port per host caps its parallelism."""
    group = ["--min-hostgroup", str(sum(COUNTS.values()))] if one_group else []
    return [nmap, "-sT", "-Pn", "-n", "-p", str(port),
            "--min-parallelism", str(CONCURRENCY), "--max-parallelism", str(CONCURRENCY)] + group + [
        "-oX", "-", "-iL", targets_file]


def nmap_argv(nmap, port, targets_file, fixed):
    """nmap -sT with one retransmission, 256 probes in parallel, all hosts in one group.

    fixed: --min-rtt-timeout = --max-rtt-timeout = 1 s, so that every probe waits 1 s like
    port_probe does. Otherwise nmap adapts its wait to the measured round-trip time (on
    loopback: its --min-rtt-timeout floor, 100 ms) and gives up on silence much sooner.
    """
    ms = "%dms" % (TIMEOUT * 1000)
    group = str(sum(COUNTS.values()))
    timing = ["--initial-rtt-timeout", ms, "--max-rtt-timeout", ms] + (["--min-rtt-timeout", ms] if fixed else [])
    return [nmap, "-sT", "-Pn", "-n", "-p", str(port), "--max-retries", str(RETRIES)] + timing + [
        "--min-parallelism", str(CONCURRENCY), "--max-parallelism", str(CONCURRENCY),
        "--min-hostgroup", group, "--max-hostgroup", group,
        "--host-timeout", "%ds" % int(TIMEOUT * (RETRIES + 1) * 10),
        "-oX", "-", "-iL", targets_file]


def nmap_states(xml_text):
    states = {}
    for host in ElementTree.fromstring(xml_text).iter("host"):
        address = host.find("address").get("addr")
        port = host.find("ports/port/state")
        states[address] = port.get("state") if port is not None else "host-timeout"
    return states


# --------------------------------------------------------------------------------------------
# The bench
# --------------------------------------------------------------------------------------------

EXPECTED_TCP = {"open": "open", "closed": "closed", "silent": "filtered"}
EXPECTED_UDP = {"open": "open", "closed": "closed", "silent": "open|filtered"}


def tally(kinds, states, expected):
    """{kind: {state: n}} and the number of targets whose state was not the expected one."""
    table, wrong = {}, 0
    for address, kind in kinds.items():
        state = states.get(address, "missing")
        row = table.setdefault(kind, {})
        row[state] = row.get(state, 0) + 1
        wrong += state != expected[kind]
    return table, wrong


def show_table(table):
    return "; ".join("%s: %s" % (kind, ", ".join("%d %s" % (n, s) for s, n in sorted(table[kind].items())))
                     for kind in COUNTS)


def start_server(me, port, size):
    server = subprocess.Popen(me + ["--serve", str(port), "--size", str(size)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    ready, _w, _x = select.select([server.stdout], [], [], 120)
    line = server.stdout.readline().decode().strip() if ready else "no word within 120 s"
    if line != "ready":
        stop_server(server)
        sys.exit("the loopback servers did not start (%r)" % line)
    return server


def stop_server(server):
    server.stdin.close()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def one_size(me, nmap, port, size):
    """All rows at one target count; {row key: (wall, wrong)}."""
    set_size(size)
    targets, kinds = layout()
    results = {}
    with tempfile.NamedTemporaryFile("w", prefix="sipguard-targets-", suffix=".txt") as targets_file:
        targets_file.write("\n".join(targets) + "\n")
        targets_file.flush()
        name = targets_file.name
        print("\n== %d loopback targets (%s), port %d, concurrency %d, timeout %gs, retries %d; load average %s"
              % (len(targets), ", ".join("%d %s" % (n, k) for k, n in COUNTS.items()), port, CONCURRENCY,
                 TIMEOUT, RETRIES, load_average()))
        sweep_argv = me + ["--sweep", str(port), "--targets-file", name]
        runs = [("pp", "port_probe tcp, no rtt_ports", sweep_argv)]
        if size <= 1000:  # the fixed-window rows: silence costs a full timeout each, cheap only at 1,000
            runs.append(("pp2", "port_probe tcp, timeout %gs (nmap's wait)" % (TIMEOUT * (RETRIES + 1)),
                         sweep_argv + ["--timeout", str(TIMEOUT * (RETRIES + 1))]))
            if nmap:
                runs.append(("nmap-fixed", "nmap -sT, rtt timeout fixed at 1 s", nmap_argv(nmap, port, name, True)))
                runs.append(("nmap-max1", "nmap -sT, adaptive, max rtt 1 s, retries 1",
                             nmap_argv(nmap, port, name, False)))
        if nmap:
            runs.append(("nmap", "nmap -sT, nmap's own timing, one group", nmap_adaptive_argv(nmap, port, name)))
            runs.append(("nmap-dg", "nmap -sT, nmap's own timing, its groups",
                         nmap_adaptive_argv(nmap, port, name, one_group=False)))
        runs.append(("pp-rtt", "port_probe tcp, rtt_ports [%d], adaptive" % (port + 1),
                     sweep_argv + ["--rtt-port", str(port + 1)]))
        if size <= 1000:
            runs.append(("full", "port_probe defaults (tcp+udp, TLS, SIP)", sweep_argv + ["--full"]))
        server = start_server(me, port, size)
        try:
            _out, _err, idle_wall, idle_rss, _rc = measured(me + ["--idle"])
            print("  baseline: a Python process that imports _probe takes %.2f s (%.2f CPU-s) and peaks at %.1f MiB RSS"
                  % (idle_wall, measured.cpu, idle_rss))
            print("%-44s %9s %6s %12s %10s  %s" % ("run", "wall s", "CPU s", "peak RSS MiB", "wrong", "states"))
            for key, label, argv in runs:
                out, err, wall, rss, code = measured(argv)
                if code != 0:
                    print("%-44s failed (exit %s): %s" % (label, code, err.strip()[-400:]))
                    continue
                if key.startswith("nmap"):
                    table, wrong = tally(kinds, nmap_states(out), EXPECTED_TCP)
                    print("%-44s %9.2f %6.2f %12.1f %10d  %s" % (label, wall, measured.cpu, rss, wrong,
                                                                 show_table(table)))
                    results[key] = (wall, wrong)
                    continue
                report = json.loads(out)
                tcp = {k.split("/")[0]: v[0] for k, v in report["states"].items() if k.endswith("/tcp")}
                table, wrong = tally(kinds, tcp, EXPECTED_TCP)
                results[key] = (wall, wrong)
                print("%-44s %9.2f %6.2f %12.1f %10d  tcp %s"
                      % (label, wall, measured.cpu, rss, wrong, show_table(table)))
                windows = report["windows"]
                print("%-44s %9s %6s %12s %10s  (probe time inside the process: %.2f s; silence windows %s)"
                      % ("", "", "", "", "", report["wall"], (
                          "%d-%d ms, median %d ms, %d of %d at the timeout" % (
                              windows[0], windows[-1], windows[len(windows) // 2],
                              sum(1 for w in windows if w >= TIMEOUT * 1000), len(windows))
                          if windows else "-")))
                udp = {k.split("/")[0]: v[0] for k, v in report["states"].items() if k.endswith("/udp")}
                if udp:
                    table, wrong = tally(kinds, udp, EXPECTED_UDP)
                    print("%-44s %9s %6s %12s %10d  udp %s" % ("", "", "", "", wrong, show_table(table)))
                    sip = sum(1 for v in report["states"].values() if v[1])
                    tls = sum(1 for v in report["states"].values() if v[2])
                    print("%-44s %9s %6s %12s %10s  TLS details on %d, SIP answers on %d records"
                          % ("", "", "", "", "", tls, sip))
        finally:
            stop_server(server)
    return results


def load_average():
    with open("/proc/loadavg", encoding="ascii") as handle:
        return " ".join(handle.read().split()[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="1000,10000",
                        help="target counts, comma-separated, each a 40/40/20 %% open/closed/silent mix"
                             " (default %(default)s)")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sweep", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--targets-file", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--rtt-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--idle", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # the servers hold 2 sockets per open and 3 per silent target, plus the accepted connections
    want = 65536 if args.serve else 4096
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    if args.serve:
        set_size(args.size)
        needed = 2 * COUNTS["open"] + 3 * COUNTS["silent"] + 2 * CONCURRENCY + 64
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
            print("fd limit %d < %d needed" % (resource.getrlimit(resource.RLIMIT_NOFILE)[0], needed), flush=True)
            return None
        return asyncio.run(serve(args.serve))
    if args.sweep:
        return sweep(args.sweep, args.full, args.targets_file, args.timeout, args.rtt_port)
    if args.idle:
        from ansible_collections.sipguard.firewall.plugins.module_utils._probe import network, request  # noqa: F401
        return None

    if not os.path.isdir(os.path.join(ROOT, "build", "ansible_collections", "sipguard", "firewall")):
        sys.exit("build/ansible_collections/sipguard/firewall is missing: run `make setup` first")
    sizes = [int(part) for part in args.targets.split(",") if part.strip()]
    port = pick_port()
    nmap, nmap_problem = ensure_nmap()
    me = [sys.executable, os.path.abspath(__file__)]
    version = subprocess.run([nmap, "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0] \
        if nmap else "not run - %s" % nmap_problem
    print("port_probe sweeps of loopback targets; %d CPUs; nmap: %s" % (os.cpu_count(), version))
    print("  'silent' = full accept queues (SYNs dropped by the kernel) and UDP sockets nobody reads;"
          " no firewall rule is used. Firewall-filtered targets need the container fleet.")
    print("  rtt_ports: port %d, where nothing listens on any target address (a reset), the silent ones too."
          % (port + 1))
    results = {size: one_size(me, nmap, port, size) for size in sizes}

    print("\nport_probe with rtt_ports / nmap with its own timing (wall time, child start to exit;"
          " target <= 1.0x with 0 wrong states):")
    for size, rows in results.items():
        if "pp-rtt" not in rows or "nmap" not in rows:
            print("  %6d targets: -" % size)
            continue
        line = "  %6d targets: %.2f s / %.2f s = %.2fx (wrong states %d / %d)" % (
            size, rows["pp-rtt"][0], rows["nmap"][0], rows["pp-rtt"][0] / rows["nmap"][0], rows["pp-rtt"][1],
            rows["nmap"][1])
        if "nmap-dg" in rows:
            line += "; vs nmap in its own host groups %.2f s: %.2fx" % (
                rows["nmap-dg"][0], rows["pp-rtt"][0] / rows["nmap-dg"][0])
        print(line)
    print("\nwall s = the child process from start to exit (interpreter start-up and imports included);"
          " CPU s and peak RSS = that child's ru_utime + ru_stime and ru_maxrss (wait4).")
    print("Lower bound of the fixed window: port_probe sends its retries + 1 attempts within one timeout window,"
          " so a silent target without a round trip takes timeout = %gs (nmap with a fixed wait: %gs per target);"
          " silent probes share %d slots: at least ceil(silent / %d) x timeout." % (
              TIMEOUT, TIMEOUT * (RETRIES + 1), CONCURRENCY, CONCURRENCY))
    if nmap:
        print("nmap commands (N = the target count):")
        print("  %s" % " ".join(nmap_adaptive_argv("nmap", port, "TARGETS")).replace(str(sum(COUNTS.values())), "N"))
        print("  %s" % " ".join(nmap_adaptive_argv("nmap", port, "TARGETS", one_group=False)))
        if any(size <= 1000 for size in sizes):
            set_size(min(sizes))
            print("  %s (the fixed rows, 1,000 only)" % " ".join(nmap_argv("nmap", port, "TARGETS", True)))
            print("  %s" % " ".join(nmap_argv("nmap", port, "TARGETS", False)))
    return None


if __name__ == "__main__":
    main()
