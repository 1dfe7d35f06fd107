# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The silence window: nmap's estimator (pure), and probes on loopback whose window follows the
round trip learned from another port of the same address (silence emulated by replacing the
connect; the emulated delay and loss in a container are tests/faults/test_probe_delay.py)."""

from __future__ import annotations

import asyncio
import errno
import socket
import time

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import tcp
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.timing import (
    RTT_FLOOR,
    SIP_ANSWER_TIME,
    Path,
    next_wake,
    silence_deadline,
)
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.loopback import (
    LOOPBACKS,
    free_port,
    request,
)

PROBED, RTT_PORT = 5061, 2222


def test_the_first_sample_gives_five_round_trips_per_attempt():
    path = Path()
    assert path.rto() is None
    assert path.window(request(timeout=2.0, retries=1), "tcp") == 2.0  # nothing learned: timeout
    path.sample(0.1)
    assert (path.srtt, path.rttvar) == (0.1, 0.1)
    assert path.rto() == pytest.approx(0.5)
    assert path.window(request(timeout=2.0, retries=1), "tcp") == pytest.approx(1.0)
    assert path.window(request(timeout=2.0, retries=1), "udp") == pytest.approx(1.0 + SIP_ANSWER_TIME)
    assert path.window(request(timeout=2.0, retries=3), "tcp") == 2.0  # never above timeout
    assert path.window(request(timeout=2.0, retries=1, adapt_timeout=False), "tcp") == 2.0


def test_later_samples_smooth_as_nmap_does_and_the_floor_holds():
    path = Path()
    path.sample(0.0001)  # a LAN: rttvar starts at 5 ms, not at 0.1 ms
    assert path.rttvar == 0.005
    assert path.window(request(timeout=2.0, retries=1), "tcp") == RTT_FLOOR
    path.sample(0.0801)
    assert path.srtt == pytest.approx(0.0001 + 0.08 / 8)
    assert path.rttvar == pytest.approx(0.005 + (abs(0.0801 - 0.0001) - 0.005) / 4)  # |r - the old srtt|
    assert path.window(request(timeout=2.0, retries=1), "tcp") == pytest.approx(2 * (path.srtt + 4 * path.rttvar))


def test_a_sample_wakes_the_probes_waiting_on_the_path():
    path, woken = Path(), []
    path.listeners.add(lambda: woken.append(1))
    path.sample(0.01)
    path.sample(0.02)
    assert woken == [1, 1]


def test_attempts_are_spread_over_the_window():
    assert [next_wake(10.0, sent, 1.0, 3) for sent in range(5)] == [10.0, 10.25, 10.5, 10.75, 11.0]
    assert next_wake(10.0, 2, 0.5, 1) == 10.5  # all sent: the end of the window


def emulated(delays):
    """A tcp_connect that answers each port after its delay (seconds): None = never (a dropped
    SYN), "reset" entries as (seconds, "reset"); real sockets only for an open answer."""
    leftovers = []

    async def connect(family, sockaddr):
        delay = delays[sockaddr[1]]
        if delay is None:
            await asyncio.sleep(30)
        seconds, answer = delay if isinstance(delay, tuple) else (delay, "open")
        await asyncio.sleep(seconds)
        if answer == "reset":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        ours, theirs = socket.socketpair()
        leftovers.append(theirs)
        return ours
    return connect, leftovers


def run(**kwargs):
    started = time.monotonic()
    result = asyncio.run(probe_all(request(protocols=["tcp"], port=PROBED, tls=False, sip=False, **kwargs)))
    return result, time.monotonic() - started


def test_a_dropped_port_is_filtered_after_the_window_learned_from_a_reset_elsewhere(monkeypatch):
    connect, _leftovers = emulated({PROBED: None, RTT_PORT: (0.05, "reset")})
    monkeypatch.setattr(tcp, "tcp_connect", connect)
    result, elapsed = run(timeout=2.0, retries=1, rtt_ports=[RTT_PORT])
    for record in result["probes"]:
        assert (record["state"], record["attempts"]) == ("filtered", 2)
        # one sample of about 50 ms: rto = 5 x 50 ms, window = 2 x rto, about 0.5 s
        assert 450 <= record["window_ms"] < 800
        assert record["error"] == "no answer to 2 connect attempt(s) within %gs" % round(record["window_ms"] / 1000, 3)
        assert record["source"] == record["address"]  # loopback sends from the address itself
    assert elapsed < 1.2  # not the 2 s timeout


def test_without_a_round_trip_or_with_adapt_timeout_false_the_window_is_timeout(monkeypatch):
    connect, _leftovers = emulated({PROBED: None, RTT_PORT: None})
    monkeypatch.setattr(tcp, "tcp_connect", connect)
    result, elapsed = run(timeout=1.0, retries=1, rtt_ports=[RTT_PORT])
    assert [r["window_ms"] for r in result["probes"]] == [1000.0, 1000.0]
    assert 0.95 < elapsed < 1.8
    connect, _leftovers = emulated({PROBED: None, RTT_PORT: (0.01, "reset")})
    monkeypatch.setattr(tcp, "tcp_connect", connect)
    result, elapsed = run(timeout=1.0, retries=1, rtt_ports=[RTT_PORT], adapt_timeout=False)
    assert [r["window_ms"] for r in result["probes"]] == [1000.0, 1000.0]
    assert elapsed > 0.95


def test_an_open_port_answering_within_the_learned_window_is_open(monkeypatch):
    # the SYN-ACK comes after 4 x the round trip the other port showed: still inside 2 x rto
    connect, leftovers = emulated({PROBED: 0.2, RTT_PORT: (0.05, "reset")})
    monkeypatch.setattr(tcp, "tcp_connect", connect)
    result, _elapsed = run(timeout=2.0, retries=1, rtt_ports=[RTT_PORT])
    try:
        assert [(r["state"], r["window_ms"]) for r in result["probes"]] == [("open", None)] * 2
    finally:
        for sock in leftovers:
            sock.close()


def test_the_probed_ports_own_reset_teaches_its_udp_probe():
    """Real sockets on loopback: TCP to a closed port resets, the UDP probe of the same address
    meets a silent socket; the reset's round trip shortens the UDP window to the floor plus
    SIP's answer time instead of timeout."""
    port = free_port()
    listeners = []
    try:
        for host in LOOPBACKS:  # UDP bound and never read: silence
            listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            listeners.append(listener)
            listener.bind((host, port))
        started = time.monotonic()
        result = asyncio.run(probe_all(request(port=port, timeout=2.0, retries=1, tls=False, sip=False)))
        elapsed = time.monotonic() - started
    finally:
        for listener in listeners:
            listener.close()
    states = {(r["address"], r["protocol"]): r for r in result["probes"]}
    for host in LOOPBACKS:
        assert states[(host, "tcp")]["state"] == "closed"
        udp = states[(host, "udp")]
        assert udp["state"] == "open|filtered"
        assert SIP_ANSWER_TIME * 1000 <= udp["window_ms"] < 1000
    assert elapsed < 1.5


def test_rtt_ports_are_checked():
    from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ProbeRequestError

    with pytest.raises(ProbeRequestError, match="rtt_ports: port must be an integer from 1 to 65535, not 70000"):
        request(rtt_ports=[22, 70000])
    assert request(rtt_ports=[22, 22, 2222]).rtt_ports == (22, 2222)


def test_every_attempt_gets_its_share_of_the_window_also_when_it_shrank_meanwhile():
    req = request(timeout=2.0, retries=1)
    # adapted window 0.2 s; the second attempt started at 0.15 s (under the longer window it was
    # started with): silence is concluded at 0.15 + 0.1 s, not at 0.2 s
    assert silence_deadline(0.0, 0.15, 0.2, req) == pytest.approx(0.25)
    assert silence_deadline(0.0, 0.1, 0.2, req) == pytest.approx(0.2)
    assert silence_deadline(0.0, 1.9, 1.0, req) == 2.0  # never after timeout


def busy_loop(seconds):
    """What a controller with thousands of probes in flight does to one probe: the event loop
    comes back to it late. A callback that holds the loop (scheduled before the probe's attempt,
    so it runs between the attempt being planned and its connect really starting)."""
    asyncio.get_running_loop().call_soon(time.sleep, seconds)


def test_a_busy_controller_does_not_turn_a_late_started_attempt_into_silence(monkeypatch):
    """The window counts from the moment the SYN leaves, not from when the attempt was planned:
    the loop is held for 0.3 s before the connect starts, the reset comes 50 ms after it, the
    learned window is the 0.1 s floor. Counted from the plan the reset would come 0.25 s after the
    window ended and a closed port would be called filtered (seen once in the sweep at load 6)."""
    connect, _leftovers = emulated({PROBED: (0.05, "reset")})
    monkeypatch.setattr(tcp, "tcp_connect", connect)

    async def probe():
        path = Path()
        path.sample(0.001)
        assert path.window(request(timeout=2.0, retries=0), "tcp") == RTT_FLOOR
        busy_loop(0.3)
        return await tcp._connect_attempts(socket.AF_INET, ("127.0.0.1", PROBED), request(timeout=2.0, retries=0), path)

    sock, error, attempts, rtt, window = asyncio.run(probe())
    assert (sock, type(error), attempts, window) == (None, ConnectionRefusedError, 1, None)
    assert 0.04 <= rtt < 0.25  # from the connect's real start: the reset's 50 ms, not the loop's 0.3 s


def test_the_round_trip_of_a_connect_is_the_kernels_not_the_loops(monkeypatch):
    """A connected socket's sample is the kernel's own (TCP_INFO tcpi_rtt, microseconds on
    loopback), not the time the loop took to notice the SYN-ACK (held here for 0.3 s): a busy
    controller does not stretch every window it learns."""
    real_connect = tcp.tcp_connect

    async def noticed_late(family, sockaddr):
        sock = await real_connect(family, sockaddr)
        time.sleep(0.3)  # the loop busy with other probes before this one sees its answer
        return sock

    monkeypatch.setattr(tcp, "tcp_connect", noticed_late)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    try:
        async def probe():
            path = Path()
            found = await tcp._connect_attempts(socket.AF_INET, listener.getsockname(), request(timeout=2.0, retries=0), path)
            found[0].close()
            return path, found

        path, (_sock, error, _attempts, rtt, _window) = asyncio.run(probe())
    finally:
        listener.close()
    assert error is None and rtt >= 0.3  # the record's rtt_ms: when the probe saw the answer
    assert 0 < path.srtt < 0.05  # the path's sample: the kernel's round trip
    assert tcp.kernel_rtt(socket.socket()) is None  # nothing measured on an unconnected socket
