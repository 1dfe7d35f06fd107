# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What an OS error means for a record, and the summary of a run (pure)."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.records import classify_os_error, new_record, summarize


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
        record = new_record(address, address, None, protocol, 5061)
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
