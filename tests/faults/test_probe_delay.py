# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The probe's round-trip-adaptive silence window under emulated delay, jitter and loss.

One container on the test network: TCP listeners on 5061 (the open port) and 2222 (the port the
probe times the round trip on, as the role uses the SSH port), 5062 dropped by iptables. Inside
it, tests/harness/nfqueue_delay.py holds every packet of 5061 and 2222, both ways, for half the
emulated round trip (plus jitter), or drops a fraction - the path's delay, which the probe
must learn and never undercut. The probes run from this machine, in-process, many at once.

Asserted: an open port is always open and a dropped one always filtered, the dropped one after a
window derived from the round trip (well below timeout, never below the round trip's order), and
the whole timeout when nothing of the host answers. Printed (pytest -s): the figures per case, and
the loss case's wrongly-filtered count at retries 1, adaptive and fixed side by side.

Nothing here touches this machine's firewall: iptables runs in the container only.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ProbeRequest
from ansible_collections.sipguard.firewall.tests.faults.fleet_harness import IMAGE, NETWORK, ROOT, run

NAME = "sips-delay-1"
OPEN, DROPPED, RTT_PORT = 5061, 5062, 2222
DELAYER = os.path.join(ROOT, "tests", "harness", "nfqueue_delay.py")
PROBES = 80  # per port and case
FIGURES = []

SETUP = """
cd /tmp
python3 -m http.server {open} > /dev/null 2>&1 &
python3 -m http.server {rtt} > /dev/null 2>&1 &
iptables -A INPUT -p tcp --dport {dropped} -j DROP
""".format(open=OPEN, rtt=RTT_PORT, dropped=DROPPED)
# queued only while a delayer is bound (rules added after it, removed before it stops)
RULES = ("INPUT -p tcp -m multiport --dports {open},{rtt} -j NFQUEUE --queue-num 1".format(open=OPEN, rtt=RTT_PORT),
         "OUTPUT -p tcp -m multiport --sports {open},{rtt} -j NFQUEUE --queue-num 1".format(open=OPEN, rtt=RTT_PORT))


@pytest.fixture(scope="module")
def target():
    run(["podman", "rm", "-f", "-t", "0", NAME], check=False)
    try:
        run(["podman", "run", "-d", "--name", NAME, "--network", NETWORK, "--cap-add", "NET_ADMIN",
             "--cap-add", "NET_RAW", IMAGE])
        run(["podman", "cp", DELAYER, "%s:/nfqueue_delay.py" % NAME])
        run(["podman", "exec", NAME, "sh", "-c", SETUP])
        network = json.loads(run(["podman", "inspect", NAME]).stdout)[0]["NetworkSettings"]["Networks"][NETWORK]
        yield network["IPAddress"]
    finally:
        run(["podman", "rm", "-f", "-t", "0", NAME], check=False)
        if FIGURES:
            print("\ncase                                   probes open->open dropped->filtered "
                  "window ms (median/max)  wall s")
            for row in FIGURES:
                print("%-38s %6d %9s %17s %22s %7.1f" % row)


def emulate(delay_ms, jitter_ms, loss):
    """Restart the delayer in the container with these figures; wait until its queue is bound."""
    script = (
        "for rule in %(rules)s; do iptables -D $rule 2>/dev/null; done; pkill -f '^python3 /nfqueue_delay'; "
        "while pgrep -f '^python3 /nfqueue_delay' > /dev/null; do sleep 0.05; done; rm -f /tmp/delay.log; "
        "python3 /nfqueue_delay.py --queue 1 --delay-ms %(delay)s --jitter-ms %(jitter)s --loss %(loss)s"
        " > /tmp/delay.log 2>&1 & "
        "for i in $(seq 100); do grep -q bound /tmp/delay.log 2>/dev/null && break; sleep 0.05; done; "
        "grep -q bound /tmp/delay.log || { cat /tmp/delay.log; exit 1; }; "
        "iptables -I %(input)s && iptables -I %(output)s"
    ) % dict(rules=" ".join("'%s'" % rule for rule in RULES), delay=delay_ms, jitter=jitter_ms, loss=loss,
             input=RULES[0], output=RULES[1])
    run(["podman", "exec", NAME, "sh", "-c", script], timeout=60)


def probe_many(address, port, count, **params):
    """count probes of address:port at once (TCP only: the connect's state), their records and wall time."""
    base = dict(targets=[address], port=port, protocols=["tcp"], tls=False, sip=False)
    base.update(params)

    async def many():
        return await asyncio.gather(*[probe_all(ProbeRequest.from_params(base)) for _n in range(count)])

    started = time.monotonic()
    results = asyncio.run(many())
    return [result["probes"][0] for result in results], time.monotonic() - started


def case(label, address, **params):
    """Probe the open and the dropped port PROBES times each; record the figures; the records."""
    opened, wall_open = probe_many(address, OPEN, PROBES, **params)
    dropped, wall_dropped = probe_many(address, DROPPED, PROBES, **params)
    windows = [record["window_ms"] for record in dropped if record["window_ms"] is not None]
    FIGURES.append((label, PROBES, "%d/%d" % (sum(r["state"] == "open" for r in opened), PROBES),
                    "%d/%d" % (sum(r["state"] == "filtered" for r in dropped), PROBES),
                    "%.0f / %.0f" % (statistics.median(windows), max(windows)) if windows else "-",
                    wall_open + wall_dropped))
    return opened, dropped


def states(records):
    return sorted(set(record["state"] for record in records))


def test_at_100_ms_round_trip_the_window_follows_it_and_calls_no_open_port_filtered(target):
    emulate(100, 40, 0)
    opened, dropped = case("100 ms +/- 40, no loss, timeout 3", target, timeout=3.0, retries=1, rtt_ports=[RTT_PORT])
    assert states(opened) == ["open"], [r for r in opened if r["state"] != "open"][:3]
    assert states(dropped) == ["filtered"]
    rtts = [record["rtt_ms"] for record in opened]
    # the delay is real: each way 50 ms +/- 20, so the round trip is 60-140 ms, timed from the
    # moment the SYN left
    assert min(rtts) >= 60
    for record in dropped:
        # a first sample r of 60 ms or more (the kernel's round trip of the timing connect):
        # 2 attempts x 5 r; below the 3 s timeout, far above r
        assert 600 <= record["window_ms"] < 2900, record
    assert statistics.median(record["window_ms"] for record in dropped) < 2000


def test_at_300_ms_round_trip_the_window_grows_with_it(target):
    emulate(300, 60, 0)
    opened, dropped = case("300 ms +/- 60, no loss, timeout 4", target, timeout=4.0, retries=1, rtt_ports=[RTT_PORT])
    assert states(opened) == ["open"], [r for r in opened if r["state"] != "open"][:3]
    assert states(dropped) == ["filtered"]
    assert min(record["rtt_ms"] for record in opened) >= 240  # each way 150 ms +/- 30
    for record in dropped:  # 2 x 5 x 300 ms or more, capped at timeout (a sample that queued long)
        assert 2000 <= record["window_ms"] <= 4000, record
    assert statistics.median(record["window_ms"] for record in dropped) < 3800


def test_with_5_percent_loss_enough_retries_keep_every_open_port_open(target):
    emulate(100, 40, 0.05)
    # a probe fails only if all 6 attempts lose the SYN or the SYN-ACK: 0.0975 ** 6, about 1e-6
    opened, dropped = case("100 ms, 5 % loss, retries 5, timeout 3", target, timeout=3.0, retries=5,
                           rtt_ports=[RTT_PORT])
    assert states(opened) == ["open"], [r for r in opened if r["state"] != "open"][:3]
    assert states(dropped) == ["filtered"]
    # what retries 1 gives on this path, adaptive and fixed side by side (printed, not asserted:
    # about 1 % of probes lose both attempts, whatever the window)
    for adapt in (True, False):
        records, wall = probe_many(target, OPEN, PROBES * 2, timeout=2.0, retries=1, rtt_ports=[RTT_PORT],
                                   adapt_timeout=adapt)
        wrong = sum(record["state"] != "open" for record in records)
        FIGURES.append(("  retries 1, adapt_timeout %s" % adapt, PROBES * 2, "%d/%d" % (PROBES * 2 - wrong, PROBES * 2),
                        "-", "-", wall))


def test_a_host_that_answers_on_no_timed_port_keeps_the_whole_timeout(target):
    emulate(100, 40, 0)
    records, _wall = probe_many(target, DROPPED, 10, timeout=1.5, retries=1, rtt_ports=[DROPPED])
    assert [(record["state"], record["window_ms"]) for record in records] == [("filtered", 1500.0)] * 10
