# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The port_state event source: its pure parts directly, its loop against servers on loopback.

Every socket here is bound to or aimed at 127.0.0.1 or ::1 on ports the tests bind; every wait
is bounded (each test's event waits have their own timeout).

Run: .venv/bin/python -m pytest -q tests/eda/test_port_state.py
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import json
import os
import socket
import ssl
import sys

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.sipguard.firewall.plugins.module_utils import _atomic
from ansible_collections.sipguard.firewall.plugins.module_utils._watch import arguments as watch_arguments
from ansible_collections.sipguard.firewall.plugins.module_utils._watch import changes as watch_changes
from ansible_collections.sipguard.firewall.plugins.module_utils._watch import inventory as watch_inventory
from ansible_collections.sipguard.firewall.plugins.module_utils._watch import state as watch_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "extensions", "eda", "plugins", "event_source", "port_state.py")


def load_source():
    """The plugin as ansible-rulebook loads it: by path, not as a package."""
    spec = importlib.util.spec_from_file_location("sipguard_port_state", SOURCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


port_state = load_source()
T0 = datetime.datetime(2026, 12, 2, 1, 0, 0, tzinfo=datetime.timezone.utc)


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


# ------------------------------------------------------------------------------------------
# Arguments
# ------------------------------------------------------------------------------------------

GOOD = {"targets": [{"host": "pbx1", "address": "127.0.0.1"}]}


@pytest.mark.parametrize("changes, named", [
    ({"interval": "abc"}, "interval 'abc'"),
    ({"interval": 0}, "interval 0"),
    ({"interval": -5}, "interval -5"),
    ({"interval": True}, "interval True"),
    ({"interval": float("nan")}, "interval nan"),
    ({"port": 0}, ("port", "0")),  # the probe's own check words these: argument and value, each named
    ({"port": 65536}, ("port", "65536")),
    ({"port": "sips"}, ("port", "'sips'")),
    ({"protocols": ["tcp", "sctp"]}, "'sctp'"),
    ({"protocols": []}, "protocols must name"),
    ({"families": ["ipv5"]}, "'ipv5'"),
    ({"timeout": "soon"}, ("timeout", "'soon'")),
    ({"timeout": 0}, ("timeout", "0")),
    ({"retries": -1}, ("retries", "-1")),
    ({"concurrency": 0}, ("concurrency", "0")),
    ({"heal_window": "x"}, "heal_window 'x'"),
    ({"max_targets": 0}, "max_targets 0"),
    ({"tls": "maybe"}, "tls 'maybe'"),
    ({"group": "web servers"}, "group 'web servers'"),
    ({"inventory": "/nonexistent/sge-inventory.yml"}, "inventory '/nonexistent/sge-inventory.yml'"),
    ({"inventory": 5}, "inventory 5"),
    ({"targets": "10.0.0.1/24"}, "'10.0.0.1/24'"),
    ({"targets": [{"address": "192.0.2.1"}]}, "has no host"),
    ({"targets": [{"host": "pbx", "adress": "192.0.2.1"}]}, "unknown keys adress"),
    ({"targets": [{"host": "pbx", "address": "192.0.2.0/24"}]}, "'192.0.2.0/24'"),
    ({"targets": [{"host": "pbx", "addresses": []}]}, "addresses must be a non-empty list"),
    ({"targets": 42}, "targets 42"),
    ({"targets": []}, "give inventory"),
    ({"intervall": 5}, "unknown argument 'intervall'"),
])
def test_a_bad_argument_stops_the_source_naming_it_and_its_value(changes, named, tmp_path):
    args = dict(GOOD, state_file=str(tmp_path / "state.json"))
    args.update(changes)
    with pytest.raises(watch_arguments.PortStateArgumentError) as caught:
        watch_arguments.parse_args(args)
    for part in (named,) if isinstance(named, str) else named:
        assert part in str(caught.value)
    assert str(caught.value).startswith("port_state: ")


def test_a_state_file_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(watch_arguments.PortStateArgumentError, match="state_file .* is a directory"):
        watch_arguments.parse_args(dict(GOOD, state_file=str(tmp_path)))


def test_defaults_and_an_unset_rulebook_variable(tmp_path):
    class Undefined:  # what a rulebook's {{ var }} is when the vars file does not set var
        pass

    config = watch_arguments.parse_args(dict(GOOD, state_file=Undefined(), interval=Undefined()))
    assert config.port == 5061 and config.protocols == ("tcp", "udp") and config.families == ("ipv4", "ipv6")
    assert config.interval == 5.0 and config.timeout == 2.0 and config.retries == 1
    assert config.state_file == os.path.expanduser("~/.sipguard/watch/port_state-5061.json")
    assert config.targets == (("pbx1", "127.0.0.1"),)
    with pytest.raises(watch_arguments.PortStateArgumentError, match="sips_watch_inventory"):
        watch_arguments.parse_args({"inventory": Undefined()})


@pytest.mark.parametrize("argv, expected", [
    (["/venv/bin/ansible-rulebook", "-r", "sipguard.firewall.keep_closed", "-i", "hosts.yml", "-v"], "hosts.yml"),
    (["/venv/bin/ansible-rulebook", "--rulebook", "r.yml", "--inventory=site/hosts.yml"], "site/hosts.yml"),
    (["/venv/lib/python3.11/site-packages/ansible_rulebook/__main__.py", "-i", "hosts.yml"], "hosts.yml"),
    (["/venv/bin/ansible-rulebook", "-r", "r.yml"], ""),  # none given (and no ANSIBLE_INVENTORY)
    (["/venv/bin/ansible-rulebook", "-r", "r.yml", "-i"], ""),  # unreadable: no inventory, no exit
    (["/usr/bin/python3", "port_state.py", "-i", "hosts.yml"], ""),  # not inside ansible-rulebook
])
def test_the_inventory_ansible_rulebook_was_started_with(argv, expected, monkeypatch):
    monkeypatch.delenv("ANSIBLE_INVENTORY", raising=False)
    assert port_state.rulebook_inventory(argv) == expected


def test_ansible_inventory_is_ansible_rulebooks_default_too(monkeypatch):
    monkeypatch.setenv("ANSIBLE_INVENTORY", "/etc/ansible/voip.yml")
    assert port_state.rulebook_inventory(["/venv/bin/ansible-rulebook", "-r", "r.yml"]) == "/etc/ansible/voip.yml"


def test_without_inventory_and_targets_the_rulebooks_inventory_is_watched(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {hosts: {pbx1: {}}}\n")
    config = watch_arguments.parse_args({"inventory": "", "targets": []}, rulebook_inventory=str(inventory))
    assert config.inventory == str(inventory)
    given = tmp_path / "other.yml"
    given.write_text("all: {hosts: {pbx2: {}}}\n")
    assert watch_arguments.parse_args({"inventory": str(given)}, rulebook_inventory=str(inventory)).inventory == str(given)
    targets = watch_arguments.parse_args({"targets": [{"host": "h", "address": "127.0.0.1"}]},
                                         rulebook_inventory=str(inventory))
    assert targets.inventory is None  # targets given: the rulebook's inventory is not added
    with pytest.raises(watch_arguments.PortStateArgumentError, match="ansible-rulebook has no -i"):
        watch_arguments.parse_args({"inventory": "", "targets": []}, rulebook_inventory="")


def test_targets_in_every_shape():
    config = watch_arguments.parse_args({"targets": [
        "192.0.2.1", {"host": "pbx2", "address": "192.0.2.2"},
        {"host": "pbx3", "addresses": ["192.0.2.3", "2001:db8::3"]}, {"host": "pbx4.example"}]})
    assert config.targets == (("192.0.2.1", "192.0.2.1"), ("pbx2", "192.0.2.2"), ("pbx3", "192.0.2.3"),
                              ("pbx3", "2001:db8::3"), ("pbx4.example", "pbx4.example"))


def test_more_addresses_than_max_targets_stop_the_source():
    config = watch_arguments.parse_args({"targets": ["192.0.2.%d" % n for n in range(1, 6)], "max_targets": 4})
    with pytest.raises(watch_arguments.PortStateArgumentError, match="5 addresses to watch, more than max_targets 4"):
        watch_inventory.watched_pairs(config, [])


# ------------------------------------------------------------------------------------------
# Inventory
# ------------------------------------------------------------------------------------------

LISTING = {
    "_meta": {"hostvars": {
        "pbx1": {"ansible_host": "192.0.2.1"},
        "pbx2": {"sips_probe_targets": ["192.0.2.2", "2001:db8::2"], "ansible_host": "pbx2-mgmt"},
        "pbx3": {"sips_probe_targets": ["{{ ansible_host }}"], "ansible_host": "192.0.2.3"},
        "sbc1": {},
    }},
    "all": {"children": ["ungrouped", "voip"]},
    "voip": {"children": ["pbx"], "hosts": ["sbc1"]},
    "pbx": {"hosts": ["pbx1", "pbx2", "pbx3"]},
    "ungrouped": {"hosts": []},
    "empty": {"hosts": []},
}


def test_inventory_hosts_at_their_probe_targets_ansible_host_or_name():
    assert watch_inventory.inventory_targets(LISTING, "voip") == [
        ("sbc1", "sbc1"), ("pbx1", "192.0.2.1"), ("pbx2", "192.0.2.2"), ("pbx2", "2001:db8::2"),
        ("pbx3", "192.0.2.3")]  # a template it cannot render falls back to ansible_host
    assert [host for host, _address in watch_inventory.inventory_targets(LISTING, "all")] == [
        "pbx1", "pbx2", "pbx2", "pbx3", "sbc1"]


def test_an_unknown_or_empty_group_stops_the_source():
    with pytest.raises(watch_arguments.PortStateArgumentError, match="group 'db' is not in the inventory"):
        watch_inventory.inventory_targets(LISTING, "db")
    with pytest.raises(watch_arguments.PortStateArgumentError, match="group 'empty' of the inventory has no hosts"):
        watch_inventory.inventory_targets(LISTING, "empty")


def test_a_real_inventory_file_through_ansible_inventory(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"voip": {"hosts": {
        "pbx1": {"ansible_host": "127.0.0.1"}, "pbx2": {"sips_probe_targets": ["::1"]}}}}}}))
    assert watch_inventory.read_inventory(str(inventory), "voip") == [("pbx1", "127.0.0.1"), ("pbx2", "::1")]
    broken = tmp_path / "broken.yml"
    broken.write_text("all: [unclosed\n")
    with pytest.raises(watch_arguments.PortStateArgumentError, match="broken.yml"):
        watch_inventory.read_inventory(str(broken), "all")


# ------------------------------------------------------------------------------------------
# Changes
# ------------------------------------------------------------------------------------------

def obs(state, sha=None, host="pbx1", address="192.0.2.1", protocol="tcp"):
    return {watch_changes.endpoint_key(host, address, protocol, 5061): {
        "host": host, "target": address, "address": address, "family": "ipv6" if ":" in address else "ipv4",
        "protocol": protocol, "port": 5061, "state": state, "error": "no such host" if state == "error" else None,
        "tls_subject": "CN=sip.test" if sha else None, "tls_sha256": sha, "tls_not_after": None,
        "sip_status": "200 OK" if state == "open" else None, "sip_server": "kamailio" if state == "open" else None}}


def kinds(events):
    return [event["port_state"]["kind"] for event in events]


@pytest.mark.parametrize("before, after, expected", [
    ([], "open", ["exposed"]),
    ([], "filtered", []),
    ([], "closed", []),
    ([], "open|filtered", []),
    ([], "error", []),
    (["filtered"], "open", ["reopened"]),
    (["closed"], "open", ["reopened"]),
    (["open|filtered"], "open", ["reopened"]),
    (["open"], "filtered", ["closed"]),
    (["open"], "closed", ["closed"]),
    (["open"], "open|filtered", ["closed"]),
    (["open"], "open", []),
    (["filtered"], "closed", []),  # not open before, not open now: no change of exposure
    (["filtered"], "filtered", []),
    (["open"], "error", []),  # an error says nothing about the firewall
    (["open", "error"], "open", []),  # ... so it does not make the next answer a reopening
    (["filtered", "error"], "open", ["reopened"]),
])
def test_an_event_only_when_the_exposure_changes(before, after, expected):
    state = watch_state.empty_state()
    for step, value in enumerate(before):
        state, _events = watch_changes.diff(state, obs(value), at(step), 60)
    state, events = watch_changes.diff(state, obs(after), at(len(before)), 60)
    assert kinds(events) == expected


def test_the_event_carries_host_endpoint_states_times_and_what_answered():
    state, _events = watch_changes.diff(watch_state.empty_state(), obs("filtered"), at(0), 60)
    state, _events = watch_changes.diff(state, obs("filtered"), at(5), 60)
    state, events = watch_changes.diff(state, obs("open", sha="ab" * 32), at(10), 60)
    [event] = events
    assert event["meta"] == {"hosts": "pbx1"}
    body = event["port_state"]
    assert {key: body[key] for key in ("kind", "host", "address", "port", "protocol", "family", "state",
                                       "previous_state", "exposed", "flapping")} == {
        "kind": "reopened", "host": "pbx1", "address": "192.0.2.1", "port": 5061, "protocol": "tcp",
        "family": "ipv4", "state": "open", "previous_state": "filtered", "exposed": True, "flapping": False}
    assert body["first_seen"] == watch_changes.iso(at(0))
    assert body["previous_last_seen"] == watch_changes.iso(at(5))
    assert body["last_seen"] == body["changed_at"] == watch_changes.iso(at(10))
    assert body["open_seconds"] is None  # only a "closed" says how long it was open
    state, events = watch_changes.diff(state, obs("filtered"), at(14.5), 60)
    assert events[0]["port_state"]["open_seconds"] == 4.5  # the rulebook tells a heal's close by it
    assert body["tls"] == {"subject": "CN=sip.test", "sha256": "ab" * 32, "not_after": None}
    assert body["sip"] == {"status": "200 OK", "server": "kamailio"}
    assert body["message"] == ("5061/tcp reopened on pbx1 (192.0.2.1, ipv4): filtered -> open; "
                               "TLS CN=sip.test, SIP server kamailio")
    json.dumps(event)  # an event is plain JSON (ansible-rulebook and AWX pass it on)


def test_a_new_certificate_on_an_open_port_is_a_change():
    state, _events = watch_changes.diff(watch_state.empty_state(), obs("open", sha="aa" * 32), at(0), 60)
    state, events = watch_changes.diff(state, obs("open", sha="aa" * 32), at(5), 60)
    assert events == []
    state, events = watch_changes.diff(state, obs("open", sha="bb" * 32), at(10), 60)
    assert kinds(events) == ["certificate_changed"]
    assert events[0]["port_state"]["previous_tls_sha256"] == "aa" * 32
    # An answer without a certificate this time (a failed handshake) is no certificate change.
    state, events = watch_changes.diff(state, obs("open"), at(15), 60)
    assert events == []


def test_a_second_reopening_within_the_heal_window_is_flapping():
    state, _events = watch_changes.diff(watch_state.empty_state(), obs("filtered"), at(0), 60)
    state, first = watch_changes.diff(state, obs("open"), at(5), 60)
    state, _events = watch_changes.diff(state, obs("filtered"), at(10), 60)
    state, second = watch_changes.diff(state, obs("open"), at(20), 60)
    state, _events = watch_changes.diff(state, obs("filtered"), at(25), 60)
    state, third = watch_changes.diff(state, obs("open"), at(200), 60)
    assert [e["port_state"]["flapping"] for e in first + second + third] == [False, True, False]


def test_endpoints_of_one_host_reopened_in_one_round_are_not_flapping():
    seen = {}
    for address in ("192.0.2.1", "2001:db8::1"):
        for protocol in ("tcp", "udp"):
            seen.update(obs("filtered", address=address, protocol=protocol))
    state, _events = watch_changes.diff(watch_state.empty_state(), seen, at(0), 60)
    opened = {key: dict(value, state="open") for key, value in seen.items()}
    state, events = watch_changes.diff(state, opened, at(5), 60)
    assert kinds(events) == ["reopened"] * 4
    assert not any(event["port_state"]["flapping"] for event in events)


def round_of(state, states, seconds, window=60):
    """One round of the watch over hosts given as {host: probe state}: diff, then heal."""
    seen = {}
    for index, (host, value) in enumerate(sorted(states.items())):
        seen.update(obs(value, host=host, address="192.0.2.%d" % (index + 1)))
    state, events = watch_changes.diff(state, seen, at(seconds), window)
    state, heal = watch_changes.heal(state, events, at(seconds), window, 5061)
    return state, events, heal


def healed(heal):
    return heal["port_state"]["hosts"] if heal else []


def test_hosts_reopened_in_one_round_are_healed_by_one_event_for_all():
    state = watch_state.empty_state()
    state, _events, heal = round_of(state, {"a": "filtered", "b": "filtered", "c": "filtered"}, 0)
    assert heal is None
    state, events, heal = round_of(state, {"a": "open", "b": "filtered", "c": "open"}, 5)
    assert kinds(events) == ["reopened", "reopened"]
    assert heal["meta"] == {"hosts": ["a", "c"]}  # ansible-rulebook limits the one close run to both
    assert heal["port_state"]["kind"] == "heal" and heal["port_state"]["hosts"] == ["a", "c"]
    assert heal["port_state"]["port"] == 5061 and heal["port_state"]["changed_at"] == watch_changes.iso(at(5))
    assert heal["port_state"]["message"] == "closing 5061 again on 2 hosts: a, c"
    json.dumps(heal)
    # Still open in the next rounds (the close is running): no second heal.
    state, _events, heal = round_of(state, {"a": "open", "b": "filtered", "c": "open"}, 10)
    assert heal is None


def test_a_host_exposed_when_the_watch_starts_is_healed():
    _state, events, heal = round_of(watch_state.empty_state(), {"a": "open", "b": "closed"}, 0)
    assert kinds(events) == ["exposed"] and healed(heal) == ["a"]


def test_a_flapping_host_is_healed_once_per_window_and_never_left_open():
    state = watch_state.empty_state()
    state, _events, heal = round_of(state, {"a": "filtered"}, 0)
    state, _events, heal = round_of(state, {"a": "open"}, 5)
    assert healed(heal) == ["a"]
    state, _events, heal = round_of(state, {"a": "filtered"}, 15)  # the heal closed it
    heals = []
    for second in range(20, 65, 5):  # reopened and closed again every 5 s inside the window
        state, events, heal = round_of(state, {"a": "open" if second % 10 == 0 else "filtered"}, second)
        heals.append((second, healed(heal)))
        if second == 20:
            assert kinds(events) == ["reopened"] and events[0]["port_state"]["flapping"] is True
    assert all(hosts == [] for _second, hosts in heals), heals  # no storm inside the window
    state, _events, heal = round_of(state, {"a": "open"}, 65)  # the window (from 5 s) is over, still open
    assert healed(heal) == ["a"]
    assert heal["port_state"]["after_window"] == ["a"]
    assert "reopened within 60s of the last heal" in heal["port_state"]["message"]
    # Reopened again within the new window but closed by someone before it ends: no heal then.
    state, _events, heal = round_of(state, {"a": "filtered"}, 70)
    state, _events, heal = round_of(state, {"a": "open"}, 75)
    assert heal is None and state["hosts"]["a"]["heal_due"] == watch_changes.iso(at(125))
    state, _events, heal = round_of(state, {"a": "filtered"}, 80)
    state, _events, heal = round_of(state, {"a": "filtered"}, 125)
    assert heal is None and "heal_due" not in state["hosts"]["a"]


def test_a_host_a_heal_could_not_close_is_not_healed_again_until_it_reopens():
    state = watch_state.empty_state()
    state, _events, heal = round_of(state, {"a": "filtered", "b": "filtered"}, 0)
    state, _events, heal = round_of(state, {"a": "open", "b": "filtered"}, 5)
    assert healed(heal) == ["a"]
    for second in range(10, 400, 5):  # a rule outside UFW: the close failed, the port stays open
        state, events, heal = round_of(state, {"a": "open", "b": "filtered"}, second)
        assert events == [] and heal is None, second
    # b reopening does not drag a in; a reopening after it was closed by hand is healed again.
    state, _events, heal = round_of(state, {"a": "filtered", "b": "open"}, 400)
    assert healed(heal) == ["b"]
    state, _events, heal = round_of(state, {"a": "open", "b": "open"}, 405)
    assert healed(heal) == ["a"]


def test_endpoints_of_a_host_announced_in_two_parts_of_a_round_are_one_heal_and_not_flapping():
    """The watch announces what answered open before the round's silent endpoints time out, then
    diffs the whole round: a host whose IPv4 answered first and IPv6 a moment later is one heal."""
    v4, v6 = obs("open", address="192.0.2.1"), obs("open", address="2001:db8::1")
    state, _events = watch_changes.diff(watch_state.empty_state(), dict(
        obs("filtered", address="192.0.2.1"), **obs("filtered", address="2001:db8::1")), at(0), 60)
    started = at(5)
    state, first = watch_changes.diff_some(state, v4, at(5.01), 60, started)
    state, heal = watch_changes.heal(state, first, at(5.01), 60, 5061, started)
    assert kinds(first) == ["reopened"] and healed(heal) == ["pbx1"]
    state, second = watch_changes.diff_some(state, v6, at(5.3), 60, started)
    state, heal = watch_changes.heal(state, second, at(5.3), 60, 5061, started)
    assert kinds(second) == ["reopened"] and second[0]["port_state"]["flapping"] is False
    assert heal is None and "heal_due" not in state["hosts"]["pbx1"]  # in the first part's heal already
    # The whole round at its end: nothing new to say, and both endpoints kept.
    state, events = watch_changes.diff(state, dict(v4, **v6), at(7), 60, started)
    state, heal = watch_changes.heal(state, events, at(7), 60, 5061, started)
    assert events == [] and heal is None and len(state["endpoints"]) == 2
    # The next round's reopening of the same host within the window is flapping, and deferred.
    state, _events = watch_changes.diff(state, dict(obs("filtered", address="192.0.2.1"), **v6), at(10), 60, at(10))
    state, events = watch_changes.diff_some(state, v4, at(15), 60, at(15))
    state, heal = watch_changes.heal(state, events, at(15), 60, 5061, at(15))
    assert events[0]["port_state"]["flapping"] is True and heal is None
    assert state["hosts"]["pbx1"]["heal_due"] == watch_changes.iso(at(65.01))


def test_a_part_of_a_round_leaves_the_other_endpoints_and_hosts_as_they_are():
    state, _events = watch_changes.diff(watch_state.empty_state(), dict(obs("filtered"), **obs("open", host="pbx2")),
                                        at(0), 60)
    part, events = watch_changes.diff_some(state, obs("open"), at(5), 60, at(5))
    assert kinds(events) == ["reopened"]
    assert part["endpoints"][watch_changes.endpoint_key("pbx2", "192.0.2.1", "tcp", 5061)] == \
        state["endpoints"][watch_changes.endpoint_key("pbx2", "192.0.2.1", "tcp", 5061)]
    assert set(part["hosts"]) == {"pbx1", "pbx2"}


def test_a_round_where_the_name_did_not_resolve_keeps_the_hosts_endpoints_and_its_heal_throttle():
    state = watch_state.empty_state()
    state, _events, heal = round_of(state, {"a": "filtered"}, 0)
    state, _events, heal = round_of(state, {"a": "open"}, 5)
    assert healed(heal) == ["a"]
    # The name of a's target did not resolve at 10 s: no observation of it at all.
    state, events = watch_changes.diff(state, {}, at(10), 60, at(10), unresolved={"192.0.2.1"})
    state, heal = watch_changes.heal(state, events, at(10), 60, 5061, at(10))
    assert events == [] and heal is None and state["hosts"]["a"]["healed_at"] == watch_changes.iso(at(5))
    # Open again at 15 s (its heal failed): no "exposed" and no second heal.
    state, events, heal = round_of(state, {"a": "open"}, 15)
    assert events == [] and heal is None
    # A target no longer watched (not unresolved) leaves the state.
    state, _events = watch_changes.diff(state, {}, at(20), 60, at(20))
    assert state == {"endpoints": {}, "hosts": {}}


def test_the_heal_times_survive_a_restart(tmp_path):
    path = str(tmp_path / "state.json")
    state, _events, _heal = round_of(watch_state.empty_state(), {"a": "filtered"}, 0)
    state, _events, heal = round_of(state, {"a": "open"}, 5)
    state, _events, heal = round_of(state, {"a": "filtered"}, 10)
    watch_state.save_state(path, state, 5061)
    state, warning = watch_state.load_state(path, 5061)
    assert warning is None
    state, _events, heal = round_of(state, {"a": "open"}, 20)  # after the restart, within the window
    assert heal is None and state["hosts"]["a"]["heal_due"] == watch_changes.iso(at(65))
    state, _events, heal = round_of(state, {"a": "open"}, 65)
    assert healed(heal) == ["a"]


def test_endpoints_no_longer_watched_leave_the_state():
    state, _events = watch_changes.diff(watch_state.empty_state(), dict(obs("open"), **obs("open", host="pbx2")), at(0), 60)
    state, _events = watch_changes.diff(state, obs("open"), at(5), 60)
    assert list(state["endpoints"]) == [watch_changes.endpoint_key("pbx1", "192.0.2.1", "tcp", 5061)]
    assert list(state["hosts"]) == ["pbx1"]


# ------------------------------------------------------------------------------------------
# The state file
# ------------------------------------------------------------------------------------------

def test_the_state_file_round_trips_atomically(tmp_path):
    path = str(tmp_path / "watch" / "state.json")
    state, warning = watch_state.prepare_state_file(path, 5061)
    assert state == watch_state.empty_state() and warning is None
    assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o700"
    state, _events = watch_changes.diff(state, obs("open", sha="aa" * 32), at(0), 60)
    watch_state.save_state(path, state, 5061)
    assert os.listdir(os.path.dirname(path)) == ["state.json"]  # no temporary file left behind
    loaded, warning = watch_state.load_state(path, 5061)
    assert loaded == state and warning is None
    # Another port's state says nothing about this one.
    assert watch_state.load_state(path, 5062) == (watch_state.empty_state(), None)


@pytest.mark.parametrize("content", ['{"endpoints": {', "[]", '{"source": "other"}',
                                     '{"source": "sipguard.firewall.port_state", "version": 99}'])
def test_an_unusable_state_file_is_set_aside_and_named(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    state, warning = watch_state.load_state(str(path), 5061)
    assert state == watch_state.empty_state()
    assert str(path) in warning and "set aside as %s.invalid" % path in warning
    assert (tmp_path / "state.json.invalid").read_text() == content and not path.exists()


def test_a_state_directory_that_cannot_be_created_stops_the_source(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(watch_arguments.PortStateArgumentError, match="cannot create its directory"):
        watch_state.prepare_state_file(str(blocker / "state.json"), 5061)


def test_a_failed_write_leaves_the_previous_state_file(tmp_path, monkeypatch):
    path = str(tmp_path / "state.json")
    watch_state.save_state(path, watch_state.empty_state(), 5061)
    before = open(path).read()
    state, _events = watch_changes.diff(watch_state.empty_state(), obs("open"), at(0), 60)

    def broken_fsync(_descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        watch_state.save_state(path, state, 5061)
    assert open(path).read() == before
    assert os.listdir(str(tmp_path)) == ["state.json"]


# ------------------------------------------------------------------------------------------
# The loop, against servers on loopback that open and close
# ------------------------------------------------------------------------------------------

def certificate_pair(tmp_path, common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / (common_name + ".crt"), tmp_path / (common_name + ".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A TLS server on 127.0.0.1:port that answers OPTIONS with 200 OK; start/stop at will."""

    def __init__(self, port, certificate=None):
        self.port, self.certificate, self.server = port, certificate, None

    async def handle(self, reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            writer.write(b"SIP/2.0 200 OK\r\nServer: sge-test-pbx\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def start(self, certificate=None):
        self.certificate = certificate or self.certificate
        context = None
        if self.certificate:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.certificate)
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port, ssl=context,
                                                 reuse_address=True)

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


async def next_event(queue, timeout=5.0):
    """The next change event; heal events before it are skipped."""
    while True:
        event = (await asyncio.wait_for(queue.get(), timeout))["port_state"]
        if event["kind"] != "heal":
            return event


def watch_args(port, state_file, **extra):
    args = {"targets": [{"host": "pbx1", "address": "127.0.0.1"}], "port": port, "protocols": ["tcp"],
            "families": ["ipv4"], "interval": 0.2, "timeout": 0.5, "retries": 0, "state_file": str(state_file)}
    args.update(extra)
    return args


def test_the_loop_sends_exposed_closed_reopened_and_certificate_changed(tmp_path):
    async def scenario():
        port = free_port()
        first, second = certificate_pair(tmp_path, "one.sip.test"), certificate_pair(tmp_path, "two.sip.test")
        server = Server(port, first)
        await server.start()
        queue = asyncio.Queue()
        task = asyncio.create_task(port_state.main(queue, watch_args(port, tmp_path / "state.json")))
        try:
            exposed = await next_event(queue)
            assert exposed["kind"] == "exposed" and exposed["previous_state"] is None
            assert exposed["tls"]["subject"] == "CN=one.sip.test" and len(exposed["tls"]["sha256"]) == 64
            assert exposed["sip"] == {"status": "200 OK", "server": "sge-test-pbx"}
            await asyncio.sleep(0.6)  # more rounds, nothing changed: nothing sent but the round's heal
            [heal] = [queue.get_nowait() for _index in range(queue.qsize())]
            assert heal["meta"] == {"hosts": ["pbx1"]} and heal["port_state"]["kind"] == "heal"
            await server.stop()
            closed = await next_event(queue)
            assert (closed["kind"], closed["previous_state"], closed["state"]) == ("closed", "open", "closed")
            await server.start()
            reopened = await next_event(queue)
            assert (reopened["kind"], reopened["previous_state"]) == ("reopened", "closed")
            assert reopened["first_seen"] == exposed["first_seen"]
            assert reopened["flapping"] is True  # reopened within 60 s of its first exposure
            await server.stop()
            await next_event(queue)
            await server.start(second)
            again = await next_event(queue)
            assert again["kind"] == "reopened" and again["tls"]["subject"] == "CN=two.sip.test"
            await server.stop()
            await next_event(queue)
            await server.start(first)
            await next_event(queue)
            await server.stop()
            await server.start(second)  # between two rounds: open before and after, another cert
            events = [await next_event(queue)]
            assert events[-1]["kind"] in ("certificate_changed", "closed")
            while events[-1]["kind"] != "certificate_changed":
                events.append(await next_event(queue))
            assert events[-1]["previous_tls_sha256"] != events[-1]["tls"]["sha256"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if server.server and server.server.is_serving():
                await server.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_reopening_is_sent_before_the_rounds_silent_endpoints_time_out(tmp_path, monkeypatch):
    """One target answers, another is silent (a dropped SYN, emulated: nothing here touches a
    firewall) with a 3 s timeout: the exposed event and the heal come at once, not after 3 s, and
    the round's own diff does not send them again."""
    tcp = importlib.import_module("ansible_collections.sipguard.firewall.plugins.module_utils._probe.tcp")
    real_connect = tcp.tcp_connect

    async def silent_for_127_0_0_2(family, sockaddr):
        if sockaddr[0] == "127.0.0.2":
            await asyncio.sleep(3600)
        return await real_connect(family, sockaddr)

    monkeypatch.setattr(tcp, "tcp_connect", silent_for_127_0_0_2)

    async def scenario():
        port = free_port()
        server = Server(port)
        await server.start()
        queue = asyncio.Queue()
        args = watch_args(port, tmp_path / "state.json", timeout=3, interval=10, targets=[
            {"host": "pbx1", "address": "127.0.0.1"}, {"host": "quiet", "address": "127.0.0.2"}])
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.create_task(port_state.main(queue, args))
        try:
            exposed = (await asyncio.wait_for(queue.get(), 2.5))["port_state"]
            heal = (await asyncio.wait_for(queue.get(), 0.5))["port_state"]
            early = loop.time() - started
            assert (exposed["kind"], exposed["host"]) == ("exposed", "pbx1")
            assert (heal["kind"], heal["hosts"]) == ("heal", ["pbx1"])
            assert early < 2.5, early  # the silent target's window is 3 s
            await asyncio.sleep(3.5)  # the round ends (the silent one: filtered): nothing more
            assert queue.empty()
            document = json.loads((tmp_path / "state.json").read_text())
            assert sorted(entry["state"] for entry in document["endpoints"].values()) == ["filtered", "open"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_state_survives_a_restart(tmp_path):
    """Closed before the restart and open after it: reopened. Open before and after: no event."""
    async def watch_until_first_event_or(queue_wait, args):
        queue = asyncio.Queue()
        task = asyncio.create_task(port_state.main(queue, args))
        try:
            return await next_event(queue, queue_wait)
        except asyncio.TimeoutError:
            return None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def scenario():
        port = free_port()
        state_file = tmp_path / "state.json"
        args = watch_args(port, state_file)
        assert await watch_until_first_event_or(0.8, args) is None  # closed: nothing to say
        server = Server(port)
        await server.start()
        try:
            event = await watch_until_first_event_or(3, args)
            assert (event["kind"], event["previous_state"]) == ("reopened", "closed")
            assert await watch_until_first_event_or(0.8, args) is None  # still open: no change
        finally:
            await server.stop()
        event = await watch_until_first_event_or(3, args)
        assert event["kind"] == "closed"

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_rounds_hold_sockets_and_memory_bounded(tmp_path):
    """Many rounds over open and closed targets: no file descriptor left open, state as large as the watch."""
    async def scenario():
        open_port, closed_port = free_port(), free_port()
        server = Server(open_port)
        await server.start()
        queue = asyncio.Queue()
        targets = [{"host": "h%d" % n, "address": "127.0.0.1"} for n in range(20)]
        args = watch_args(open_port, tmp_path / "state.json", targets=targets, interval=0.05, concurrency=4)
        task = asyncio.create_task(port_state.main(queue, args))
        try:
            for _round in range(20):
                await next_event(queue)  # every host: exposed
            await asyncio.sleep(0.5)
            before = len(os.listdir("/proc/self/fd"))
            await asyncio.sleep(2.0)  # dozens of rounds
            after = len(os.listdir("/proc/self/fd"))
            assert after <= before + 2, (before, after)
            # Left: the first round's one heal for all 20 hosts; the later rounds sent nothing.
            [heal] = [queue.get_nowait() for _index in range(queue.qsize())]
            assert sorted(heal["meta"]["hosts"]) == sorted(target["host"] for target in targets)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()
        document = json.loads((tmp_path / "state.json").read_text())
        assert len(document["endpoints"]) == 20 and closed_port

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_bad_arguments_stop_main_at_start(tmp_path):
    async def scenario():
        with pytest.raises(watch_arguments.PortStateArgumentError, match="interval 'often'"):
            await port_state.main(asyncio.Queue(), watch_args(free_port(), tmp_path / "s.json", interval="often"))

    asyncio.run(asyncio.wait_for(scenario(), 10))
