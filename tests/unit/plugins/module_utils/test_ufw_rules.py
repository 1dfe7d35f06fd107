# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.rules import (
    END_RULES_MARKER,
    RULES_MARKER,
    UfwRulesError,
    format_status_line,
    make_rule,
    parse_rules_file,
    render_rules_file,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ufw"
SITUATIONS = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())
RULES_FILES = [(situation, name) for situation in SITUATIONS for name in ("user.rules", "user6.rules")]
SITUATIONS_WITH_STATUS = [s for s in SITUATIONS if (FIXTURES / s / "status-numbered.txt").exists()]


def read_fixture(situation, name):
    # newline="" keeps the bytes as ufw wrote them; the round trip must not hide a '\r'.
    with open(FIXTURES / situation / name, encoding="utf-8", newline="") as fixture:
        return fixture.read()


def parsed(situation, name="user.rules"):
    return parse_rules_file(read_fixture(situation, name))


def test_fixtures_cover_both_files_of_every_situation():
    assert len(SITUATIONS) >= 19
    for situation, name in RULES_FILES:
        assert (FIXTURES / situation / name).is_file()


@pytest.mark.parametrize("situation, name", RULES_FILES)
def test_round_trip_is_byte_identical(situation, name):
    text = read_fixture(situation, name)
    assert render_rules_file(parse_rules_file(text)) == text


@pytest.mark.parametrize("situation, name", RULES_FILES)
def test_every_tuple_becomes_one_rule_with_its_lines(situation, name):
    text = read_fixture(situation, name)
    rules_file = parse_rules_file(text)
    assert len(rules_file.rules) == text.count("\n### tuple ### ")
    assert rules_file.header[-1] == RULES_MARKER
    for rule in rules_file.rules:
        assert rule.raw_lines[0] == ""
        assert rule.raw_lines[1].startswith("### tuple ### ")
        assert rule.iptables_lines
        assert all(line.startswith("-A ufw") for line in rule.iptables_lines)
        assert rule.v6 == (name == "user6.rules")


def _status_lines_from_ufw(situation):
    lines = (FIXTURES / situation / "status-numbered.txt").read_text(encoding="utf-8").splitlines()
    # "[ 1] 5061/tcp ..." rows only; the "[ N] " prefix is 5 characters wide.
    return [line[5:].rstrip() for line in lines if line.startswith("[")]


def _status_lines_from_rules(situation):
    rules = parsed(situation, "user.rules").rules + parsed(situation, "user6.rules").rules
    lines = []
    for rule in rules:
        line = format_status_line(rule)
        # ufw lists the several tuples of one application profile once.
        is_app_rule = rule.dapp is not None or rule.sapp is not None
        if not (is_app_rule and line in lines):
            lines.append(line)
    return lines


@pytest.mark.parametrize("situation", SITUATIONS_WITH_STATUS)
def test_status_lines_match_ufw_status_numbered(situation):
    assert _status_lines_from_rules(situation) == _status_lines_from_ufw(situation)


def test_pristine_template_has_no_rules_and_keeps_rate_limiting_in_trailer():
    rules_file = parsed("pristine")
    assert rules_file.rules == ()
    assert rules_file.header[-1] == RULES_MARKER
    assert rules_file.trailer[0] == '-A ufw-user-limit -m limit --limit 3/minute -j LOG --log-prefix "[UFW LIMIT BLOCK] "'
    assert parsed("pristine", "user6.rules").trailer == ("COMMIT", "")


def test_empty_rules_section_written_by_ufw():
    rules_file = parsed("enabled-empty", "user6.rules")
    assert rules_file.rules == ()
    assert rules_file.trailer[:2] == ("", END_RULES_MARKER)


def test_hand_edited_blank_lines_survive_the_round_trip():
    # Not something ufw writes, but something an administrator may: no blank line
    # before the first tuple, two before the next, none before the END marker.
    tuple_22 = "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n-A ufw-user-input -p tcp --dport 22 -j ACCEPT\n"
    tuple_80 = "### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in\n-A ufw-user-input -p tcp --dport 80 -j ACCEPT\n"
    text = "*filter\n### RULES ###\n" + tuple_22 + "\n  \n" + tuple_80 + "### END RULES ###\nCOMMIT"
    rules_file = parse_rules_file(text)
    assert [rule.dport for rule in rules_file.rules] == ["22", "80"]
    assert rules_file.rules[1].raw_lines[:2] == ("", "  ")
    assert render_rules_file(rules_file) == text


def test_old_format_tuples_without_direction_mean_in():
    text = (
        "### RULES ###\n\n### tuple ### allow tcp 5060,5061 0.0.0.0/0 any 0.0.0.0/0 SIP%20TLS -\n"
        "-A ufw-user-input -p tcp -m multiport --dports 5060,5061 -j ACCEPT -m comment --comment 'dapp_SIP%20TLS'\n"
        "\n### END RULES ###\n"
    )
    rule = parse_rules_file(text).rules[0]
    assert (rule.direction, rule.dapp, rule.sapp, rule.interface_in) == ("in", "SIP TLS", None, None)
    assert render_rules_file(parse_rules_file(text)) == text


def test_protocol_any_rule_has_a_tcp_and_a_udp_line():
    rule = parsed("allow-5061").rules[0]
    assert (rule.action, rule.protocol, rule.dport, rule.src, rule.direction) == ("allow", "any", "5061", "0.0.0.0/0", "in")
    assert rule.iptables_lines == (
        "-A ufw-user-input -p tcp --dport 5061 -j ACCEPT",
        "-A ufw-user-input -p udp --dport 5061 -j ACCEPT",
    )
    assert format_status_line(rule) == "5061                       ALLOW IN    Anywhere"


def test_port_ranges():
    tcp_range, udp_range = parsed("ranges", "user6.rules").rules
    assert (tcp_range.protocol, tcp_range.dport, tcp_range.dst) == ("tcp", "5000:6000", "::/0")
    assert (udp_range.protocol, udp_range.dport) == ("udp", "5000:6000")
    assert udp_range.iptables_lines == ("-A ufw6-user-input -p udp -m multiport --dports 5000:6000 -j ACCEPT",)


def test_multiport_destination_and_source_lists():
    web, sip_udp, from_sip_ports = parsed("multiport").rules
    assert web.dport == "80,443,5061"
    assert (sip_udp.dport, sip_udp.sport) == ("5060,5062:5070", "1024:65535")
    assert (from_sip_ports.dport, from_sip_ports.sport, from_sip_ports.src) == ("5061", "5060,5061", "192.0.2.0/24")


def test_application_profile_names_are_decoded():
    sip_tls, from_trunk, mixed_udp, mixed_tcp, from_sip_tls = parsed("app-profiles").rules
    assert (sip_tls.dapp, sip_tls.sapp, sip_tls.protocol, sip_tls.dport) == ("SIP TLS", None, "tcp", "5060,5061")
    assert sip_tls.iptables_lines == (
        "-A ufw-user-input -p tcp -m multiport --dports 5060,5061 -j ACCEPT -m comment --comment 'dapp_SIP%20TLS'",
    )
    assert (from_trunk.src, from_trunk.comment) == ("198.51.100.0/24", "carrier trunk")
    assert (mixed_udp.dapp, mixed_udp.protocol, mixed_udp.interface_in) == ("SIP Mixed", "udp", "eth0")
    assert (mixed_tcp.dapp, mixed_tcp.protocol, mixed_tcp.interface_in) == ("SIP Mixed", "tcp", "eth0")
    assert (from_sip_tls.action, from_sip_tls.dapp, from_sip_tls.sapp, from_sip_tls.sport) == ("deny", None, "SIP TLS", "5060,5061")


def test_comments_are_decoded_from_hex():
    legacy, zurich, ssh = parsed("comments").rules
    assert legacy.comment == "legacy trunk"
    assert zurich.comment == "Zürich → PBX"
    assert ssh.comment == "ssh # admin only"
    assert parsed("comments", "user6.rules").rules[1].comment == "Zürich → PBX"
    assert parsed("allow-5061").rules[0].comment == ""


def test_source_restricted_rules():
    v4_network, v4_host_any_protocol, dotted_netmask, with_destination = parsed("source-restricted").rules
    assert v4_network.src == "192.0.2.0/24"
    assert (v4_host_any_protocol.src, v4_host_any_protocol.protocol) == ("203.0.113.7", "any")
    # ufw turned 192.0.2.77/255.255.255.0 into the network in CIDR form.
    assert dotted_netmask.src == "192.0.2.0/24"
    assert (with_destination.dst, with_destination.src) == ("10.0.0.1", "192.0.2.1")
    v6_network, v6_with_host_bits = parsed("source-restricted", "user6.rules").rules
    assert (v6_network.src, v6_network.v6) == ("2001:db8:1::/48", True)
    assert v6_with_host_bits.src == "2001:db8::5/64"
    assert format_status_line(v6_network) == "5061/tcp                   ALLOW IN    2001:db8:1::/48"


def test_route_rules():
    both_interfaces, plain, inbound_interface = parsed("route").rules
    assert both_interfaces.route is True
    assert (both_interfaces.interface_in, both_interfaces.interface_out) == ("eth0", "eth1")
    assert (both_interfaces.direction, both_interfaces.dst) == ("in", "10.0.0.5")
    assert both_interfaces.iptables_lines == (
        "-A ufw-user-forward -i eth0 -o eth1 -p tcp -d 10.0.0.5 --dport 5061 -j ACCEPT",
    )
    assert (plain.route, plain.interface_in, plain.interface_out) == (True, None, None)
    assert (inbound_interface.action, inbound_interface.interface_in) == ("deny", "eth0")
    outbound_v6 = parsed("route", "user6.rules").rules[2]
    assert (outbound_v6.route, outbound_v6.direction, outbound_v6.interface_out) == (True, "out", "eth1")
    assert (outbound_v6.protocol, outbound_v6.dport, outbound_v6.src) == ("any", "any", "2001:db8::/32")


def test_limit_rules():
    limit, limit_logged = parsed("limit").rules
    assert (limit.action, limit.log, len(limit.iptables_lines)) == ("limit", "", 3)
    assert (limit_logged.action, limit_logged.log, len(limit_logged.iptables_lines)) == ("limit", "log", 6)
    assert limit.iptables_lines[1] == (
        "-A ufw-user-input -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 30"
        " --hitcount 6 -j ufw-user-limit"
    )


def test_log_and_log_all_rules():
    allow_log, deny_log_all, reject_log = parsed("logging").rules
    assert (allow_log.action, allow_log.log) == ("allow", "log")
    assert (deny_log_all.action, deny_log_all.log) == ("deny", "log-all")
    assert (reject_log.action, reject_log.log) == ("reject", "log")
    # log-all logs every packet, log only new connections.
    assert "--ctstate NEW" in allow_log.iptables_lines[0]
    assert "--ctstate NEW" not in deny_log_all.iptables_lines[0]
    v6_allow_log_all = parsed("logging", "user6.rules").rules[3]
    assert (v6_allow_log_all.log, v6_allow_log_all.src) == ("log-all", "2001:db8::/32")


def test_interface_rules():
    in_eth0, deny_in_eth0, out_eth0, in_br_lan = parsed("interfaces").rules
    assert (in_eth0.direction, in_eth0.interface_in, in_eth0.interface_out) == ("in", "eth0", None)
    assert (deny_in_eth0.protocol, deny_in_eth0.src) == ("any", "192.0.2.0/24")
    assert (out_eth0.direction, out_eth0.interface_in, out_eth0.interface_out) == ("out", None, "eth0")
    assert in_br_lan.interface_in == "br_lan"


def test_outgoing_rules():
    deny_out, reject_out, allow_dns = parsed("out").rules
    assert (deny_out.direction, deny_out.iptables_lines) == ("out", ("-A ufw-user-output -p tcp --dport 5061 -j DROP",))
    assert (reject_out.action, reject_out.dst) == ("reject", "203.0.113.9")
    assert allow_dns.protocol == "any"


def test_deny_reject_and_other_protocols():
    rules = parsed("deny-reject").rules
    assert [(rule.action, rule.protocol) for rule in rules] == [
        ("deny", "tcp"), ("reject", "tcp"), ("reject", "udp"), ("reject", "any"), ("deny", "any"),
        ("deny", "any"), ("deny", "esp"), ("allow", "gre"), ("allow", "ipv6"),
    ]
    reject_any = rules[3]
    # Only the tcp half of a 'reject any' rule resets the connection.
    assert reject_any.iptables_lines == (
        "-A ufw-user-input -p tcp --dport 5060 -j REJECT --reject-with tcp-reset",
        "-A ufw-user-input -p udp --dport 5060 -j REJECT",
    )
    assert rules[5].iptables_lines == ("-A ufw-user-input -s 198.51.100.0/24 -j DROP",)


NEW_RULES = [
    # (file, index of the rule ufw wrote, make_rule arguments)
    ("user.rules", 0, dict(action="deny", protocol="tcp", port=5061, comment="sipguard")),
    ("user.rules", 1, dict(action="reject", protocol="tcp", port=5062, comment="sipguard")),
    ("user.rules", 2, dict(action="reject", protocol="udp", port=5063, comment="sipguard")),
    ("user.rules", 3, dict(action="allow", protocol="udp", port=5064)),
    ("user.rules", 4, dict(action="deny", protocol="udp", port=5065, comment="sipguard: TLS only")),
    ("user.rules", 5, dict(action="allow", protocol="tcp", port=5061, src="192.0.2.10", comment="sipguard")),
    ("user.rules", 6, dict(action="allow", protocol="tcp", port=5061, src="192.0.2.0/24", comment="sipguard")),
    ("user.rules", 7, dict(action="deny", protocol="udp", port=5061, src="198.51.100.0/24", comment="sipguard")),
    ("user6.rules", 0, dict(action="deny", protocol="tcp", port=5061, comment="sipguard", v6=True)),
    ("user6.rules", 1, dict(action="reject", protocol="tcp", port=5062, comment="sipguard", v6=True)),
    ("user6.rules", 2, dict(action="reject", protocol="udp", port=5063, comment="sipguard", v6=True)),
    ("user6.rules", 3, dict(action="allow", protocol="udp", port=5064, v6=True)),
    ("user6.rules", 4, dict(action="deny", protocol="udp", port=5065, comment="sipguard: TLS only", v6=True)),
    ("user6.rules", 5, dict(action="allow", protocol="udp", port=5061, src="2001:db8::/48", comment="sipguard", v6=True)),
    ("user6.rules", 6, dict(action="reject", protocol="tcp", port=5061, src="2001:db8::1", v6=True)),
]


@pytest.mark.parametrize("name, index, arguments", NEW_RULES)
def test_make_rule_writes_what_ufw_writes(name, index, arguments):
    written_by_ufw = parsed("sipguard-new-rules", name).rules[index]
    made = make_rule(**arguments)
    assert made.raw_lines == written_by_ufw.raw_lines
    assert made == written_by_ufw


@pytest.mark.parametrize("name, index, arguments", [
    ("user.rules", 2, dict(action="allow", protocol="tcp", port=5062, src="192.0.2.77/24")),
    ("user6.rules", 1, dict(action="allow", protocol="udp", port=5061, src="2001:DB8::5/64", v6=True)),
])
def test_make_rule_normalizes_source_like_ufw(name, index, arguments):
    assert make_rule(**arguments) == parsed("source-restricted", name).rules[index]


def test_make_rule_drops_host_prefix_like_ufw():
    assert make_rule("deny", "tcp", 5061, src="192.0.2.10/32").src == "192.0.2.10"
    assert make_rule("deny", "tcp", 5061, src="2001:db8::1/128", v6=True).src == "2001:db8::1"


def test_make_rule_treats_a_zero_prefix_as_anywhere_like_ufw():
    rule = make_rule("deny", "tcp", 5061, src="192.0.2.1/0")
    assert rule.src == "0.0.0.0/0"
    assert rule.iptables_lines == ("-A ufw-user-input -p tcp --dport 5061 -j DROP",)


@pytest.mark.parametrize("name", ["user.rules", "user6.rules"])
def test_inserting_at_the_top_gives_what_ufw_insert_1_wrote(name):
    before = parsed("sipguard-before", name)
    deny = make_rule("deny", "tcp", 5061, comment="sipguard", v6=name == "user6.rules")
    after = dataclasses.replace(before, rules=(deny,) + before.rules)
    assert render_rules_file(after) == read_fixture("sipguard-inserted", name)


@pytest.mark.parametrize("name", ["user.rules", "user6.rules"])
def test_prepending_two_rules_gives_what_ufw_prepend_wrote(name):
    v6 = name == "user6.rules"
    before = parsed("sipguard-before", name)
    new_rules = (
        make_rule("reject", "udp", 5061, comment="sipguard", v6=v6),
        make_rule("deny", "tcp", 5061, comment="sipguard", v6=v6),
    )
    after = dataclasses.replace(before, rules=new_rules + before.rules)
    assert render_rules_file(after) == read_fixture("sipguard-prepended", name)


@pytest.mark.parametrize("name", ["user.rules", "user6.rules"])
def test_removing_tagged_rules_gives_what_ufw_delete_wrote(name):
    prepended = parsed("sipguard-prepended", name)
    kept = tuple(rule for rule in prepended.rules if rule.comment != "sipguard")
    assert len(kept) == len(prepended.rules) - 2
    text = render_rules_file(dataclasses.replace(prepended, rules=kept))
    assert text == read_fixture("sipguard-removed", name)
    assert text == read_fixture("sipguard-before", name)


@pytest.mark.parametrize("name", ["user.rules", "user6.rules"])
def test_removing_every_rule_gives_the_empty_layout_ufw_writes(name):
    only_rule = parsed("sipguard-inserted", name)
    text = render_rules_file(dataclasses.replace(only_rule, rules=()))
    assert text == read_fixture("enabled-empty", name)


def test_rules_added_to_pristine_template_close_the_rules_section():
    pristine = parsed("pristine")
    deny = make_rule("deny", "tcp", 5061, comment="sipguard")
    text = render_rules_file(dataclasses.replace(pristine, rules=(deny,)))
    assert (
        RULES_MARKER + "\n"
        "\n"
        "### tuple ### deny tcp 5061 0.0.0.0/0 any 0.0.0.0/0 in comment=7369706775617264\n"
        "-A ufw-user-input -p tcp --dport 5061 -j DROP\n"
        "\n"
        + END_RULES_MARKER + "\n"
        "-A ufw-user-limit -m limit"
    ) in text
    assert text.endswith("COMMIT\n")
    assert parse_rules_file(text).rules == (deny,)


def test_status_line_of_a_new_rule():
    assert format_status_line(make_rule("deny", "tcp", 5061, comment="sipguard")) == (
        "5061/tcp                   DENY IN     Anywhere                   # sipguard"
    )
    assert format_status_line(make_rule("reject", "udp", 5061, v6=True)) == (
        "5061/udp (v6)              REJECT IN   Anywhere (v6)"
    )


@pytest.mark.parametrize("arguments, message", [
    (dict(action="limit", protocol="tcp", port=5061), "action"),
    (dict(action="deny", protocol="any", port=5061), "protocol"),
    (dict(action="deny", protocol="tcp", port=0), "port"),
    (dict(action="deny", protocol="tcp", port="5061"), "port"),
    (dict(action="deny", protocol="tcp", port=5061, comment="don't"), "quote"),
    (dict(action="deny", protocol="tcp", port=5061, src="192.0.2.1", v6=True), "IPv6"),
    (dict(action="deny", protocol="tcp", port=5061, src="2001:db8::1"), "IPv4"),
    (dict(action="deny", protocol="tcp", port=5061, src="192.0.2.0/33"), "prefix"),
])
def test_make_rule_rejects_what_it_cannot_write(arguments, message):
    with pytest.raises(ValueError, match=message):
        make_rule(**arguments)


VALID_HEAD = "*filter\n:ufw-user-input - [0:0]\n### RULES ###\n"
VALID_TAIL = "\n### END RULES ###\nCOMMIT\n"
VALID_TUPLE = "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n-A ufw-user-input -p tcp --dport 22 -j ACCEPT\n"


@pytest.mark.parametrize("text, line_number, offending, reason", [
    (VALID_HEAD + "\n### tuple ### allow tcp 22 0.0.0.0/0 any\n" + VALID_TAIL,
     5, "### tuple ### allow tcp 22 0.0.0.0/0 any", "fields"),
    (VALID_HEAD + "\n### tuple ### permit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n" + VALID_TAIL,
     5, "### tuple ### permit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in", "action"),
    (VALID_HEAD + "\n### tuple ### allow_loud tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n" + VALID_TAIL,
     5, "allow_loud", "action"),
    (VALID_HEAD + "\n### tuple ### allow sctp 22 0.0.0.0/0 any 0.0.0.0/0 in\n" + VALID_TAIL,
     5, "sctp", "protocol"),
    (VALID_HEAD + "\n### tuple ### allow tcp ssh 0.0.0.0/0 any 0.0.0.0/0 in\n" + VALID_TAIL,
     5, "ssh", "port"),
    (VALID_HEAD + "\n### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 sideways\n" + VALID_TAIL,
     5, "sideways", "direction"),
    (VALID_HEAD + "\n### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=sipguard\n" + VALID_TAIL,
     5, "comment=sipguard", "hex"),
    (VALID_HEAD + "\n" + VALID_TUPLE + "# added by hand\n" + VALID_TAIL,
     7, "# added by hand", "outside"),
    (VALID_HEAD + "\n-A ufw-user-input -p tcp --dport 22 -j ACCEPT\n" + VALID_TAIL,
     5, "-A ufw-user-input -p tcp --dport 22 -j ACCEPT", "outside"),
    (VALID_HEAD + "\n" + VALID_TUPLE + "\n-A ufw-user-input -p udp --dport 22 -j ACCEPT\n" + VALID_TAIL,
     8, "-A ufw-user-input -p udp --dport 22 -j ACCEPT", "outside"),
    (VALID_HEAD + "\n" + VALID_TUPLE + VALID_TAIL.replace("COMMIT", VALID_TUPLE + "COMMIT"),
     9, "### tuple ### allow tcp 22", "after"),
    ("*filter\n" + VALID_TUPLE + "### RULES ###\nCOMMIT\n",
     2, "### tuple ### allow tcp 22", "before"),
    (VALID_HEAD + "\n" + VALID_TUPLE + "COMMIT\n",
     5, "### tuple ### allow tcp 22", "without"),
])
def test_malformed_input_names_the_line(text, line_number, offending, reason):
    with pytest.raises(UfwRulesError, match=reason) as raised:
        parse_rules_file(text)
    assert raised.value.line_number == line_number
    assert offending in raised.value.line
    assert "line %d:" % line_number in str(raised.value)
    assert offending in str(raised.value)


def test_file_without_rules_marker_is_rejected():
    with pytest.raises(UfwRulesError, match="### RULES ###") as raised:
        parse_rules_file("*filter\nCOMMIT\n")
    assert raised.value.line_number is None
