# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""probe_all's on_record: each record as soon as its probe ends, an open port before a silent one
times out (what the port_state watch announces a reopening by). Loopback only; the silence of a
dropped SYN is emulated by replacing tcp.tcp_connect."""

from __future__ import annotations

import asyncio
import time

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import tcp
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.network import probe_all
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.loopback import (
    request,
    silent,
    start_on_both,
    stop,
)


def test_each_record_is_handed_over_when_its_probe_ends(monkeypatch):
    real_connect = tcp.tcp_connect

    async def drop_ipv6(family, sockaddr):
        if ":" in sockaddr[0]:
            await asyncio.sleep(3600)  # a dropped SYN: no answer at all
        return await real_connect(family, sockaddr)

    monkeypatch.setattr(tcp, "tcp_connect", drop_ipv6)

    async def scenario():
        port, servers = await start_on_both(silent)
        seen = []
        started = time.monotonic()
        try:
            result = await probe_all(request(port=port, protocols=["tcp"], tls=False, sip=False, timeout=1.5,
                                             retries=0),
                                     on_record=lambda record: seen.append((time.monotonic() - started, record)))
        finally:
            await stop(servers)
        return result, seen

    result, seen = asyncio.run(scenario())
    assert [record for _at, record in seen] != [] and len(seen) == len(result["probes"])
    by_state = {record["state"]: at for at, record in seen}
    assert set(by_state) == {"open", "filtered"}
    assert by_state["open"] < 1.0 <= by_state["filtered"]  # the open one did not wait for the silent one
    assert all(any(record is probed for probed in result["probes"]) for _at, record in seen)
