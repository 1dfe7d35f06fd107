# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Random UFW states from a grammar, reproducible from (seed, index). Pure: no I/O.

A state is what an administrator may have left on a host before sipguard runs: the IPv6
setting, the default incoming policy, an application profile, ufw rules (allow, deny, reject,
limit; one port, ranges, multiport lists; tcp, udp or both; from and to networks that hold or do
not hold the prober's and the target's addresses; ``in on`` either interface; IPv4-only and
IPv6-only rules; app rules; outgoing rules; inserted or appended), accepts added to
before.rules, rules outside UFW (iptables/ip6tables INPUT accepts, a nat REDIRECT), UFW active,
inactive or enabled but not loaded - plus the trusted sources and close options the modules get.

State ``index`` of a run with ``seed`` depends on nothing else (``random.Random("seed:index")``),
so one state reproduces alone. Addresses of the target appear as placeholders
(``<target-a-ipv4>``) that topology.target_placeholders() fills for the container used.
"""

from __future__ import annotations

import random
import shlex
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

from ansible_collections.sipguard.firewall.tests.differential import topology

APP_NAME = "SIPS-diff"
APP_FILE = "/etc/ufw/applications.d/sipguard-diff"
# Port specifications a rule or profile names: (text, needs a protocol, holds 5061).
PORT_SPECS = (
    ("5061", False, 30), ("5000:5100", True, 10), ("5060,5061", True, 9), ("5055,5060:5065", True, 4),
    ("5062:5070", True, 4), ("5060,5062", True, 3), ("5060", False, 6), ("8080", False, 4), ("22", False, 3),
)
APP_PORTS = ("5061", "5061/tcp", "5061/udp", "5060:5062/tcp|5060:5062/udp", "5060,5061/tcp", "5062/tcp")
BEFORE_FILES = {"ipv4": ("/etc/ufw/before.rules", "ufw-before-input"),
                "ipv6": ("/etc/ufw/before6.rules", "ufw6-before-input")}
TOOLS = {"ipv4": "iptables", "ipv6": "ip6tables"}


@dataclass(frozen=True)
class State:
    """One generated state; every field is plain data (JSON-ready with asdict)."""

    seed: int
    index: int
    ipv6: str                      # "yes", "no", or "no-after-rules" (rules added with yes)
    default_incoming: Optional[str]  # None: the image's default (deny)
    app_ports: Optional[str]       # the profile's ports= line, or None for no profile
    ufw: Tuple[Tuple[str, ...], ...]    # ufw commands, the arguments after "ufw"
    before_rules: Tuple[Tuple[str, str], ...]  # (family, line) added to before(6).rules
    outside: Tuple[Tuple[str, ...], ...]  # iptables/ip6tables commands run after UFW starts
    activation: str                # "active", "inactive", "enabled-not-loaded"
    trusted_sources: Tuple[str, ...] = ()
    close_action: str = "deny"
    close_conflicts: str = "shadow"
    close_inactive: str = "enable"

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """A state written by hand or copied from last-run.json (lists for tuples)."""
        nested = ("ufw", "before_rules", "outside")
        values = dict(data)
        for name in nested:
            values[name] = tuple(tuple(item) for item in values.get(name, ()))
        values["trusted_sources"] = tuple(values.get("trusted_sources", ()))
        values.setdefault("seed", 0)
        values.setdefault("index", 0)
        values.setdefault("ipv6", "yes")
        values.setdefault("default_incoming", None)
        values.setdefault("app_ports", None)
        values.setdefault("activation", "active")
        return cls(**values)

    @property
    def has_redirect(self) -> bool:
        return any("REDIRECT" in command for command in self.outside)


def _weighted(rng, choices):
    """choices: ((value, weight), ...)."""
    values, weights = zip(*choices)
    return rng.choices(values, weights=weights)[0]


def _network(name, family):
    return topology.NAMED_NETWORKS[name][family]


def _source(rng, action, family):
    """A source network for a rule of this family, or None for anywhere."""
    if rng.random() < 0.5:
        return None
    names = list(topology.WITNESSED_NETWORKS)
    # An accept from a network no probe comes from would be exposure nobody can see;
    # deny and reject may name one (they only take traffic away).
    if action in ("deny", "reject"):
        names.append("nowhere")
    return _network(rng.choice(names), family)


def _destination(rng, family):
    kind = _weighted(rng, (("any", 64), ("target-a", 8), ("target-b", 8), ("a-lan", 6), ("b-lan", 6),
                           ("elsewhere", 8)))
    if kind == "any":
        return None
    if kind.startswith("target-"):
        return "<%s-%s>" % (kind, family)
    if kind == "elsewhere":
        return topology.ELSEWHERE[family]
    return _network(kind, family)


def ufw_rule(rng, has_app, rules_so_far):
    """One ufw command (arguments after ``ufw``)."""
    action = _weighted(rng, (("allow", 40), ("deny", 24), ("reject", 14), ("limit", 22)))
    family = _weighted(rng, (("both", 50), ("ipv4", 25), ("ipv6", 25)))
    direction = _weighted(rng, (("in", 95), ("out", 5)))
    use_app = has_app and direction == "in" and rng.random() < 0.3
    if use_app:
        port_text, needs_protocol = None, False
    else:
        port_text, needs_protocol = _weighted(rng, [((text, needs), weight) for text, needs, weight in PORT_SPECS])
    protocol = None if use_app else rng.choice(("tcp", "udp") if needs_protocol else ("tcp", "udp", None))
    interface = _weighted(rng, ((None, 70), ("eth0", 15), ("eth1", 15)))
    source = destination = None
    if family != "both":
        source = _source(rng, action, family)
        destination = _destination(rng, family)
    prefix = []
    if rules_so_far and rng.random() < 0.15:
        prefix = ["insert", "1"]
    simple = (family == "both" and interface is None and not use_app and rng.random() < 0.6)
    if simple:
        return tuple(prefix + [action] + ([direction] if direction == "out" else [])
                     + [port_text + ("/" + protocol if protocol else "")])
    words = prefix + [action, direction]
    if interface:
        words += ["on", interface]
    if family != "both" and source is None and destination is None:
        # An IPv4-only or IPv6-only rule for any address: ufw takes the family from "from".
        source = "0.0.0.0/0" if family == "ipv4" else "::/0"
    words += ["from", source or "any", "to", destination or "any"]
    if use_app:
        words += ["app", APP_NAME]
    else:
        words += ["port", port_text]
        if protocol:
            words += ["proto", protocol]
    return tuple(words)


def before_rule(rng):
    family = rng.choice(topology.FAMILIES)
    _path, chain = BEFORE_FILES[family]
    words = ["-A", chain]
    if rng.random() < 0.4:
        words += ["-s", _network(rng.choice(topology.WITNESSED_NETWORKS), family)]
    if rng.random() < 0.25:
        words += ["-i", rng.choice(("eth0", "eth1"))]
    if rng.random() < 0.15 and "-s" in words:
        words += ["-j", "ACCEPT"]  # everything from that network
    else:
        protocol = rng.choice(topology.PROTOCOLS)
        ports = _weighted(rng, (("--dport 5061", 6), ("-m multiport --dports 5000:5100", 2),
                                ("--dport 5062", 1)))
        words += ["-p", protocol] + ports.split() + ["-j", "ACCEPT"]
    return family, " ".join(words)


def outside_rule(rng):
    family = rng.choice(topology.FAMILIES)
    tool = TOOLS[family]
    if rng.random() < 0.12:
        protocol = rng.choice(topology.PROTOCOLS)
        return (tool, "-t", "nat", "-I", "PREROUTING", "-p", protocol, "--dport", "5061",
                "-j", "REDIRECT", "--to-ports", "8080")
    words = [tool, rng.choice(("-I", "-I", "-A")), "INPUT"]
    if rng.random() < 0.4:
        words += ["-s", _network(rng.choice(topology.WITNESSED_NETWORKS), family)]
    if rng.random() < 0.2:
        words += ["-i", rng.choice(("eth0", "eth1"))]
    if rng.random() < 0.15 and "-s" in words:
        words += ["-j", "ACCEPT"]
    else:
        protocol = rng.choice(topology.PROTOCOLS)
        words += ["-p", protocol, "--dport", "5061", "-j", "ACCEPT"]
    return tuple(words)


def generate(seed: int, index: int) -> State:
    rng = random.Random("%d:%d" % (seed, index))
    ipv6 = _weighted(rng, (("yes", 80), ("no", 10), ("no-after-rules", 10)))
    default_incoming = _weighted(rng, ((None, 40), ("deny", 15), ("reject", 25), ("allow", 20)))
    app_ports = rng.choice(APP_PORTS) if rng.random() < 0.15 else None
    count = _weighted(rng, ((0, 5), (1, 15), (2, 20), (3, 20), (4, 15), (5, 10), (6, 8), (7, 4), (8, 3)))
    commands = []
    if default_incoming:
        commands.append(("default", default_incoming, "incoming"))
    for number in range(count):
        commands.append(ufw_rule(rng, app_ports is not None, number))
    before = tuple(before_rule(rng) for _number in range(rng.choice((1, 1, 2)))) if rng.random() < 0.15 else ()
    outside = tuple(outside_rule(rng) for _number in range(rng.choice((1, 1, 2)))) if rng.random() < 0.15 else ()
    activation = _weighted(rng, (("active", 85), ("inactive", 10), ("enabled-not-loaded", 5)))
    trusted = ()
    if rng.random() < 0.4:
        picks = rng.sample(topology.WITNESSED_NETWORKS, rng.choice((1, 1, 2)))
        families = _weighted(rng, ((topology.FAMILIES, 60), (("ipv4",), 20), (("ipv6",), 20)))
        trusted = tuple(_network(name, family) for name in picks for family in families)
    return State(
        seed=seed, index=index, ipv6=ipv6, default_incoming=default_incoming, app_ports=app_ports,
        ufw=tuple(commands), before_rules=before, outside=outside, activation=activation,
        trusted_sources=trusted,
        close_action=_weighted(rng, (("deny", 70), ("reject", 30))),
        close_conflicts=_weighted(rng, (("shadow", 70), ("remove", 25), ("fail", 5))),
        close_inactive=_weighted(rng, (("enable", 85), ("skip", 10), ("fail", 5))),
    )


def states(seed: int, count: int, only=None) -> List[State]:
    indexes = sorted(set(only)) if only else range(count)
    return [generate(seed, index) for index in indexes]


# ----------------------------------------------------------------------------------
# Rendering: the steps that make a state on a fresh target
# ----------------------------------------------------------------------------------

def fill(text: str, placeholders: Dict[str, str]) -> str:
    for key, value in placeholders.items():
        text = text.replace(key, value)
    return text


def steps(state: State, placeholders: Dict[str, str]):
    """The state as ordered steps: ("sh", shell text) or ("ufw", [argv, ...]).

    The reproducer prints the ufw steps as ``ufw ...`` lines; the harness feeds them to
    ufw_batch.py, which runs the same commands in one process.
    """
    result = []
    if state.ipv6 == "no":
        result.append(("sh", "sed -i 's/^IPV6=.*/IPV6=no/' /etc/default/ufw"))
    if state.app_ports:
        result.append(("sh", "printf '[%s]\\ntitle=SIP over TLS (differential test)\\n"
                             "description=differential test profile\\nports=%s\\n' > %s"
                       % (APP_NAME, state.app_ports, APP_FILE)))
    if state.ufw:
        result.append(("ufw", [[fill(word, placeholders) for word in command] for command in state.ufw]))
    for family, line in state.before_rules:
        path, chain = BEFORE_FILES[family]
        # Right after the loopback accept: ahead of UFW's own before rules and user rules.
        result.append(("sh", "sed -i '/^-A %s -i lo -j ACCEPT$/a %s' %s" % (chain, line, path)))
    if state.ipv6 == "no-after-rules":
        result.append(("sh", "sed -i 's/^IPV6=.*/IPV6=no/' /etc/default/ufw"))
    if state.activation in ("active", "enabled-not-loaded"):
        result.append(("sh", "sed -i 's/^ENABLED=.*/ENABLED=yes/' /etc/ufw/ufw.conf"))
    if state.activation == "active":
        # What `ufw --force enable` loads (the same rule sets, compared byte for byte), and what
        # the boot runs; without ufw's Python start-up, 0.4 s of a state's 0.6 s set-up.
        result.append(("sh", "/lib/ufw/ufw-init start"))
    for command in state.outside:
        result.append(("sh", " ".join(shlex.quote(word) for word in command)))
    return result


def reproducer(state: State, placeholders: Dict[str, str]) -> str:
    """A shell script that makes the state in a fresh container of the harness image."""
    lines = ["# differential state seed=%d index=%d (target %s / %s)" % (
        state.seed, state.index, placeholders["<target-a-ipv4>"], placeholders["<target-b-ipv4>"])]
    for kind, body in steps(state, placeholders):
        if kind == "ufw":
            lines.extend("ufw " + " ".join(shlex.quote(word) for word in argv) for argv in body)
        else:
            lines.append(body)
    lines.append("# modules: trusted_sources=%s; close action=%s conflicts=%s inactive=%s" % (
        list(state.trusted_sources), state.close_action, state.close_conflicts, state.close_inactive))
    return "\n".join(lines)
