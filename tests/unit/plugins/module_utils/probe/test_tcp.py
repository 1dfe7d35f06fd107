# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""TCP probes against servers on loopback only; silence emulated by replacing the connect.

Silence (TCP "filtered") cannot be produced on loopback without a firewall, and this machine's
firewall is never touched, so it is emulated by replacing ``tcp.tcp_connect``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import tcp
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.loopback import (
    LOOPBACKS,
    DroppedConnects,
    free_port,
    request,
    silent,
    sip_server,
    start_on_both,
    stop,
)


def test_plain_tcp_open_without_tls_or_sip_and_closed_port():
    async def scenario():
        port, servers = await start_on_both(silent)
        closed = free_port()
        try:
            opened = await probe_all(request(port=port, protocols=["tcp"], tls=False, sip=False))
        finally:
            await stop(servers)
        return opened, await probe_all(request(port=closed, protocols=["tcp"]))

    opened, closed = asyncio.run(scenario())
    for record in opened["probes"]:
        assert (record["state"], record["tls"], record["sip"], record["error"]) == ("open", None, None, None)
    for record in closed["probes"]:
        assert (record["state"], record["tls"], record["sip"], record["error"]) == ("closed", None, None, None)
        assert record["rtt_ms"] is not None and record["attempts"] == 1
    assert closed["summary"]["exposed"] is False
    assert closed["counts"]["closed"] == 2


def test_a_proxy_that_accepts_and_says_nothing_is_open_without_sip():
    async def scenario():
        port, servers = await start_on_both(silent)
        try:
            started = time.monotonic()
            with_tls = await probe_all(request(port=port, protocols=["tcp"], timeout=0.5))
            plain = await probe_all(request(port=port, protocols=["tcp"], timeout=0.5, tls=False))
            return with_tls, plain, time.monotonic() - started
        finally:
            await stop(servers)

    with_tls, plain, elapsed = asyncio.run(scenario())
    for record in with_tls["probes"]:
        assert (record["state"], record["tls"], record["sip"]) == ("open", None, None)
        assert record["error"] == "TLS: no handshake within 0.5s"
    for record in plain["probes"]:
        assert (record["state"], record["tls"], record["sip"]) == ("open", None, None)
        assert record["error"] == "SIP: no answer to OPTIONS over TCP within 0.5s"
    assert with_tls["summary"]["exposed"] is True and with_tls["summary"]["sip_answered"] is False
    assert elapsed < 4  # two runs, each bounded by one timeout after the connect


def test_a_plain_sip_server_and_a_non_sip_server_over_tcp():
    async def http(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        port, servers = await start_on_both(sip_server([]))
        other, others = await start_on_both(http)
        try:
            return (await probe_all(request(port=port, protocols=["tcp"], tls=False)),
                    await probe_all(request(port=other, protocols=["tcp"], tls=False)))
        finally:
            await stop(servers + others)

    sip, not_sip = asyncio.run(scenario())
    for record in sip["probes"]:
        assert record["state"] == "open" and record["sip"]["transport"] == "TCP"
        assert record["sip"]["status_code"] == 200 and record["tls"] is None
    for record in not_sip["probes"]:
        assert record["state"] == "open" and record["sip"] is None
        assert record["error"].startswith("SIP: not a SIP response: 'HTTP/1.1 400 Bad Request'")


def test_tcp_silence_is_filtered_after_every_attempt_within_one_window(monkeypatch):
    calls = []
    cancelled = []

    async def never_answers(family, sockaddr):
        calls.append((sockaddr[0], time.monotonic()))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(sockaddr[0])
            raise

    monkeypatch.setattr(tcp, "tcp_connect", never_answers)
    started = time.monotonic()
    result = asyncio.run(probe_all(request(protocols=["tcp"], timeout=1.0, retries=3)))
    elapsed = time.monotonic() - started
    for record in result["probes"]:
        assert (record["state"], record["attempts"], record["rtt_ms"], record["tls"]) == ("filtered", 4, None, None)
        assert record["error"] == "no answer to 4 connect attempt(s) within 1s"
    for address in LOOPBACKS:
        offsets = [moment - started for host, moment in calls if host == address]
        # attempt k starts k x timeout / (retries + 1) into the window: 0, 0.25, 0.5, 0.75 s
        assert len(offsets) == 4
        for attempt, offset in enumerate(offsets):
            assert attempt * 0.25 - 0.01 <= offset < (attempt + 1) * 0.25
    assert sorted(cancelled) == ["127.0.0.1"] * 4 + ["::1"] * 4  # no attempt left running
    assert 0.95 < elapsed < 3  # one window, not timeout x (retries + 1) = 4 s
    assert result["counts"]["filtered"] == 2


def test_a_later_attempt_answering_decides_and_the_others_are_cancelled(monkeypatch):
    calls = {}
    cancelled = []
    leftovers = []

    async def first_is_lost(family, sockaddr):
        attempt = calls[sockaddr[0]] = calls.get(sockaddr[0], 0) + 1
        if attempt == 1:  # the first SYN is lost: this attempt would wait forever
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(sockaddr[0])
                raise
        if sockaddr[0] == "::1":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        ours, theirs = socket.socketpair()
        leftovers.append(theirs)
        return ours

    monkeypatch.setattr(tcp, "tcp_connect", first_is_lost)
    started = time.monotonic()
    result = asyncio.run(probe_all(request(protocols=["tcp"], timeout=2.0, retries=1, tls=False, sip=False)))
    elapsed = time.monotonic() - started
    states = {record["address"]: record for record in result["probes"]}
    assert (states["127.0.0.1"]["state"], states["127.0.0.1"]["attempts"]) == ("open", 2)
    assert (states["::1"]["state"], states["::1"]["attempts"]) == ("closed", 2)
    for record in result["probes"]:
        assert record["rtt_ms"] is not None and record["rtt_ms"] < 500  # from the answering attempt
    assert sorted(cancelled) == ["127.0.0.1", "::1"]
    assert elapsed < 1.9  # decided by the answer at about 1 s, not by the end of the window
    for sock in leftovers:
        sock.close()


def test_icmp_unreachable_is_final_and_filtered(monkeypatch):
    async def unreachable(family, sockaddr):
        raise OSError(errno.EHOSTUNREACH, "No route to host")

    monkeypatch.setattr(tcp, "tcp_connect", unreachable)
    result = asyncio.run(probe_all(request(protocols=["tcp"], retries=3)))
    for record in result["probes"]:
        assert (record["state"], record["attempts"]) == ("filtered", 1)
        assert "No route to host" in record["error"]


def test_concurrency_is_bounded_and_the_run_is_not_serial(monkeypatch):
    slow_silence = DroppedConnects()
    peak = slow_silence.peak
    monkeypatch.setattr(tcp, "tcp_connect", slow_silence)
    targets = ["127.0.3.%d" % n for n in range(1, 41)]
    result = asyncio.run(probe_all(request(targets=targets, protocols=["tcp"], timeout=0.1, concurrency=8)))
    assert max(peak) == 8
    assert [r["target"] for r in result["probes"]] == targets
    started = time.monotonic()
    asyncio.run(probe_all(request(targets=targets, protocols=["tcp"], timeout=0.3, retries=1, concurrency=256)))
    assert time.monotonic() - started < 1.5  # about one timeout, not 40 times that


def test_tcp_connect_fails_as_sock_connect_does():
    port = free_port()

    async def scenario():
        failures = []
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            sockaddr = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4]
            for connect in (tcp.tcp_connect, loop_sock_connect):
                try:
                    await connect(family, sockaddr)
                except OSError as exc:
                    failures.append((type(exc), exc.errno, exc.strerror))
        return failures

    async def loop_sock_connect(family, sockaddr):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, sockaddr)

    failures = asyncio.run(scenario())
    assert len(failures) == 4
    assert failures[0] == failures[1] and failures[2] == failures[3]
    assert failures[0] == (ConnectionRefusedError, errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', %d)" % port)
