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
After the changes it announces together comes one ``heal`` event naming every host to close again now.

This file is the documentation and the loop; the parts are rooms of the collection's
``plugins/module_utils``: ``_watch.arguments`` (the checks), ``_watch.inventory`` (the hosts),
``_watch.changes`` (the diff, pure), ``_watch.state`` (the state file) and ``_probe``.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import logging
import os
import sys
from typing import Any, Dict, List

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
  - After the changes it announces together, one C(heal) event (C(port_state.kind=heal)) names every host to
    close again now in C(port_state.hosts) and C(meta.hosts) (a list), so that one close run
    heals all hosts that reopened together. A host is in it when it reopened or was exposed in
    this round, at most once within O(heal_window) seconds; a host that reopened again within
    that window is in the heal event of the first round after the window, if it is still open
    then. A host that stays open after its heal (a rule outside UFW) is not put in again until
    it reopens.
options:
  inventory:
    description:
      - An Ansible inventory (file, directory or inventory plugin config) whose hosts are watched,
        read once at start with C(ansible-inventory --list).
      - Each host is probed at its C(sips_probe_targets) (when the inventory gives it as a plain
        list), else its C(ansible_host), else its name - what the sips role probes.
      - When neither O(inventory) nor O(targets) is given, the inventory ansible-rulebook was
        started with (its C(-i), or C(ANSIBLE_INVENTORY)), read with ansible-rulebook's own
        argument parser; ansible-rulebook does not hand it to sources itself. Without it, one of
        O(inventory) and O(targets) is required.
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
        TCP port) after it happened. A reopening is sent as soon as its probe answers: it does
        not wait for the round's silent endpoints, whose probes take O(timeout).
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
  heal_window:
    description:
      - Seconds; a host is put in a C(heal) event at most once within them (a flapping host does
        not start a storm of close runs), and a reopening within them is healed when they are
        over. A reopening within them also has C(flapping=true) in its event.
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
  - ansible-rulebook does not hand its C(-i) inventory to sources; this source reads it from
    ansible-rulebook's own command line when neither O(inventory) nor O(targets) is given (under
    an EDA controller, which sends the inventory over its websocket, give O(targets) instead).
  - The open answers of a round that come within 0.2 s of the first go into one C(heal) event;
    answers later in the round (many targets, a slow handshake) make another one.
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
    - name: Close it again on every host that reopened in the round (one run)
      condition: event.port_state.kind == "heal"
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
# A state file is rewritten at every change, otherwise at most this often (last_seen).
STATE_REFRESH_SECONDS = 60.0
# After the first open answer of a round, the others answering within this long go with it.
ANSWER_SETTLE_SECONDS = 0.2
_ROOMS = ("_watch.arguments", "_watch.inventory", "_watch.changes", "_watch.state", "_probe.request", "_probe.network")


def collection_rooms():
    """The collection's modules the watch is made of, by their short name ("_watch.changes", ...),
    however ansible-rulebook found this file (it loads sources by path, not as a package)."""
    prefix = "ansible_collections.sipguard.firewall.plugins.module_utils."
    try:
        importlib.import_module(prefix + "_watch.changes")
    except ImportError:
        # Put the directory that holds ansible_collections/sipguard/firewall (this file's
        # collection) on the path.
        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.normpath(os.path.join(here, *([os.pardir] * 7)))
        if os.path.isdir(os.path.join(root, "ansible_collections")) and root not in sys.path:
            sys.path.append(root)
    return {name: importlib.import_module(prefix + name) for name in _ROOMS}


def rulebook_inventory(argv=None):
    """The inventory of the ansible-rulebook this source runs in (its -i, else ANSIBLE_INVENTORY),
    read with ansible-rulebook's own argument parser; "" outside ansible-rulebook or without one."""
    argv = sys.argv if argv is None else argv
    program = os.path.basename(argv[0]) if argv else ""
    if program != "ansible-rulebook" and "ansible_rulebook" not in (argv[0] if argv else ""):
        return ""
    try:
        from ansible_rulebook.cli import get_parser
    except ImportError:
        return ""
    parser = get_parser()
    parser.error = lambda message: None  # an argv it cannot read is no inventory, not an exit
    try:
        known, _rest = parser.parse_known_args(list(argv[1:]))
    except (SystemExit, TypeError, ValueError):
        return ""
    if known is None:
        return ""
    return getattr(known, "inventory", None) or ""


async def main(queue: asyncio.Queue, args: Dict[str, Any]) -> None:
    """Probe every interval; put an event on queue for each change; never return on its own."""
    rooms = collection_rooms()
    arguments, inventory, changes, store = (rooms["_watch.arguments"], rooms["_watch.inventory"],
                                            rooms["_watch.changes"], rooms["_watch.state"])
    config = arguments.parse_args(args, rulebook_inventory=rulebook_inventory())
    inventory_pairs = []
    if config.inventory:
        inventory_pairs = await asyncio.get_running_loop().run_in_executor(
            None, inventory.read_inventory, config.inventory, config.group)
    pairs = inventory.watched_pairs(config, inventory_pairs)
    state, warning = store.prepare_state_file(config.state_file, config.port)
    if warning:
        LOG.warning("port_state: %s", warning)
    hosts_by_target: Dict[str, List[str]] = {}
    for host, address in pairs:
        hosts_by_target.setdefault(address, []).append(host)
    request = rooms["_probe.request"].ProbeRequest.from_params(dict(
        targets=list(hosts_by_target), port=config.port, protocols=list(config.protocols),
        families=list(config.families), timeout=config.timeout, retries=config.retries,
        concurrency=config.concurrency, tls=config.tls, sip=config.sip))
    LOG.info("port_state: watching port %d on %d addresses of %d hosts every %gs (state in %s)",
             config.port, len(hosts_by_target), len({h for h, _a in pairs}), config.interval, config.state_file)
    loop = asyncio.get_running_loop()
    saved_at = None  # when the whole state was last written

    async def announce(seen, now, round_started, whole_round, unresolved=()):
        """Diff seen (the whole round, or the endpoints that answered open so far), pick the
        hosts to heal, save the state, then send the events."""
        nonlocal state, saved_at
        if whole_round:
            state, events = changes.diff(state, seen, now, config.heal_window, round_started, unresolved)
        else:
            state, events = changes.diff_some(state, seen, now, config.heal_window, round_started)
        state, heal = changes.heal(state, events, now, config.heal_window, config.port, round_started)
        if heal:
            events.append(heal)
        # Saved before the events go out: what the state file holds is what was announced, so a
        # restart neither repeats an event nor misses a change that happens while it is down.
        clock = loop.time()
        refresh = whole_round and (saved_at is None or clock - saved_at >= STATE_REFRESH_SECONDS)
        if events or refresh:
            await loop.run_in_executor(None, store.save_state, config.state_file, state, config.port)
            if whole_round:  # the whole state, last_seen included
                saved_at = clock
        for event in events:
            LOG.info("port_state: %s", event["port_state"]["message"])
            await queue.put(event)

    while True:
        started = loop.time()
        round_started = datetime.datetime.now(datetime.timezone.utc)
        answered, wake = [], asyncio.Event()

        def on_record(record):
            # An open port answers at once, a silent one only after timeout: announce a
            # reopening now, not when the round's silent endpoints have timed out. Only an
            # endpoint not open in the state can be one; the rest wait for the round's diff.
            if record.get("state") != "open" or record.get("address") is None:
                return
            for host in hosts_by_target.get(record["target"], ()):
                entry = state["endpoints"].get(changes.endpoint_key(host, record["address"], record["protocol"],
                                                                    record["port"]))
                if not entry or not entry.get("open"):
                    answered.append(record)
                    wake.set()
                    return

        probing = asyncio.ensure_future(rooms["_probe.network"].probe_all(request, on_record=on_record))
        waiting = None
        try:
            while True:
                waiting = asyncio.ensure_future(wake.wait())
                done, _pending = await asyncio.wait({probing, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                if answered and probing not in done:
                    # The open answers of a round come in a burst: take them together (one heal).
                    done, _pending = await asyncio.wait({probing}, timeout=ANSWER_SETTLE_SECONDS)
                if answered and probing not in done:
                    records, answered[:] = list(answered), []
                    wake.clear()
                    await announce(changes.observations(records, hosts_by_target),
                                   datetime.datetime.now(datetime.timezone.utc), round_started, False)
                if probing in done:
                    break
        finally:
            if waiting is not None and not waiting.done():
                waiting.cancel()
            if not probing.done():
                probing.cancel()
                await asyncio.gather(probing, return_exceptions=True)
        result = probing.result()
        unresolved = {record["target"] for record in result["probes"] if record.get("address") is None}
        await announce(changes.observations(result["probes"], hosts_by_target),
                       datetime.datetime.now(datetime.timezone.utc), round_started, True, unresolved)
        await asyncio.sleep(max(0.0, started + config.interval - loop.time()))

if __name__ == "__main__":
    # Print the events of a watch given as JSON arguments: python port_state.py '{"targets": [...]}'
    class _PrintQueue:
        async def put(self, event):
            print(json.dumps(event, sort_keys=True))

    asyncio.run(main(_PrintQueue(), json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
