# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A UDP probe of one address: SIP OPTIONS as the datagram, retransmitted within one window; a
reply is open, an ICMP port unreachable closed, silence open|filtered.

Private to the sipguard.firewall collection: no compatibility promise outside it.

A plain connected non-blocking socket read with event-loop callbacks (no datagram transport).
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.records import (
    add_error,
    ms,
    record_os_error,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.sip import (
    SipParseError,
    build_options,
    parse_sip_response,
    sip_summary,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.timing import (
    next_wake,
    settle,
    silence_deadline,
    window_text,
)

# what one read of a datagram socket takes (as asyncio's datagram transports read)
_MAX_DATAGRAM = 256 * 1024


class _Datagrams:
    """A connected non-blocking datagram socket, read and written by loop callbacks, no transport.

    What arrives - bytes, or the OSError an ICMP error gives (ECONNREFUSED for port
    unreachable) - queues up, as a datagram transport would hand it to its protocol; a datagram
    the socket cannot take at once waits for it to be writable. ``next(timeout)`` reads what is
    already there without a wait, else waits on one future with a timer (not a task per wait,
    like asyncio.wait_for): a sweep of thousands of UDP probes pays a callback per wait, and no
    transport and its start-up per probe."""

    def __init__(self, loop, sock):
        self.loop = loop
        self.sock = sock
        self.items = collections.deque()
        self.unsent = collections.deque()
        self.waiter = None
        self.reading = False

    def wake(self):
        """End the current wait: something arrived, or the silence window changed."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _arrived(self, item):
        self.items.append(item)
        self.wake()

    def _read_ready(self):
        try:
            data = self.sock.recv(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._arrived(exc)
        else:
            self._arrived(data)

    def _write_ready(self):
        while self.unsent:
            try:
                self.sock.send(self.unsent[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._arrived(exc)
            self.unsent.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def send(self, datagram):
        """Send now, or once the socket is writable; an OSError is an arrival, like a reply."""
        if self.unsent:
            self.unsent.append(datagram)
            return
        try:
            self.sock.send(datagram)
        except (BlockingIOError, InterruptedError):
            self.unsent.append(datagram)
            self.loop.add_writer(self.sock.fileno(), self._write_ready)
        except OSError as exc:
            self._arrived(exc)

    async def next(self, timeout):
        """The next datagram or error, or None when none came within timeout seconds."""
        if not self.items:
            self._read_ready()  # on loopback an ICMP error is already there after the send
        if not self.items:
            if not self.reading:
                self.loop.add_reader(self.sock.fileno(), self._read_ready)
                self.reading = True
            self.waiter = self.loop.create_future()
            timer = self.loop.call_later(max(0.0, timeout), settle, self.waiter)
            try:
                await self.waiter
            finally:
                timer.cancel()
                self.waiter = None
        return self.items.popleft() if self.items else None

    def close(self):
        if self.reading:
            self.loop.remove_reader(self.sock.fileno())
        if self.unsent:
            self.loop.remove_writer(self.sock.fileno())
        self.sock.close()


async def probe_udp(record, family, sockaddr, request, path):
    """Fill record: send OPTIONS as the datagram; reply = open, ICMP refused = closed, silence = open|filtered.

    Silence is concluded after the path's UDP window (``timing.Path.window``), read again at
    every wake; once anything answered, the final answer is awaited until ``timeout``."""
    loop = asyncio.get_running_loop()
    timeout = request.timeout
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(sockaddr)  # connected: ICMP port unreachable comes back as ECONNREFUSED
        local = sock.getsockname()
    except OSError as exc:
        sock.close()
        return record_os_error(record, exc)
    datagrams = _Datagrams(loop, sock)
    path.listeners.add(datagrams.wake)
    try:
        datagram = build_options(record["target"], record["port"], "UDP", local[0], local[1])
        reply = None
        provisional = None
        started = last_sent = time.monotonic()
        window = path.window(request, "udp")
        while True:
            now = time.monotonic()
            if reply is None:
                window = path.window(request, "udp")  # a sample since the last wake shrinks it
            if reply is None and record["attempts"] <= request.retries \
                    and now >= next_wake(started, record["attempts"], window, request.retries):
                datagrams.send(datagram)  # a retransmission is the same request (same branch)
                record["attempts"] += 1
                last_sent = now
            # once anything answered, no more datagrams: wait for the final answer until timeout
            if reply is not None:
                wake = started + timeout
            else:
                deadline = silence_deadline(started, last_sent, window, request)
                wake = next_wake(started, record["attempts"], window, request.retries, deadline)
            item = await datagrams.next(wake - time.monotonic())
            if item is None:
                if reply is not None and time.monotonic() >= started + timeout:
                    break
                if reply is None:
                    window = path.window(request, "udp")
                    deadline = silence_deadline(started, last_sent, window, request)
                    if time.monotonic() >= deadline:
                        window = deadline - started  # what the record says: when silence was concluded
                        break
                continue
            if isinstance(item, Exception):
                if record["attempts"] == 1 and isinstance(item, ConnectionRefusedError):
                    path.sample(time.monotonic() - started)  # an ICMP port unreachable: one round trip
                return record_os_error(record, item, time.monotonic() - last_sent)
            if record["rtt_ms"] is None:
                record["rtt_ms"] = ms(time.monotonic() - last_sent)
            reply = item
            try:
                parsed = parse_sip_response(item)
            except SipParseError:
                break  # any reply proves the port open; keep the first one for the error text
            if parsed["status_code"] >= 200:
                provisional = None
                reply = parsed
                break
            provisional = parsed  # open; no more datagrams, wait for the final answer
        if reply is None:
            record["state"], record["window_ms"] = "open|filtered", ms(window)
            add_error(record, "no reply to %d datagram(s) within %s" % (record["attempts"], window_text(window)))
            return record
        record["state"] = "open"
        answer = provisional or reply
        if not request.sip:
            return record
        if isinstance(answer, bytes):
            try:
                parse_sip_response(answer)
            except SipParseError as exc:
                add_error(record, "SIP: %s" % exc)
            return record
        record["sip"] = sip_summary(answer, "UDP", record["rtt_ms"])
        return record
    finally:
        path.listeners.discard(datagrams.wake)
        datagrams.close()
