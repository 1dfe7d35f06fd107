# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Names to records: resolution failures and the families filter (the resolver replaced)."""

from __future__ import annotations

import asyncio
import socket

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import resolver
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.loopback import LOOPBACKS, free_port, request


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

    monkeypatch.setattr(resolver.socket, "getaddrinfo", getaddrinfo)
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
