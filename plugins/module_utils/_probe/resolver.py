# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Names to addresses: a target's (family, address, sockaddr) list, in bounded time.

Private to the sipguard.firewall collection: no compatibility promise outside it.

An IP literal is parsed, never looked up; a host name is resolved by the host's resolver in a
daemon thread, under a semaphore and a timeout, so a hung resolver neither blocks the event
loop nor keeps the process alive after the run.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import strip_brackets

FAMILY_NAMES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}


def _deliver(future, result=None, exc=None):
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _getaddrinfo_daemon(loop, host, port):
    """getaddrinfo in a daemon thread: a hung resolver can neither block the loop nor the exit.

    (The default executor's threads are joined at interpreter exit, so an abandoned lookup
    there would stretch the run past every timeout.)
    """
    future = loop.create_future()

    def work():
        try:
            result = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except Exception as exc:  # pylint: disable=broad-except
            # handed to the loop, which raises it in the awaiting task
            outcome = dict(exc=exc)
        else:
            outcome = dict(result=result)
        try:
            loop.call_soon_threadsafe(lambda: _deliver(future, **outcome))
        except RuntimeError:  # the loop is closed: the run is over
            pass

    threading.Thread(target=work, name="sipguard-resolve", daemon=True).start()
    return future


def literal_addresses(target, port):
    """[(family number, address text, sockaddr)] for an IP literal, None for a host name."""
    host = strip_brackets(target)
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        return None
    return _addresses(infos)


def _addresses(infos):
    seen = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in FAMILY_NAMES:
            continue
        entry = (family, sockaddr[0], sockaddr)
        if entry[1] not in [s[1] for s in seen]:
            seen.append(entry)
    return seen


async def resolve(target, port, timeout, resolver_slots):
    """[(family number, address, sockaddr)] of a target; raises OSError or asyncio.TimeoutError."""
    literal = literal_addresses(target, port)
    if literal is not None:
        return literal
    async with resolver_slots:
        infos = await asyncio.wait_for(_getaddrinfo_daemon(asyncio.get_running_loop(), target, port), timeout)
    return _addresses(infos)
