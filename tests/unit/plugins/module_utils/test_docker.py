# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A port published by Docker: the verdict through filter FORWARD and the close's DOCKER-USER block.

The rule sets were captured in a privileged container of the harness's docker image (Debian's
docker.io 20.10.24, ufw 0.36.2 on iptables-nft, default deny, allow 22/tcp) with containers
run as `docker run -p 5061:5061` and `-p 8080:8080`: ``docker_run`` before the close,
``docker_closed`` after ``ufw_port port=5061 trusted_sources=192.0.2.0/24`` (docker=close),
``docker_user_rules`` with a rule of the user's first in DOCKER-USER (`-s 203.0.113.9 -j DROP`)
and 5061 published on TCP and UDP. The files in fixtures/ufw are Debian's after.rules and
after.init (mode 0640) of the same image.
"""

from __future__ import annotations

import pytest

from ansible_collections.sipguard.firewall.plugins.module_utils._host import HostError
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.bypasses import find_bypasses
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.model import BYPASS_NAT
from ansible_collections.sipguard.firewall.plugins.module_utils._netfilter.parse import parse_iptables_save
from ansible_collections.sipguard.firewall.plugins.module_utils._request import PortRequest
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw import docker
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.snapshot import UfwPortError
from ansible_collections.sipguard.firewall.plugins.module_utils._ufw.transaction import Transaction
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.fakes import FakeHost, fixture

HOST = "10.89.7.2"  # the Docker host's address in the capture
TRUSTED = ["192.0.2.0/24"]
AFTER_RULES = fixture("ufw", "after.rules")
AFTER_INIT = fixture("ufw", "after.init")


def request(**overrides):
    values = dict(port=5061, protocols=["tcp", "udp"], families=["ipv4", "ipv6"], state="closed", action="deny",
                  trusted_sources=[], conflicts="shadow", inactive="skip", comment="sipguard", lock_timeout=30,
                  docker="close")
    values.update(overrides)
    return PortRequest.from_params(values)


def bypasses(save, protocol, text=None, local=(HOST,), trusted=tuple(TRUSTED)):
    tables = parse_iptables_save(text if text is not None else fixture("netfilter", save))
    return find_bypasses(tables, "ipv4", protocol, 5061, local_addresses=list(local), trusted=list(trusted))


# ------------------------------------------------------------------ the verdict through FORWARD

def test_a_published_port_is_exposed_through_docker_s_forward_accept():
    (bypass,) = bypasses("docker_run.v4.save", "tcp")
    assert bypass.kind == BYPASS_NAT
    assert "sends tcp port 5061 on to 172.17.0.2:5061" in bypass.reason
    # The accept that lets it through, not a container's outbound rule the path only might take.
    assert "filter DOCKER rule 1 `-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp" in bypass.reason
    assert "ufw_port with docker=close drops it in DOCKER-USER" in bypass.reason


def test_the_close_s_chain_first_in_docker_user_closes_tcp_and_udp():
    for protocol in ("tcp", "udp"):
        assert bypasses("docker_closed.v4.save", protocol) == []


def test_a_user_rule_in_docker_user_for_one_sender_does_not_close_the_port():
    for protocol in ("tcp", "udp"):
        (bypass,) = bypasses("docker_user_rules.v4.save", protocol)
        assert "sends %s port 5061 on to 172.17.0.2:5061" % protocol in bypass.reason


def test_the_original_port_decides_not_the_container_s():
    closed = fixture("netfilter", "docker_closed.v4.save")
    # -p 5061:15061: DNAT to the container's 15061, still dropped by --ctorigdstport 5061.
    remapped = closed.replace("--to-destination 172.17.0.2:5061", "--to-destination 172.17.0.2:15061").replace(
        "--dport 5061 -j ACCEPT", "--dport 15061 -j ACCEPT")
    assert "172.17.0.2:15061" in remapped
    assert bypasses(None, "tcp", text=remapped) == []
    # A chain that matched the container's port instead (ufw-docker's way) leaves -p 5061:15061 open.
    by_container_port = remapped.replace("--ctorigdstport 5061", "--ctorigdstport 15061")
    assert [bypass.kind for bypass in bypasses(None, "tcp", text=by_container_port)] == [BYPASS_NAT]


def test_a_drop_of_connections_that_are_not_dnat_does_not_count():
    text = fixture("netfilter", "docker_closed.v4.save").replace(
        "--ctstate DNAT --ctorigdstport", "--ctstate SNAT --ctorigdstport")
    assert [bypass.kind for bypass in bypasses(None, "tcp", text=text)] == [BYPASS_NAT]


def test_a_forward_that_never_consults_docker_user_is_named():
    text = fixture("netfilter", "docker_closed.v4.save").replace("-A FORWARD -j DOCKER-USER\n", "")
    (bypass,) = bypasses(None, "tcp", text=text)
    assert "filter FORWARD never jumps to DOCKER-USER" in bypass.reason
    (published,) = bypasses("docker_run.v4.save", "tcp")
    assert "never jumps to DOCKER-USER" not in published.reason


def test_without_the_host_s_addresses_the_forwarded_path_is_not_assumed_blocked():
    (bypass,) = bypasses("docker_closed.v4.save", "tcp", local=())
    assert bypass.kind == BYPASS_NAT


# ------------------------------------------------------------------ the blocks in after.rules and after.init

def test_the_after_rules_block_is_what_iptables_save_prints_back():
    block = docker.after_rules_block(request(trusted_sources=TRUSTED))
    captured = [line for line in fixture("netfilter", "docker_closed.v4.save").splitlines()
                if line.startswith("-A sips-docker-5061 ")]
    assert [line for line in block.splitlines() if line.startswith("-A ")] == captured
    text = docker.after_rules_text(AFTER_RULES, request(trusted_sources=TRUSTED))
    assert text.startswith(AFTER_RULES) and text.endswith("# END sipguard.firewall sips-docker-5061\n")
    assert docker.after_rules_text(text, request(trusted_sources=TRUSTED)) == text  # idempotent
    assert docker.split_block(text, 5061) == (AFTER_RULES, block)


def test_reject_rejects_each_protocol_its_way():
    lines = docker.chain_lines(request(action="reject"))
    assert lines == ["-A sips-docker-5061 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 5061 --ctdir ORIGINAL "
                     "-j REJECT --reject-with tcp-reset",
                     "-A sips-docker-5061 -p udp -m conntrack --ctstate DNAT --ctorigdstport 5061 --ctdir ORIGINAL "
                     "-j REJECT --reject-with icmp-port-unreachable"]


def test_only_the_opening_direction_is_dropped_so_trusted_senders_get_their_replies():
    # DOCKER-USER sees the container's replies too, and they carry DNAT and the original port as well.
    for line in docker.chain_lines(request(trusted_sources=TRUSTED)):
        assert ("-j RETURN" in line) != ("--ctdir ORIGINAL" in line), line
    # The verdict: a drop of replies only does not keep a new connection out.
    replies = fixture("netfilter", "docker_closed.v4.save").replace("--ctdir ORIGINAL", "--ctdir REPLY")
    assert [bypass.kind for bypass in bypasses(None, "tcp", text=replies)] == [BYPASS_NAT]


def test_trusting_every_ipv4_source_is_written_as_iptables_save_prints_it():
    (line, _tcp, _udp) = docker.chain_lines(request(trusted_sources=["0.0.0.0/0"]))
    assert line == "-A sips-docker-5061 -j RETURN"


def test_the_blocks_of_port_80_are_not_the_blocks_of_port_8080():
    web, http = request(port=8080), request(port=80)
    rules = docker.after_rules_text(docker.after_rules_text(AFTER_RULES, web), http)
    assert docker.split_block(rules, 8080)[1] == docker.after_rules_block(web)
    assert docker.split_block(rules, 80)[1] == docker.after_rules_block(http)
    init, mode = docker.after_init_text(AFTER_INIT, 0o640, 8080)
    both, both_mode = docker.after_init_text(init, mode, 80)
    assert "-I DOCKER-USER 1 -j sips-docker-80 |" in both and "-I DOCKER-USER 1 -j sips-docker-8080 |" in both
    assert docker.after_init_without(both, both_mode, 80) == (init, mode)


def test_two_ports_closed_stay_where_they_are():
    first, second = request(port=5061), request(port=5062)
    rules = docker.after_rules_text(docker.after_rules_text(AFTER_RULES, first), second)
    assert docker.after_rules_text(rules, first) == rules and docker.after_rules_text(rules, second) == rules


def test_the_file_before_the_first_port_is_what_the_last_restore_puts_back():
    for text, mode in ((AFTER_INIT, 0o640), (None, None)):
        one, one_mode = docker.after_init_text(text, mode, 5061)
        two, two_mode = docker.after_init_text(one, one_mode, 5062)
        assert "(was: %s)" % ("absent" if text is None else "0640") in docker.split_block(two, 5062)[1]
        # The first restore keeps the file runnable for the other port's block.
        rest, rest_mode = docker.after_init_without(two, two_mode, 5061)
        assert rest_mode == two_mode and docker.split_block(rest, 5062)[1] is not None
        assert docker.after_init_without(rest, rest_mode, 5062) == (text, mode)


@pytest.mark.parametrize("text, mode, new_mode", [
    (None, None, 0o755),  # no after.init: created
    (AFTER_INIT, 0o640, 0o750),  # Debian's template, not executable: ufw-init would not run it
    ("#!/bin/bash\nset -e\necho mine >> /var/log/mine\n", 0o700, 0o700),  # the user's own
])
def test_after_init_gets_the_block_and_loses_exactly_it_again(text, mode, new_mode):
    new_text, got_mode = docker.after_init_text(text, mode, 5061)
    assert got_mode == new_mode
    assert new_text.startswith("#!")
    assert "iptables -w -I DOCKER-USER 1 -j sips-docker-5061" in new_text
    if text is not None:
        assert new_text.splitlines()[0] == text.splitlines()[0]
        assert new_text.replace(docker.split_block(new_text, 5061)[1], "") == text
    assert docker.after_init_text(new_text, got_mode, 5061) == (new_text, got_mode)
    assert docker.after_init_without(new_text, got_mode, 5061) == (text, mode)


def test_an_after_init_without_a_shebang_is_refused():
    with pytest.raises(ValueError, match="/etc/ufw/after.init has no #! line"):
        docker.after_init_text("iptables -N MINE\n", 0o644, 5061)


def test_a_block_without_its_end_line_is_refused_by_name():
    broken = AFTER_RULES + "# BEGIN sipguard.firewall sips-docker-5061: ...\n*filter\n"
    with pytest.raises(ValueError, match="# END sipguard.firewall sips-docker-5061"):
        docker.split_block(broken, 5061)


# ------------------------------------------------------------------ the transaction

def docker_host(saves="docker_run.v4.save", **overrides):
    files = {"/etc/ufw/after.rules": AFTER_RULES, "/etc/ufw/after.init": AFTER_INIT,
             "/proc/net/fib_trie": fixture("netfilter", "docker_host.fib_trie")}
    files.update(overrides.pop("files", {}))
    values = dict(saves=(saves, "docker_run.v6.save"), dockerd=True, files=files,
                  modes={"/etc/ufw/after.init": 0o640})
    values.update(overrides)
    return FakeHost(**values)


def close(host, check_mode=False, **options):
    return Transaction(host, request(**options), check_mode=check_mode).run()


def test_the_close_writes_both_blocks_loads_the_chain_and_is_closed():
    host = docker_host()
    result = close(host, trusted_sources=TRUSTED)
    assert result["changed"] and result["effective"] is True, result["reasons"]
    assert result["before"]["exposed"] is True
    assert docker.split_block(host.files["/etc/ufw/after.rules"], 5061)[1] is not None
    assert host.modes["/etc/ufw/after.init"] == 0o750
    (load,) = host.docker_loads
    assert load.splitlines() == ["*filter", ":sips-docker-5061 - [0:0]"] + docker.chain_lines(
        request(trusted_sources=TRUSTED)) + ["-I DOCKER-USER 1 -j sips-docker-5061", "COMMIT"]
    assert any("after.init" in action and "made the file executable" in action for action in result["actions"])


def test_the_close_again_on_the_closed_host_changes_nothing():
    first = docker_host()
    close(first, trusted_sources=TRUSTED)
    again = docker_host("docker_closed.v4.save", files=dict(first.files), modes=dict(first.modes))
    result = close(again, trusted_sources=TRUSTED)
    assert result["changed"] is False and result["effective"] is True and result["actions"] == []
    assert again.docker_loads == []


def test_check_mode_says_what_would_change_and_writes_nothing():
    host = docker_host()
    files = dict(host.files)
    result = close(host, check_mode=True)
    assert result["changed"] and result["effective"] is True
    assert host.files == files and host.docker_loads == []


def test_report_leaves_docker_alone_and_says_it_is_exposed():
    host = docker_host()
    result = close(host, docker="report")
    assert result["effective"] is False
    assert any("172.17.0.2:5061" in reason for reason in result["reasons"])
    assert host.files["/etc/ufw/after.rules"] == AFTER_RULES and host.docker_loads == []


def test_a_second_port_s_jump_first_leaves_the_first_port_in_place():
    """Two ports closed: after.init puts each one's jump first at every load of UFW, so either may be
    first; a close of either again changes nothing."""
    first = docker_host()
    close(first, trusted_sources=TRUSTED)
    files = dict(first.files)
    files["/etc/ufw/after.rules"] = docker.after_rules_text(files["/etc/ufw/after.rules"], request(port=5062))
    files["/etc/ufw/after.init"], mode = docker.after_init_text(
        files["/etc/ufw/after.init"], first.modes["/etc/ufw/after.init"], 5062)
    text = fixture("netfilter", "docker_closed.v4.save").replace(
        ":sips-docker-5061 - [0:0]\n", ":sips-docker-5061 - [0:0]\n:sips-docker-5062 - [0:0]\n").replace(
        "-A DOCKER-USER -j sips-docker-5061\n", "-A DOCKER-USER -j sips-docker-5062\n-A DOCKER-USER -j sips-docker-5061\n")
    text = text.replace("COMMIT\n", "".join(line + "\n" for line in docker.chain_lines(request(port=5062))) + "COMMIT\n", 1)
    again = docker_host("docker_closed.v4.save", files=files, modes=dict(first.modes, **{"/etc/ufw/after.init": mode}))
    again.saves["ipv4"] = again._loaded(text, "ipv4", True)  # pylint: disable=protected-access
    result = close(again, trusted_sources=TRUSTED)
    assert result["changed"] is False and result["actions"] == [] and again.docker_loads == []


def test_a_host_without_docker_gets_nothing():
    host = FakeHost(files={"/etc/ufw/after.rules": AFTER_RULES, "/etc/ufw/after.init": AFTER_INIT})
    result = close(host)
    assert host.files["/etc/ufw/after.rules"] == AFTER_RULES and host.files["/etc/ufw/after.init"] == AFTER_INIT
    assert not any("DOCKER" in action for action in result["actions"])


def test_dockerd_not_running_gets_the_block_and_a_docker_user_for_when_it_starts():
    host = docker_host("ufw_deny.v4.save")
    result = close(host)
    (load,) = host.docker_loads
    assert ":DOCKER-USER - [0:0]" in load.splitlines()
    assert any("dockerd is not running" in action for action in result["actions"])


def test_docker_user_rules_of_the_user_are_kept_and_ours_goes_first():
    host = docker_host("docker_user_rules.v4.save")
    result = close(host)
    assert result["effective"] is True, result["reasons"]
    (load,) = host.docker_loads
    assert ":DOCKER-USER - [0:0]" not in load  # declaring it would flush the user's rule
    assert "-I DOCKER-USER 1 -j sips-docker-5061" in load.splitlines()


def test_docker_s_chains_in_the_other_backend_are_refused_and_nothing_changes():
    host = FakeHost(dockerd=True, other_saves={("legacy", "ipv4"): "docker_run.v4.save"},
                    files={"/etc/ufw/after.rules": AFTER_RULES, "/etc/ufw/after.init": AFTER_INIT,
                           "/proc/net/ip_tables_names": "filter\nnat\n"})
    files = dict(host.files)
    with pytest.raises(UfwPortError, match="other iptables backend than UFW's"):
        close(host)
    assert host.files == files
    assert not any(argv[0].endswith("restore") for argv in host.processes)


def test_docker_s_nftables_backend_is_refused_and_nothing_changes():
    """Docker 29's firewall-backend nftables: no DOCKER chain in iptables, its own table ip docker-bridges."""
    host = docker_host("ufw_deny.v4.save", nft="docker_nftables.nft")
    files = dict(host.files)
    with pytest.raises(UfwPortError, match="nftables firewall backend \\(table ip docker-bridges\\)"):
        close(host)
    assert host.files == files and host.docker_loads == []
    # docker=report judges it and writes nothing of Docker's.
    result = close(docker_host("ufw_deny.v4.save", nft="docker_nftables.nft"), docker="report")
    assert result["effective"] is False


class FailingDockerLoad(FakeHost):
    """The Docker block's iptables-restore fails (say, no conntrack match in the kernel)."""

    def run(self, argv, data=None):
        if data and ":sips-docker-5061 - [0:0]\n-A " in data:
            self.processes.append(argv)
            raise HostError("iptables-restore failed (exit 1): Couldn't load match `conntrack'")
        return super().run(argv, data)


def test_a_failed_docker_load_puts_back_every_file_and_chain():
    host = docker_host()
    host.__class__ = FailingDockerLoad
    files, modes, chain = dict(host.files), dict(host.modes), host.live_chain("ipv4")
    with pytest.raises(UfwPortError, match="conntrack.*the previous rule files and chains were put back"):
        close(host)
    assert host.files == files and host.modes == modes
    assert host.live_chain("ipv4") == chain


def test_restore_removes_exactly_what_the_close_added():
    first = docker_host()
    close(first, trusted_sources=TRUSTED)
    closed = docker_host("docker_closed.v4.save", files=dict(first.files), modes=dict(first.modes))
    result = close(closed, state="absent")
    assert closed.files["/etc/ufw/after.rules"] == AFTER_RULES
    assert closed.files["/etc/ufw/after.init"] == AFTER_INIT and closed.modes["/etc/ufw/after.init"] == 0o640
    (unload,) = closed.docker_loads
    assert unload.splitlines() == ["*filter", "-D DOCKER-USER -j sips-docker-5061", "-F sips-docker-5061",
                                   "-X sips-docker-5061", "COMMIT"]
    assert any("removed DOCKER-USER's jump" in action for action in result["actions"])


def test_restore_deletes_an_after_init_it_created():
    host = docker_host(files={"/etc/ufw/after.init": None})
    del host.files["/etc/ufw/after.init"]
    close(host)
    assert host.modes["/etc/ufw/after.init"] == 0o755
    restored = docker_host("docker_closed.v4.save", files=dict(host.files), modes=dict(host.modes))
    close(restored, state="absent")
    assert "/etc/ufw/after.init" not in restored.files


# Docker 20.10 with `"ip6tables": true` (experimental): its IPv6 nat and FORWARD rules as it writes them,
# with no DOCKER-USER for IPv6, on top of the captured IPv6 rule set.
IPV6_FORWARD = """-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -j ufw6-before-logging-forward
"""
IPV6_DOCKER = """:DOCKER - [0:0]
-A DOCKER -d fd00:dead:beef::2/128 ! -i docker0 -o docker0 -p tcp -m tcp --dport 5061 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 5061 -j DNAT --to-destination [fd00:dead:beef::2]:5061
COMMIT
"""


def test_docker_s_ipv6_publishing_is_exposed_and_not_promised_to_docker_close():
    text = fixture("netfilter", "docker_run.v6.save")
    text = text.replace("-A FORWARD -j ufw6-before-logging-forward\n", IPV6_FORWARD, 1)
    head, _sep, _tail = text.rpartition("COMMIT\n")
    tables = parse_iptables_save(head + IPV6_DOCKER)
    (bypass,) = find_bypasses(tables, "ipv6", "tcp", 5061, local_addresses=["fd00:5061::2"], trusted=[])
    assert bypass.kind == BYPASS_NAT
    assert "sends tcp port 5061 on to [fd00:dead:beef::2]:5061" in bypass.reason
    assert "docker=close closes the IPv4 path only; turn ip6tables off in dockerd" in bypass.reason
    # Neither the IPv4 remedy nor the advice to restart dockerd for a DOCKER-USER that IPv6 never has.
    assert "drops it in DOCKER-USER" not in bypass.reason and "restart dockerd" not in bypass.reason
