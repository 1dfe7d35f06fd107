# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""TLS and SIP over it, against servers on loopback only."""

from __future__ import annotations

import asyncio
import re

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import certificate as probe_certificate
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.loopback import LOOPBACKS, by_key, request, sip_server, start_on_both, stop


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
    monkeypatch.setattr(probe_certificate, "HAS_CRYPTOGRAPHY", False)
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
