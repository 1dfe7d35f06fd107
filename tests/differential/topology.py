# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where the differential test's packets come from and go to (pure data, no I/O).

Two internal podman networks, side ``a`` and side ``b``, each IPv4 + IPv6. Every target has
``eth0`` on side a and ``eth1`` on side b. One prober container holds six addresses per side
and family (``.248`` to ``.253``); the odd ones are *crossed*: a policy route sends their
packets out of the prober's other interface, so they arrive on the target's other interface
(``eth1`` for a side-a source). Two more addresses, the outsiders, are in
none of the networks rules name (the targets route them back through the prober). Each probe
goes from one prober address to one of the target's two addresses, so every combination a UFW
rule can name here - a source inside or outside each named network, the target's address on
``eth0`` or ``eth1``, arrival on ``eth0`` or ``eth1`` - is sent by at least one probe. The
networks are internal: no gateway, no NAT, no way out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SIDES = ("a", "b")
FAMILIES = ("ipv4", "ipv6")
PROTOCOLS = ("tcp", "udp")
PORT = 5061
# Other listeners: neighbours of 5061 in ranges and lists, SSH, a web port. A close must
# leave what the network sees on them exactly as it was.
OTHER_PORTS = ((5060, "tcp"), (5060, "udp"), (22, "tcp"), (8080, "tcp"))
LISTEN_PORTS = (5061, 5060, 22, 8080)

NETWORKS = {
    "a": {"name": "sipguard-diff-a", "interface": "eth0",
          "ipv4": "10.89.20.0/24", "ipv6": "fd00:5020:0:a::/64"},
    "b": {"name": "sipguard-diff-b", "interface": "eth1",
          "ipv4": "10.89.21.0/24", "ipv6": "fd00:5020:0:b::/64"},
}
PROBER_HOSTS = range(248, 254)
# Outsiders: prober addresses in none of the named networks, the rest of the world that a
# default policy or a "deny from X" leaves the port open to. The targets route them back
# through the prober's side-a address.
OUTSIDER_NETWORK = {"ipv4": "10.89.22.0/24", "ipv6": "fd00:5020:0:c::/64"}
OUTSIDER_HOSTS = (248, 249)
TARGET_HOST_BASE = 10  # target slot k holds .10+k on both sides
CROSSED_TABLE = 100

# The networks rules and trusted sources name. Every one except "nowhere" holds prober
# addresses (both crossed and not), so an accept it makes is seen by some probe.
NAMED_NETWORKS = {
    "a-host": {"ipv4": "10.89.20.248/31", "ipv6": "fd00:5020:0:a::f8/127"},
    "a-pair": {"ipv4": "10.89.20.248/30", "ipv6": "fd00:5020:0:a::f8/126"},
    "a-lan": {"ipv4": "10.89.20.0/24", "ipv6": "fd00:5020:0:a::/64"},
    "b-host": {"ipv4": "10.89.21.248/31", "ipv6": "fd00:5020:0:b::f8/127"},
    "b-pair": {"ipv4": "10.89.21.248/30", "ipv6": "fd00:5020:0:b::f8/126"},
    "b-lan": {"ipv4": "10.89.21.0/24", "ipv6": "fd00:5020:0:b::/64"},
    "both-lans": {"ipv4": "10.89.20.0/23", "ipv6": "fd00:5020:0:a::/63"},
    "nowhere": {"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:5061::/48"},
}
WITNESSED_NETWORKS = tuple(name for name in NAMED_NETWORKS if name != "nowhere")
# A side-a address no container has: a rule "to" it never matches a packet to the target.
ELSEWHERE = {"ipv4": "10.89.20.77", "ipv6": "fd00:5020:0:a::4d"}


@dataclass(frozen=True)
class Vantage:
    """One prober address: the side it belongs to and whether its packets leave crossed."""

    side: str
    family: str
    host: int

    @property
    def address(self) -> str:
        return host_address(self.side, self.family, self.host)

    @property
    def crossed(self) -> bool:
        return self.host % 2 == 1

    @property
    def name(self) -> str:
        return "%s%d%s" % (self.side, self.host, "" if self.family == "ipv4" else "v6")

    def arrives_on(self, destination_side: str) -> str:
        """The target interface a packet to the target's destination_side address arrives on."""
        other = SIDES[1 - SIDES.index(destination_side)]
        return NETWORKS[other if self.crossed else destination_side]["interface"]


def host_address(side: str, family: str, host: int) -> str:
    network = ipaddress.ip_network(OUTSIDER_NETWORK[family] if side == "x" else NETWORKS[side][family])
    if family == "ipv4":
        return str(network.network_address + host)
    return str(network.network_address + host)  # .248 is ::f8: the same host number


def vantages(family: str):
    """The prober's addresses: six per side, then the two outsiders (side "x")."""
    return ([Vantage(side, family, host) for side in SIDES for host in PROBER_HOSTS]
            + [Vantage("x", family, host) for host in OUTSIDER_HOSTS])


def target_address(slot: int, side: str, family: str) -> str:
    return host_address(side, family, TARGET_HOST_BASE + slot)


def target_placeholders(slot: int):
    """The values of the placeholders states use for the target's own addresses."""
    return {"<target-%s-%s>" % (side, family): target_address(slot, side, family)
            for side in SIDES for family in FAMILIES}


def in_networks(address: str, networks) -> bool:
    """Whether address is in any of the networks (CIDR texts of any family)."""
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(network) for network in networks
               if ipaddress.ip_network(network).version == ip.version)


def probe_plan():
    """Every probe of one phase, as (key, protocol, vantage, destination side, port).

    5061 on both protocols from every vantage to both target addresses; each other port from
    three vantages. No vantage sends more than five packets to one target in a phase: UFW's
    ``limit`` rejects the sixth new connection from a source within 30 s (the harness also
    clears the ``recent`` list before each phase).
    """
    plan = []
    for family in FAMILIES:
        for index, vantage in enumerate(vantages(family)):
            for destination in SIDES:
                for protocol in PROTOCOLS:
                    plan.append((probe_key(family, protocol, PORT, vantage.name, destination),
                                 protocol, vantage, destination, PORT))
            port, protocol = OTHER_PORTS[index % len(OTHER_PORTS)]
            destination = SIDES[(index // len(OTHER_PORTS)) % 2]
            plan.append((probe_key(family, protocol, port, vantage.name, destination),
                         protocol, vantage, destination, port))
    return plan


def target_setup_script():
    """Shell commands that route the outsiders' replies back through the prober."""
    return "".join("ip %s route add %s via %s dev %s\n" % (
        "-4" if family == "ipv4" else "-6", OUTSIDER_NETWORK[family], host_address("a", family, PROBER_HOSTS[0]),
        NETWORKS["a"]["interface"]) for family in FAMILIES)


def probe_key(family, protocol, port, vantage_name, destination_side) -> str:
    return "%s/%s/%d/%s>%s" % (family, protocol, port, vantage_name, destination_side)


def prober_setup_script(target_macs):
    """Shell commands that give the prober its addresses and crossed routes.

    target_macs: {slot: {"eth0": mac, "eth1": mac}}. A crossed packet to the target's side-a
    address leaves on the prober's side-b interface; the target would not answer neighbour
    discovery for it there (IPv6 never does), so the prober gets static neighbour entries, for
    the direct paths too.
    """
    lines = ["set -e"]
    for family in FAMILIES:
        for host in OUTSIDER_HOSTS:
            lines.append("ip %s addr add %s/%d dev %s%s" % (
                "-4" if family == "ipv4" else "-6", host_address("x", family, host), 32 if family == "ipv4" else 128,
                NETWORKS["a"]["interface"], " nodad" if family == "ipv6" else ""))
    for side in SIDES:
        interface = NETWORKS[side]["interface"]
        for family in FAMILIES:
            for host in PROBER_HOSTS[1:]:  # .248 is the container's own, given by podman
                prefix = NETWORKS[side][family].split("/")[1]
                lines.append("ip %s addr add %s/%s dev %s%s" % (
                    "-4" if family == "ipv4" else "-6", host_address(side, family, host), prefix, interface,
                    " nodad" if family == "ipv6" else ""))
    for family in FAMILIES:
        ip = "ip -4" if family == "ipv4" else "ip -6"
        for vantage in vantages(family):
            if vantage.crossed:
                lines.append("%s rule add from %s table %d" % (ip, vantage.address, CROSSED_TABLE))
        for side in SIDES:
            own = NETWORKS[side]["interface"]
            other = NETWORKS[SIDES[1 - SIDES.index(side)]]["interface"]
            lines.append("%s route add %s dev %s table %d" % (ip, NETWORKS[side][family], other, CROSSED_TABLE))
            for slot, macs in sorted(target_macs.items()):
                # The target's side address on its own link and through the other interface
                # (the MAC there). Static, so a target whose firewall drops neighbour discovery
                # (UFW with IPV6=no) still gets the packets a neighbour on the link could send.
                for interface in (own, other):
                    lines.append("%s neigh replace %s lladdr %s dev %s nud permanent" % (
                        ip, target_address(slot, side, family), macs[interface], interface))
    return "\n".join(lines) + "\n"
