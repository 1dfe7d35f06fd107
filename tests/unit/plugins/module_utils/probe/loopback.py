# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Loopback servers for the probe tests: SIP over TCP/TLS and UDP, silent ones, free ports.

Every socket here is bound to 127.0.0.1 or ::1, on ports the tests bind; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ProbeRequest

LOOPBACKS = ("127.0.0.1", "::1")


ALLOW = "INVITE, ACK, CANCEL, OPTIONS, BYE"


def free_port(kind=socket.SOCK_STREAM):
    """A port free on both 127.0.0.1 and ::1 right now (bound, then closed)."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET, kind) as four:
            four.bind(("127.0.0.1", 0))
            port = four.getsockname()[1]
            with socket.socket(socket.AF_INET6, kind) as six:
                try:
                    six.bind(("::1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no port free on both loopbacks")


def sip_reply(request_text, status="200 OK", extra=("Server: TestSBC/1.0", "Allow: " + ALLOW)):
    """A UAS answer (RFC 3261 8.2.6) copying Via, From, To, Call-ID and CSeq from the request."""
    headers = {}
    for line in request_text.split("\r\n")[1:]:
        name, _sep, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    lines = ["SIP/2.0 " + status,
             "Via: " + headers["via"],
             "From: " + headers["from"],
             "To: " + headers["to"] + ";tag=uas1",
             "Call-ID: " + headers["call-id"],
             "CSeq: " + headers["cseq"]]
    lines.extend(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def start_on_both(handler, port=None, **kwargs):
    """asyncio stream servers on 127.0.0.1 and ::1, on the same port."""
    for _attempt in range(20):
        chosen = port or free_port()
        servers = []
        try:
            for host in LOOPBACKS:
                servers.append(await asyncio.start_server(handler, host, chosen, **kwargs))
        except OSError:
            for server in servers:
                server.close()
            if port:
                raise
            continue
        return chosen, servers
    raise RuntimeError("could not bind both loopbacks")


async def stop(servers):
    for server in servers:
        server.close()
        await server.wait_closed()


def sip_server(received):
    """A SIP UAS over a stream: answers OPTIONS with 200 OK, Server and Allow."""
    async def handle(reader, writer):
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            received.append(request.decode())
            writer.write(sip_reply(request.decode()))
            await writer.drain()
            await asyncio.wait_for(reader.read(1), 5)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
    return handle


async def silent(reader, writer):
    """Accepts and says nothing (like a TCP proxy with no backend), until the client goes."""
    try:
        await asyncio.wait_for(reader.read(), 5)
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


class UdpSip(asyncio.DatagramProtocol):
    """Answers every OPTIONS datagram; optionally with 100 Trying first, or after ignoring some."""

    def __init__(self, provisional=False, ignore=0):
        self.provisional = provisional
        self.ignore = ignore
        self.received = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.received.append((data.decode(), addr))
        if len(self.received) <= self.ignore:
            return
        if self.provisional:
            self.transport.sendto(sip_reply(data.decode(), "100 Trying", extra=()), addr)
        self.transport.sendto(sip_reply(data.decode()), addr)


async def udp_on_both(factory):
    for _attempt in range(20):
        port = free_port(socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        endpoints = []
        try:
            for host in LOOPBACKS:
                endpoints.append(await loop.create_datagram_endpoint(factory, local_addr=(host, port)))
        except OSError:
            for transport, _protocol in endpoints:
                transport.close()
            continue
        return port, endpoints
    raise RuntimeError("could not bind both loopbacks")


class DroppedConnects:
    """A replacement for tcp.tcp_connect that never answers (a dropped SYN, emulated: nothing
    here touches a firewall), keeping the connects in flight and how many were at each start;
    a connect to an address in fail_for raises RuntimeError instead (a bug in the probe)."""

    def __init__(self, fail_for=()):
        self.in_flight, self.peak, self.fail_for = [], [], set(fail_for)

    async def __call__(self, family, sockaddr):
        if sockaddr[0] in self.fail_for:
            raise RuntimeError("a bug")
        self.in_flight.append(sockaddr)
        self.peak.append(len(self.in_flight))
        try:
            await asyncio.sleep(30)
        finally:
            self.in_flight.remove(sockaddr)


def request(**kwargs):
    params = dict(targets=list(LOOPBACKS), timeout=1.0, retries=0)
    params.update(kwargs)
    return ProbeRequest.from_params(params)


def by_key(result):
    return {(r["address"], r["protocol"]): r for r in result["probes"]}
