# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the network sees of one port: TCP/UDP state, the TLS handshake, a SIP OPTIONS answer.

Private to the sipguard.firewall collection: no stability guarantees for other users.

Read-only. Probes many addresses at once with asyncio under a semaphore; every wait
(connect, TLS handshake, SIP answer, UDP reply, name resolution) has its own bound, and
the ``retries + 1`` attempts of a probe (connects, or datagrams) are started evenly within
one ``timeout`` window rather than one after another, so a run ends in bounded time:

  * the state of one probe is known after at most ``timeout``, whatever ``retries`` is;
  * an open TCP port then costs at most ``2 * timeout`` more (handshake, SIP answer);
  * at most ``concurrency`` probes are in flight (one socket each).

Pure parts (request building, option checks, SIP response parsing, certificate
description, classification) are plain functions the unit tests call directly;
the I/O lives in the ``probe_*`` coroutines. Runs on Python 3.8+ with the standard
library; ``cryptography`` is used to decode certificates when it is importable,
otherwise the ssl module's own certificate decoder.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import hashlib
import ipaddress
import math
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

try:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID
except ImportError:  # pragma: no cover - exercised through HAS_CRYPTOGRAPHY=False in the tests
    x509 = None
    ExtensionOID = None
HAS_CRYPTOGRAPHY = x509 is not None

PROTOCOLS = ("tcp", "udp")
FAMILIES = ("ipv4", "ipv6")
STATES = ("open", "closed", "filtered", "open|filtered", "error")
SIPS_PORT = 5061
MAX_SIP_MESSAGE = 65535
USER_AGENT = "sipguard.firewall port_probe"

# The port_probe module's options: the module and its action plugin (which runs the probe in
# the controller's own process when the task's connection is local) check the same spec.
ARGUMENT_SPEC = dict(
    targets=dict(type="list", elements="str", required=True),
    port=dict(type="int", default=SIPS_PORT),
    protocols=dict(type="list", elements="str", choices=list(PROTOCOLS), default=list(PROTOCOLS)),
    families=dict(type="list", elements="str", choices=list(FAMILIES), default=list(FAMILIES)),
    timeout=dict(type="float", default=2.0),
    retries=dict(type="int", default=1),
    concurrency=dict(type="int", default=256),
    tls=dict(type="bool", default=True),
    sip=dict(type="bool", default=True),
    server_name=dict(type="str"),
)
BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 8.1.1.7: every branch this UA creates starts with it

FAMILY_NAMES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
FAMILY_NUMBERS = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}

# errno of a failed connect (or a UDP error) -> state. ECONNREFUSED is a TCP reset or an ICMP
# port unreachable: the host answered "nothing here". EHOSTUNREACH also stands for ICMP
# administratively-prohibited (a firewall's reject), which nmap also calls filtered.
REFUSED_ERRNOS = frozenset([errno.ECONNREFUSED])
FILTERED_ERRNOS = frozenset([errno.EHOSTUNREACH, getattr(errno, "EHOSTDOWN", errno.EHOSTUNREACH)])

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
HOST_LABEL_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")

# ssl.getpeercert() attribute names -> RFC 4514 short names (what cryptography prints).
RDN_SHORT_NAMES = {
    "commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
    "domainComponent": "DC", "userId": "UID",
}
SAN_PREFIXES = {"DNS": "DNS", "IP Address": "IP", "email": "email", "URI": "URI", "DirName": "DirName"}


class ProbeRequestError(ValueError):
    """An option value the probe cannot use; the message names the value."""


class SipParseError(ValueError):
    """Bytes that are not a SIP response; the message quotes the start of them."""


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeRequest:
    targets: Tuple[str, ...]
    port: int = SIPS_PORT
    protocols: Tuple[str, ...] = PROTOCOLS
    families: Tuple[str, ...] = FAMILIES
    timeout: float = 2.0
    retries: int = 1
    concurrency: int = 256
    tls: bool = True
    sip: bool = True
    server_name: Optional[str] = None

    @classmethod
    def from_params(cls, params):
        """Check the module's parameters; raise ProbeRequestError naming the bad value."""
        targets = params.get("targets")
        if not targets:
            raise ProbeRequestError("targets must name at least one host or address (got %r)" % (targets,))
        cleaned = []
        for target in targets:
            text = str(target).strip() if target is not None else ""
            check_target(text, original=target)
            if text not in cleaned:
                cleaned.append(text)
        port = _as_int(params.get("port", SIPS_PORT), "port")
        if not 1 <= port <= 65535:
            raise ProbeRequestError("port %r is out of range 1-65535" % (params.get("port"),))
        protocols = _choices(params.get("protocols", PROTOCOLS), PROTOCOLS, "protocols")
        families = _choices(params.get("families", FAMILIES), FAMILIES, "families")
        timeout = params.get("timeout", 2.0)
        try:
            timeout_value = float(timeout)
        except (TypeError, ValueError):
            raise ProbeRequestError("timeout %r is not a number of seconds" % (timeout,))
        if timeout_value <= 0 or not math.isfinite(timeout_value):
            raise ProbeRequestError("timeout %r must be a number of seconds greater than 0" % (timeout,))
        retries = _as_int(params.get("retries", 1), "retries")
        if retries < 0:
            raise ProbeRequestError("retries %r must be 0 or more" % (params.get("retries"),))
        concurrency = _as_int(params.get("concurrency", 256), "concurrency")
        if concurrency < 1:
            raise ProbeRequestError("concurrency %r must be 1 or more" % (params.get("concurrency"),))
        server_name = params.get("server_name")
        if server_name is not None:
            server_name = str(server_name).strip().rstrip(".")
            if not server_name or _is_ip_literal(server_name) or not _is_host_name(server_name):
                raise ProbeRequestError("server_name %r is not a DNS host name (SNI carries names only)"
                                        % (params.get("server_name"),))
        return cls(targets=tuple(cleaned), port=port, protocols=protocols, families=families,
                   timeout=timeout_value, retries=retries, concurrency=concurrency,
                   tls=bool(params.get("tls", True)), sip=bool(params.get("sip", True)),
                   server_name=server_name)


def _as_int(value, name):
    if isinstance(value, bool):
        raise ProbeRequestError("%s %r is not an integer" % (name, value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ProbeRequestError("%s %r is not an integer" % (name, value))
    if isinstance(value, float) and number != value:
        raise ProbeRequestError("%s %r is not an integer" % (name, value))
    return number


def _choices(values, allowed, name):
    if isinstance(values, str):
        values = [values]
    chosen = []
    for value in values or ():
        if value not in allowed:
            raise ProbeRequestError("%s: %r is not one of %s" % (name, value, ", ".join(allowed)))
        if value not in chosen:
            chosen.append(value)
    if not chosen:
        raise ProbeRequestError("%s must name at least one of %s" % (name, ", ".join(allowed)))
    return tuple(v for v in allowed if v in chosen)


def _strip_brackets(text):
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1]
    return text


def _is_ip_literal(text):
    try:
        ipaddress.ip_address(_strip_brackets(text).split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_host_name(text):
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if not all(HOST_LABEL_RE.match(label) for label in labels):
        return False
    # RFC 1123 2.1 / RFC 3696 2: a top-level label is never all digits ("10.0.0.300" is no name).
    return not labels[-1].isdigit()


def check_target(text, original=None):
    """Raise ProbeRequestError unless text is an IPv4/IPv6 address or a DNS host name."""
    shown = original if original is not None else text
    if not text:
        raise ProbeRequestError("target %r is empty" % (shown,))
    if _is_ip_literal(text):
        return
    if _strip_brackets(text) != text or ":" in text or "/" in text:
        raise ProbeRequestError("target %r is not an IP address (networks are not probed; list addresses)"
                                % (shown,))
    if not _is_host_name(text):
        raise ProbeRequestError("target %r is neither an IP address nor a DNS host name" % (shown,))


# --------------------------------------------------------------------------------------------
# SIP: the OPTIONS request and the parsing of answers (pure)
# --------------------------------------------------------------------------------------------

def uri_host(host):
    """Host part for a SIP URI or a Via sent-by: IPv6 literals in brackets (RFC 3261 25.1)."""
    host = _strip_brackets(host).split("%", 1)[0]
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


# --------------------------------------------------------------------------------------------
# Certificates (no verification: this is discovery)
# --------------------------------------------------------------------------------------------

def _utc(moment):
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _iso(moment):
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days_left(not_after, now):
    return int((_utc(not_after) - _utc(now)).total_seconds() // 86400)


def _escape_rdn_value(value):
    escaped = "".join("\\" + ch if ch in ',+"\\<>;' else ch for ch in value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and len(escaped) > 1:
        escaped = escaped[:-1] + "\\ "
    return escaped


def format_ssl_name(rdns):
    """An ssl.getpeercert()-style name (tuple of RDNs) as an RFC 4514 string, last RDN first."""
    parts = []
    for rdn in reversed(rdns or ()):
        parts.append("+".join("%s=%s" % (RDN_SHORT_NAMES.get(attr, attr), _escape_rdn_value(value))
                              for attr, value in rdn))
    return ",".join(parts)


def _describe_with_cryptography(der, now):
    cert = x509.load_der_x509_certificate(der)
    not_before = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before
    not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after
    san = []
    try:
        extension = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        extension = None
    if extension is not None:
        for name in extension.value:
            if isinstance(name, x509.DNSName):
                san.append("DNS:" + name.value)
            elif isinstance(name, x509.IPAddress):
                san.append("IP:" + str(name.value))
            elif isinstance(name, x509.RFC822Name):
                san.append("email:" + name.value)
            elif isinstance(name, x509.UniformResourceIdentifier):
                san.append("URI:" + name.value)
            elif isinstance(name, x509.DirectoryName):
                san.append("DirName:" + name.value.rfc4514_string())
            else:
                san.append("othername:" + type(name).__name__)
    subject = cert.subject.rfc4514_string()
    issuer = cert.issuer.rfc4514_string()
    return {
        "subject": subject,
        "issuer": issuer,
        "san": san,
        "not_before": _iso(not_before),
        "not_after": _iso(not_after),
        "days_left": _days_left(not_after, now),
        "serial": "%X" % cert.serial_number,
        "self_issued": cert.subject == cert.issuer,
    }


def _decode_with_ssl(der):
    """Decode DER with the ssl module's own (private, CPython-only) decoder, via a temp file."""
    decoder = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decoder is None:
        raise ValueError("this Python's ssl module has no certificate decoder")
    handle, path = tempfile.mkstemp(prefix="sipguard-cert-", suffix=".pem")
    try:
        with os.fdopen(handle, "w") as pem:
            pem.write(ssl.DER_cert_to_PEM_cert(der))
        return decoder(path)
    finally:
        os.unlink(path)


def _describe_with_ssl(der, now):
    decoded = _decode_with_ssl(der)
    not_after = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded["notAfter"]),
                                                datetime.timezone.utc)
    not_before = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded["notBefore"]),
                                                 datetime.timezone.utc)
    san = []
    for kind, value in decoded.get("subjectAltName", ()):
        value = value.strip()
        if kind == "IP Address":
            try:
                value = str(ipaddress.ip_address(value))
            except ValueError:
                pass
        san.append("%s:%s" % (SAN_PREFIXES.get(kind, kind), value))
    return {
        "subject": format_ssl_name(decoded.get("subject")),
        "issuer": format_ssl_name(decoded.get("issuer")),
        "san": san,
        "not_before": _iso(not_before),
        "not_after": _iso(not_after),
        "days_left": _days_left(not_after, now),
        "serial": decoded.get("serialNumber"),
        "self_issued": decoded.get("subject") == decoded.get("issuer"),
    }


CERTIFICATE_FIELDS = ("subject", "issuer", "san", "not_before", "not_after", "days_left", "serial",
                      "self_issued")


def describe_certificate(der, now=None, use_cryptography=None):
    """Describe a DER certificate without verifying it: subject, issuer, SANs, validity.

    Uses cryptography when importable (or when use_cryptography says so), and the ssl
    module's decoder otherwise or when cryptography fails. Never raises: a certificate
    neither can read comes back with its SHA-256 fingerprint and an ``error``.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if use_cryptography is None:
        use_cryptography = HAS_CRYPTOGRAPHY
    description = dict.fromkeys(CERTIFICATE_FIELDS)
    description.update(sha256=hashlib.sha256(der).hexdigest(), decoder=None, error=None)
    decoders = [("ssl", _describe_with_ssl)]
    if use_cryptography:  # the ssl decoder stays as the fallback (an old cryptography, say)
        decoders.insert(0, ("cryptography", _describe_with_cryptography))
    problems = []
    for name, decode in decoders:
        try:
            description.update(decode(der, now), decoder=name)
        except Exception as exc:  # pylint: disable=broad-except
            # a hostile or broken certificate must not end the run
            problems.append("%s: %s" % (name, exc))
        else:
            return description
    description["error"] = "cannot decode the certificate (%s)" % "; ".join(problems)
    return description


def make_tls_context():
    """A client context for discovery: no verification, and old protocol versions allowed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:  # report a TLS 1.0 server as what it is rather than as a handshake failure
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError, AttributeError):
        pass
    return context


# --------------------------------------------------------------------------------------------
# Records (pure)
# --------------------------------------------------------------------------------------------

def new_record(target, address, family, protocol, port):
    return {
        "target": target, "address": address, "family": family, "protocol": protocol, "port": port,
        "state": None, "rtt_ms": None, "attempts": 0, "tls": None, "sip": None, "error": None,
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


def _ms(seconds):
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


# --------------------------------------------------------------------------------------------
# Network I/O
# --------------------------------------------------------------------------------------------

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
    host = _strip_brackets(target)
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


async def tcp_connect(family, sockaddr):
    """A connected non-blocking TCP socket (the tests replace this to emulate silence)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, sockaddr)
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
        add_error(record, "SIP: %s" % (getattr(exc, "strerror", None) or exc or type(exc).__name__))
    else:
        record["sip"] = sip_summary(parsed, transport, _ms(time.monotonic() - started))


async def _tls_handshake(record, sock, request):
    """(reader, writer) over TLS on a connected socket, or None with the failure recorded."""
    server_name = request.server_name
    if server_name is None and not _is_ip_literal(record["target"]):
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
        add_error(record, "TLS: handshake failed: %s" % (getattr(exc, "strerror", None) or exc
                                                         or type(exc).__name__))
    else:
        ssl_object = writer.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() or (None, None, None)
        details = {
            "version": ssl_object.version(),
            "cipher": cipher[0],
            "bits": cipher[2],
            "server_name": server_name,
            "handshake_ms": _ms(time.monotonic() - started),
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


async def _connect_attempts(family, sockaddr, request):
    """Race up to ``retries + 1`` connect attempts started evenly across one ``timeout`` window.

    Attempt k starts at ``k * timeout / (retries + 1)`` unless an earlier one has answered.
    The first answer wins - a connected socket, or the OSError of a reset or an ICMP error -
    and the other attempts are cancelled. Returns (socket or None, OSError or None, attempts
    started, seconds from the start of the answering attempt or None); no socket and no
    error means silence for the whole window.
    """
    started = time.monotonic()
    deadline = started + request.timeout
    starts = {}  # attempt task -> when it started
    winner = None
    try:
        while True:
            now = time.monotonic()
            if len(starts) <= request.retries and now >= _next_wake(started, len(starts), request):
                starts[asyncio.ensure_future(tcp_connect(family, sockaddr))] = now
            wake = _next_wake(started, len(starts), request)
            done, _pending = await asyncio.wait(list(starts), timeout=max(0.0, wake - time.monotonic()),
                                                return_when=asyncio.FIRST_COMPLETED)
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
        state, message = classify_os_error(error)
        record["state"], record["rtt_ms"] = state, _ms(rtt)
        if message:
            add_error(record, message)
        return record
    if sock is None:
        record["state"] = "filtered"
        add_error(record, "no answer to %d connect attempt(s) within %gs" % (record["attempts"], timeout))
        return record
    record["state"], record["rtt_ms"] = "open", _ms(rtt)
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
            add_error(record, "SIP: %s" % (exc.strerror or exc))
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


class _Datagrams(asyncio.DatagramProtocol):
    """Queues what arrives on a connected datagram socket: bytes, or the OSError (ICMP) it got."""

    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)

    def error_received(self, exc):
        self.queue.put_nowait(exc)


async def probe_udp(record, family, sockaddr, request):
    """Fill record: send OPTIONS as the datagram; reply = open, ICMP refused = closed, silence = open|filtered."""
    loop = asyncio.get_running_loop()
    timeout = request.timeout
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(sockaddr)  # connected: ICMP port unreachable comes back as ECONNREFUSED
        local = sock.getsockname()
        transport, protocol = await loop.create_datagram_endpoint(_Datagrams, sock=sock)
    except OSError as exc:
        sock.close()
        state, message = classify_os_error(exc)
        record["state"] = state
        if message:
            add_error(record, message)
        return record
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
                transport.sendto(datagram)  # a retransmission is the same request (same branch)
                record["attempts"] += 1
                last_sent = now
            # once anything answered, no more datagrams: wait for the final answer until the deadline
            wake = deadline if reply is not None else _next_wake(started, record["attempts"], request)
            try:
                item = await asyncio.wait_for(protocol.queue.get(), max(0.0, wake - time.monotonic()))
            except asyncio.TimeoutError:
                if time.monotonic() >= deadline:
                    break
                continue
            if isinstance(item, Exception):
                state, message = classify_os_error(item)
                record["state"], record["rtt_ms"] = state, _ms(time.monotonic() - last_sent)
                if message:
                    add_error(record, message)
                return record
            if record["rtt_ms"] is None:
                record["rtt_ms"] = _ms(time.monotonic() - last_sent)
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
        transport.close()


async def _probe_one(record, family, sockaddr, request, slots):
    async with slots:
        if record["protocol"] == "tcp":
            return await probe_tcp(record, family, sockaddr, request)
        return await probe_udp(record, family, sockaddr, request)


async def _probe_target(target, request, slots, resolver_slots, warnings):
    records = []
    try:
        addresses = await resolve(target, request.port, request.timeout * (request.retries + 1), resolver_slots)
    except asyncio.TimeoutError:
        addresses, problem = [], "name resolution took longer than %gs" % (request.timeout * (request.retries + 1))
    except (OSError, UnicodeError) as exc:
        addresses, problem = [], "cannot resolve %s: %s" % (target, getattr(exc, "strerror", None) or exc)
    else:
        problem = None
        wanted = [a for a in addresses if FAMILY_NAMES[a[0]] in request.families]
        if not wanted and addresses:
            found = ", ".join(a[1] for a in addresses)
            if literal_addresses(target, request.port) is not None:
                warnings.append("target %s skipped: its family is not in families (%s)"
                                % (target, ", ".join(request.families)))
                return records
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
        return records
    jobs = []
    for family, address, sockaddr in addresses:
        for protocol in request.protocols:
            record = new_record(target, address, FAMILY_NAMES[family], protocol, request.port)
            records.append(record)
            jobs.append(_probe_one(record, family, sockaddr, request, slots))
    await asyncio.gather(*jobs)
    return records


async def probe_all(request):
    """Probe every target; return {probes, counts, summary, warnings}."""
    slots = asyncio.Semaphore(request.concurrency)
    resolver_slots = asyncio.Semaphore(min(request.concurrency, 32))
    warnings: List[str] = []
    per_target = await asyncio.gather(*[_probe_target(t, request, slots, resolver_slots, warnings)
                                        for t in request.targets])
    records = [record for records in per_target for record in records]
    counts, summary = summarize(records, request.port)
    return {"probes": records, "counts": counts, "summary": summary, "warnings": warnings}


def run_probe(request):
    """Synchronous entry point for the module: one event loop for the whole run."""
    return asyncio.run(probe_all(request))
