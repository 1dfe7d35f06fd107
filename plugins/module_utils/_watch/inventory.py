# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The watched hosts from an Ansible inventory: ``ansible-inventory --list`` read once at start,
each host at its ``sips_probe_targets`` or ``ansible_host``.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import request as probe_request
from ansible_collections.sipguard.firewall.plugins.module_utils._watch.arguments import (
    PortStateArgumentError,
)


INVENTORY_TIMEOUT = 60.0


def _group_hosts(listing, group):
    """Hosts of group (and its children) in `ansible-inventory --list` output, in order."""
    if group == "all":
        hosts = list(listing.get("_meta", {}).get("hostvars", {}))
        seen = set(hosts)
    else:
        hosts, seen = [], set()
    pending, visited = [group], set()
    while pending:
        name = pending.pop(0)
        if name in visited:
            continue
        visited.add(name)
        entry = listing.get(name) or {}
        for host in entry.get("hosts", []):
            if host not in seen:
                seen.add(host)
                hosts.append(host)
        pending.extend(entry.get("children", []))
    return hosts


def _literal_list(value):
    """A list of plain strings (no template left unrendered), or None."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    if any(not isinstance(item, str) or "{{" in item or "{%" in item for item in value):
        return None
    return [item.strip() for item in value if item.strip()]


def inventory_targets(listing, group):
    """[(host, address)] for every host of group: sips_probe_targets, ansible_host or the name."""
    if group != "all" and group not in listing:
        raise PortStateArgumentError("port_state: group %r is not in the inventory (groups: %s)"
                                     % (group, ", ".join(sorted(k for k in listing if k != "_meta"))))
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    pairs = []
    for host in _group_hosts(listing, group):
        variables = hostvars.get(host, {})
        addresses = _literal_list(variables.get("sips_probe_targets"))
        if not addresses:
            address = variables.get("ansible_host")
            addresses = [address] if isinstance(address, str) and "{{" not in address else [host]
        pairs.extend((host, address) for address in addresses)
    if not pairs:
        raise PortStateArgumentError("port_state: group %r of the inventory has no hosts" % (group,))
    return pairs


def read_inventory(path, group, timeout=INVENTORY_TIMEOUT):
    """ansible-inventory --list of path, as (host, address) pairs of group."""
    command = shutil.which("ansible-inventory") or os.path.join(os.path.dirname(sys.executable),
                                                                "ansible-inventory")
    if not os.path.exists(command):
        raise PortStateArgumentError("port_state: inventory %r needs ansible-inventory, which is not on PATH"
                                     % (path,))
    try:
        done = subprocess.run([command, "-i", path, "--list"], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise PortStateArgumentError("port_state: inventory %r: ansible-inventory took longer than %gs"
                                     % (path, timeout))
    try:
        listing = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        listing = None
    if not isinstance(listing, dict):
        last = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise PortStateArgumentError("port_state: inventory %r cannot be read: %s" % (path, last[0]))
    try:
        return inventory_targets(listing, group)
    except PortStateArgumentError as exc:
        # ansible-inventory warns (and lists nothing) about a file it cannot parse: say so.
        warnings = [line.strip() for line in (done.stderr or "").splitlines() if "WARNING" in line]
        raise PortStateArgumentError("%s (inventory %r%s)" % (exc, path, "; ansible-inventory: " + warnings[-1]
                                                              if warnings else ""))


def watched_pairs(config, inventory_pairs):
    """Every (host, address) to watch, checked and bounded."""
    pairs = []
    for pair in list(inventory_pairs) + list(config.targets):
        try:
            probe_request.check_target(pair[1])
        except probe_request.ProbeRequestError as exc:
            raise PortStateArgumentError("port_state: host %r: %s" % (pair[0], exc))
        if pair not in pairs:
            pairs.append(pair)
    if len(pairs) > config.max_targets:
        raise PortStateArgumentError("port_state: %d addresses to watch, more than max_targets %d"
                                     % (len(pairs), config.max_targets))
    return pairs
