# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the network sees of one port: every target's probes, run by a pool of workers.

Private to the sipguard.firewall collection: no compatibility promise outside it.

The probes themselves are ``tcp.probe_tcp`` (connect, TLS handshake, SIP OPTIONS) and
``udp.probe_udp`` (SIP OPTIONS as a datagram); ``timing`` says when their attempts start.

Read-only. Probes many addresses at once with a pool of at most ``concurrency`` workers, each
one probe at a time; every wait (connect, TLS handshake, SIP answer, UDP reply, name
resolution) has its own bound, and the ``retries + 1`` attempts of a probe (connects, or
datagrams) are started evenly within one ``timeout`` window rather than one after another, so
a run ends in bounded time:

  * the state of one probe is known after at most ``timeout``, whatever ``retries`` is;
  * an open TCP port then costs at most ``2 * timeout`` more (handshake, SIP answer);
  * at most ``concurrency`` probes are in flight (one socket each).

Entry points, for the module (through ``run``) and for code that probes by itself (the
Event-Driven Ansible source)::

    from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ProbeRequest
    from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all, run_probe

``run_probe(request)`` runs its own event loop; inside a running loop, ``await probe_all(request)``.
Both return ``{probes, counts, summary, warnings}``. Runs on Python 3.8+ with the standard library.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from typing import List

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.records import (
    add_error,
    new_record,
    os_error_text,
    summarize,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.resolver import (
    FAMILY_NAMES,
    literal_addresses,
    resolve,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe import tcp
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.timing import Path
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.udp import probe_udp


def _plan(target, addresses, problem, request, warnings):
    """(records, jobs) of one target from its addresses (or the problem resolving it): a record
    per address and protocol, in that order, and a job (record, family, sockaddr) per record to
    probe; error records (no job) for a target that cannot be probed; none for a skipped one."""
    records = []
    if not problem:
        wanted = [a for a in addresses if FAMILY_NAMES[a[0]] in request.families]
        if not wanted and addresses:
            found = ", ".join(a[1] for a in addresses)
            if literal_addresses(target, request.port) is not None:
                warnings.append("target %s skipped: its family is not in families (%s)"
                                % (target, ", ".join(request.families)))
                return records, []
            problem = "%s has no %s address (it resolves to %s)" % (target, " or ".join(request.families), found)
        elif not wanted:
            problem = "%s resolves to no address" % target
        addresses = wanted
    if problem:
        for protocol in request.protocols:
            record = new_record(target, None, None, protocol, request.port)
            record["state"] = "error"
            add_error(record, problem)
            records.append(record)
        return records, []
    jobs = []
    for family, address, sockaddr in addresses:
        for protocol in request.protocols:
            record = new_record(target, address, FAMILY_NAMES[family], protocol, request.port)
            records.append(record)
            jobs.append((record, family, sockaddr))
    return records, jobs


def source_address(family, sockaddr):
    """The local address the kernel's routes pick toward sockaddr (a UDP socket connected, no
    packet sent), or None when there is no route."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(sockaddr)
            return sock.getsockname()[0]
    except OSError:
        return None


def with_port(sockaddr, port):
    return (sockaddr[0], port) + tuple(sockaddr[2:])


async def learn_round_trip(path, family, sockaddr, request):
    """One connect to a port of the address only to time its answer - connected or reset, both
    are a round trip - closed at once; silence or any other error teaches nothing. Bounded by
    timeout."""
    started = time.monotonic()
    try:
        sock = await asyncio.wait_for(tcp.tcp_connect(family, sockaddr), request.timeout)
    except asyncio.TimeoutError:
        return
    except ConnectionRefusedError:  # a reset (OSError(ECONNREFUSED) is one too)
        path.sample(time.monotonic() - started)
        return
    except OSError:
        return
    path.sample(tcp.kernel_rtt(sock) or time.monotonic() - started)
    sock.close()


class _Pool:
    """Probes jobs with at most ``concurrency`` workers, each one probe (one socket) at a time.

    A worker takes the next job from one shared deque until it is empty, then ends; jobs added
    later (a host name resolved) get new workers while fewer than ``concurrency`` run. No task
    per probe and no semaphore to wake: a sweep of thousands of probes costs a few hundred
    coroutines.

    One ``timing.Path`` per address, shared by its TCP and UDP probes: when the first probe
    of an address starts, its source address is looked up and a connect to each of the
    ``rtt_ports`` starts beside it to learn the round trip (``learners``, cancelled when the
    probes are done)."""

    def __init__(self, request, on_record=None):
        self.request = request
        self.on_record = on_record
        self.jobs = collections.deque()
        self.workers = []
        self.running = 0
        self.paths = {}
        self.learners = []

    def add(self, jobs):
        self.jobs.extend(jobs)
        for _new in range(min(self.request.concurrency - self.running, len(jobs))):
            self.running += 1
            self.workers.append(asyncio.ensure_future(self._work()))

    def path(self, record, family, sockaddr):
        path = self.paths.get(record["address"])
        if path is None:
            path = self.paths[record["address"]] = Path()
            path.source = source_address(family, sockaddr)
            for port in self.request.rtt_ports:
                self.learners.append(asyncio.ensure_future(
                    learn_round_trip(path, family, with_port(sockaddr, port), self.request)))
        return path

    async def _work(self):
        try:
            jobs, request = self.jobs, self.request
            while jobs:
                record, family, sockaddr = jobs.popleft()
                path = self.path(record, family, sockaddr)
                record["source"] = path.source
                if record["protocol"] == "tcp":
                    await tcp.probe_tcp(record, family, sockaddr, request, path)
                else:
                    await probe_udp(record, family, sockaddr, request, path)
                if self.on_record is not None:
                    self.on_record(record)
        finally:
            self.running -= 1

    async def stop_learning(self):
        unfinished = [task for task in self.learners if not task.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*self.learners, return_exceptions=True)


async def _look_up(index, target, request, resolver_slots, per_target, warnings, pool):
    """Resolve a host name in bounded time; its records go to per_target[index], its jobs to the pool."""
    bound = request.timeout * (request.retries + 1)
    addresses, problem = [], None
    try:
        addresses = await resolve(target, request.port, bound, resolver_slots)
    except asyncio.TimeoutError:
        problem = "name resolution took longer than %gs" % bound
    except (OSError, UnicodeError) as exc:
        problem = "cannot resolve %s: %s" % (target, os_error_text(exc))
    per_target[index], jobs = _plan(target, addresses, problem, request, warnings)
    pool.add(jobs)


async def probe_all(request, on_record=None):
    """Probe every target; return {probes, counts, summary, warnings}.

    An IP literal's probes are planned at once; a host name is resolved in its own task (at
    most 32 at a time) and its probes join the pool when it has resolved. Records come in the
    order of the targets, then of their addresses, then of the protocols.

    on_record, when given, is called with each probed record as soon as its probe ends (an open
    port answers long before a silent one times out): the watch announces a reopening at once."""
    warnings: List[str] = []
    pool = _Pool(request, on_record)
    per_target = [[] for _target in request.targets]
    resolver_slots = asyncio.Semaphore(min(request.concurrency, 32))
    jobs = []
    names = []
    for index, target in enumerate(request.targets):
        try:
            addresses = literal_addresses(target, request.port)
        except (OSError, UnicodeError):
            addresses = None  # resolve() raises it again, into the target's error record
        if addresses is None:
            names.append((index, target))
            continue
        per_target[index], planned = _plan(target, addresses, None, request, warnings)
        jobs.extend(planned)
    pool.add(jobs)
    lookups = [asyncio.ensure_future(_look_up(index, target, request, resolver_slots, per_target, warnings, pool))
               for index, target in names]
    try:
        if lookups:
            await asyncio.gather(*lookups)
        if pool.workers:  # every lookup has added its jobs: no more workers come
            await asyncio.gather(*pool.workers)
    except BaseException:
        unfinished = [task for task in lookups + pool.workers if not task.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        raise
    finally:
        await pool.stop_learning()
    records = [record for records in per_target for record in records]
    counts, summary = summarize(records, request.port)
    return {"probes": records, "counts": counts, "summary": summary, "warnings": warnings}


def run_probe(request):
    """Synchronous entry point for the module: one event loop for the whole run."""
    return asyncio.run(probe_all(request))
