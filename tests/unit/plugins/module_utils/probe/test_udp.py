# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""UDP probes: the OPTIONS datagram against responders, closed ports and silence on loopback only."""

from __future__ import annotations

import asyncio
import re
import socket
import time

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import udp
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.loopback import LOOPBACKS, UdpSip, free_port, request, udp_on_both


def test_udp_sip_responder_is_open_with_the_sip_answer():
    async def scenario():
        port, endpoints = await udp_on_both(UdpSip)
        try:
            return await probe_all(request(port=port, protocols=["udp"])), endpoints
        finally:
            for transport, _protocol in endpoints:
                transport.close()

    result, endpoints = asyncio.run(scenario())
    for record in result["probes"]:
        assert record["state"] == "open" and record["error"] is None and record["attempts"] == 1
        assert record["sip"]["status_code"] == 200 and record["sip"]["transport"] == "UDP"
        assert record["sip"]["server"] == "TestSBC/1.0"
        assert record["sip"]["allow"] == ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"]
    for _transport, protocol in endpoints:
        ((text, addr),) = protocol.received
        assert text.startswith("OPTIONS sip:") and "\r\nCSeq: 1 OPTIONS\r\n" in text
        # the Via names the port the datagram came from, so the answer can come back
        assert re.search(r"^Via: SIP/2\.0/UDP \S+:%d;branch=z9hG4bK\w+;rport\r$" % addr[1], text, re.MULTILINE)


def test_udp_provisional_then_final_and_a_retransmission():
    async def scenario():
        port, endpoints = await udp_on_both(lambda: UdpSip(provisional=True))
        late, late_endpoints = await udp_on_both(lambda: UdpSip(ignore=1))
        try:
            return (await probe_all(request(port=port, protocols=["udp"])),
                    await probe_all(request(port=late, protocols=["udp"], timeout=0.3, retries=2)),
                    late_endpoints)
        finally:
            for transport, _protocol in endpoints + late_endpoints:
                transport.close()

    provisional, retransmitted, late_endpoints = asyncio.run(scenario())
    for record in provisional["probes"]:
        assert record["sip"]["status_code"] == 200
    for record in retransmitted["probes"]:
        assert record["state"] == "open" and record["attempts"] == 2 and record["sip"]["status_code"] == 200
    for _transport, protocol in late_endpoints:
        first, second = (text for text, _addr in protocol.received)
        assert first == second  # a retransmission is the same request, same branch


def test_udp_closed_and_silent():
    async def scenario():
        closed = free_port(socket.SOCK_DGRAM)
        listeners = []
        try:
            port = free_port(socket.SOCK_DGRAM)
            for host in LOOPBACKS:  # bound, never read, never answers: what a DROP looks like
                listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
                listeners.append(listener)
                listener.bind((host, port))
            started = time.monotonic()
            silent_result = await probe_all(request(port=port, protocols=["udp"], timeout=1.0, retries=3))
            elapsed = time.monotonic() - started
            received = []
            for listener in listeners:  # what the silent side got: every retry, the same request
                listener.setblocking(False)
                datagrams = []
                while True:
                    try:
                        datagrams.append(listener.recv(65535))
                    except BlockingIOError:
                        break
                received.append(datagrams)
        finally:
            for listener in listeners:
                listener.close()
        return await probe_all(request(port=closed, protocols=["udp"])), silent_result, elapsed, received

    closed, silent_result, elapsed, received = asyncio.run(scenario())
    for record in closed["probes"]:
        assert (record["state"], record["sip"], record["error"]) == ("closed", None, None)
    for record in silent_result["probes"]:
        assert (record["state"], record["sip"], record["attempts"], record["rtt_ms"]) == \
            ("open|filtered", None, 4, None)
        assert record["error"] == "no reply to 4 datagram(s) within 1s"
    for datagrams in received:
        assert len(datagrams) == 4 and len(set(datagrams)) == 1
    assert silent_result["summary"]["exposed"] is False
    # the four datagrams share one 1 s window: silence is known after 1 s, not 4 s
    assert 0.95 < elapsed < 3


def test_udp_a_port_closing_before_the_retransmission_is_closed_on_the_second_datagram():
    async def scenario():
        port = free_port(socket.SOCK_DGRAM)
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.bind(("127.0.0.1", port))  # silent for the first datagram, gone before the second
        asyncio.get_running_loop().call_later(0.1, listener.close)
        try:
            return await probe_all(request(targets=["127.0.0.1"], port=port, protocols=["udp"],
                                           timeout=0.4, retries=1))
        finally:
            listener.close()

    (record,) = asyncio.run(scenario())["probes"]
    assert (record["state"], record["attempts"], record["error"], record["sip"]) == ("closed", 2, None, None)
    assert record["rtt_ms"] is not None and record["rtt_ms"] < 200


def test_udp_a_datagram_the_socket_cannot_take_at_once_is_sent_when_it_is_writable(monkeypatch):
    real = socket.socket
    refused = []

    class Busy(real):
        def send(self, data, flags=0):
            if self.type == socket.SOCK_DGRAM and not refused:
                refused.append(data)
                raise BlockingIOError()
            return super().send(data, flags)

    async def scenario():
        port, endpoints = await udp_on_both(UdpSip)
        monkeypatch.setattr(udp.socket, "socket", Busy)
        try:
            return await probe_all(request(targets=["127.0.0.1"], port=port, protocols=["udp"])), endpoints
        finally:
            monkeypatch.undo()
            for transport, _protocol in endpoints:
                transport.close()

    result, endpoints = asyncio.run(scenario())
    (record,) = result["probes"]
    assert (record["state"], record["attempts"], record["sip"]["status_code"]) == ("open", 1, 200)
    ((text, _addr),) = endpoints[0][1].received
    assert len(refused) == 1 and text.encode() == refused[0]
