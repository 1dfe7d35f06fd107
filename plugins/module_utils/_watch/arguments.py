# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watch's arguments (the ``sipguard.firewall.port_state`` event source): checked at start, each
bad one named with its value. Pure.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import request as probe_request


class PortStateArgumentError(ValueError):
    """An argument the source cannot use; the message names the argument and the value."""


@dataclass(frozen=True)
class WatchConfig:
    inventory: Optional[str]
    group: str
    targets: Tuple[Tuple[str, str], ...]  # (host, address) pairs given directly
    port: int
    protocols: Tuple[str, ...]
    families: Tuple[str, ...]
    interval: float
    timeout: float
    retries: int
    concurrency: int
    tls: bool
    sip: bool
    state_file: str
    heal_window: float
    max_targets: int


KNOWN_ARGUMENTS = frozenset([
    "inventory", "group", "targets", "port", "protocols", "families", "interval", "timeout",
    "retries", "concurrency", "tls", "sip", "state_file", "heal_window", "max_targets",
    "eda_feedback_queue",  # ansible-rulebook's own, when it runs with a feedback queue
])


def _seconds(args, name, default, minimum=0.0):
    value = args.get(name, default)
    if value is None or value == "":
        value = default
    if isinstance(value, bool):
        raise PortStateArgumentError("port_state: %s %r is not a number of seconds" % (name, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PortStateArgumentError("port_state: %s %r is not a number of seconds" % (name, value))
    if not math.isfinite(number) or number <= minimum:
        raise PortStateArgumentError("port_state: %s %r must be a number of seconds greater than %g"
                                     % (name, value, minimum))
    return number


def _integer(args, name, default, minimum):
    value = args.get(name, default)
    if value is None or value == "":
        value = default
    number = None
    if not isinstance(value, bool):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, float) and number != value:
            number = None
    if number is None:
        raise PortStateArgumentError("port_state: %s %r is not an integer" % (name, value))
    if number < minimum:
        raise PortStateArgumentError("port_state: %s %r must be %d or more" % (name, value, minimum))
    return number


def _flag(args, name, default):
    value = args.get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise PortStateArgumentError("port_state: %s %r is not a boolean" % (name, value))


def _target_pairs(value):
    """[(host, address)] from the targets argument; raise naming the bad item."""
    if value is None or value == "" or value == []:
        return []
    if not isinstance(value, (list, tuple)):
        raise PortStateArgumentError("port_state: targets %r is not a list of hosts or {host, address} items"
                                     % (value,))
    pairs = []
    for item in value:
        if isinstance(item, str) and item.strip():
            pairs.append((item.strip(), item.strip()))
            continue
        if not isinstance(item, dict) or not str(item.get("host") or "").strip():
            raise PortStateArgumentError("port_state: targets item %r has no host (give a name, or a mapping"
                                         " with host and address)" % (item,))
        unknown = sorted(set(item) - {"host", "address", "addresses"})
        if unknown:
            raise PortStateArgumentError("port_state: targets item %r has unknown keys %s (host, address,"
                                         " addresses)" % (item, ", ".join(unknown)))
        host = str(item["host"]).strip()
        addresses = item.get("addresses")
        if addresses is None:
            addresses = [item.get("address") or host]
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, (list, tuple)) or not addresses:
            raise PortStateArgumentError("port_state: targets item %r: addresses must be a non-empty list"
                                         % (item,))
        for address in addresses:
            pairs.append((host, str(address).strip()))
    return pairs


def parse_args(args, rulebook_inventory=None):
    """The source's arguments checked, as a WatchConfig; PortStateArgumentError names the bad one.

    rulebook_inventory: ansible-rulebook's own -i, the inventory when neither inventory nor
    targets is given."""
    if not isinstance(args, dict):
        raise PortStateArgumentError("port_state: the arguments must be a mapping, not %r" % (args,))
    # A rulebook variable the vars file does not set arrives as jinja2's Undefined: not given.
    args = {name: (None if type(value).__name__.endswith("Undefined") else value) for name, value in args.items()}
    unknown = sorted(set(args) - KNOWN_ARGUMENTS)
    if unknown:
        raise PortStateArgumentError("port_state: unknown argument %s (known: %s)" % (
            ", ".join(repr(name) for name in unknown),
            ", ".join(sorted(KNOWN_ARGUMENTS - {"eda_feedback_queue"}))))
    inventory = args.get("inventory")
    if not inventory and not args.get("targets") and rulebook_inventory:
        inventory = rulebook_inventory
    if inventory is not None and not isinstance(inventory, str):
        raise PortStateArgumentError("port_state: inventory %r is not a path" % (inventory,))
    inventory = os.path.expanduser(inventory.strip()) if inventory and inventory.strip() else None
    if inventory is not None and not os.path.exists(inventory):
        raise PortStateArgumentError("port_state: inventory %r does not exist%s" % (
            args.get("inventory") or inventory, "" if args.get("inventory") else " (ansible-rulebook's -i)"))
    group = args.get("group") or "all"
    if not isinstance(group, str) or not group.strip() or any(c in group for c in " ,:[]"):
        raise PortStateArgumentError("port_state: group %r is not an inventory group name" % (group,))
    targets = _target_pairs(args.get("targets"))
    if inventory is None and not targets:
        raise PortStateArgumentError("port_state: give inventory (a path: ansible-rulebook's -i, or"
                                     " sips_watch_inventory in the keep_closed rulebook's --vars file) or targets"
                                     " (a list); both are empty (inventory=%r, targets=%r) and ansible-rulebook"
                                     " has no -i" % (args.get("inventory"), args.get("targets")))
    for _host, address in targets:
        try:
            probe_request.check_target(address)
        except probe_request.ProbeRequestError as exc:
            raise PortStateArgumentError("port_state: targets: %s" % exc)
    # The probe's own checks name the option and the value (port, protocols, families, ...).
    given = {name: args[name] for name in ("port", "protocols", "families", "timeout", "retries", "concurrency")
             if args.get(name) not in (None, "")}
    for name in ("protocols", "families"):
        if isinstance(given.get(name), str):
            given[name] = [part.strip() for part in given[name].split(",")]
    try:
        request = probe_request.ProbeRequest.from_params(dict(given, targets=["127.0.0.1"]))
    except probe_request.ProbeRequestError as exc:
        raise PortStateArgumentError("port_state: %s" % exc)
    interval = _seconds(args, "interval", 5.0)
    state_file = args.get("state_file") or "~/.sipguard/watch/port_state-%d.json" % request.port
    if not isinstance(state_file, str):
        raise PortStateArgumentError("port_state: state_file %r is not a path" % (state_file,))
    state_file = os.path.abspath(os.path.expanduser(state_file))
    if os.path.isdir(state_file):
        raise PortStateArgumentError("port_state: state_file %r is a directory, not a file"
                                     % (args.get("state_file"),))
    return WatchConfig(
        inventory=inventory, group=group.strip(), targets=tuple(targets), port=request.port,
        protocols=request.protocols, families=request.families, interval=interval,
        timeout=request.timeout, retries=request.retries, concurrency=request.concurrency,
        tls=_flag(args, "tls", True), sip=_flag(args, "sip", True), state_file=state_file,
        heal_window=_seconds(args, "heal_window", 60.0),
        max_targets=_integer(args, "max_targets", 10000, 1))
