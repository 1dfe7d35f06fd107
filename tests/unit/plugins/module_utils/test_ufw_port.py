# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ufw_port transaction: validation, planning, drift, exposure and the apply/roll-back
sequence, on rule files and iptables-save dumps captured from real ufw 0.36 hosts.

The host is replaced by FakeHost (fakes.py), which keeps files in a dict and emulates
`iptables-restore -n` on the saved rule set, so every process the transaction would
start is recorded and counted.
"""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._exposure import assess
from ansible_collections.sipguard.firewall.plugins.module_utils._request import PortRequest, RequestError
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.plan import (
    accepts_only_this_port,
    plan_family,
    user_chain_drifted,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.rules import accepts_port, port_in_spec
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import (
    UfwPortError,
    parse_key_values,
    set_key_values,
)
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.transaction import run_ufw_port
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.rules import (
    parse_rules_file,
    render_rules_file,
)
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.fakes import (
    CHAINS,
    IPV6_OFF_DEFAULTS,
    FakeHost,
    fixture,
    ipv6_off_host,
    legacy_host,
    with_user_chain,
)


def params(**overrides):
    values = dict(port=5061, protocols=["tcp", "udp"], families=["ipv4", "ipv6"], state="closed",
                  action="deny", trusted_sources=[], conflicts="shadow", inactive="enable",
                  comment="sipguard", lock_timeout=30)
    values.update(overrides)
    return values


def request(**overrides):
    return PortRequest.from_params(params(**overrides))


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("overrides, named", [
    (dict(port=0), "0"),
    (dict(port=65536), "65536"),
    (dict(protocols=[]), "protocols"),
    (dict(families=[]), "families"),
    (dict(trusted_sources=["10.0.0.300/24"]), "10.0.0.300/24"),
    (dict(trusted_sources=["10.0.0.1/8"]), "10.0.0.1/8"),
    (dict(trusted_sources=["sip.example.com"]), "sip.example.com"),
    (dict(trusted_sources=["2001:db8::/32"], families=["ipv4"]), "2001:db8::/32"),
    (dict(comment="it's"), "it's"),
    (dict(comment=""), "''"),
    (dict(lock_timeout=-1), "-1"),
])
def test_bad_input_is_refused_naming_the_value(overrides, named):
    with pytest.raises(RequestError) as error:
        request(**overrides)
    assert named in str(error.value)


def test_request_normalises_sources_and_orders_lists():
    normalised = request(protocols=["udp", "tcp", "udp"], families=["ipv6", "ipv4"],
                         trusted_sources=["192.0.2.5/32", "2001:DB8::/32", "192.0.2.5", "198.51.100.0/24"])
    assert normalised.protocols == ("tcp", "udp")
    assert normalised.families == ("ipv4", "ipv6")
    assert normalised.trusted_sources == ("192.0.2.5", "2001:db8::/32", "198.51.100.0/24")
    assert normalised.sources_for("ipv4") == ["192.0.2.5", "198.51.100.0/24"]


# ------------------------------------------------------------------ deciding

@pytest.mark.parametrize("spec, port, expected", [
    ("5061", 5061, True), ("5060", 5061, False), ("any", 5061, True),
    ("5000:6000", 5061, True), ("5000:6000", 6001, False), ("80,443,5061", 5061, True),
    ("80,443", 5061, False), ("5060,5062:5070", 5061, False), ("5060,5061:5070", 5061, True),
])
def test_port_in_spec(spec, port, expected):
    assert port_in_spec(port, spec) is expected


def rules_of(directory, name="user.rules"):
    return parse_rules_file(fixture("ufw", directory, name)).rules


def test_acceptors_are_allow_and_limit_rules_covering_the_port():
    by_line = {rule.raw_lines[1]: accepts_port(rule, 5061, ("tcp", "udp"))
               for directory in ("allow-5061", "ranges", "limit", "route", "out", "deny-reject", "app-profiles")
               for rule in rules_of(directory)}
    assert by_line["### tuple ### allow any 5061 0.0.0.0/0 any 0.0.0.0/0 in"] is True
    assert by_line["### tuple ### allow tcp 5000:6000 0.0.0.0/0 any 0.0.0.0/0 in"] is True
    assert by_line["### tuple ### limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in"] is False
    assert any(line.startswith("### tuple ### limit_log tcp 5061") and accepted for line, accepted in by_line.items())
    assert any("SIP%20TLS" in line and accepted for line, accepted in by_line.items())
    # Route rules are forwarded traffic, out rules leave the host, deny rules close.
    assert not any(accepted for line, accepted in by_line.items()
                   if "route:" in line or line.endswith(" out") or " deny " in line or " reject " in line)


def test_only_rules_for_exactly_this_port_and_protocols_are_removable():
    both = request()
    tcp_only = request(protocols=["tcp"])
    allow_any, allow_tcp, allow_udp = rules_of("allow-5061")
    assert [accepts_only_this_port(rule, both) for rule in (allow_any, allow_tcp, allow_udp)] == [True] * 3
    # `allow 5061` (tcp and udp) also serves udp, which a tcp-only close must keep.
    assert [accepts_only_this_port(rule, tcp_only) for rule in (allow_any, allow_tcp, allow_udp)] == \
        [False, True, False]
    assert not any(accepts_only_this_port(rule, both) for rule in rules_of("ranges"))


def test_close_puts_our_rules_first_and_keeps_everything_else_in_order():
    before = parse_rules_file(fixture("ufw", "ranges", "user.rules"))
    plan = plan_family(before, request(), "ipv4")
    assert [rule.raw_lines[1] for rule in plan.after.rules] == [
        "### tuple ### deny tcp 5061 0.0.0.0/0 any 0.0.0.0/0 in comment=7369706775617264",
        "### tuple ### deny udp 5061 0.0.0.0/0 any 0.0.0.0/0 in comment=7369706775617264",
    ] + [rule.raw_lines[1] for rule in before.rules]
    assert plan.after.rules[len(plan.added):] == before.rules
    assert [handling for _rule, handling in plan.conflicts] == ["shadowed", "shadowed"]
    assert plan.files_change
    assert not plan_family(plan.after, request(), "ipv4").files_change


def test_trusted_sources_go_ahead_of_the_deny():
    plan = plan_family(parse_rules_file(fixture("ufw", "enabled-empty", "user.rules")),
                       request(protocols=["tcp"], trusted_sources=["192.0.2.0/24", "2001:db8::/32"]), "ipv4")
    assert [rule.iptables_lines for rule in plan.after.rules] == [
        ("-A ufw-user-input -p tcp --dport 5061 -s 192.0.2.0/24 -j ACCEPT",),
        ("-A ufw-user-input -p tcp --dport 5061 -j DROP",),
    ]


def test_rules_inserted_above_ours_later_move_ours_back_to_the_top():
    closed = plan_family(parse_rules_file(fixture("ufw", "allow-5061", "user.rules")), request(), "ipv4").after
    ours, others = closed.rules[:2], closed.rules[2:]
    reordered = closed.__class__(closed.header, others[:1] + ours + others[1:], closed.trailer)
    plan = plan_family(reordered, request(), "ipv4")
    assert plan.files_change and plan.after == closed
    assert plan.added == () and plan.removed == ()


def test_conflicts_remove_deletes_exact_allows_and_shadows_wider_ones():
    before = parse_rules_file(fixture("ufw", "sipguard-before", "user.rules"))
    plan = plan_family(before, request(conflicts="remove", protocols=["tcp"]), "ipv4")
    handled = {rule.raw_lines[1].split(" ### ")[-1]: handling for rule, handling in plan.conflicts}
    assert handled == {"allow tcp 5060:5062 0.0.0.0/0 any 0.0.0.0/0 in": "shadowed",
                       "allow tcp 5061 0.0.0.0/0 any 192.0.2.0/24 in": "removed"}
    assert [rule.dport for rule in plan.after.rules] == ["5061", "22", "5060:5062"]


def test_conflicts_fail_names_the_rules_and_plans_nothing():
    with pytest.raises(UfwPortError) as error:
        plan_family(parse_rules_file(fixture("ufw", "ranges", "user.rules")), request(conflicts="fail"), "ipv4")
    assert "5000:6000/tcp" in str(error.value) and "nothing was changed" in str(error.value)


def test_absent_restores_the_file_byte_for_byte():
    inserted = parse_rules_file(fixture("ufw", "sipguard-prepended", "user.rules"))
    plan = plan_family(inserted, request(state="absent"), "ipv4")
    assert render_rules_file(plan.after) == fixture("ufw", "sipguard-before", "user.rules")
    assert len(plan.removed) == 2


def test_rules_with_our_tag_for_other_ports_are_not_ours():
    new_rules = parse_rules_file(fixture("ufw", "sipguard-new-rules", "user.rules"))
    plan = plan_family(new_rules, request(state="absent"), "ipv4")
    assert {rule.dport for rule in plan.removed} == {"5061"}
    assert {rule.dport for rule in plan.after.rules} >= {"5062", "5063", "5064", "5065"}


def test_key_value_files_are_edited_in_place():
    text = '# comment\nIPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\n'
    assert parse_key_values(text) == {"IPV6": "yes", "DEFAULT_INPUT_POLICY": "DROP"}
    assert set_key_values(text, {"DEFAULT_INPUT_POLICY": "ACCEPT", "NEW": "1"}) == \
        '# comment\nIPV6=yes\nDEFAULT_INPUT_POLICY="ACCEPT"\nNEW=1\n'


# ------------------------------------------------------------------ drift and exposure

def snapshot_of(host):
    from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import read_snapshot
    return read_snapshot(host, request())


def test_running_chains_equal_to_the_files_are_no_drift_despite_iptables_save_spelling():
    host = FakeHost(rules_dir="limit")  # `-m recent` gains --name/--mask/--rsource in iptables-save
    snapshot = snapshot_of(host)
    assert not user_chain_drifted(snapshot, "ipv4", snapshot.rules["ipv4"])
    host.saves["ipv4"] = host.saves["ipv4"].replace("--dport 22 ", "--dport 23 ")
    snapshot = snapshot_of(host)
    assert user_chain_drifted(snapshot, "ipv4", snapshot.rules["ipv4"])


def test_a_flushed_user_chain_is_drift():
    host = FakeHost()
    host.saves["ipv4"] = "\n".join(line for line in host.saves["ipv4"].splitlines()
                                   if not line.startswith("-A ufw-user-input ")) + "\n"
    snapshot = snapshot_of(host)
    assert user_chain_drifted(snapshot, "ipv4", snapshot.rules["ipv4"])
    assert not user_chain_drifted(snapshot, "ipv6", snapshot.rules["ipv6"])


@pytest.mark.parametrize("save, expected_reason", [
    ("input_accept_ahead.v4.save", r"INPUT rule 1 accepts tcp port 5061 ahead of ufw's chains"),
    ("docker_published.v4.save", r"DNAT|172\.17\.0\.2:5061"),
    ("before_rules_accept.v4.save", r"before\.rules"),
])
def test_paths_around_ufw_make_the_close_ineffective(save, expected_reason):
    host = FakeHost(saves=(save, "ufw_deny.v6.save"))
    result = run_ufw_port(host, request(protocols=["tcp"]), check_mode=True, want_diff=False)
    assert result["effective"] is False
    assert any(re.search(expected_reason, reason) for reason in result["reasons"]), result["reasons"]


def test_trusted_allows_are_not_reported_as_exposure():
    host = FakeHost()
    result = run_ufw_port(host, request(trusted_sources=["192.0.2.0/24", "2001:db8::/32"]),
                          check_mode=False, want_diff=False)
    assert result["effective"] is True and result["reasons"] == []
    snapshot = snapshot_of(host)
    untrusted = request()
    reasons = assess(untrusted, snapshot, snapshot.live).reasons
    assert any("192.0.2.0/24" in reason for reason in reasons)


# ------------------------------------------------------------------ the transaction

def test_a_change_writes_both_files_and_loads_each_family_once():
    host = FakeHost()
    result = run_ufw_port(host, request(), check_mode=False, want_diff=True)
    assert host.lock_taken
    assert result["changed"] is True and result["effective"] is True
    assert [argv[0].rsplit("/", 1)[-1] for argv in host.processes] == [
        "iptables-save", "ip6tables-save", "iptables-restore", "ip6tables-restore"]
    assert host.live_chain("ipv4")[:2] == ["-A ufw-user-input -p tcp --dport 5061 -j DROP",
                                           "-A ufw-user-input -p udp --dport 5061 -j DROP"]
    assert "# sipguard" in result["diff"][0]["after"] and "# sipguard" not in result["diff"][0]["before"]
    assert len(result["rules_added"]) == 4
    # The state before the change travels with the result (`allow 5061` let it in).
    assert result["before"]["effective"] is False
    assert any(reason.startswith("ipv4/tcp: ufw's own") for reason in result["before"]["reasons"])
    assert result["listeners"] == []


def test_a_no_op_only_reads_the_running_rule_sets():
    host = FakeHost()
    run_ufw_port(host, request(), check_mode=False, want_diff=False)
    host.processes = []
    result = run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert result["changed"] is False and result["effective"] is True
    assert [argv[0].rsplit("/", 1)[-1] for argv in host.processes] == ["iptables-save", "ip6tables-save"]


def test_check_mode_predicts_and_writes_nothing():
    host = FakeHost()
    files_before, saves_before = dict(host.files), dict(host.saves)
    predicted = run_ufw_port(host, request(), check_mode=True, want_diff=True)
    assert host.files == files_before and host.saves == saves_before
    applied = run_ufw_port(FakeHost(), request(), check_mode=False, want_diff=True)
    for key in ("changed", "effective", "rules_added", "rules_removed", "conflicts", "diff"):
        assert predicted[key] == applied[key]


def test_drift_is_repaired_from_the_files():
    host = FakeHost()
    run_ufw_port(host, request(), check_mode=False, want_diff=False)
    host.saves["ipv6"] = "\n".join(line for line in host.saves["ipv6"].splitlines()
                                   if not line.startswith("-A ufw6-user-input ")) + "\n"
    result = run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert result["changed"] is True and result["drift"] == ["ipv6"]
    assert host.processes[-1][0].endswith("ip6tables-restore")
    assert host.live_chain("ipv6")


def test_a_failing_load_puts_back_files_and_chains():
    host = FakeHost(fail_on="ip6tables-restore")
    files_before = dict(host.files)
    chain_before = host.live_chain("ipv4")
    with pytest.raises(UfwPortError) as error:
        run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert "the previous rule files and chains were put back" in str(error.value)
    assert host.files == files_before
    assert host.live_chain("ipv4") == chain_before
    assert [argv[0].rsplit("/", 1)[-1] for argv in host.processes][-2:] == ["ip6tables-restore", "iptables-restore"]


def test_inactive_fail_and_skip_change_nothing():
    for inactive in ("fail", "skip"):
        host = FakeHost(saves=("ufw_disabled.v4.save", "no_tables.v4.save"), loaded=False,
                        conf="ENABLED=no\n")
        files_before = dict(host.files)
        if inactive == "fail":
            with pytest.raises(UfwPortError, match="inactive"):
                run_ufw_port(host, request(inactive=inactive), check_mode=False, want_diff=False)
        else:
            result = run_ufw_port(host, request(inactive=inactive), check_mode=False, want_diff=False)
            assert result["skipped"] is True and result["effective"] is False and result["changed"] is False
        assert host.files == files_before


def test_enabling_keeps_every_port_reachable_and_reports_each_step():
    host = FakeHost(rules_dir="pristine", saves=("no_tables.v4.save", "no_tables.v4.save"), loaded=False,
                    conf="ENABLED=no\n")

    def started(argv, data=None, run=host.run):
        output = run(argv, data)
        if argv[0].endswith("ufw-init"):
            for family, save in (("ipv4", "ufw_deny.v4.save"), ("ipv6", "ufw_deny.v6.save")):
                host.saves[family] = with_user_chain(fixture("netfilter", save), CHAINS[family],
                                                     host.files[host.rules_path(family)])
        return output
    host.run = started
    result = run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert result["changed"] and result["effective"], result["reasons"]
    assert 'DEFAULT_INPUT_POLICY="ACCEPT"' in host.files["/etc/default/ufw"]
    assert 'DEFAULT_FORWARD_POLICY="ACCEPT"' in host.files["/etc/default/ufw"]
    assert "ENABLED=yes" in host.files["/etc/ufw/ufw.conf"]
    assert result["actions"][0].startswith("set the default incoming policy to allow (was deny)")
    assert any(argv[0].endswith("ufw-init") and argv[1] == "start" for argv in host.processes)


def test_enabling_refuses_when_existing_rules_would_block_other_ports():
    host = FakeHost(rules_dir="deny-reject", saves=("no_tables.v4.save", "no_tables.v4.save"), loaded=False,
                    conf="ENABLED=no\n")
    files_before = dict(host.files)
    with pytest.raises(UfwPortError, match="would also activate rules that block other traffic"):
        run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert host.files == files_before


def test_unparseable_rule_files_fail_before_anything_is_written():
    host = FakeHost()
    host.files["/etc/ufw/user.rules"] = "### RULES ###\ngarbage\n### END RULES ###\n"
    with pytest.raises(UfwPortError, match="cannot parse /etc/ufw/user.rules"):
        run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert not any("restore" in argv[0] for argv in host.processes)


def test_missing_ufw_is_a_clear_error():
    host = FakeHost()
    del host.files["/etc/ufw/ufw.conf"]
    with pytest.raises(UfwPortError, match="UFW is not installed"):
        run_ufw_port(host, request(), check_mode=False, want_diff=False)


# Pairs captured from one real host (ufw 0.36.2, iptables 1.8.9 nf_tables): the line ufw wrote
# into user.rules, and the same rule as iptables-save printed it once loaded.
SPELLING_PAIRS = [
    ("-A ufw-user-input -p tcp --dport 5061 -j DROP", "-A ufw-user-input -p tcp -m tcp --dport 5061 -j DROP"),
    ("-A ufw-user-input -p tcp -m multiport --dports 5060,5061 -j ACCEPT -m comment --comment 'dapp_SIP%20TLS'",
     "-A ufw-user-input -p tcp -m multiport --dports 5060,5061 -m comment --comment \"'dapp_SIP%20TLS'\" -j ACCEPT"),
    ("-A ufw-user-input -p tcp --dport 2222 -m conntrack --ctstate NEW -m recent --set",
     "-A ufw-user-input -p tcp -m tcp --dport 2222 -m conntrack --ctstate NEW -m recent --set --name DEFAULT "
     "--mask 255.255.255.255 --rsource"),
    ("-A ufw-user-input -p tcp --dport 9000 -s 10.0.0.0/8 -j ACCEPT",
     "-A ufw-user-input -s 10.0.0.0/8 -p tcp -m tcp --dport 9000 -j ACCEPT"),
]


def chain_of(line):
    from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import parse_chain_lines
    return parse_chain_lines("filter", "ufw-user-input", [line])


@pytest.mark.parametrize("file_line, saved_line", SPELLING_PAIRS)
def test_iptables_save_spelling_of_a_loaded_rule_is_not_drift(file_line, saved_line):
    from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import same_rules
    assert same_rules(chain_of(file_line), chain_of(saved_line))


@pytest.mark.parametrize("file_line, saved_line", [
    ("-A ufw-user-input -p tcp --dport 5061 -j DROP", "-A ufw-user-input -p tcp -m tcp --dport 5062 -j DROP"),
    ("-A ufw-user-input -p tcp --dport 5061 -j DROP", "-A ufw-user-input -p tcp -m tcp --dport 5061 -j ACCEPT"),
    ("-A ufw-user-input -p tcp --dport 5061 -j DROP", "-A ufw-user-input -p udp -m udp --dport 5061 -j DROP"),
    ("-A ufw-user-input -p tcp --dport 9000 -s 10.0.0.0/8 -j ACCEPT",
     "-A ufw-user-input -s 10.0.0.0/16 -p tcp -m tcp --dport 9000 -j ACCEPT"),
    ("-A ufw-user-input -p tcp -m multiport --dports 5060,5061 -j ACCEPT",
     "-A ufw-user-input -p tcp -m multiport --dports 5060,5062 -j ACCEPT"),
    ("-A ufw-user-input -p tcp --dport 2222 -m conntrack --ctstate NEW -m recent --set",
     "-A ufw-user-input -p tcp -m tcp --dport 2222 -m conntrack --ctstate NEW -m recent --update --name DEFAULT "
     "--mask 255.255.255.255 --rsource"),
])
def test_a_loaded_rule_that_differs_is_drift(file_line, saved_line):
    from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import same_rules
    assert not same_rules(chain_of(file_line), chain_of(saved_line))


def test_loaded_but_not_enabled_is_enabled_for_a_close_and_left_alone_for_a_restore():
    closing = FakeHost(conf="ENABLED=no\n")
    result = run_ufw_port(closing, request(), check_mode=False, want_diff=False)
    assert "ENABLED=yes" in closing.files["/etc/ufw/ufw.conf"]
    assert result["actions"] == ["set ENABLED=yes in /etc/ufw/ufw.conf so the rules are loaded again at boot"]
    assert result["ufw"]["enabled"] is True and result["ufw"]["active"] is True

    restoring = FakeHost(rules_dir="sipguard-prepended", conf="ENABLED=no\n")
    result = run_ufw_port(restoring, request(state="absent"), check_mode=False, want_diff=False)
    assert restoring.files["/etc/ufw/ufw.conf"] == "ENABLED=no\n"
    assert result["actions"] == [] and result["ufw"]["enabled"] is False and result["ufw"]["active"] is False


# ------------------------------------------------------------------ IPV6=no: judged from the loaded rules

def test_ipv6_off_is_closed_by_the_drop_policy_ufw_loads_for_it():
    host = ipv6_off_host()
    user6_rules = host.files["/etc/ufw/user6.rules"]
    result = run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert result["effective"] is True and result["reasons"] == []
    # Before the close only IPv4 was open (`allow 5061`); IPv6 was already dropped.
    assert result["before"]["effective"] is False
    assert {reason.split(":")[0] for reason in result["before"]["reasons"]} == {"ipv4/tcp", "ipv4/udp"}
    assert result["warnings"] == [
        "ipv6: UFW does not manage IPv6 on this host (IPV6=no in /etc/default/ufw): it loads no IPv6 rule (and drops "
        "any from /etc/ufw/user6.rules when it next writes its rules), so IPv6 is judged from the ip6tables rules "
        "loaded now (with IPV6=no, UFW sets them to drop everything but loopback when it starts); no IPv6 rule was "
        "written"]
    assert result["ufw"]["ipv6"] is False
    # No IPv6 rule is written (UFW would neither load it nor keep it) and no IPv6 chain loaded.
    assert result["rules_added"] == ["5061/tcp DENY IN Anywhere # sipguard", "5061/udp DENY IN Anywhere # sipguard"]
    assert host.files["/etc/ufw/user6.rules"] == user6_rules
    assert [os.path.basename(argv[0]) for argv in host.processes] == [
        "iptables-save", "ip6tables-save", "iptables-restore"]
    again = run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert again["changed"] is False and again["effective"] is True


def test_ipv6_off_enabling_is_not_refused_for_ipv6_rules_ufw_will_not_load():
    host = ipv6_off_host("no_tables.v4.save", "no_tables.v4.save", loaded=False, conf="ENABLED=no\n",
                         files={"/etc/ufw/user6.rules": fixture("ufw", "deny-reject", "user6.rules")})
    result = run_ufw_port(host, request(), check_mode=True, want_diff=False)
    assert result["changed"] is True and result["actions"][-1].startswith("set ENABLED=yes")
    with_ipv6 = FakeHost(rules_dir="enabled-empty", saves=("no_tables.v4.save", "no_tables.v4.save"), loaded=False,
                         conf="ENABLED=no\n", files={"/etc/ufw/user6.rules": fixture("ufw", "deny-reject", "user6.rules")})
    with pytest.raises(UfwPortError, match="would also activate rules that block other traffic"):
        run_ufw_port(with_ipv6, request(), check_mode=True, want_diff=False)


def test_ipv6_off_restore_still_removes_ipv6_rules_an_earlier_close_left():
    host = ipv6_off_host()
    host.files["/etc/ufw/user6.rules"] = fixture("ufw", "sipguard-prepended", "user6.rules")
    result = run_ufw_port(host, request(state="absent"), check_mode=False, want_diff=False)
    assert host.files["/etc/ufw/user6.rules"] == fixture("ufw", "sipguard-before", "user6.rules")
    assert result["changed"] is True and len(result["rules_removed"]) == 2


@pytest.mark.parametrize("v6_save, protocols, phrases", [
    # Someone opened the INPUT policy after UFW started: nothing of UFW's is there to deny. UFW's
    # OUTPUT still drops everything but loopback, so a TCP connection is never made (no SYN-ACK
    # leaves: the differential test saw it), while a datagram reaches the listener.
    ("ipv6_off_policy_accept.v6.save", ("udp",), [
        "no rule decides {protocol} port 5061, so the filter INPUT policy ACCEPT lets it in (path INPUT); "
        "UFW does not manage IPv6 on this host (IPV6=no in /etc/default/ufw)"]),
])
def test_ipv6_off_is_exposed_only_where_the_loaded_rules_let_the_port_in(v6_save, protocols, phrases):
    result = run_ufw_port(ipv6_off_host(v6_save), request(), check_mode=True, want_diff=False)
    assert result["effective"] is False
    assert {reason.split(": ")[0] for reason in result["reasons"]} == {"ipv6/%s" % p for p in protocols}
    for protocol in protocols:
        reasons = " | ".join(r for r in result["reasons"] if r.startswith("ipv6/%s:" % protocol))
        for phrase in phrases:
            assert phrase.format(protocol=protocol) in reasons, reasons


def test_ipv6_off_a_tcp_accept_that_no_reply_can_leave_is_closed():
    """`ip6tables -I INPUT -p tcp --dport 5061 -j ACCEPT` with UFW's IPV6=no OUTPUT policy: the SYN
    gets in, the SYN-ACK never gets out - no connection is ever made (found by the differential test)."""
    result = run_ufw_port(ipv6_off_host("ipv6_off_accept_rule.v6.save"), request(protocols=["tcp"]), check_mode=True,
                          want_diff=False)
    assert result["effective"] is True and result["reasons"] == []


def test_ipv6_off_on_a_host_whose_ufw_manages_ipv6_still_follows_the_chains():
    # IPV6=no written after UFW started with IPV6=yes: its IPv6 chains are loaded until a reload.
    host = FakeHost(defaults=IPV6_OFF_DEFAULTS)
    result = run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert result["effective"] is True and result["warnings"] == []
    assert host.live_chain("ipv6")[:2] == ["-A ufw6-user-input -p tcp --dport 5061 -j DROP",
                                           "-A ufw6-user-input -p udp --dport 5061 -j DROP"]


# ------------------------------------------------------------------ the backend UFW runs on

def test_on_the_legacy_backend_ufw_own_rules_are_not_foreign():
    host = legacy_host()
    result = run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert result["ufw"]["backend"] == "legacy"
    assert result["effective"] is True and result["warnings"] == []
    # The other backend (nft) is read once per family to find rules UFW does not see there.
    assert [os.path.basename(argv[0]) for argv in host.processes] == [
        "iptables-save", "iptables-nft-save", "ip6tables-save", "ip6tables-nft-save",
        "iptables-restore", "ip6tables-restore"]
    assert host.live_chain("ipv4")[0] == "-A ufw-user-input -p tcp --dport 5061 -j DROP"


def test_on_the_legacy_backend_nat_made_with_iptables_nft_goes_past_ufw():
    host = legacy_host(other_saves={("nft", "ipv4"): "nft_alongside.nft.v4.save"})
    result = run_ufw_port(host, request(), check_mode=True, want_diff=False)
    assert result["effective"] is False
    assert result["reasons"] == ["ipv4/udp: iptables-nft: nat PREROUTING rule 1 sends udp port 5061 on to "
                                 "192.0.2.10:5061 `-A PREROUTING -p udp -m udp --dport 5061 -j DNAT --to-destination "
                                 "192.0.2.10:5061` (path PREROUTING); that traffic is forwarded through FORWARD, not "
                                 "INPUT, so ufw's deny does not apply"]
    assert "ipv4/tcp: iptables-nft holds 1 rule (tables nat) that ufw on the legacy backend neither shows nor " \
           "manages" in result["warnings"][0]


def test_chains_left_in_legacy_after_the_alternative_was_switched_are_changed_where_they_are():
    host = FakeHost(saves=("switched_to_nft.v4.save", "ufw_deny.v6.save"), realpath="switched_to_nft.realpath",
                    other_saves={("legacy", "ipv4"): "switched_to_nft.legacy.v4.save"},
                    files={"/proc/net/ip_tables_names": fixture("netfilter", "ufw_legacy_deny.ip_tables_names")})
    result = run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert result["effective"] is True, result["reasons"]
    assert result["ufw"]["backend"] == "legacy (ipv4), nft (ipv6)"
    assert [os.path.basename(argv[0]) for argv in host.processes if "restore" in argv[0]] == [
        "iptables-legacy-restore", "ip6tables-restore"]
    assert "-A ufw-user-input -p tcp --dport 5061 -j DROP" in host.tables["legacy"]["ipv4"]
    assert host.tables["nft"]["ipv4"] == ""
    assert result["warnings"][0].startswith(
        "ipv4: UFW's chains are loaded in iptables-legacy, but `iptables` now leads to iptables-nft")


@pytest.mark.parametrize("realpath, backend", [
    ("ufw_deny.realpath", "nft"),
    ("ufw_legacy_deny.realpath", "legacy"),
])
def test_the_backend_is_where_the_alternative_leads(realpath, backend):
    from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import command_backend
    host = FakeHost(realpath=realpath)
    assert command_backend(host, "iptables") == command_backend(host, "ip6tables") == backend


def test_an_iptables_before_1_8_is_legacy_and_a_missing_one_is_none():
    from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import command_backend
    host = FakeHost()
    host.realpaths["/usr/sbin/iptables"] = "/sbin/xtables-multi"
    assert command_backend(host, "iptables") == "legacy"
    host.find_executable = lambda name: None
    assert command_backend(host, "iptables") is None


# ------------------------------------------------------------------ IPV6=no and an inactive UFW (found by the differential test)

IF_INET6 = ("00000000000000000000000000000001 01 80 10 80       lo\n"
            "fd005061000000000000000000000077 02 40 00 00     eth0\n"
            "fe80000000000000acde48fffe001122 02 40 20 80     eth0\n")


def test_starting_ufw_with_ipv6_off_is_refused_when_the_host_speaks_ipv6():
    """UFW started with IPV6=no drops every IPv6 packet - SSH over IPv6 included: refused, nothing changed."""
    host = FakeHost(rules_dir="pristine", saves=("no_tables.v4.save", "no_tables.v4.save"), loaded=False,
                    conf="ENABLED=no\n", defaults="IPV6=no\nDEFAULT_INPUT_POLICY=\"DROP\"\n",
                    files={"/proc/net/if_inet6": IF_INET6})
    files_before = dict(host.files)
    with pytest.raises(UfwPortError, match=r"IPV6=no in /etc/default/ufw: starting it would drop every IPv6 packet"
                                           r".* on eth0 now; nothing was changed"):
        run_ufw_port(host, request(), check_mode=False, want_diff=False)
    assert host.files == files_before
    assert not any(argv[0].endswith("ufw-init") for argv in host.processes)


def test_only_loopback_ipv6_does_not_refuse():
    host = FakeHost(files={"/proc/net/if_inet6": IF_INET6.splitlines()[0] + "\n"})
    from ansible_collections.sipguard.firewall.plugins.module_utils._addresses import host_addresses
    assert host_addresses(host)[1] == []
    assert host_addresses(FakeHost(files={"/proc/net/if_inet6": IF_INET6}))[1] == ["eth0"]
