# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""port_probe's options: the spec's defaults, and bad values named before anything is probed."""

from __future__ import annotations

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._probe.request import ProbeRequest, ProbeRequestError


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
    # the argument spec decides types, choices and which options there are
    (dict(speed=1), "speed"),
    (dict(port=True), "port True"),  # an int to Python, not to the spec
    (dict(tls="perhaps"), "perhaps"),
    (dict(protocols="tcp,icmp"), "icmp"),
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


def test_the_request_defaults_are_the_argument_specs():
    assert ProbeRequest.from_params(dict(targets=["192.0.2.1"])) == ProbeRequest(targets=("192.0.2.1",))
    request = ProbeRequest.from_params(dict(targets="192.0.2.1, 192.0.2.2", protocols="udp,tcp", tls="no"))
    assert (request.targets, request.protocols, request.tls) == (("192.0.2.1", "192.0.2.2"), ("tcp", "udp"), False)
