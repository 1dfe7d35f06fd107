# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A TCP probe of one address: connect attempts raced within one window, the TLS handshake with
the certificate, a SIP OPTIONS over the stream.

Private to the sipguard.firewall collection: no compatibility promise outside it.

Read-only; every wait is bounded: the connect's state after at most ``timeout``, an open port
then at most ``2 * timeout`` more (handshake, SIP answer). ``tcp_connect`` is the one place a
socket connects (the tests replace it to emulate a dropped SYN).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.certificate import (
    CERTIFICATE_FIELDS,
    describe_certificate,
    make_tls_context,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.records import (
    add_error,
    ms,
    os_error_text,
    record_os_error,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import is_ip_literal
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.sip import (
    MAX_SIP_MESSAGE,
    SipParseError,
    build_options,
    parse_sip_response,
    sip_summary,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.timing import (
    Waiter,
    next_wake,
    settle,
    silence_deadline,
    window_text,
)


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
            loop.add_writer(fd, settle, writable)
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


# struct tcp_info (linux/tcp.h): tcpi_rtt, the smoothed round trip in microseconds, is the u32
# after 8 one-byte fields and 15 u32 fields.
_TCPI_RTT_OFFSET = 68


def kernel_rtt(sock):
    """The kernel's own round trip of a connected TCP socket (TCP_INFO tcpi_rtt, from the SYN and
    its SYN-ACK), in seconds; None where the kernel does not tell (not Linux, nothing measured).

    Timed by the kernel when the packets come and go, it holds none of the event loop's lag: a
    controller busy with thousands of probes notices an answer late, and that lateness is not
    the network's."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except (AttributeError, OSError):
        return None
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    rtt = struct.unpack_from("=I", info, _TCPI_RTT_OFFSET)[0]
    return rtt / 1e6 if rtt else None


async def _timed_connect(family, sockaddr, starts):
    """One connect attempt that notes when it really starts: a task runs only when the event
    loop comes to it, which on a busy controller is well after it was scheduled. The window is
    counted from the moment the SYN leaves, not from the moment it was planned."""
    starts[asyncio.current_task()] = time.monotonic()
    return await tcp_connect(family, sockaddr)


async def _connect_attempts(family, sockaddr, request, path):
    """Race up to ``retries + 1`` connect attempts started evenly across the silence window.

    The window is the path's (``timing.Path.window``): ``timeout`` until the round trip to the
    address is known, then derived from it, read again at every wake (a round trip learned
    meanwhile wakes the wait). Attempt k starts at ``k * window / (retries + 1)`` unless an
    earlier one has answered. The first answer wins - a connected socket, or the OSError of a
    reset or an ICMP error - and the other attempts are cancelled. Returns (socket or None,
    OSError or None, attempts started, seconds from the start of the answering attempt or None,
    the window when silence was concluded or None); no socket and no error means silence for
    the whole window.
    """
    loop = asyncio.get_running_loop()
    starts = {}  # attempt task -> when it started: planned, then when its connect really began
    waiter = Waiter()
    winner = None
    path.listeners.add(waiter.wake)
    try:
        while True:
            now = time.monotonic()
            started = min(starts.values(), default=now)  # the first attempt's real start
            window = path.window(request, "tcp")
            if len(starts) <= request.retries and now >= next_wake(started, len(starts), window, request.retries):
                attempt = asyncio.ensure_future(_timed_connect(family, sockaddr, starts))
                attempt.add_done_callback(waiter.wake)
                starts[attempt] = now
            done = [task for task in starts if task.done()]
            if not done:  # as asyncio.wait(FIRST_COMPLETED, timeout), without its per-call set-up
                deadline = silence_deadline(started, max(starts.values()), window, request)
                wake = next_wake(started, len(starts), window, request.retries, deadline)
                await waiter.wait(loop, wake - time.monotonic())
                done = [task for task in starts if task.done()]
            if done:
                connected = [task for task in done if task.exception() is None]
                winner = min(connected or done, key=starts.get)
                rtt = time.monotonic() - starts[winner]
                error = winner.exception()
                if error is not None and not isinstance(error, OSError):
                    raise error
                if error is None:
                    path.sample(kernel_rtt(winner.result()) or rtt)  # a SYN-ACK: one round trip
                elif isinstance(error, ConnectionRefusedError):
                    path.sample(rtt)  # a reset: one round trip (the kernel keeps no time of it)
                return (winner.result() if error is None else None), error, len(starts), rtt, None
            started = min(starts.values())
            window = path.window(request, "tcp")
            deadline = silence_deadline(started, max(starts.values()), window, request)
            if time.monotonic() >= deadline:
                return None, None, len(starts), None, deadline - started
    finally:
        path.listeners.discard(waiter.wake)
        losers = [task for task in starts if task is not winner]
        for task in losers:
            task.cancel()
        for outcome in await asyncio.gather(*losers, return_exceptions=True):
            if isinstance(outcome, socket.socket):
                outcome.close()  # answered at the same moment as the winner


async def probe_tcp(record, family, sockaddr, request, path):
    """Fill record: state from the connect attempts, then TLS and SIP on an open port."""
    timeout = request.timeout
    sock, error, record["attempts"], rtt, window = await _connect_attempts(family, sockaddr, request, path)
    if error is not None:
        return record_os_error(record, error, rtt)
    if sock is None:
        record["state"], record["window_ms"] = "filtered", ms(window)
        add_error(record, "no answer to %d connect attempt(s) within %s" % (record["attempts"], window_text(window)))
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
