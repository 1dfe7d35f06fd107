# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ansible-rulebook event source: port 5061 as the network sees it, one event per change.

Probes every target with the collection's own probe (TCP connect, TLS handshake, SIP OPTIONS;
UDP datagrams) every ``interval`` seconds and compares each endpoint (host, address, protocol)
with what it was: an event only when it reopened, was newly closed, was exposed when first seen,
or answers with another certificate. The state survives restarts in ``state_file`` (written
atomically), so a port that was closed before a restart and is open after it is "reopened".

Pure parts (argument checks, inventory to targets, the diff, the state file's content) are
plain functions the unit tests call; ``main`` is the loop.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

DOCUMENTATION = r"""
---
short_description: Watch a port from the network and send an event only when its state changes.
description:
  - An ansible-rulebook event source that probes port 5061 (SIP over TLS) of every target from
    where ansible-rulebook runs, with the probe of C(sipguard.firewall.port_probe) (TCP connect,
    TLS handshake with the certificate, a SIP OPTIONS; UDP datagrams), every O(interval) seconds.
  - It sends an event only on a change of an endpoint (host, address, protocol) - C(reopened)
    (not open before, open now), C(closed) (open before, not open now), C(exposed) (open when the
    watcher first sees it), C(certificate_changed) (still open, another certificate) - never one
    per probe.
  - An endpoint is open when a TCP connect succeeds or a UDP datagram is answered. C(closed),
    C(filtered) and C(open|filtered) (a silent UDP port, which the network cannot tell from a
    dropped one) count as not open. An C(error) (the name does not resolve) changes nothing.
  - The state of every endpoint is kept in O(state_file) (a temporary file, fsync, rename), so
    the comparison goes on across restarts; endpoints no longer watched are dropped from it.
  - Memory and sockets are bounded by the number of targets and O(concurrency). Bad arguments
    stop the source at start with a message naming the argument and its value.
  - The event's C(meta.hosts) is the inventory host, so a rulebook's C(run_playbook) or
    C(run_job_template) acts on that host only.
options:
  inventory:
    description:
      - An Ansible inventory (file, directory or inventory plugin config) whose hosts are watched,
        read once at start with C(ansible-inventory --list).
      - Each host is probed at its C(sips_probe_targets) (when the inventory gives it as a plain
        list), else its C(ansible_host), else its name - what the sips role probes.
      - One of O(inventory) and O(targets) is required.
    type: str
  group:
    description:
      - The inventory group to watch (with its child groups).
    type: str
    default: all
  targets:
    description:
      - The endpoints to watch instead of (or besides) an inventory. Each item is a mapping with
        C(host) (the inventory host name put in C(meta.hosts)) and C(address) (an IP address or a
        DNS name; default the host) or C(addresses) (a list), or a plain string (host and address).
    type: list
    elements: raw
  port:
    description:
      - The port to watch.
    type: int
    default: 5061
  protocols:
    description:
      - The protocols to probe.
    type: list
    elements: str
    choices: [tcp, udp]
    default: [tcp, udp]
  families:
    description:
      - The address families to probe (a name resolving to both is probed on both).
    type: list
    elements: str
    choices: [ipv4, ipv6]
    default: [ipv4, ipv6]
  interval:
    description:
      - Seconds from the start of one round of probes to the start of the next.
      - A change is seen at most O(interval) plus one probe (at most 3 x O(timeout) for an open
        TCP port) after it happened.
    type: float
    default: 5
  timeout:
    description:
      - Seconds one probe waits for an answer (connect, TLS handshake and SIP answer each).
    type: float
    default: 2
  retries:
    description:
      - Extra connect attempts or datagrams per probe, sent within the same O(timeout).
    type: int
    default: 1
  concurrency:
    description:
      - Probes in flight at once (one socket each).
    type: int
    default: 256
  tls:
    description:
      - Read the TLS certificate of an open TCP port (its subject and SHA-256 fingerprint go into
        the event; a new fingerprint is a C(certificate_changed) event).
    type: bool
    default: true
  sip:
    description:
      - Send a SIP OPTIONS to an open port (the answer's C(Server) goes into the event).
    type: bool
    default: true
  state_file:
    description:
      - Where the state of every endpoint is kept across restarts. Its directory is created
        (mode 0700) when missing; a file that cannot be read as this source's state is set aside
        as C(<state_file>.invalid) and the watch starts afresh.
    type: path
    default: ~/.sipguard/watch/port_state-<port>.json
  flap_window:
    description:
      - Seconds within which a host's second reopening counts as flapping (C(flapping) in the
        event), so that a rulebook can throttle its heal and still close what reopened in the
        meantime.
    type: float
    default: 60
  max_targets:
    description:
      - The most addresses to watch; more stop the source at start (a bound on memory and on
        the length of a round).
    type: int
    default: 10000
notes:
  - The probe runs from where ansible-rulebook runs; if that address is in a host's trusted
    sources, the port is open to the watcher and the host stays exposed in its eyes.
  - A silent UDP port is C(open|filtered) and cannot be told from a closed one from the network;
    only an answering UDP port is seen as open.
  - ansible-rulebook does not hand its C(-i) inventory to sources; give it again as O(inventory)
    (the C(sipguard.firewall.keep_closed) rulebook does that from C(sips_watch_inventory)).
"""

EXAMPLES = r"""
- name: Keep 5061 closed
  hosts: all
  sources:
    - sipguard.firewall.port_state:
        inventory: /etc/ansible/voip.yml
        group: voip
        interval: 5
  rules:
    - name: Reopened
      condition: event.port_state.kind == "reopened"
      action:
        run_playbook:
          name: sipguard.firewall.close

- name: Watch two addresses, TCP only
  hosts: all
  sources:
    - sipguard.firewall.port_state:
        targets:
          - host: pbx1
            address: 192.0.2.10
          - host: pbx2
            addresses: [192.0.2.11, "2001:db8::11"]
        protocols: [tcp]
        state_file: /var/lib/sipguard/port_state.json
  rules:
    - name: Print every change
      condition: event.port_state is defined
      action:
        print_event:
"""

LOG = logging.getLogger("sipguard.firewall.port_state")

STATE_VERSION = 1
KINDS = ("reopened", "closed", "exposed", "certificate_changed")
INVENTORY_TIMEOUT = 60.0
# A state file is rewritten at every change, otherwise at most this often (last_seen).
STATE_REFRESH_SECONDS = 60.0


def _collection_probe():
    """The collection's probe (module_utils/_probe: request checks, network I/O), however
    ansible-rulebook found this file."""
    try:
        from ansible_collections.sipguard.firewall.plugins.module_utils._probe import network, request
    except ImportError:
        # runpy.run_path() loads this file by path: put the directory that holds
        # ansible_collections/sipguard/firewall (this file's collection) on the path.
        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.normpath(os.path.join(here, *([os.pardir] * 7)))
        if os.path.isdir(os.path.join(root, "ansible_collections")) and root not in sys.path:
            sys.path.append(root)
        from ansible_collections.sipguard.firewall.plugins.module_utils._probe import network, request
    return Probe(request=request, network=network)


@dataclass(frozen=True)
class Probe:
    request: Any  # module_utils/_probe/request.py: ProbeRequest, check_target, defaults
    network: Any  # module_utils/_probe/network.py: probe_all


class PortStateArgumentError(ValueError):
    """An argument the source cannot use; the message names the argument and the value."""


# --------------------------------------------------------------------------------------------
# Arguments (pure)
# --------------------------------------------------------------------------------------------

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
    flap_window: float
    max_targets: int


KNOWN_ARGUMENTS = frozenset([
    "inventory", "group", "targets", "port", "protocols", "families", "interval", "timeout",
    "retries", "concurrency", "tls", "sip", "state_file", "flap_window", "max_targets",
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


def parse_args(args, probe=None):
    """The source's arguments checked, as a WatchConfig; PortStateArgumentError names the bad one."""
    probe = probe or _collection_probe()
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
    if inventory is not None and not isinstance(inventory, str):
        raise PortStateArgumentError("port_state: inventory %r is not a path" % (inventory,))
    inventory = os.path.expanduser(inventory.strip()) if inventory and inventory.strip() else None
    if inventory is not None and not os.path.exists(inventory):
        raise PortStateArgumentError("port_state: inventory %r does not exist" % (args.get("inventory"),))
    group = args.get("group") or "all"
    if not isinstance(group, str) or not group.strip() or any(c in group for c in " ,:[]"):
        raise PortStateArgumentError("port_state: group %r is not an inventory group name" % (group,))
    targets = _target_pairs(args.get("targets"))
    if inventory is None and not targets:
        raise PortStateArgumentError("port_state: give inventory (a path; the keep_closed rulebook takes it from"
                                     " sips_watch_inventory in its --vars file) or targets (a list); both are empty"
                                     " (inventory=%r, targets=%r)" % (args.get("inventory"), args.get("targets")))
    for _host, address in targets:
        try:
            probe.request.check_target(address)
        except probe.request.ProbeRequestError as exc:
            raise PortStateArgumentError("port_state: targets: %s" % exc)
    # The probe's own checks name the option and the value (port, protocols, families, ...).
    given = {name: args[name] for name in ("port", "protocols", "families", "timeout", "retries", "concurrency")
             if args.get(name) not in (None, "")}
    for name in ("protocols", "families"):
        if isinstance(given.get(name), str):
            given[name] = [part.strip() for part in given[name].split(",")]
    try:
        request = probe.request.ProbeRequest.from_params(dict(given, targets=["127.0.0.1"]))
    except probe.request.ProbeRequestError as exc:
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
        flap_window=_seconds(args, "flap_window", 60.0),
        max_targets=_integer(args, "max_targets", 10000, 1))


# --------------------------------------------------------------------------------------------
# Inventory -> (host, address) pairs
# --------------------------------------------------------------------------------------------

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


def watched_pairs(config, inventory_pairs, probe):
    """Every (host, address) to watch, checked and bounded."""
    pairs = []
    for pair in list(inventory_pairs) + list(config.targets):
        try:
            probe.request.check_target(pair[1])
        except probe.request.ProbeRequestError as exc:
            raise PortStateArgumentError("port_state: host %r: %s" % (pair[0], exc))
        if pair not in pairs:
            pairs.append(pair)
    if len(pairs) > config.max_targets:
        raise PortStateArgumentError("port_state: %d addresses to watch, more than max_targets %d"
                                     % (len(pairs), config.max_targets))
    return pairs


# --------------------------------------------------------------------------------------------
# Observations and changes (pure)
# --------------------------------------------------------------------------------------------

def iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def endpoint_key(host, address, protocol, port):
    return "%s|%s|%s|%d" % (host, address, protocol, port)


def observations(records, hosts_by_target):
    """{key: observation} from the probe's records: one per host, address and protocol."""
    seen = {}
    for record in records:
        if record.get("address") is None:  # the name did not resolve: nothing to compare
            continue
        tls = record.get("tls") or {}
        sip = record.get("sip") or {}
        for host in hosts_by_target.get(record["target"], ()):
            key = endpoint_key(host, record["address"], record["protocol"], record["port"])
            seen[key] = {
                "host": host, "target": record["target"], "address": record["address"],
                "family": record["family"], "protocol": record["protocol"], "port": record["port"],
                "state": record["state"], "error": record.get("error"),
                "tls_subject": tls.get("subject"), "tls_sha256": tls.get("sha256"),
                "tls_not_after": tls.get("not_after"),
                "sip_status": ("%s %s" % (sip.get("status_code"), sip.get("reason") or "")).strip() if sip else None,
                "sip_server": sip.get("server") or sip.get("user_agent") if sip else None,
            }
    return seen


def _is_open(state):
    """True open, False not open, None unknown (an error says nothing about the firewall)."""
    if state == "open":
        return True
    if state in ("closed", "filtered", "open|filtered"):
        return False
    return None


def _message(kind, obs, previous_state, previous_sha):
    where = "%s (%s, %s)" % (obs["host"], obs["address"], obs["family"])
    text = {
        "reopened": "%d/%s reopened on %s: %s -> open" % (obs["port"], obs["protocol"], where, previous_state),
        "closed": "%d/%s closed on %s: open -> %s" % (obs["port"], obs["protocol"], where, obs["state"]),
        "exposed": "%d/%s is exposed on %s (open when the watch started)" % (obs["port"], obs["protocol"], where),
        "certificate_changed": "%d/%s on %s answers with another TLS certificate (sha256 %s -> %s)" % (
            obs["port"], obs["protocol"], where, (previous_sha or "none")[:16], (obs["tls_sha256"] or "none")[:16]),
    }[kind]
    answered = []
    if obs["tls_subject"]:
        answered.append("TLS %s" % obs["tls_subject"])
    if obs["sip_server"]:
        answered.append("SIP server %s" % obs["sip_server"])
    elif obs["sip_status"]:
        answered.append("SIP %s" % obs["sip_status"])
    return text + ("; " + ", ".join(answered) if answered else "")


def diff(state, seen, now, flap_window):
    """(new state, events) for one round: seen compared with state, pure.

    state is {"endpoints": {key: entry}, "hosts": {host: {"reopened_at": iso}}}; endpoints
    not seen in this round are dropped (no longer watched), so the state stays as large as
    the watch.
    """
    now_text = iso(now)
    old_endpoints = state.get("endpoints", {})
    old_hosts = state.get("hosts", {})
    endpoints, events, reopened_hosts = {}, [], set()
    for key, obs in seen.items():
        old = old_endpoints.get(key)
        open_now = _is_open(obs["state"])
        entry = dict(old) if old else {"first_seen": now_text, "changed_at": now_text, "open": None,
                                       "state": None, "tls_sha256": None}
        kind = None
        previous_state = entry.get("state")
        previous_sha = entry.get("tls_sha256")
        previous_last_seen = entry.get("last_seen")
        previous_changed_at = _parse_iso(entry.get("changed_at"))
        if open_now is not None:
            was_open = entry.get("open")
            if open_now and was_open is None:
                kind = "exposed"
            elif open_now and not was_open:
                kind = "reopened"
            elif was_open and not open_now:
                kind = "closed"
            elif open_now and was_open and obs["tls_sha256"] and previous_sha and obs["tls_sha256"] != previous_sha:
                kind = "certificate_changed"
            if kind:
                entry["changed_at"] = now_text
            entry.update(open=open_now, state=obs["state"])
            if open_now:
                entry["tls_sha256"] = obs["tls_sha256"] or entry.get("tls_sha256")
                entry["tls_subject"] = obs["tls_subject"] or entry.get("tls_subject")
                entry["sip_server"] = obs["sip_server"] or entry.get("sip_server")
        entry.update(last_seen=now_text, error=obs["error"])
        endpoints[key] = entry
        if kind is None:
            continue
        host = obs["host"]
        flapping = False
        if kind in ("reopened", "exposed"):
            before = _parse_iso((old_hosts.get(host) or {}).get("reopened_at"))
            flapping = before is not None and (now - before).total_seconds() < flap_window
            reopened_hosts.add(host)
        event = {
            "kind": kind, "host": host, "target": obs["target"], "address": obs["address"],
            "port": obs["port"], "protocol": obs["protocol"], "family": obs["family"],
            "state": obs["state"], "previous_state": previous_state, "exposed": bool(open_now),
            "first_seen": entry["first_seen"], "last_seen": now_text, "changed_at": entry["changed_at"],
            "previous_last_seen": previous_last_seen, "flapping": flapping,
            # How long it was open before it closed: a heal's own "closed" comes within seconds.
            "open_seconds": round((now - previous_changed_at).total_seconds(), 3)
            if kind == "closed" and previous_changed_at else None,
            "tls": {"subject": obs["tls_subject"], "sha256": obs["tls_sha256"],
                    "not_after": obs["tls_not_after"]} if obs["tls_sha256"] else None,
            "previous_tls_sha256": previous_sha if kind == "certificate_changed" else None,
            "sip": {"status": obs["sip_status"], "server": obs["sip_server"]} if obs["sip_status"] else None,
            "message": _message(kind, obs, previous_state, previous_sha),
        }
        events.append({"port_state": event, "meta": {"hosts": host}})
    watched_hosts = {obs["host"] for obs in seen.values()}
    hosts = {host: dict(value) for host, value in old_hosts.items() if host in watched_hosts}
    for host in reopened_hosts:
        hosts.setdefault(host, {})["reopened_at"] = now_text
    # A stable order: the first event of a host is its most telling one.
    order = {kind: index for index, kind in enumerate(KINDS)}
    events.sort(key=lambda e: (e["port_state"]["host"], order[e["port_state"]["kind"]],
                               e["port_state"]["address"], e["port_state"]["protocol"]))
    return {"endpoints": endpoints, "hosts": hosts}, events


# --------------------------------------------------------------------------------------------
# The state file
# --------------------------------------------------------------------------------------------

def empty_state():
    return {"endpoints": {}, "hosts": {}}


def state_document(state, port):
    return {"version": STATE_VERSION, "source": "sipguard.firewall.port_state", "port": port,
            "endpoints": state["endpoints"], "hosts": state["hosts"]}


def state_from_document(document, port):
    """The state in a parsed state file, or raise ValueError saying why it is not one."""
    if not isinstance(document, dict) or document.get("source") != "sipguard.firewall.port_state":
        raise ValueError("not a port_state state file")
    if document.get("version") != STATE_VERSION:
        raise ValueError("state file version %r, this source writes %d" % (document.get("version"), STATE_VERSION))
    endpoints, hosts = document.get("endpoints"), document.get("hosts")
    if not isinstance(endpoints, dict) or not isinstance(hosts, dict):
        raise ValueError("endpoints or hosts is not a mapping")
    if document.get("port") != port:  # another port's state says nothing about this one
        return empty_state()
    return {"endpoints": {k: v for k, v in endpoints.items() if isinstance(v, dict)},
            "hosts": {k: v for k, v in hosts.items() if isinstance(v, dict)}}


def load_state(path, port):
    """(state, warning or None); an unreadable file is set aside as PATH.invalid."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return empty_state(), None
    except OSError as exc:
        raise PortStateArgumentError("port_state: state_file %r cannot be read: %s" % (path, exc.strerror or exc))
    try:
        return state_from_document(json.loads(text), port), None
    except ValueError as exc:
        aside = path + ".invalid"
        os.replace(path, aside)
        return empty_state(), "state_file %s is not usable (%s); set aside as %s, starting afresh" % (path, exc, aside)


def save_state(path, state, port):
    """Write the state atomically: a temporary file in the same directory, fsync, rename."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".port_state.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(state_document(state, port), out, sort_keys=True, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def prepare_state_file(path, port):
    """Create the directory, prove it is writable, load the state: at start, naming the path."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise PortStateArgumentError("port_state: state_file %r: cannot create its directory: %s"
                                     % (path, exc.strerror or exc))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PortStateArgumentError("port_state: state_file %r: its directory %s is not writable" % (path, directory))
    return load_state(path, port)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------

async def main(queue: asyncio.Queue, args: Dict[str, Any]) -> None:
    """Probe every interval; put an event on queue for each change; never return on its own."""
    probe = _collection_probe()
    config = parse_args(args, probe)
    inventory_pairs = []
    if config.inventory:
        inventory_pairs = await asyncio.get_running_loop().run_in_executor(
            None, read_inventory, config.inventory, config.group)
    pairs = watched_pairs(config, inventory_pairs, probe)
    state, warning = prepare_state_file(config.state_file, config.port)
    if warning:
        LOG.warning("port_state: %s", warning)
    hosts_by_target: Dict[str, List[str]] = {}
    for host, address in pairs:
        hosts_by_target.setdefault(address, []).append(host)
    request = probe.request.ProbeRequest.from_params(dict(
        targets=list(hosts_by_target), port=config.port, protocols=list(config.protocols),
        families=list(config.families), timeout=config.timeout, retries=config.retries,
        concurrency=config.concurrency, tls=config.tls, sip=config.sip))
    LOG.info("port_state: watching port %d on %d addresses of %d hosts every %gs (state in %s)",
             config.port, len(hosts_by_target), len({h for h, _a in pairs}), config.interval, config.state_file)
    loop = asyncio.get_running_loop()
    saved_at = None
    while True:
        started = loop.time()
        result = await probe.network.probe_all(request)
        now = datetime.datetime.now(datetime.timezone.utc)
        state, events = diff(state, observations(result["probes"], hosts_by_target), now, config.flap_window)
        # Saved before the events go out: what the state file holds is what was announced, so a
        # restart neither repeats an event nor misses a change that happens while it is down.
        if events or saved_at is None or started - saved_at >= STATE_REFRESH_SECONDS:
            await loop.run_in_executor(None, save_state, config.state_file, state, config.port)
            saved_at = started
        for event in events:
            LOG.info("port_state: %s", event["port_state"]["message"])
            await queue.put(event)
        await asyncio.sleep(max(0.0, started + config.interval - loop.time()))


if __name__ == "__main__":
    # Print the events of a watch given as JSON arguments: python port_state.py '{"targets": [...]}'
    class _PrintQueue:
        async def put(self, event):
            print(json.dumps(event, sort_keys=True))

    asyncio.run(main(_PrintQueue(), json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
