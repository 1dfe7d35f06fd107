# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the network sees of one port: asyncio TCP/UDP probes, the TLS handshake, SIP over them.

Private to the sipguard.firewall collection: no compatibility promise outside it.

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
import ssl
import time
from typing import List

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.certificate import (
    CERTIFICATE_FIELDS,
    describe_certificate,
    make_tls_context,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.records import (
    add_error,
    ms,
    new_record,
    os_error_text,
    record_os_error,
    summarize,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import is_ip_literal
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.resolver import (
    FAMILY_NAMES,
    literal_addresses,
    resolve,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.sip import (
    MAX_SIP_MESSAGE,
    SipParseError,
    build_options,
    parse_sip_response,
    sip_summary,
)

# what one read of a datagram socket takes (as asyncio's datagram transports read)
_MAX_DATAGRAM = 256 * 1024


async def tcp_connect(family, sockaddr):
    """A connected non-blocking TCP socket (the tests replace this to emulate silence).

    loop.sock_connect without its detours (a resolution step for an address that is already
    one, a callback object per wait): the connect, then one future the socket's writability
    settles. Fails as sock_connect does: the OSError of connect(), or once the connect has
    been under way, ``OSError(errno, "Connect call failed <address>")``."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            sock.connect(sockaddr)
        except (BlockingIOError, InterruptedError):
            fd = sock.fileno()
            writable = loop.create_future()
            loop.add_writer(fd, _settle, writable)
            try:
                await writable
            finally:
                loop.remove_writer(fd)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, "Connect call failed %s" % (sockaddr,))
    except BaseException:
        sock.close()
        raise
    return sock


async def _read_sip_answer(reader, deadline):
    """(parsed final-or-last provisional response, rtt) read from a stream before deadline."""
    provisional = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if provisional:
                return provisional
            raise asyncio.TimeoutError()
        try:
            block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), remaining)
        except asyncio.TimeoutError:
            if provisional:
                return provisional
            raise
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                parse_sip_response(exc.partial)  # raises "not a SIP response: ..." for garbage
                raise SipParseError("the connection closed in the middle of a SIP answer")
            if provisional:
                return provisional
            raise SipParseError("the connection closed without a SIP answer")
        except asyncio.LimitOverrunError:
            raise SipParseError("an answer with more than %d bytes of headers" % MAX_SIP_MESSAGE)
        parsed = parse_sip_response(block)
        if parsed["content_length"]:
            body = min(parsed["content_length"], MAX_SIP_MESSAGE)
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                await asyncio.wait_for(reader.readexactly(body), remaining)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError):
                return parsed
        if parsed["status_code"] >= 200:
            return parsed
        provisional = parsed


async def _sip_over_stream(record, reader, writer, target_host, transport, timeout):
    local = writer.get_extra_info("sockname") or ("0.0.0.0", 0)
    request = build_options(target_host, record["port"], transport, local[0], local[1])
    started = time.monotonic()
    try:
        writer.write(request)
        await asyncio.wait_for(writer.drain(), timeout)
        parsed = await _read_sip_answer(reader, started + timeout)
    except asyncio.TimeoutError:
        add_error(record, "SIP: no answer to OPTIONS over %s within %gs" % (transport, timeout))
    except SipParseError as exc:
        add_error(record, "SIP: %s" % exc)
    except (OSError, EOFError) as exc:
        add_error(record, "SIP: %s" % os_error_text(exc))
    else:
        record["sip"] = sip_summary(parsed, transport, ms(time.monotonic() - started))


async def _tls_handshake(record, sock, request):
    """(reader, writer) over TLS on a connected socket, or None with the failure recorded."""
    server_name = request.server_name
    if server_name is None and not is_ip_literal(record["target"]):
        server_name = record["target"].rstrip(".")
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(sock=sock, ssl=make_tls_context(), server_hostname=server_name or "",
                                    ssl_handshake_timeout=request.timeout, limit=MAX_SIP_MESSAGE),
            request.timeout)
    except asyncio.TimeoutError:
        add_error(record, "TLS: no handshake within %gs" % request.timeout)
    except ssl.SSLError as exc:
        add_error(record, "TLS: handshake failed: %s" % (exc.reason or exc))
    except (OSError, EOFError) as exc:
        add_error(record, "TLS: handshake failed: %s" % os_error_text(exc))
    else:
        ssl_object = writer.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() or (None, None, None)
        details = {
            "version": ssl_object.version(),
            "cipher": cipher[0],
            "bits": cipher[2],
            "server_name": server_name,
            "handshake_ms": ms(time.monotonic() - started),
        }
        der = ssl_object.getpeercert(binary_form=True)
        certificate = describe_certificate(der) if der else dict.fromkeys(CERTIFICATE_FIELDS)
        if not der:
            certificate.update(sha256=None, decoder=None, error="the server sent no certificate")
        details.update(certificate)
        if details.get("error"):
            add_error(record, "TLS: %s" % details["error"])
        record["tls"] = details
        return reader, writer
    sock.close()
    return None


def _abort(writer):
    transport = getattr(writer, "transport", None)
    if transport is not None:
        transport.abort()


def _next_wake(started, sent, request):
    """When a probe loop must wake: the start of its next attempt (attempt k starts at
    ``k * timeout / (retries + 1)``), or the end of the window once all have been sent."""
    deadline = started + request.timeout
    if sent > request.retries:
        return deadline
    return min(deadline, started + sent * request.timeout / (request.retries + 1))


class _Waiter:
    """One wait at a time for any of several futures, or a timer: a future per wait, settled
    by the first done callback of the futures (``wake``) or by the timer."""

    def __init__(self):
        self.future = None

    def wake(self, _done=None):
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    async def wait(self, loop, timeout):
        self.future = loop.create_future()
        timer = loop.call_later(max(0.0, timeout), _settle, self.future)
        try:
            await self.future
        finally:
            timer.cancel()
            self.future = None


async def _connect_attempts(family, sockaddr, request):
    """Race up to ``retries + 1`` connect attempts started evenly across one ``timeout`` window.

    Attempt k starts at ``k * timeout / (retries + 1)`` unless an earlier one has answered.
    The first answer wins - a connected socket, or the OSError of a reset or an ICMP error -
    and the other attempts are cancelled. Returns (socket or None, OSError or None, attempts
    started, seconds from the start of the answering attempt or None); no socket and no
    error means silence for the whole window.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline = started + request.timeout
    starts = {}  # attempt task -> when it started
    waiter = _Waiter()
    winner = None
    try:
        while True:
            now = time.monotonic()
            if len(starts) <= request.retries and now >= _next_wake(started, len(starts), request):
                attempt = asyncio.ensure_future(tcp_connect(family, sockaddr))
                attempt.add_done_callback(waiter.wake)
                starts[attempt] = now
            done = [task for task in starts if task.done()]
            if not done:  # as asyncio.wait(FIRST_COMPLETED, timeout), without its per-call set-up
                await waiter.wait(loop, _next_wake(started, len(starts), request) - time.monotonic())
                done = [task for task in starts if task.done()]
            if done:
                connected = [task for task in done if task.exception() is None]
                winner = min(connected or done, key=starts.get)
                rtt = time.monotonic() - starts[winner]
                error = winner.exception()
                if error is not None and not isinstance(error, OSError):
                    raise error
                return (winner.result() if error is None else None), error, len(starts), rtt
            if time.monotonic() >= deadline:
                return None, None, len(starts), None
    finally:
        losers = [task for task in starts if task is not winner]
        for task in losers:
            task.cancel()
        for outcome in await asyncio.gather(*losers, return_exceptions=True):
            if isinstance(outcome, socket.socket):
                outcome.close()  # answered at the same moment as the winner


async def probe_tcp(record, family, sockaddr, request):
    """Fill record: state from the connect attempts, then TLS and SIP on an open port."""
    timeout = request.timeout
    sock, error, record["attempts"], rtt = await _connect_attempts(family, sockaddr, request)
    if error is not None:
        return record_os_error(record, error, rtt)
    if sock is None:
        record["state"] = "filtered"
        add_error(record, "no answer to %d connect attempt(s) within %gs" % (record["attempts"], timeout))
        return record
    record["state"], record["rtt_ms"] = "open", ms(rtt)
    if request.tls:
        streams = await _tls_handshake(record, sock, request)
        if streams is None or not request.sip:
            if streams is not None:
                _abort(streams[1])
            return record
        transport = "TLS"
    elif request.sip:
        try:
            streams = await asyncio.open_connection(sock=sock, limit=MAX_SIP_MESSAGE)
        except OSError as exc:
            sock.close()
            add_error(record, "SIP: %s" % os_error_text(exc))
            return record
        transport = "TCP"
    else:
        sock.close()
        return record
    reader, writer = streams
    try:
        await _sip_over_stream(record, reader, writer, record["target"], transport, timeout)
    finally:
        _abort(writer)
    return record


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

    def _arrived(self, item):
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

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
            timer = self.loop.call_later(max(0.0, timeout), _settle, self.waiter)
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


def _settle(future):
    if not future.done():
        future.set_result(None)


async def probe_udp(record, family, sockaddr, request):
    """Fill record: send OPTIONS as the datagram; reply = open, ICMP refused = closed, silence = open|filtered."""
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
    try:
        datagram = build_options(record["target"], record["port"], "UDP", local[0], local[1])
        reply = None
        provisional = None
        started = last_sent = time.monotonic()
        deadline = started + timeout
        while True:
            now = time.monotonic()
            if reply is None and record["attempts"] <= request.retries \
                    and now >= _next_wake(started, record["attempts"], request):
                datagrams.send(datagram)  # a retransmission is the same request (same branch)
                record["attempts"] += 1
                last_sent = now
            # once anything answered, no more datagrams: wait for the final answer until the deadline
            wake = deadline if reply is not None else _next_wake(started, record["attempts"], request)
            item = await datagrams.next(wake - time.monotonic())
            if item is None:
                if time.monotonic() >= deadline:
                    break
                continue
            if isinstance(item, Exception):
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
            record["state"] = "open|filtered"
            add_error(record, "no reply to %d datagram(s) within %gs" % (record["attempts"], timeout))
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
        datagrams.close()


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


class _Pool:
    """Probes jobs with at most ``concurrency`` workers, each one probe (one socket) at a time.

    A worker takes the next job from one shared deque until it is empty, then ends; jobs added
    later (a host name resolved) get new workers while fewer than ``concurrency`` run. No task
    per probe and no semaphore to wake: a sweep of thousands of probes costs a few hundred
    coroutines."""

    def __init__(self, request, on_record=None):
        self.request = request
        self.on_record = on_record
        self.jobs = collections.deque()
        self.workers = []
        self.running = 0

    def add(self, jobs):
        self.jobs.extend(jobs)
        for _new in range(min(self.request.concurrency - self.running, len(jobs))):
            self.running += 1
            self.workers.append(asyncio.ensure_future(self._work()))

    async def _work(self):
        try:
            jobs, request = self.jobs, self.request
            while jobs:
                record, family, sockaddr = jobs.popleft()
                if record["protocol"] == "tcp":
                    await probe_tcp(record, family, sockaddr, request)
                else:
                    await probe_udp(record, family, sockaddr, request)
                if self.on_record is not None:
                    self.on_record(record)
        finally:
            self.running -= 1


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
    records = [record for records in per_target for record in records]
    counts, summary = summarize(records, request.port)
    return {"probes": records, "counts": counts, "summary": summary, "warnings": warnings}


def run_probe(request):
    """Synchronous entry point for the module: one event loop for the whole run."""
    return asyncio.run(probe_all(request))
