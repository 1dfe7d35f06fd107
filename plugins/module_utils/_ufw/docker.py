# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The port published by Docker containers: closed in DOCKER-USER, kept there by UFW (pure).

Private to the sipguard.firewall collection: no compatibility promise outside it.

Docker sends a published port on with DNAT and accepts it in filter FORWARD, which UFW's
INPUT rules never see; DOCKER-USER is the one chain Docker consults first and leaves alone.
What ``docker=close`` keeps there, per port P:

- a chain ``sips-docker-P`` of our own, declared and filled in ``/etc/ufw/after.rules``
  between BEGIN/END lines: RETURN for each trusted IPv4 source, then a DROP (REJECT with
  action=reject) of every connection whose destination port *before* DNAT was P
  (``-m conntrack --ctstate DNAT --ctorigdstport P``: ``-p P:15061`` counts, ``-p 15061:P``
  does not, and the containers' own connections out to a remote P are not touched). Every
  load of UFW flushes and refills it, so it stays what the file says;
- the jump to it as DOCKER-USER's first rule, kept by a block in ``/etc/ufw/after.init``,
  which ufw-init runs after loading (``start``: create DOCKER-USER if dockerd has not yet,
  put the jump first, exactly once) and before unloading (``stop``: remove it). An ``-I`` in
  after.rules would add one more jump at every reload; a ``:DOCKER-USER`` there would flush
  the user's own rules. dockerd keeps an existing DOCKER-USER and its rules when it starts.

The blocks carry what is needed to take them out again (``state=absent``): the after.init
block says whether the file was there and its mode before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import Chain, Table
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import parse_chain_lines

AFTER_RULES = "/etc/ufw/after.rules"
AFTER_INIT = "/etc/ufw/after.init"
DOCKER_USER = "DOCKER-USER"
DOCKER_CHAINS = ("DOCKER", DOCKER_USER)
NFT_TABLE = "docker-bridges"  # Docker 29's nftables firewall backend (ip and ip6): no DOCKER-USER there
# What the after.init block records of the file before it: absent, or its mode.
_WAS_RE = re.compile(r"\(was: (absent|0[0-7]{3})\)")
_INIT_HEADER = "#!/bin/sh\n# after.init: run by ufw-init after it loads the rules (start) and before it unloads them (stop).\n"


CHAIN_PREFIX = "sips-docker-"  # the chains of every port the collection closes this way
_BEGIN_PREFIX = "# BEGIN sipguard.firewall " + CHAIN_PREFIX


def chain_name(port):
    return "%s%d" % (CHAIN_PREFIX, port)


def _begin(port):
    return "%s%d" % (_BEGIN_PREFIX, port)


def _end(port):
    return "# END sipguard.firewall %s" % chain_name(port)


def chain_lines(request):
    """The `-A` lines of the port's chain, as iptables-save prints them."""
    name = chain_name(request.port)
    # iptables-save prints no -s for 0.0.0.0/0: the line is kept as it prints it back.
    lines = ["-A %s%s -j RETURN" % (name, "" if source == "0.0.0.0/0" else " -s %s" % (
        source if "/" in source else source + "/32")) for source in request.sources_for("ipv4")]
    for protocol in request.protocols:
        if request.action == "reject":
            target = "REJECT --reject-with %s" % ("tcp-reset" if protocol == "tcp" else "icmp-port-unreachable")
        else:
            target = "DROP"
        # --ctdir ORIGINAL: the container's replies to a trusted sender (DNAT, original port P too) pass.
        lines.append("-A %s -p %s -m conntrack --ctstate DNAT --ctorigdstport %d --ctdir ORIGINAL -j %s"
                     % (name, protocol, request.port, target))
    return lines


def split_block(text, port):
    """(text without the port's block, the block or None); the block's lines are BEGIN..END."""
    lines = (text or "").splitlines(True)
    begin, end = _begin(port), _end(port)
    # Exact markers: the block of port 80 is not the block of port 8080.
    start = next((index for index, line in enumerate(lines) if line.startswith(begin + ":")), None)
    if start is None:
        return text or "", None
    stop = next((index for index in range(start, len(lines)) if lines[index].rstrip("\n") == end), None)
    if stop is None:
        raise ValueError("%s has no line %r after its %r line: fix or remove that block by hand" % (
            "the file", end, begin))
    return "".join(lines[:start] + lines[stop + 1:]), "".join(lines[start:stop + 1])


def after_rules_block(request):
    name = chain_name(request.port)
    return "".join(line + "\n" for line in [
        "%s: Docker-published port %d (ufw_port docker=close; do not edit)" % (_begin(request.port), request.port),
        "*filter",
        ":%s - [0:0]" % name,
    ] + chain_lines(request) + ["COMMIT", _end(request.port)])


def after_init_block(port, was):
    name = chain_name(port)
    return "".join(line + "\n" for line in [
        "%s: DOCKER-USER's first rule jumps to %s (was: %s)" % (_begin(port), name, was),
        'case "$1" in',
        "start)",
        "    iptables -w -n -L %s >/dev/null 2>&1 || iptables -w -N %s || true" % (DOCKER_USER, DOCKER_USER),
        "    while iptables -w -D %s -j %s 2>/dev/null; do :; done" % (DOCKER_USER, name),
        "    iptables -w -I %s 1 -j %s || true" % (DOCKER_USER, name),
        "    ;;",
        "stop)",
        "    while iptables -w -D %s -j %s 2>/dev/null; do :; done" % (DOCKER_USER, name),
        "    ;;",
        "esac",
        _end(port),
    ])


def _with_block(text, block):
    """text with block in front of its first command (after the #! line and the comments around it)."""
    lines = text.splitlines(True)
    position = 1 if lines and lines[0].startswith("#!") else 0
    return "".join(lines[:position]) + block + "".join(lines[position:])


def _executable(mode):
    """mode with execute permission for whoever may read (0640 -> 0750); the owner always."""
    return mode | 0o100 | ((mode & 0o044) >> 2)


def after_init_text(text, mode, port):
    """(new text, new mode) of after.init with the port's block; text None: the file is absent."""
    rest, block = split_block(text, port)
    if block is not None:
        return text, _executable(mode) if mode is not None else 0o755
    if text is None:
        return _INIT_HEADER + after_init_block(port, "absent"), 0o755
    if text and not text.startswith("#!"):
        raise ValueError("%s has no #! line, so ufw-init cannot run it once it is executable; add one "
                         "(#!/bin/sh) or remove the file, and close again" % AFTER_INIT)
    # A block of another port was there first: what it recorded of the file is the file before us.
    was = _recorded(text) or "0%o" % (mode & 0o777)
    return _with_block(rest, after_init_block(port, was)), _executable(mode & 0o777)


def _recorded(text):
    """What the first block of any port in after.init says of the file before the collection."""
    for line in (text or "").splitlines():
        if line.startswith(_BEGIN_PREFIX):
            was = _WAS_RE.search(line)
            if was:
                return was.group(1)
    return None


def after_init_without(text, mode, port):
    """(new text or None to remove the file, new mode) of after.init without the port's block."""
    rest, block = split_block(text, port)
    if block is None:
        return text, mode
    if _recorded(rest):
        return rest, mode  # another port's block stays: the file stays as ufw-init runs it
    was = _WAS_RE.search(block.splitlines()[0])
    if was and was.group(1) == "absent":
        return (None, None) if rest in ("", _INIT_HEADER) else (rest, mode)
    return rest, int(was.group(1), 8) if was else mode


def after_rules_text(text, request):
    """after.rules with the port's block (replaced where it is, or appended at the end)."""
    rest, block = split_block(text, request.port)
    if block is not None:
        return text.replace(block, after_rules_block(request), 1)
    if rest and not rest.endswith("\n"):
        rest += "\n"
    return rest + after_rules_block(request)


@dataclass(frozen=True)
class DockerState:
    """What the snapshot knows of Docker on the host (IPv4: Docker 20.10 has no DOCKER-USER for IPv6)."""

    dockerd: Optional[str]  # the dockerd executable, None when not installed
    chains: Tuple[str, ...]  # Docker's filter chains loaded in UFW's backend (DOCKER, DOCKER-USER)
    other_backend_chains: Tuple[str, ...]  # ... and in the other backend
    jumps: Tuple[int, ...]  # the 1-based positions of DOCKER-USER's jumps to the port's chain
    leading: int  # how many of DOCKER-USER's first rules jump to a chain of the collection (any port)
    chain_rules: Optional[Tuple[str, ...]]  # the port's chain as loaded (raw lines); None when absent
    in_files: bool  # the port's block is in after.rules

    @property
    def present(self):
        return bool(self.dockerd or self.chains or self.other_backend_chains or self.in_files)


def docker_state(tables, other_tables, dockerd, after_rules, port):
    """DockerState from the IPv4 tables of UFW's backend and the other backend's."""
    def filter_chains(source):
        return ((source or {}).get("filter") or Table("filter")).chains

    chains, other = filter_chains(tables), filter_chains(other_tables)
    name = chain_name(port)
    user = chains.get(DOCKER_USER)
    rules = user.rules if user else ()
    jumps = tuple(rule.index for rule in rules if rule.target == name)
    leading = next((position for position, rule in enumerate(rules)
                    if not (rule.target or "").startswith(CHAIN_PREFIX)), len(rules))
    _rest, block = split_block(after_rules, port)
    return DockerState(
        dockerd=dockerd, chains=tuple(chain for chain in DOCKER_CHAINS if chain in chains),
        other_backend_chains=tuple(chain for chain in DOCKER_CHAINS if chain in other),
        jumps=jumps, leading=leading, chain_rules=tuple(rule.raw for rule in chains[name].rules) if name in chains else None,
        in_files=block is not None)


def load_text(state, lines, port):
    """The `iptables-restore -n` input that makes the running rule set hold the chain with lines
    and DOCKER-USER's first rule the one jump to it, in one commit."""
    name = chain_name(port)
    text = ["*filter", ":%s - [0:0]" % name] + list(lines)
    if DOCKER_USER not in state.chains:
        text.append(":%s - [0:0]" % DOCKER_USER)
    text += ["-D %s -j %s" % (DOCKER_USER, name)] * len(state.jumps)
    text += ["-I %s 1 -j %s" % (DOCKER_USER, name), "COMMIT"]
    return "".join(line + "\n" for line in text)


def unload_text(state, port):
    """The `iptables-restore -n` input that takes the chain and its jumps out of the running rule set."""
    name = chain_name(port)
    if state.chain_rules is None:
        return None
    text = ["*filter"] + ["-D %s -j %s" % (DOCKER_USER, name)] * len(state.jumps)
    text += ["-F %s" % name, "-X %s" % name, "COMMIT"]
    return "".join(line + "\n" for line in text)


def restore_text(state, port, jumps_now):
    """The `iptables-restore -n` input that puts back the chain and the jumps the snapshot saw, when
    the running rule set has jumps_now jumps to the chain (the roll-back of a load or an unload)."""
    name = chain_name(port)
    text = ["*filter", ":%s - [0:0]" % name]  # declared: it exists (again) and is empty
    text += ["-D %s -j %s" % (DOCKER_USER, name)] * jumps_now
    if state.chain_rules is None:
        text.append("-X %s" % name)
        if DOCKER_USER not in state.chains:
            text.append("-X %s" % DOCKER_USER)
    else:
        text += list(state.chain_rules)
        text += ["-I %s %d -j %s" % (DOCKER_USER, position, name) for position in sorted(state.jumps)]
    return "".join(line + "\n" for line in text + ["COMMIT"])


class DockerRefused(ValueError):
    """docker=close cannot be carried out without harm; nothing was changed."""


@dataclass(frozen=True)
class DockerChange:
    """The Docker part of one transaction (ufw_port's ``Change.docker``)."""

    port: int
    writes: Tuple[Tuple[str, Optional[str], Optional[int]], ...] = ()  # (path, new text or None: remove, mode)
    load: Optional[str] = None  # iptables-restore -n input for the running IPv4 rule set
    undo: Optional[str] = None  # ... that puts the running rule set back as the snapshot saw it
    lines: Optional[Tuple[str, ...]] = None  # the port's chain once the change is loaded (None: absent)
    actions: Tuple[str, ...] = ()


def plan_docker(snapshot, request, running):
    """The Docker part of the close or restore on this snapshot (None: nothing to do). running:
    UFW's IPv4 chains are loaded now, so the change is loaded at once (else ufw-init loads it)."""
    state = snapshot.docker
    if state is None:
        return None
    if request.state == "absent":
        return _plan_removal(snapshot, request, state)
    if request.docker != "close" or not state.present:
        return None
    if state.other_backend_chains and not state.chains:
        raise DockerRefused(
            "docker=close: Docker's chains (%s) are loaded in the other iptables backend than UFW's, so a "
            "block in UFW's %s would never see Docker's traffic; run dockerd and UFW on one backend "
            "(update-alternatives --set iptables ..., then restart dockerd) and close again; nothing was changed"
            % (", ".join(state.other_backend_chains), AFTER_RULES))
    nft_tables = ["%s %s" % (table.family, table.name) for table in snapshot.nft or () if table.name == NFT_TABLE]
    if nft_tables and "DOCKER" not in state.chains:
        raise DockerRefused(
            "docker=close: dockerd uses its nftables firewall backend (table %s), which has no DOCKER-USER "
            "chain to close the port in; close it in an nftables table of your own that drops it in the forward "
            "hook ahead of Docker's, or run dockerd with \"firewall-backend\": \"iptables\" and close again "
            "(or set docker=report); nothing was changed" % ", ".join(nft_tables))
    port, name = request.port, chain_name(request.port)
    rules_text = snapshot.texts.get(AFTER_RULES)
    init_text, init_mode = snapshot.texts.get(AFTER_INIT), snapshot.modes.get(AFTER_INIT)
    try:
        new_init, new_mode = after_init_text(init_text, init_mode, port)
    except ValueError as exc:
        raise DockerRefused("docker=close: %s; nothing was changed" % exc)
    new_rules = after_rules_text(rules_text, request)
    writes, actions = [], []
    if new_rules != rules_text:
        writes.append((AFTER_RULES, new_rules, None))
        actions.append("%s the block of chain %s in %s: what was sent to port %d before Docker's DNAT is %s%s"
                       % ("rewrote" if state.in_files else "added", name, AFTER_RULES, port,
                          "rejected" if request.action == "reject" else "dropped",
                          ", the trusted IPv4 sources excepted" if request.sources_for("ipv4") else ""))
    if new_init != init_text or new_mode != init_mode:
        writes.append((AFTER_INIT, new_init, new_mode))
        actions.append("%s %s the block that keeps DOCKER-USER's first rule a jump to %s whenever UFW loads%s"
                       % ("created" if init_text is None else "added to", AFTER_INIT, name,
                          "" if init_mode is None or init_mode & 0o111 else " (and made the file executable, "
                          "which ufw-init needs to run it)"))
    lines = tuple(chain_lines(request))
    load = None
    # In place: one jump, among DOCKER-USER's first rules that jump to the collection's chains
    # (with two ports closed, both are first in turn: after.init puts each first at every load).
    in_place = len(state.jumps) == 1 and state.jumps[0] <= state.leading
    if running and (state.chain_rules != lines or not in_place):
        load = load_text(state, lines, port)
        actions.append("loaded chain %s and made DOCKER-USER's first rule the one jump to it%s"
                       % (name, "" if DOCKER_USER in state.chains else " (created DOCKER-USER, which dockerd "
                          "keeps when it starts)"))
    if "DOCKER" not in state.chains and writes:
        actions.append("dockerd is not running (no DOCKER chain): the block is in place for when it starts")
    return DockerChange(port, tuple(writes), load, restore_text(state, port, 1) if load else None, lines,
                        tuple(actions))


def _plan_removal(snapshot, request, state):
    port, name = request.port, chain_name(request.port)
    rules_text = snapshot.texts.get(AFTER_RULES)
    init_text, init_mode = snapshot.texts.get(AFTER_INIT), snapshot.modes.get(AFTER_INIT)
    writes, actions = [], []
    rest, block = split_block(rules_text, port)
    if block is not None:
        writes.append((AFTER_RULES, rest, None))
        actions.append("removed the block of chain %s from %s" % (name, AFTER_RULES))
    try:
        new_init, new_mode = after_init_without(init_text, init_mode, port)
    except ValueError as exc:
        raise DockerRefused("%s; nothing was changed" % exc)
    if new_init != init_text or new_mode != init_mode:
        writes.append((AFTER_INIT, new_init, new_mode))
        actions.append("removed %s" % AFTER_INIT if new_init is None else
                       "removed the block of chain %s from %s" % (name, AFTER_INIT))
    load = unload_text(state, port)
    if load:
        actions.append("removed DOCKER-USER's jump to %s and the chain" % name)
    if not (writes or load):
        return None
    return DockerChange(port, tuple(writes), load, restore_text(state, port, 0) if load else None, None,
                        tuple(actions))


def tables_with_chain(tables, lines, port):
    """The IPv4 tables once the port's chain holds lines and DOCKER-USER's first rule jumps to it."""
    name = chain_name(port)
    table = tables.get("filter") or Table("filter")
    chains = dict(table.chains)
    chains[name] = Chain(name, None, parse_chain_lines("filter", name, lines))
    user = chains.get(DOCKER_USER)
    kept = [rule.raw for rule in (user.rules if user else ()) if rule.target != name]
    chains[DOCKER_USER] = Chain(DOCKER_USER, None, parse_chain_lines(
        "filter", DOCKER_USER, ["-A %s -j %s" % (DOCKER_USER, name)] + kept))
    result = dict(tables)
    result["filter"] = Table("filter", chains)
    return result
