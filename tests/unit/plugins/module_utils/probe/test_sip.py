# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The OPTIONS request (RFC 3261 8.1.1, 11) and the parsing of answers: pure, no sockets."""

from __future__ import annotations

import re

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.sip import SipParseError, build_options, parse_sip_response


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
