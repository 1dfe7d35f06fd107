# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The controller-side network filters the sips role validates trusted sources with."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.sipguard.firewall.plugins.filter.in_networks import in_networks
from ansible_collections.sipguard.firewall.plugins.filter.normalize_networks import normalize_networks


def test_networks_are_normalised_deduplicated_and_kept_in_order():
    assert normalize_networks(["192.0.2.0/24", "2001:DB8::/32", "198.51.100.7/32", "198.51.100.7",
                               "2001:db8::1/128", " 10.0.0.0/8 "]) == \
        ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7", "2001:db8::1", "10.0.0.0/8"]


@pytest.mark.parametrize("bad", ["10.0.0.300/24", "10.0.0.1/8", "2001:db8::1/32", "sbc.example.org", "10.1",
                                 "192.0.2.0/33", ""])
def test_bad_networks_fail_naming_the_value(bad):
    with pytest.raises(AnsibleFilterError) as error:
        normalize_networks(["192.0.2.0/24", bad])
    assert repr(bad) in str(error.value)


def test_a_string_is_not_a_list():
    with pytest.raises(AnsibleFilterError, match="expected a list"):
        normalize_networks("192.0.2.0/24")


def test_addresses_inside_networks():
    assert in_networks(["192.0.2.7", "203.0.113.9", "2001:db8::5", "fe80::1%eth0", "::1"],
                       ["192.0.2.0/24", "2001:db8::/32"]) == ["192.0.2.7", "2001:db8::5"]
    assert in_networks(["192.0.2.7"], []) == []


@pytest.mark.parametrize("value", ["192.0.2.0/24", "2001:DB8::/32", "198.51.100.7/32", " 10.0.0.0/8 ", "::1/128",
                                   "10.0.0.300/24", "10.0.0.1/8", "2001:db8::1/32", "sbc.example.org", "10.1",
                                   "192.0.2.0/33", "", "010.0.0.1"])
def test_the_role_and_the_modules_accept_and_spell_the_same_values(value):
    """One implementation on both sides: what the role's check lets through, the hosts take as it is."""
    from ansible_collections.sipguard.firewall.plugins.module_utils._request import PortRequest, RequestError
    params = dict(port=5061, protocols=["tcp"], families=["ipv4", "ipv6"], trusted_sources=[value])
    try:
        on_controller = normalize_networks([value])
    except AnsibleFilterError as error:
        with pytest.raises(RequestError) as on_host:
            PortRequest.from_params(params)
        assert repr(value) in str(error) and repr(value) in str(on_host.value)
    else:
        assert list(PortRequest.from_params(params).trusted_sources) == on_controller
        assert list(PortRequest.from_params(dict(params, trusted_sources=on_controller)).trusted_sources) == on_controller
