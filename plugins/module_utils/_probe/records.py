# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Records, pure: one probe's record, the state an OS error means, and the run's summary.

Private to the sipguard.firewall collection: no compatibility promise outside it.

A record is the documented ``probes[]`` element of port_probe's RETURN; ``summarize`` gives
its ``counts`` and ``summary``.
"""

from __future__ import annotations

import errno

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.sip import uri_host

STATES = ("open", "closed", "filtered", "open|filtered", "error")

# errno of a failed connect (or a UDP error) -> state. ECONNREFUSED is a TCP reset or an ICMP
# port unreachable: the host answered "nothing here". EHOSTUNREACH also stands for ICMP
# administratively-prohibited (a firewall's reject), which nmap also calls filtered.
REFUSED_ERRNOS = frozenset([errno.ECONNREFUSED])
FILTERED_ERRNOS = frozenset([errno.EHOSTUNREACH, getattr(errno, "EHOSTDOWN", errno.EHOSTUNREACH)])


def new_record(target, address, family, protocol, port):
    return {
        "target": target, "address": address, "family": family, "protocol": protocol, "port": port,
        "state": None, "rtt_ms": None, "attempts": 0, "tls": None, "sip": None, "error": None,
        "source": None, "window_ms": None,
    }


def add_error(record, message):
    record["error"] = message if not record["error"] else record["error"] + "; " + message


def classify_os_error(exc):
    """(state, message) for an OSError from connect/send/recv."""
    code = getattr(exc, "errno", None)
    text = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError) or code in REFUSED_ERRNOS:
        return "closed", None
    if code in FILTERED_ERRNOS:
        return "filtered", "%s (an ICMP unreachable or prohibited answer)" % text
    return "error", text


def record_os_error(record, exc, rtt_seconds=None):
    """Fill record's state (and error, and rtt_ms when the answer was timed) from an OSError."""
    record["state"], message = classify_os_error(exc)
    if rtt_seconds is not None:
        record["rtt_ms"] = ms(rtt_seconds)
    if message:
        add_error(record, message)
    return record


def os_error_text(exc):
    """What an exception says for a record's error: its strerror, or its text."""
    return str(getattr(exc, "strerror", None) or exc)


def ms(seconds):
    """Seconds as the milliseconds of a record (rtt_ms, handshake_ms)."""
    return round(seconds * 1000.0, 3)


def endpoint(record):
    return "%s:%d/%s" % (uri_host(record["address"]), record["port"], record["protocol"])


def summarize(records, port):
    """counts (every state, zero included) and summary{exposed, sip_answered, open, message}."""
    counts = {state: 0 for state in STATES}
    for record in records:
        counts[record["state"]] = counts.get(record["state"], 0) + 1
    open_records = [r for r in records if r["state"] == "open"]
    sip_records = [r for r in records if r["sip"]]
    if open_records:
        shown = []
        for record in open_records:
            extra = ""
            if record["sip"]:
                extra = " (SIP %d %s)" % (record["sip"]["status_code"], record["sip"]["reason"])
            elif record["tls"]:
                extra = " (TLS, no SIP answer)"
            shown.append(endpoint(record) + extra)
        message = "port %d is exposed: open on %s" % (port, ", ".join(shown))
    elif records:
        message = "port %d is open on none of %d probes (%s)" % (
            port, len(records), ", ".join("%d %s" % (n, s) for s, n in counts.items() if n))
    else:
        message = "nothing was probed"
    return counts, {
        "exposed": bool(open_records),
        "sip_answered": bool(sip_records),
        "open": [endpoint(r) for r in open_records],
        "message": message,
    }
