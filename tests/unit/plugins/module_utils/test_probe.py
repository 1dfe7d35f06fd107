# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""port_probe's logic: pure parts directly, the network parts against servers on loopback only.

Every socket here is bound to or aimed at 127.0.0.1 or ::1, on ports the tests bind; every wait
is bounded. Silence (TCP "filtered") cannot be produced on loopback without a firewall, and
this machine's firewall is never touched, so it is emulated by replacing the connect.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import ipaddress
import re
import socket
import ssl
import time

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.sipguard.firewall.plugins.module_utils import _probe
from ansible_collections.sipguard.firewall.plugins.module_utils._probe import (
    ProbeRequest,
    ProbeRequestError,
    SipParseError,
    build_options,
    classify_os_error,
    describe_certificate,
    parse_sip_response,
    probe_all,
    summarize,
)

LOOPBACKS = ("127.0.0.1", "::1")
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
ALLOW = "INVITE, ACK, CANCEL, OPTIONS, BYE"


# ------------------------------------------------------------------------------------------
# A certificate of our own
# ------------------------------------------------------------------------------------------

def make_certificate(not_after, common_name="sip.test"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sipguard test"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    san = x509.SubjectAlternativeName([
        x509.DNSName("sip.test"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x5061ABCDEF)
        .not_valid_before(not_after - datetime.timedelta(days=90))
        .not_valid_after(not_after)
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


@pytest.fixture(scope="module")
def certificate():
    return make_certificate(NOW + datetime.timedelta(days=30, hours=1))[0]


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory):
    """A server-side TLS context with a certificate valid for 30 more days (from the real now)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    certificate, key = make_certificate(now + datetime.timedelta(days=30, hours=1))
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_path), str(key_path))
    server_names = []
    context.sni_callback = lambda sslobj, name, ctx: server_names.append(name)
    return context, certificate, server_names


# ------------------------------------------------------------------------------------------
# Loopback servers
# ------------------------------------------------------------------------------------------

def free_port(kind=socket.SOCK_STREAM):
    """A port free on both 127.0.0.1 and ::1 right now (bound, then closed)."""
    for _attempt in range(50):
        with socket.socket(socket.AF_INET, kind) as four:
            four.bind(("127.0.0.1", 0))
            port = four.getsockname()[1]
            with socket.socket(socket.AF_INET6, kind) as six:
                try:
                    six.bind(("::1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no port free on both loopbacks")


def sip_reply(request_text, status="200 OK", extra=("Server: TestSBC/1.0", "Allow: " + ALLOW)):
    """A UAS answer (RFC 3261 8.2.6) copying Via, From, To, Call-ID and CSeq from the request."""
    headers = {}
    for line in request_text.split("\r\n")[1:]:
        name, _sep, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    lines = ["SIP/2.0 " + status,
             "Via: " + headers["via"],
             "From: " + headers["from"],
             "To: " + headers["to"] + ";tag=uas1",
             "Call-ID: " + headers["call-id"],
             "CSeq: " + headers["cseq"]]
    lines.extend(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def start_on_both(handler, port=None, **kwargs):
    """asyncio stream servers on 127.0.0.1 and ::1, on the same port."""
    for _attempt in range(20):
        chosen = port or free_port()
        servers = []
        try:
            for host in LOOPBACKS:
                servers.append(await asyncio.start_server(handler, host, chosen, **kwargs))
        except OSError:
            for server in servers:
                server.close()
            if port:
                raise
            continue
        return chosen, servers
    raise RuntimeError("could not bind both loopbacks")


async def stop(servers):
    for server in servers:
        server.close()
        await server.wait_closed()


def sip_server(received):
    """A SIP UAS over a stream: answers OPTIONS with 200 OK, Server and Allow."""
    async def handle(reader, writer):
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            received.append(request.decode())
            writer.write(sip_reply(request.decode()))
            await writer.drain()
            await asyncio.wait_for(reader.read(1), 5)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
    return handle


async def silent(reader, writer):
    """Accepts and says nothing (like a TCP proxy with no backend), until the client goes."""
    try:
        await asyncio.wait_for(reader.read(), 5)
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


class UdpSip(asyncio.DatagramProtocol):
    """Answers every OPTIONS datagram; optionally with 100 Trying first, or after ignoring some."""

    def __init__(self, provisional=False, ignore=0):
        self.provisional = provisional
        self.ignore = ignore
        self.received = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.received.append((data.decode(), addr))
        if len(self.received) <= self.ignore:
            return
        if self.provisional:
            self.transport.sendto(sip_reply(data.decode(), "100 Trying", extra=()), addr)
        self.transport.sendto(sip_reply(data.decode()), addr)


async def udp_on_both(factory):
    for _attempt in range(20):
        port = free_port(socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        endpoints = []
        try:
            for host in LOOPBACKS:
                endpoints.append(await loop.create_datagram_endpoint(factory, local_addr=(host, port)))
        except OSError:
            for transport, _protocol in endpoints:
                transport.close()
            continue
        return port, endpoints
    raise RuntimeError("could not bind both loopbacks")


def request(**kwargs):
    params = dict(targets=list(LOOPBACKS), timeout=1.0, retries=0)
    params.update(kwargs)
    return ProbeRequest.from_params(params)


def by_key(result):
    return {(r["address"], r["protocol"]): r for r in result["probes"]}


# ------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------

def test_defaults():
    req = ProbeRequest.from_params(dict(targets=["192.0.2.1"]))
    assert (req.port, req.protocols, req.families, req.timeout, req.retries, req.concurrency,
            req.tls, req.sip, req.server_name) == (5061, ("tcp", "udp"), ("ipv4", "ipv6"), 2.0, 1, 256,
                                                   True, True, None)


@pytest.mark.parametrize("params, named", [
    (dict(port=0), "0"),
    (dict(port=65536), "65536"),
    (dict(port="abc"), "abc"),
    (dict(protocols=["icmp"]), "icmp"),
    (dict(protocols=[]), "protocols"),
    (dict(families=["ipv5"]), "ipv5"),
    (dict(concurrency=0), "concurrency 0"),
    (dict(timeout=0), "timeout 0"),
    (dict(timeout=-1.5), "-1.5"),
    (dict(timeout="soon"), "soon"),
    (dict(retries=-1), "-1"),
    (dict(targets=[]), "targets"),
    (dict(targets=None), "targets"),
    (dict(targets=["sip.example.org", ""]), "''"),
    (dict(targets=["10.0.0.300"]), "10.0.0.300"),
    (dict(targets=["192.0.2.0/24"]), "192.0.2.0/24"),
    (dict(targets=["sip.example.org:5061"]), "sip.example.org:5061"),
    (dict(targets=["bad_name!"]), "bad_name!"),
    (dict(server_name="192.0.2.1"), "192.0.2.1"),
])
def test_bad_options_name_the_value(params, named):
    full = dict(targets=["192.0.2.1"])
    full.update(params)
    with pytest.raises(ProbeRequestError) as info:
        ProbeRequest.from_params(full)
    assert named in str(info.value)


def test_targets_are_kept_in_order_without_duplicates():
    req = ProbeRequest.from_params(dict(targets=[" ::1", "[2001:db8::1]", "sip.example.org", "::1"]))
    assert req.targets == ("::1", "[2001:db8::1]", "sip.example.org")


# ------------------------------------------------------------------------------------------
# The OPTIONS request (RFC 3261 8.1.1, 11)
# ------------------------------------------------------------------------------------------

def parse_request(data):
    text = data.decode("ascii")
    assert text.endswith("\r\n\r\n")
    head = text[:-4]
    assert "\n" not in head.replace("\r\n", "")  # every line ends with CRLF
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(": ")
        assert sep and name not in headers
        headers[name] = value
    return lines[0], headers


def test_options_request_has_every_mandatory_field():
    data = build_options("sbc.example.org", 5061, "TLS", "192.0.2.50", 40123,
                         branch="z9hG4bKabc123", tag="f00d", call_id="c411@192.0.2.50")
    start, headers = parse_request(data)
    assert start == "OPTIONS sip:sbc.example.org:5061;transport=tls SIP/2.0"
    assert headers["Via"] == "SIP/2.0/TLS 192.0.2.50:40123;branch=z9hG4bKabc123;rport"
    assert headers["Max-Forwards"] == "70"
    assert headers["From"] == '"sipguard" <sip:sipguard@192.0.2.50>;tag=f00d'
    assert headers["To"] == "<sip:sbc.example.org:5061>"
    assert headers["Call-ID"] == "c411@192.0.2.50"
    assert headers["CSeq"] == "1 OPTIONS"
    assert headers["Contact"] == "<sip:sipguard@192.0.2.50:40123;transport=tls>"
    assert headers["Accept"] == "application/sdp"
    assert headers["Content-Length"] == "0"
    assert "User-Agent" in headers


def test_options_request_fresh_ids_ipv6_and_udp():
    first = parse_request(build_options("2001:db8::10", 5061, "UDP", "2001:db8::50", 5555))
    second = parse_request(build_options("[2001:db8::10]", 5061, "UDP", "2001:db8::50", 5555))
    start, headers = first
    assert start == "OPTIONS sip:[2001:db8::10]:5061 SIP/2.0"
    assert re.match(r"^SIP/2\.0/UDP \[2001:db8::50\]:5555;branch=z9hG4bK[0-9a-f]{8,};rport$", headers["Via"])
    assert re.match(r'^"sipguard" <sip:sipguard@\[2001:db8::50\]>;tag=[0-9a-f]{8,}$', headers["From"])
    assert headers["Contact"] == "<sip:sipguard@[2001:db8::50]:5555>"
    assert headers["To"] == "<sip:[2001:db8::10]:5061>"
    # a new transaction each time: branch, tag and Call-ID are unique
    for name in ("Via", "From", "Call-ID"):
        assert first[1][name] != second[1][name]


def test_options_request_refuses_a_branch_without_the_magic_cookie():
    with pytest.raises(ValueError, match="z9hG4bK"):
        build_options("192.0.2.1", 5061, "TCP", "192.0.2.2", 1, branch="abc")


# ------------------------------------------------------------------------------------------
# Parsing answers
# ------------------------------------------------------------------------------------------

OK_WITH_SERVER = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TLS 192.0.2.50:40123;branch=z9hG4bKabc123;rport=40123;received=198.51.100.7\r\n"
    b"From: \"sipguard\" <sip:sipguard@192.0.2.50>;tag=f00d\r\n"
    b"To: <sip:sbc.example.org:5061>;tag=as5f3c\r\n"
    b"Call-ID: c411@192.0.2.50\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Server: Asterisk PBX 20.5.0\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\n"
    b"Supported: replaces, timer\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_parse_200_ok_with_server_and_allow():
    parsed = parse_sip_response(OK_WITH_SERVER)
    assert parsed["status_code"] == 200 and parsed["reason"] == "OK"
    assert parsed["server"] == "Asterisk PBX 20.5.0"
    assert parsed["user_agent"] is None
    assert parsed["allow"] == ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "REFER", "SUBSCRIBE", "NOTIFY",
                               "INFO", "PUBLISH", "MESSAGE"]
    assert parsed["call_id"] == "c411@192.0.2.50" and parsed["cseq"] == "1 OPTIONS"
    assert parsed["content_length"] == 0


def test_parse_404_with_user_agent_and_a_body():
    data = (b"SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
            b"User-Agent: FRITZ!OS\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nnope!")
    parsed = parse_sip_response(data)
    assert (parsed["status_code"], parsed["reason"], parsed["user_agent"], parsed["server"], parsed["allow"]) == \
        (404, "Not Found", "FRITZ!OS", None, None)
    assert parsed["content_length"] == 5


def test_parse_483_too_many_hops_and_multiple_allow_headers():
    data = ("SIP/2.0 483 Too Many Hops\r\nServer: kamailio (5.7.2 (x86_64/linux))\r\n"
            "Allow: INVITE,ACK\r\nallow: options, bye, ack\r\nContent-Length: 0\r\n\r\n")
    parsed = parse_sip_response(data)
    assert (parsed["status_code"], parsed["reason"]) == (483, "Too Many Hops")
    assert parsed["server"] == "kamailio (5.7.2 (x86_64/linux))"
    assert parsed["allow"] == ["INVITE", "ACK", "OPTIONS", "BYE"]


def test_parse_folded_headers():
    data = (b"SIP/2.0 200 OK\r\n"
            b"Server: Example SBC\r\n"
            b"   release 4.2\r\n"
            b"Allow: INVITE, ACK,\r\n"
            b"\tOPTIONS,\r\n"
            b" BYE\r\n"
            b"Content-Length: 0\r\n\r\n")
    parsed = parse_sip_response(data)
    assert parsed["server"] == "Example SBC release 4.2"
    assert parsed["allow"] == ["INVITE", "ACK", "OPTIONS", "BYE"]


def test_parse_compact_header_forms_and_bare_lf():
    data = (b"\r\n\r\nSIP/2.0 200 OK\n"
            b"v: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK77\n"
            b"f: <sip:sipguard@192.0.2.50>;tag=1\n"
            b"t: <sip:192.0.2.1>;tag=2\n"
            b"i: compact@192.0.2.50\n"
            b"k: timer\n"
            b"Allow: OPTIONS\n"
            b"l: 0\n\n")
    parsed = parse_sip_response(data)
    assert parsed["status_code"] == 200
    assert parsed["call_id"] == "compact@192.0.2.50"
    assert parsed["content_length"] == 0
    assert parsed["allow"] == ["OPTIONS"]


def test_parse_status_line_without_reason():
    parsed = parse_sip_response(b"SIP/2.0 503\r\nContent-Length: 0\r\n\r\n")
    assert (parsed["status_code"], parsed["reason"]) == (503, "")


@pytest.mark.parametrize("data, quoted", [
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 400"),
    (b"OPTIONS sip:192.0.2.1 SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", "OPTIONS sip:"),
    (b"SIP/2.0 abc\r\n\r\n", "SIP/2.0 abc"),
    (b"SIP/2.0 999 Whatever\r\n\r\n", "999"),
    (b"\x15\x03\x01\x00\x02\x02\x46", "not a SIP response"),
    (b"SSH-2.0-OpenSSH_9.6\r\n", "SSH-2.0"),
    (b"", "empty"),
    (b"\r\n\r\n", "empty"),
    (b"SIP/2.0 200 OK\r\nthis is no header\r\n\r\n", "this is no header"),
    (b"SIP/2.0 200 OK\r\n folded first\r\n\r\n", "folded first"),
    (b"SIP/2.0 200 OK\r\nContent-Length: many\r\n\r\n", "many"),
])
def test_parse_garbage_raises_quoting_it(data, quoted):
    with pytest.raises(SipParseError) as info:
        parse_sip_response(data)
    assert quoted in str(info.value)


# ------------------------------------------------------------------------------------------
# Certificates
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("use_cryptography", [True, False], ids=["cryptography", "ssl-decoder"])
def test_describe_certificate(certificate, use_cryptography):
    der = certificate.public_bytes(serialization.Encoding.DER)
    described = describe_certificate(der, now=NOW, use_cryptography=use_cryptography)
    assert described["error"] is None
    assert described["decoder"] == ("cryptography" if use_cryptography else "ssl")
    assert described["subject"] == "CN=sip.test,O=sipguard test,C=ZZ"
    assert described["issuer"] == "CN=sip.test,O=sipguard test,C=ZZ"
    assert described["self_issued"] is True
    assert described["san"] == ["DNS:sip.test", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert described["not_after"] == "2026-03-31T13:00:00Z"
    assert described["not_before"] == "2025-12-31T13:00:00Z"
    assert described["days_left"] == 30
    assert described["serial"] == "5061ABCDEF"
    assert len(described["sha256"]) == 64


def test_describe_expired_certificate_has_negative_days_left():
    expired, _key = make_certificate(NOW - datetime.timedelta(days=3, hours=1), common_name="old, expired")
    der = expired.public_bytes(serialization.Encoding.DER)
    for use_cryptography in (True, False):
        described = describe_certificate(der, now=NOW, use_cryptography=use_cryptography)
        assert described["days_left"] == -4
        assert described["subject"] == r"CN=old\, expired,O=sipguard test,C=ZZ"


@pytest.mark.parametrize("use_cryptography", [True, False])
def test_describe_garbage_certificate_reports_an_error(use_cryptography):
    described = describe_certificate(b"\x30\x03\x02\x01\x00", now=NOW, use_cryptography=use_cryptography)
    assert described["error"].startswith("cannot decode the certificate (")
    assert ("cryptography: " in described["error"]) is use_cryptography and "ssl: " in described["error"]
    assert described["subject"] is None and described["days_left"] is None and described["decoder"] is None
    assert len(described["sha256"]) == 64


def test_describe_falls_back_to_the_ssl_decoder_when_cryptography_fails(certificate, monkeypatch):
    def broken(der, now):
        raise TypeError("load_der_x509_certificate() missing 1 required positional argument: 'backend'")

    monkeypatch.setattr(_probe, "_describe_with_cryptography", broken)
    der = certificate.public_bytes(serialization.Encoding.DER)
    described = describe_certificate(der, now=NOW, use_cryptography=True)
    assert (described["decoder"], described["error"], described["days_left"]) == ("ssl", None, 30)


# ------------------------------------------------------------------------------------------
# Classification and the summary (pure)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exc, state", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "closed"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "filtered"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "error"),
    (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "error"),
])
def test_classify_os_error(exc, state):
    assert classify_os_error(exc)[0] == state


def test_summary_counts_every_state_and_exposed_means_any_open():
    records = []
    for address, protocol, state in (("192.0.2.1", "tcp", "closed"), ("2001:db8::1", "udp", "open"),
                                     ("192.0.2.2", "udp", "open|filtered")):
        record = _probe.new_record(address, address, None, protocol, 5061)
        record["state"] = state
        records.append(record)
    records[1]["sip"] = {"status_code": 200, "reason": "OK"}
    counts, summary = summarize(records, 5061)
    assert counts == {"open": 1, "closed": 1, "filtered": 0, "open|filtered": 1, "error": 0}
    assert summary["exposed"] is True and summary["sip_answered"] is True
    assert summary["open"] == ["[2001:db8::1]:5061/udp"]
    assert summary["message"] == "port 5061 is exposed: open on [2001:db8::1]:5061/udp (SIP 200 OK)"
    counts, summary = summarize(records[:1] + records[2:], 5061)
    assert summary["exposed"] is False and summary["open"] == []


# ------------------------------------------------------------------------------------------
# Real sockets, loopback only
# ------------------------------------------------------------------------------------------

def test_tls_sip_server_on_both_loopbacks(server_tls):
    context, certificate, _names = server_tls
    received = []

    async def scenario():
        port, servers = await start_on_both(sip_server(received), ssl=context)
        try:
            return port, await probe_all(request(port=port, protocols=["tcp"]))
        finally:
            await stop(servers)

    port, result = asyncio.run(scenario())
    assert len(result["probes"]) == 2
    for address in LOOPBACKS:
        record = by_key(result)[(address, "tcp")]
        assert record["state"] == "open" and record["error"] is None, record
        assert record["family"] == ("ipv4" if address == "127.0.0.1" else "ipv6")
        assert record["port"] == port and record["attempts"] == 1 and record["rtt_ms"] >= 0
        tls = record["tls"]
        assert tls["version"] in ("TLSv1.2", "TLSv1.3") and tls["cipher"] and tls["bits"] >= 128
        assert tls["subject"] == tls["issuer"] == "CN=sip.test,O=sipguard test,C=ZZ"
        assert tls["san"] == ["DNS:sip.test", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
        expected_not_after = (getattr(certificate, "not_valid_after_utc", None) or certificate.not_valid_after)
        assert tls["not_after"] == expected_not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert tls["days_left"] == 30
        assert tls["decoder"] == "cryptography" and tls["server_name"] is None
        assert record["sip"] == {"status_code": 200, "reason": "OK", "server": "TestSBC/1.0",
                                 "user_agent": None, "allow": ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"],
                                 "transport": "TLS", "rtt_ms": record["sip"]["rtt_ms"]}
    assert result["counts"]["open"] == 2
    assert result["summary"]["exposed"] is True and result["summary"]["sip_answered"] is True
    assert result["summary"]["open"] == ["127.0.0.1:%d/tcp" % port, "[::1]:%d/tcp" % port]
    # what went over the wire is a proper OPTIONS over TLS
    assert len(received) == 2
    for text in received:
        assert text.startswith("OPTIONS sip:")
        assert re.search(r"^Via: SIP/2\.0/TLS (127\.0\.0\.1|\[::1\]):\d+;branch=z9hG4bK\w+;rport\r$",
                         text, re.MULTILINE)


def test_tls_without_cryptography_uses_the_ssl_decoder_and_sends_sni(server_tls, monkeypatch):
    context, _certificate, names = server_tls
    monkeypatch.setattr(_probe, "HAS_CRYPTOGRAPHY", False)
    del names[:]

    async def scenario():
        port, servers = await start_on_both(sip_server([]), ssl=context)
        try:
            return await probe_all(request(targets=["::1"], port=port, protocols=["tcp"],
                                           server_name="sbc.example.org"))
        finally:
            await stop(servers)

    (record,) = asyncio.run(scenario())["probes"]
    assert record["state"] == "open" and record["sip"]["status_code"] == 200
    assert record["tls"]["decoder"] == "ssl"
    assert record["tls"]["subject"] == "CN=sip.test,O=sipguard test,C=ZZ"
    assert record["tls"]["san"] == ["DNS:sip.test", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert record["tls"]["days_left"] == 30
    assert record["tls"]["server_name"] == "sbc.example.org"
    assert names == ["sbc.example.org"]


def test_plain_tcp_open_without_tls_or_sip_and_closed_port():
    async def scenario():
        port, servers = await start_on_both(silent)
        closed = free_port()
        try:
            opened = await probe_all(request(port=port, protocols=["tcp"], tls=False, sip=False))
        finally:
            await stop(servers)
        return opened, await probe_all(request(port=closed, protocols=["tcp"]))

    opened, closed = asyncio.run(scenario())
    for record in opened["probes"]:
        assert (record["state"], record["tls"], record["sip"], record["error"]) == ("open", None, None, None)
    for record in closed["probes"]:
        assert (record["state"], record["tls"], record["sip"], record["error"]) == ("closed", None, None, None)
        assert record["rtt_ms"] is not None and record["attempts"] == 1
    assert closed["summary"]["exposed"] is False
    assert closed["counts"]["closed"] == 2


def test_a_proxy_that_accepts_and_says_nothing_is_open_without_sip():
    async def scenario():
        port, servers = await start_on_both(silent)
        try:
            started = time.monotonic()
            with_tls = await probe_all(request(port=port, protocols=["tcp"], timeout=0.5))
            plain = await probe_all(request(port=port, protocols=["tcp"], timeout=0.5, tls=False))
            return with_tls, plain, time.monotonic() - started
        finally:
            await stop(servers)

    with_tls, plain, elapsed = asyncio.run(scenario())
    for record in with_tls["probes"]:
        assert (record["state"], record["tls"], record["sip"]) == ("open", None, None)
        assert record["error"] == "TLS: no handshake within 0.5s"
    for record in plain["probes"]:
        assert (record["state"], record["tls"], record["sip"]) == ("open", None, None)
        assert record["error"] == "SIP: no answer to OPTIONS over TCP within 0.5s"
    assert with_tls["summary"]["exposed"] is True and with_tls["summary"]["sip_answered"] is False
    assert elapsed < 4  # two runs, each bounded by one timeout after the connect


def test_a_plain_sip_server_and_a_non_sip_server_over_tcp():
    async def http(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        port, servers = await start_on_both(sip_server([]))
        other, others = await start_on_both(http)
        try:
            return (await probe_all(request(port=port, protocols=["tcp"], tls=False)),
                    await probe_all(request(port=other, protocols=["tcp"], tls=False)))
        finally:
            await stop(servers + others)

    sip, not_sip = asyncio.run(scenario())
    for record in sip["probes"]:
        assert record["state"] == "open" and record["sip"]["transport"] == "TCP"
        assert record["sip"]["status_code"] == 200 and record["tls"] is None
    for record in not_sip["probes"]:
        assert record["state"] == "open" and record["sip"] is None
        assert record["error"].startswith("SIP: not a SIP response: 'HTTP/1.1 400 Bad Request'")


def test_tls_on_a_plain_tcp_server_reports_the_handshake_failure_and_sends_no_plain_options():
    received = []

    async def scenario():
        port, servers = await start_on_both(sip_server(received))
        try:
            return await probe_all(request(port=port, protocols=["tcp"]))
        finally:
            await stop(servers)

    result = asyncio.run(scenario())
    for record in result["probes"]:
        assert record["state"] == "open" and record["tls"] is None and record["sip"] is None
        assert record["error"].startswith("TLS: ")
    assert all(not text.startswith("OPTIONS") for text in received)


def test_udp_sip_responder_is_open_with_the_sip_answer():
    async def scenario():
        port, endpoints = await udp_on_both(UdpSip)
        try:
            return await probe_all(request(port=port, protocols=["udp"])), endpoints
        finally:
            for transport, _protocol in endpoints:
                transport.close()

    result, endpoints = asyncio.run(scenario())
    for record in result["probes"]:
        assert record["state"] == "open" and record["error"] is None and record["attempts"] == 1
        assert record["sip"]["status_code"] == 200 and record["sip"]["transport"] == "UDP"
        assert record["sip"]["server"] == "TestSBC/1.0"
        assert record["sip"]["allow"] == ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"]
    for _transport, protocol in endpoints:
        ((text, addr),) = protocol.received
        assert text.startswith("OPTIONS sip:") and "\r\nCSeq: 1 OPTIONS\r\n" in text
        # the Via names the port the datagram came from, so the answer can come back
        assert re.search(r"^Via: SIP/2\.0/UDP \S+:%d;branch=z9hG4bK\w+;rport\r$" % addr[1], text, re.MULTILINE)


def test_udp_provisional_then_final_and_a_retransmission():
    async def scenario():
        port, endpoints = await udp_on_both(lambda: UdpSip(provisional=True))
        late, late_endpoints = await udp_on_both(lambda: UdpSip(ignore=1))
        try:
            return (await probe_all(request(port=port, protocols=["udp"])),
                    await probe_all(request(port=late, protocols=["udp"], timeout=0.3, retries=2)),
                    late_endpoints)
        finally:
            for transport, _protocol in endpoints + late_endpoints:
                transport.close()

    provisional, retransmitted, late_endpoints = asyncio.run(scenario())
    for record in provisional["probes"]:
        assert record["sip"]["status_code"] == 200
    for record in retransmitted["probes"]:
        assert record["state"] == "open" and record["attempts"] == 2 and record["sip"]["status_code"] == 200
    for _transport, protocol in late_endpoints:
        first, second = (text for text, _addr in protocol.received)
        assert first == second  # a retransmission is the same request, same branch


def test_udp_closed_and_silent():
    async def scenario():
        closed = free_port(socket.SOCK_DGRAM)
        listeners = []
        try:
            port = free_port(socket.SOCK_DGRAM)
            for host in LOOPBACKS:  # bound, never read, never answers: what a DROP looks like
                listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
                listeners.append(listener)
                listener.bind((host, port))
            started = time.monotonic()
            silent_result = await probe_all(request(port=port, protocols=["udp"], timeout=1.0, retries=3))
            elapsed = time.monotonic() - started
            received = []
            for listener in listeners:  # what the silent side got: every retry, the same request
                listener.setblocking(False)
                datagrams = []
                while True:
                    try:
                        datagrams.append(listener.recv(65535))
                    except BlockingIOError:
                        break
                received.append(datagrams)
        finally:
            for listener in listeners:
                listener.close()
        return await probe_all(request(port=closed, protocols=["udp"])), silent_result, elapsed, received

    closed, silent_result, elapsed, received = asyncio.run(scenario())
    for record in closed["probes"]:
        assert (record["state"], record["sip"], record["error"]) == ("closed", None, None)
    for record in silent_result["probes"]:
        assert (record["state"], record["sip"], record["attempts"], record["rtt_ms"]) == \
            ("open|filtered", None, 4, None)
        assert record["error"] == "no reply to 4 datagram(s) within 1s"
    for datagrams in received:
        assert len(datagrams) == 4 and len(set(datagrams)) == 1
    assert silent_result["summary"]["exposed"] is False
    # the four datagrams share one 1 s window: silence is known after 1 s, not 4 s
    assert 0.95 < elapsed < 3


def test_tcp_silence_is_filtered_after_every_attempt_within_one_window(monkeypatch):
    calls = []
    cancelled = []

    async def never_answers(family, sockaddr):
        calls.append((sockaddr[0], time.monotonic()))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(sockaddr[0])
            raise

    monkeypatch.setattr(_probe, "tcp_connect", never_answers)
    started = time.monotonic()
    result = asyncio.run(probe_all(request(protocols=["tcp"], timeout=1.0, retries=3)))
    elapsed = time.monotonic() - started
    for record in result["probes"]:
        assert (record["state"], record["attempts"], record["rtt_ms"], record["tls"]) == ("filtered", 4, None, None)
        assert record["error"] == "no answer to 4 connect attempt(s) within 1s"
    for address in LOOPBACKS:
        offsets = [moment - started for host, moment in calls if host == address]
        # attempt k starts k x timeout / (retries + 1) into the window: 0, 0.25, 0.5, 0.75 s
        assert len(offsets) == 4
        for attempt, offset in enumerate(offsets):
            assert attempt * 0.25 - 0.01 <= offset < (attempt + 1) * 0.25
    assert sorted(cancelled) == ["127.0.0.1"] * 4 + ["::1"] * 4  # no attempt left running
    assert 0.95 < elapsed < 3  # one window, not timeout x (retries + 1) = 4 s
    assert result["counts"]["filtered"] == 2


def test_a_later_attempt_answering_decides_and_the_others_are_cancelled(monkeypatch):
    calls = {}
    cancelled = []
    leftovers = []

    async def first_is_lost(family, sockaddr):
        attempt = calls[sockaddr[0]] = calls.get(sockaddr[0], 0) + 1
        if attempt == 1:  # the first SYN is lost: this attempt would wait forever
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(sockaddr[0])
                raise
        if sockaddr[0] == "::1":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        ours, theirs = socket.socketpair()
        leftovers.append(theirs)
        return ours

    monkeypatch.setattr(_probe, "tcp_connect", first_is_lost)
    started = time.monotonic()
    result = asyncio.run(probe_all(request(protocols=["tcp"], timeout=2.0, retries=1, tls=False, sip=False)))
    elapsed = time.monotonic() - started
    states = {record["address"]: record for record in result["probes"]}
    assert (states["127.0.0.1"]["state"], states["127.0.0.1"]["attempts"]) == ("open", 2)
    assert (states["::1"]["state"], states["::1"]["attempts"]) == ("closed", 2)
    for record in result["probes"]:
        assert record["rtt_ms"] is not None and record["rtt_ms"] < 500  # from the answering attempt
    assert sorted(cancelled) == ["127.0.0.1", "::1"]
    assert elapsed < 1.9  # decided by the answer at about 1 s, not by the end of the window
    for sock in leftovers:
        sock.close()


def test_icmp_unreachable_is_final_and_filtered(monkeypatch):
    async def unreachable(family, sockaddr):
        raise OSError(errno.EHOSTUNREACH, "No route to host")

    monkeypatch.setattr(_probe, "tcp_connect", unreachable)
    result = asyncio.run(probe_all(request(protocols=["tcp"], retries=3)))
    for record in result["probes"]:
        assert (record["state"], record["attempts"]) == ("filtered", 1)
        assert "No route to host" in record["error"]


def test_concurrency_is_bounded_and_the_run_is_not_serial(monkeypatch):
    in_flight = []
    peak = []

    async def slow_silence(family, sockaddr):
        in_flight.append(sockaddr)
        peak.append(len(in_flight))
        try:
            await asyncio.sleep(30)
        finally:
            in_flight.remove(sockaddr)

    monkeypatch.setattr(_probe, "tcp_connect", slow_silence)
    targets = ["127.0.3.%d" % n for n in range(1, 41)]
    result = asyncio.run(probe_all(request(targets=targets, protocols=["tcp"], timeout=0.1, concurrency=8)))
    assert max(peak) == 8
    assert [r["target"] for r in result["probes"]] == targets
    started = time.monotonic()
    asyncio.run(probe_all(request(targets=targets, protocols=["tcp"], timeout=0.3, retries=1, concurrency=256)))
    assert time.monotonic() - started < 1.5  # about one timeout, not 40 times that


def test_resolution_failures_give_error_records_and_families_filter(monkeypatch):
    def fake_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's names
        if flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if host == "sbc.example.org":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        if host == "v4only.example.org":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        if flags & socket.AI_NUMERICHOST and host in LOOPBACKS:
            return real_getaddrinfo(host, port, family, type, proto, flags)
        return fake_getaddrinfo(host, port, family, type, proto, flags)

    monkeypatch.setattr(_probe.socket, "getaddrinfo", getaddrinfo)
    closed = free_port()
    result = asyncio.run(probe_all(request(
        targets=["sbc.example.org", "nowhere.example.org", "v4only.example.org", "127.0.0.1"],
        port=closed, protocols=["tcp"], families=["ipv6"])))
    records = result["probes"]
    assert [(r["target"], r["address"], r["state"]) for r in records] == [
        ("sbc.example.org", "::1", "closed"),
        ("nowhere.example.org", None, "error"),
        ("v4only.example.org", None, "error"),
    ]
    assert records[1]["error"] == "cannot resolve nowhere.example.org: Name or service not known"
    assert records[2]["error"] == "v4only.example.org has no ipv6 address (it resolves to 127.0.0.1)"
    assert result["warnings"] == ["target 127.0.0.1 skipped: its family is not in families (ipv6)"]
    assert result["counts"]["error"] == 2
