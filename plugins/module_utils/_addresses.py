# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The host's own addresses and interfaces, from /proc: what a rule's ``-d`` and ``-i`` can match
for a packet sent to this host.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import ipaddress

FIB_TRIE = "/proc/net/fib_trie"
IF_INET6 = "/proc/net/if_inet6"


def parse_fib_trie(text):
    """The IPv4 addresses of this host (`/32 host LOCAL` entries), loopback left out, each once."""
    found, last = [], None
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            last = stripped[4:].strip()
        elif stripped.startswith("/32 host LOCAL") and last and not last.startswith("127.") and last not in found:
            found.append(last)
    return found


def parse_if_inet6(text):
    """The IPv6 addresses of this host's interfaces other than loopback, each once."""
    found = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5] != "lo" and len(fields[0]) == 32:
            address = str(ipaddress.IPv6Address(int(fields[0], 16)))
            if address not in found:
                found.append(address)
    return found


def parse_if_inet6_interfaces(text):
    """The interfaces other than loopback that have an IPv6 address, in order."""
    names = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5] != "lo" and fields[5] not in names:
            names.append(fields[5])
    return names


def host_addresses(host):
    """({family: [addresses]}, [interfaces with an IPv6 address]) of this host, each table read
    once; a family whose table cannot be read is absent."""
    fib_trie, if_inet6 = host.read_text(FIB_TRIE), host.read_text(IF_INET6)
    local = {}
    if fib_trie:
        local["ipv4"] = parse_fib_trie(fib_trie)
    if if_inet6:
        local["ipv6"] = parse_if_inet6(if_inet6)
    return local, parse_if_inet6_interfaces(if_inet6)


NET_DEV = "/proc/net/dev"


def parse_net_dev(text):
    """The host's network interfaces (/proc/net/dev) other than lo, in order."""
    names = []
    for line in (text or "").splitlines()[2:]:
        name = line.split(":", 1)[0].strip()
        if ":" in line and name and name != "lo" and name not in names:
            names.append(name)
    return names
