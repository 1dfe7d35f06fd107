# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The probe pool: at most ``concurrency`` sockets at once, records in target order, closed
loopback ports (a TCP reset, an ICMP port unreachable) over many targets; loopback only."""

from __future__ import annotations

import asyncio
import socket
import time

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import resolver, tcp
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.loopback import (
    DroppedConnects,
    free_port,
    request,
)

INET = (socket.AF_INET, socket.AF_INET6)


def counting_sockets(monkeypatch):
    """Replace socket.socket with one counting the TCP/UDP sockets open at once (the event
    loop's own AF_UNIX pair is not counted); returns (peak list, open set)."""
    real = socket.socket
    opened = set()
    peak = [0]

    class Counting(real):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):  # noqa: A002 - socket's names
            super().__init__(family, type, proto, fileno)
            if self.family in INET:
                opened.add(self)
                peak[0] = max(peak[0], len(opened))

        def close(self):
            opened.discard(self)
            super().close()

    monkeypatch.setattr(tcp.socket, "socket", Counting)
    return peak, opened


def test_many_closed_loopback_targets_stay_within_concurrency_sockets_in_order(monkeypatch):
    peak, opened = counting_sockets(monkeypatch)
    port = free_port()
    targets = ["127.0.4.%d" % n for n in range(1, 201)]
    result = asyncio.run(probe_all(request(targets=targets, port=port, protocols=["tcp", "udp"],
                                           timeout=1.0, retries=1, concurrency=16)))
    assert [(r["target"], r["protocol"]) for r in result["probes"]] == \
        [(target, protocol) for target in targets for protocol in ("tcp", "udp")]
    # ICMP port unreachable is closed, like a TCP reset; the first attempt answered
    assert [(r["state"], r["attempts"], r["error"]) for r in result["probes"]] == [("closed", 1, None)] * 400
    assert result["counts"]["closed"] == 400 and result["warnings"] == []
    assert peak[0] == 16  # all of the pool at once, never more
    assert not opened  # every socket closed


def test_silent_probes_beyond_concurrency_wait_for_a_worker_and_the_run_is_bounded(monkeypatch):
    silence = DroppedConnects()
    in_flight, peak = silence.in_flight, silence.peak
    monkeypatch.setattr(tcp, "tcp_connect", silence)
    targets = ["127.0.5.%d" % n for n in range(1, 13)]
    started = time.monotonic()
    result = asyncio.run(probe_all(request(targets=targets, protocols=["tcp"], timeout=0.2, retries=1,
                                           concurrency=4)))
    elapsed = time.monotonic() - started
    # 4 probes of 2 attempts each at once: 8 connects in flight, 12 probes in three waves of 0.2 s
    assert max(peak) == 8 and not in_flight
    assert [r["target"] for r in result["probes"]] == targets
    assert all((r["state"], r["attempts"]) == ("filtered", 2) for r in result["probes"])
    assert 0.55 < elapsed < 2


def test_host_names_resolved_late_keep_their_place_and_get_probed(monkeypatch):
    closed = free_port()
    real_getaddrinfo = socket.getaddrinfo
    delays = {"slow.example.org": 0.3, "fast.example.org": 0.0}

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's names
        if host in delays:
            time.sleep(delays[host])  # in the resolver's daemon thread
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        if host == "nowhere.example.org":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, port, family, type, proto, flags)

    monkeypatch.setattr(resolver.socket, "getaddrinfo", getaddrinfo)
    targets = ["slow.example.org", "127.0.6.1", "nowhere.example.org", "fast.example.org", "::1", "127.0.6.2"]
    result = asyncio.run(probe_all(request(targets=targets, port=closed, protocols=["udp", "tcp"],
                                           families=["ipv4"], concurrency=2)))
    # by target, then address, then protocol in the spec's order (tcp, udp) whatever the order asked
    assert [(r["target"], r["address"], r["protocol"], r["state"]) for r in result["probes"]] == [
        ("slow.example.org", "127.0.0.1", "tcp", "closed"),
        ("slow.example.org", "127.0.0.1", "udp", "closed"),
        ("127.0.6.1", "127.0.6.1", "tcp", "closed"),
        ("127.0.6.1", "127.0.6.1", "udp", "closed"),
        ("nowhere.example.org", None, "tcp", "error"),
        ("nowhere.example.org", None, "udp", "error"),
        ("fast.example.org", "127.0.0.1", "tcp", "closed"),
        ("fast.example.org", "127.0.0.1", "udp", "closed"),
        ("127.0.6.2", "127.0.6.2", "tcp", "closed"),
        ("127.0.6.2", "127.0.6.2", "udp", "closed"),
    ]
    assert result["warnings"] == ["target ::1 skipped: its family is not in families (ipv4)"]


def test_an_unexpected_failure_cancels_the_other_probes_and_is_raised(monkeypatch):
    connect = DroppedConnects(fail_for=["127.0.7.3"])
    running = connect.in_flight
    monkeypatch.setattr(tcp, "tcp_connect", connect)
    targets = ["127.0.7.%d" % n for n in range(1, 9)]

    async def scenario():
        started = time.monotonic()
        try:
            await probe_all(request(targets=targets, protocols=["tcp"], timeout=5.0, concurrency=4))
        except RuntimeError as exc:
            return str(exc), time.monotonic() - started, list(running)
        return None, None, None

    error, elapsed, left = asyncio.run(scenario())
    assert (error, left) == ("a bug", [])
    assert elapsed < 1
