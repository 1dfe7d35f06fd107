# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One exposure model: the audit and the close agree on every captured host state, and the
transaction's read-only host makes a write in check mode impossible."""

from __future__ import annotations

import itertools
import os

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._audit import run_audit
from ansible_collections.sipguard.firewall.plugins.module_utils._exposure import Exposure, Path
from ansible_collections.sipguard.firewall.plugins.module_utils._host import (
    HostError,
    ReadOnlyHost,
    WriteRefused,
    reads_only,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._request import PortRequest
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import UFW_CONF, UfwPortError
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.transaction import Transaction, apply_change
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.fakes import (
    FIXTURES,
    IPV6_OFF_DEFAULTS,
    UFW_CONF_ENABLED,
    UFW_DEFAULTS,
    FakeHost,
)


def request(**overrides):
    values = dict(port=5061, protocols=["tcp", "udp"], families=["ipv4", "ipv6"], state="closed", action="deny",
                  trusted_sources=[], conflicts="shadow", inactive="skip", comment="sipguard", lock_timeout=30)
    values.update(overrides)
    return PortRequest.from_params(values)


def _names(directory, suffix):
    return sorted(name for name in os.listdir(os.path.join(FIXTURES, directory)) if name.endswith(suffix))


RULES_DIRS = sorted(os.listdir(os.path.join(FIXTURES, "ufw")))
RULES_DIRS = [name for name in RULES_DIRS if os.path.isdir(os.path.join(FIXTURES, "ufw", name))]
# Every captured ruleset pair: a v4 dump with the v6 dump of the same capture where there is one.
V4_SAVES = [name for name in _names("netfilter", ".v4.save") if ".legacy." not in name and ".nft." not in name]
SAVE_PAIRS = [(v4, v4.replace(".v4.", ".v6.") if os.path.exists(os.path.join(FIXTURES, "netfilter", v4.replace(
    ".v4.", ".v6."))) else "ufw_deny.v6.save") for v4 in V4_SAVES]
PROCS = [None] + sorted(name for name in os.listdir(os.path.join(FIXTURES, "proc"))
                        if os.path.isdir(os.path.join(FIXTURES, "proc", name, "net")))
NFTS = [None] + _names("netfilter", ".nft")
TRUSTED = [[], ["10.89.7.0/24", "fd00:5061::/64"]]


def _states():
    """Every rules directory with every captured rule set, the socket tables, nft rule sets,
    IPV6 yes/no, loaded or not and trusted sources cycled through them (seeded by position)."""
    cycle = itertools.cycle(itertools.product(PROCS, NFTS, (True, False), (UFW_DEFAULTS, IPV6_OFF_DEFAULTS), TRUSTED))
    for rules_dir, saves in itertools.product(RULES_DIRS, SAVE_PAIRS):
        proc, nft, loaded, defaults, trusted = next(cycle)
        yield pytest.param(rules_dir, saves, proc, nft, loaded, defaults, trusted,
                           id="%s-%s-%s-%s-%s-%s-%s" % (rules_dir, saves[0].split(".")[0], proc, nft, loaded,
                                                        "v6off" if defaults != UFW_DEFAULTS else "v6on", len(trusted)))


def test_the_state_space_covers_every_fixture():
    states = list(_states())
    used = {value for state in states for value in state.values[:4] if isinstance(value, str)}
    used |= {save for state in states for save in state.values[1]}
    assert set(RULES_DIRS) | set(PROCS[1:]) | set(NFTS[1:]) | set(v4 for v4, _v6 in SAVE_PAIRS) <= used
    assert len(states) == len(RULES_DIRS) * len(SAVE_PAIRS) > 300


@pytest.mark.parametrize("rules_dir, saves, proc, nft, loaded, defaults, trusted", list(_states()))
def test_audit_and_close_give_the_same_answer_on_the_same_host(rules_dir, saves, proc, nft, loaded, defaults,
                                                               trusted):
    def host():
        return FakeHost(rules_dir=rules_dir, saves=saves, proc=proc, nft=nft, loaded=loaded, defaults=defaults)

    audit = run_audit(host(), request(trusted_sources=trusted))
    closing = host()
    try:
        close = Transaction(closing, request(trusted_sources=trusted), check_mode=True).run()
    except UfwPortError as exc:
        pytest.fail("the close refused a state the audit judged: %s" % exc)
    assert not [argv for argv in closing.processes if not reads_only(argv)], "check mode ran a writer"
    before = close["before"]
    assert before["exposed"] is audit["exposed"] is (not before["effective"])
    exposed_paths = {"%s/%s" % (item["family"], item["protocol"]) for item in audit["summary"] if item["exposed"]}
    assert {reason.split(":", 1)[0] for reason in before["reasons"]} == exposed_paths
    # The same sentences: the audit's reasons are the close's, with who listens named first.
    assert [reason for reason in audit["reasons"] if "listens on" not in reason] == before["reasons"]


def _path(reasons=(), listening=False):
    return Path(family="ipv4", protocol="tcp", port=5061, reasons=tuple(reasons), listening=listening,
                who="kamailio listens on 0.0.0.0:5061" if listening else None, notes=(),
                firewall="accept" if reasons else "drop", deciding_rule=None)


@pytest.mark.parametrize("path, exposed", [
    (_path(), False),
    (_path(listening=True), False),  # something listens, the firewall keeps everyone out
    (_path(["INPUT rule 1 accepts tcp port 5061"]), True),  # let in: whatever starts there is reachable
    (_path(["INPUT rule 1 accepts tcp port 5061"], listening=True), True),
])
def test_exposed_means_the_firewall_lets_it_in_whoever_listens(path, exposed):
    exposure = Exposure((path,))
    assert exposure.exposed is exposed and exposure.closed is (not exposed)
    item = path.as_dict()
    assert item["exposed"] is exposed
    if exposed:
        assert exposure.reasons == ["ipv4/tcp: INPUT rule 1 accepts tcp port 5061"]
    if exposed and path.listening:
        assert item["reasons"][0] == "kamailio listens on 0.0.0.0:5061"
        assert exposure.reasons_with_listeners == ["ipv4/tcp: kamailio listens on 0.0.0.0:5061",
                                                   "ipv4/tcp: INPUT rule 1 accepts tcp port 5061"]
    elif exposed:
        assert item["reasons"] == ["INPUT rule 1 accepts tcp port 5061"]
        assert item["notes"][-1] == "the firewall lets tcp/5061 in, but nothing listens on it now"
    else:
        assert item["reasons"] == [] and exposure.reasons == []


# ------------------------------------------------------------------ the read-only host

@pytest.mark.parametrize("argv, reads", [
    (["/usr/sbin/iptables-save"], True),
    (["/usr/sbin/ip6tables-legacy-save"], True),
    (["nft", "list", "ruleset"], True),
    (["/usr/sbin/iptables-restore", "-n", "-w", "5"], False),
    (["/usr/sbin/iptables-save", "-f", "/etc/x"], False),
    (["nft", "flush", "ruleset"], False),
    (["/lib/ufw/ufw-init", "start"], False),
])
def test_a_read_only_host_runs_only_the_dumps(argv, reads):
    assert reads_only(argv) is reads


def test_a_read_only_host_refuses_every_write_and_the_host_stays_as_it_was():
    fake = FakeHost()
    host = ReadOnlyHost(fake)
    files = dict(fake.files)
    with pytest.raises(WriteRefused, match="/etc/ufw/user.rules"):
        host.write_atomic("/etc/ufw/user.rules", "")
    with pytest.raises(WriteRefused, match="iptables-restore"):
        host.run(["/usr/sbin/iptables-restore", "-n", "-w", "5"], data="")
    assert not issubclass(WriteRefused, HostError)  # no roll-back handler can swallow it
    assert fake.files == files and fake.processes == []


def test_check_mode_cannot_write_even_when_asked_to():
    fake = FakeHost(conf=UFW_CONF_ENABLED.replace("ENABLED=yes", "ENABLED=no"))
    transaction = Transaction(fake, request(), check_mode=True)
    transaction.read()
    transaction.plan()
    assert transaction.change.changed and transaction.change.writes
    files = dict(fake.files)
    with pytest.raises(WriteRefused):
        apply_change(transaction.host, transaction.snapshot, transaction.change)
    assert fake.files == files
    assert [os.path.basename(argv[0]) for argv in fake.processes] == ["iptables-save", "ip6tables-save"]


def test_the_audit_reads_through_a_read_only_host(monkeypatch):
    fake = FakeHost()
    seen = []
    original = ReadOnlyHost.run

    def run(self, argv, data=None):
        seen.append(type(self))
        return original(self, argv, data)
    monkeypatch.setattr(ReadOnlyHost, "run", run)
    run_audit(fake, request())
    assert seen and set(seen) == {ReadOnlyHost}


# ------------------------------------------------------------------ one roll-back for every write

class FailingWrites(FakeHost):
    """A host whose write of one path fails."""

    def __init__(self, failing, **kwargs):
        super().__init__(**kwargs)
        self.failing = failing

    def write_atomic(self, path, text, mode=None):
        if path == self.failing:
            raise HostError("cannot write %s: No space left on device" % path)
        super().write_atomic(path, text, mode)


def test_a_failed_write_of_ufw_conf_puts_back_the_rule_files_and_the_chains():
    host = FailingWrites(UFW_CONF, conf=UFW_CONF_ENABLED.replace("ENABLED=yes", "ENABLED=no"))
    files, chains = dict(host.files), {family: host.live_chain(family) for family in ("ipv4", "ipv6")}
    with pytest.raises(UfwPortError, match="the previous rule files and chains were put back"):
        Transaction(host, request(inactive="enable")).run()
    assert host.files == files
    assert {family: host.live_chain(family) for family in ("ipv4", "ipv6")} == chains


def test_a_failed_write_of_the_defaults_puts_back_the_rule_files_and_starts_nothing():
    host = FailingWrites("/etc/default/ufw", rules_dir="pristine", saves=("no_tables.v4.save", "no_tables.v4.save"),
                         loaded=False, conf="ENABLED=no\n")
    files = dict(host.files)
    with pytest.raises(UfwPortError, match="put back"):
        Transaction(host, request(inactive="enable")).run()
    assert host.files == files
    assert not any(argv[0].endswith("ufw-init") for argv in host.processes)


def test_an_audit_calls_a_port_the_firewall_lets_in_exposed_though_nothing_listens():
    result = run_audit(FakeHost(saves=("input_accept_ahead.v4.save", "ufw_deny.v6.save")), request())
    item = next(item for item in result["summary"] if (item["family"], item["protocol"]) == ("ipv4", "tcp"))
    assert result["exposed"] is True and item["exposed"] is True and item["listening"] is False
    assert item["notes"][-1] == "the firewall lets tcp/5061 in, but nothing listens on it now"
    assert any(reason.startswith("ipv4/tcp: filter INPUT rule 1 accepts") for reason in result["reasons"])
    assert not any("listens on" in reason for reason in result["reasons"])
