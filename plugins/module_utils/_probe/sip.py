# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SIP, pure: the RFC 3261 OPTIONS request the probe sends and the parsing of the answers.

Private to the sipguard.firewall collection: no compatibility promise outside it.

Bytes in, data out; the sockets that carry them are in ``network``.
"""

from __future__ import annotations

import re
import uuid
from typing import Dict, List, Optional

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import strip_brackets

MAX_SIP_MESSAGE = 65535
USER_AGENT = "sipguard.firewall port_probe"
BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 8.1.1.7: every branch this UA creates starts with it

# RFC 3261 7.3.3 compact header forms (and the ones later RFCs registered) -> full names.
COMPACT_HEADERS = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
    "l": "content-length", "m": "contact", "n": "identity-info", "o": "event", "r": "refer-to",
    "s": "subject", "t": "to", "u": "allow-events", "v": "via", "x": "session-expires",
    "y": "identity",
}
STATUS_LINE_RE = re.compile(r"^SIP/2\.0[ \t]+([1-6][0-9]{2})(?:[ \t]+(.*))?$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!%*_+`'~.-]+$")


class SipParseError(ValueError):
    """Bytes that are not a SIP response; the message quotes the start of them."""


def uri_host(host):
    """Host part for a SIP URI or a Via sent-by: IPv6 literals in brackets (RFC 3261 25.1)."""
    host = strip_brackets(host).split("%", 1)[0]
    if ":" in host:
        return "[%s]" % host
    return host


def new_ids():
    """Fresh transaction identifiers: (branch, from tag, Call-ID local part)."""
    return (BRANCH_MAGIC + uuid.uuid4().hex[:20], uuid.uuid4().hex[:12], uuid.uuid4().hex)


def build_options(target_host, port, transport, local_host, local_port, branch=None, tag=None,
                  call_id=None, cseq=1):
    """Return an RFC 3261 OPTIONS request (bytes) for sip:target_host:port over transport.

    transport is UDP, TCP or TLS and goes into the Via (with ;rport, RFC 3581, so that the
    answer to a datagram comes back to the port it left from) and into the Contact.
    """
    transport = transport.upper()
    if transport not in ("UDP", "TCP", "TLS"):
        raise ValueError("transport %r is not UDP, TCP or TLS" % (transport,))
    fresh_branch, fresh_tag, fresh_call_id = new_ids()
    branch = branch or fresh_branch
    if not branch.startswith(BRANCH_MAGIC):
        raise ValueError("branch %r does not start with the RFC 3261 magic cookie %s" % (branch, BRANCH_MAGIC))
    tag = tag or fresh_tag
    local = uri_host(local_host)
    call_id = call_id or "%s@%s" % (fresh_call_id, local)
    target = "%s:%d" % (uri_host(target_host), port)
    uri_params = "" if transport == "UDP" else ";transport=%s" % transport.lower()
    lines = [
        "OPTIONS sip:%s%s SIP/2.0" % (target, uri_params),
        "Via: SIP/2.0/%s %s:%d;branch=%s;rport" % (transport, local, local_port, branch),
        "Max-Forwards: 70",
        'From: "sipguard" <sip:sipguard@%s>;tag=%s' % (local, tag),
        "To: <sip:%s>" % target,
        "Call-ID: %s" % call_id,
        "CSeq: %d OPTIONS" % cseq,
        "Contact: <sip:sipguard@%s:%d%s>" % (local, local_port, uri_params),
        "Accept: application/sdp",
        "User-Agent: %s" % USER_AGENT,
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _quote(data, limit=60):
    text = data[:limit] if isinstance(data, str) else data[:limit].decode("utf-8", "replace")
    return repr(text) + ("..." if len(data) > limit else "")


def split_sip_message(data):
    """(header block, rest) of bytes holding a SIP message; header block None when incomplete."""
    stripped = data.lstrip(b"\r\n")  # RFC 5626 keep-alive CRLFs before a message
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = stripped.find(separator)
        if index >= 0:
            return stripped[:index], stripped[index + len(separator):]
    return None, stripped


def parse_sip_headers(lines):
    """Unfold (RFC 3261 7.3.1) and collect header lines: {lower-case full name: [values]}."""
    headers: Dict[str, List[str]] = {}
    current: Optional[List[str]] = None  # the values of the last header seen
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":
            if current is None:
                raise SipParseError("a folded header line comes before any header: %s" % _quote(line))
            current[-1] = (current[-1] + " " + line.strip()).strip()
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not HEADER_NAME_RE.match(name):
            raise SipParseError("not a SIP header line: %s" % _quote(line))
        key = name.lower()
        key = COMPACT_HEADERS.get(key, key)
        current = headers.setdefault(key, [])
        current.append(value.strip())
    return headers


def _comma_list(values):
    items = []
    for value in values:
        for item in value.split(","):
            item = item.strip().upper()
            if item and item not in items:
                items.append(item)
    return items


def parse_sip_response(data):
    """Parse a SIP response (bytes or text) into a dict; raise SipParseError for anything else.

    Returns status_code, reason, server, user_agent, allow (list of methods, None without an
    Allow header), call_id, cseq and content_length.
    """
    if isinstance(data, bytes):
        block, _rest = split_sip_message(data)
        text = (block if block is not None else data.lstrip(b"\r\n")).decode("utf-8", "replace")
    else:
        text = data.lstrip("\r\n")
        for separator in ("\r\n\r\n", "\n\n"):
            if separator in text:
                text = text.split(separator, 1)[0]
                break
    if not text.strip():
        raise SipParseError("empty answer")
    lines = re.split(r"\r?\n", text)
    match = STATUS_LINE_RE.match(lines[0].rstrip())
    if not match:
        raise SipParseError("not a SIP response: %s" % _quote(lines[0]))
    headers = parse_sip_headers(lines[1:])

    def first(name):
        values = headers.get(name)
        return values[0] if values else None

    length = first("content-length")
    try:
        content_length = int(length) if length is not None else None
    except ValueError:
        raise SipParseError("Content-Length %r is not a number" % (length,))
    return {
        "status_code": int(match.group(1)),
        "reason": (match.group(2) or "").strip(),
        "server": first("server"),
        "user_agent": first("user-agent"),
        "allow": _comma_list(headers["allow"]) if "allow" in headers else None,
        "call_id": first("call-id"),
        "cseq": first("cseq"),
        "content_length": content_length,
    }


def sip_summary(parsed, transport, rtt_ms):
    """The documented sip{} of a record from a parsed response."""
    return {
        "status_code": parsed["status_code"],
        "reason": parsed["reason"],
        "server": parsed["server"],
        "user_agent": parsed["user_agent"],
        "allow": parsed["allow"],
        "transport": transport,
        "rtt_ms": rtt_ms,
    }
