# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""When a probe's attempts start, and waits settled by the first of several futures or a timer.

Private to the sipguard.firewall collection: no compatibility promise outside it.

The ``retries + 1`` attempts of a probe (connects, or datagrams) start evenly within one
``timeout`` window: attempt k at ``k * timeout / (retries + 1)``.
"""

from __future__ import annotations


def next_wake(started, sent, request):
    """When a probe loop must wake: the start of its next attempt (attempt k starts at
    ``k * timeout / (retries + 1)``), or the end of the window once all have been sent."""
    deadline = started + request.timeout
    if sent > request.retries:
        return deadline
    return min(deadline, started + sent * request.timeout / (request.retries + 1))


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
