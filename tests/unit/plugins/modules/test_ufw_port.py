# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The module's entry point: bad input fails naming the value before the host is touched."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.sipguard.firewall.plugins.module_utils import _host
from ansible_collections.sipguard.firewall.plugins.modules import ufw_port


@pytest.fixture
def host_touches(monkeypatch):
    """Record every attempt to lock, read or run anything on the host."""
    touches = []

    def record(name):
        def touched(*args, **kwargs):
            touches.append(name)
            raise AssertionError("the host was touched: %s" % name)
        return touched

    for name in ("run", "read_text", "write_atomic", "ufw_lock"):
        monkeypatch.setattr(_host.Host, name, record(name))
    return touches


def run_module(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            ufw_port.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("args, named", [
    (dict(port=0), "0"),
    (dict(port=65536), "65536"),
    (dict(port="abc"), "abc"),
    (dict(port=[5061]), "5061"),
    (dict(port=5061, protocols=["icmp"]), "icmp"),
    (dict(port=5061, protocols=[]), "protocols"),
    (dict(port=5061, families=["ipv5"]), "ipv5"),
    (dict(port=5061, trusted_sources=["10.0.0.300/24"]), "10.0.0.300/24"),
    (dict(port=5061, trusted_sources=["10.0.0.1/8"]), "10.0.0.1/8"),
    (dict(port=5061, conflicts="ignore"), "ignore"),
    (dict(port=5061, inactive="start"), "start"),
    (dict(port=5061, state="open"), "open"),
])
def test_bad_input_fails_naming_the_value_and_touches_nothing(capsys, host_touches, args, named):
    code, result = run_module(capsys, args)
    assert code == 1 and result["failed"] is True
    assert named in result["msg"]
    assert host_touches == []
