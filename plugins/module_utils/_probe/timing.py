# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How long a probe listens before it calls silence: the round trip learned per address, the
silence window derived from it, when attempts start, and waits settled by the first of several
futures or a timer.

Private to the sipguard.firewall collection: no compatibility promise outside it.

The silence window. Without anything learned it is ``timeout``. Once the round trip to an
address has been measured (an answer from any of its ports: a connect or a reset on an
``rtt_ports`` port, the probed port's own SYN-ACK or reset, an ICMP port unreachable), it is
derived from that, as nmap derives its retransmission timeout::

    first sample r:  srtt = r, rttvar = max(r, 5 ms)
    later samples:   srtt += (r - srtt) / 8, rttvar += (|r - srtt| - rttvar) / 4
    rto = srtt + 4 * rttvar
    TCP window = (retries + 1) * rto, never below RTT_FLOOR and never above timeout
    UDP window = the same + SIP_ANSWER_TIME (the server answers OPTIONS itself; the kernel
                 answers a SYN), never below RTT_FLOOR and never above timeout

The ``retries + 1`` attempts of a probe (connects, or datagrams) start evenly within the
window: attempt k at ``k * window / (retries + 1)``. The window is read again at every wake,
so a round trip learned while a probe waits shortens it at once.
"""

from __future__ import annotations

# The shortest silence window (nmap's --min-rtt-timeout default): a round trip measured in
# microseconds on a LAN does not make a probe give up sooner than this.
RTT_FLOOR = 0.1
# RFC 3261's T1, the round-trip estimate after which a SIP client retransmits: the time a SIP
# server has to answer a datagram beyond the network's round trip.
SIP_ANSWER_TIME = 0.5
# nmap's least rttvar after the first sample (5 ms): rto is at least srtt + 20 ms.
FIRST_RTTVAR_FLOOR = 0.005


class Path:
    """What the probes of one address know of the path to it: the local address the probe
    sends from (``source``, set by the network room) and the smoothed round trip.

    ``sample(seconds)`` adds a measured round trip; ``window(request, protocol)`` is the
    silence window now; a probe waiting on the path is woken (``listeners``) by each sample."""

    def __init__(self):
        self.source = None
        self.srtt = None
        self.rttvar = None
        self.samples = 0
        self.listeners = set()

    def sample(self, seconds):
        seconds = max(0.0, seconds)
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, max(FIRST_RTTVAR_FLOOR, seconds)
        else:
            delta = seconds - self.srtt
            self.srtt += delta / 8.0
            self.rttvar += (abs(delta) - self.rttvar) / 4.0
        self.samples += 1
        for wake in list(self.listeners):
            wake()

    def rto(self):
        """nmap's retransmission timeout, or None before any sample."""
        return None if self.srtt is None else self.srtt + 4.0 * self.rttvar

    def window(self, request, protocol):
        """Seconds after the first attempt that silence is concluded (see the module's text)."""
        rto = self.rto()
        if rto is None or not request.adapt_timeout:
            return request.timeout
        window = (request.retries + 1) * rto + (SIP_ANSWER_TIME if protocol == "udp" else 0.0)
        return min(request.timeout, max(RTT_FLOOR, window))


def window_text(window):
    """A window in the records' error texts: "2s", "0.35s"."""
    return "%gs" % round(window, 3)


def silence_deadline(started, last_start, window, request):
    """When silence is concluded: the end of the window - but every attempt gets its share of
    it (``window / (retries + 1)``, one rto or more once adapted), also one started just before
    a round trip learned meanwhile shortened the window - and never after ``timeout``."""
    share = window / (request.retries + 1)
    return min(started + request.timeout, max(started + window, last_start + share))


def next_wake(started, sent, window, retries, deadline=None):
    """When a probe loop must wake: the start of its next attempt (attempt k starts at
    ``k * window / (retries + 1)``), or the deadline (by default the end of the window) once
    all have been sent."""
    deadline = started + window if deadline is None else deadline
    if sent > retries:
        return deadline
    return min(deadline, started + sent * window / (retries + 1))


class Waiter:
    """One wait at a time for any of several futures, or a timer: a future per wait, settled
    by the first done callback of the futures (``wake``) or by the timer."""

    def __init__(self):
        self.future = None

    def wake(self, _done=None):
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    async def wait(self, loop, timeout):
        self.future = loop.create_future()
        timer = loop.call_later(max(0.0, timeout), settle, self.future)
        try:
            await self.future
        finally:
            timer.cancel()
            self.future = None


def settle(future):
    if not future.done():
        future.set_result(None)
